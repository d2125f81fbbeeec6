package crm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPermanentStatus(t *testing.T) {
	for st, want := range map[int]bool{400: true, 404: true, 409: true, 422: true, 401: false, 403: false, 408: false, 429: false, 500: false, 503: false} {
		if PermanentStatus(st) != want {
			t.Errorf("%d: %v", st, !want)
		}
	}
}

func TestClassificationSurvivesWrapping(t *testing.T) {
	e := StatusError("op", 400, "VALIDATION_ERROR", "bad")
	w := fmt.Errorf("context: %w", e)
	if !IsPermanent(w) || !NotApplied(w) {
		t.Fatal("wrapped permanent 400")
	}
	r := &Error{Op: "op", Status: 503}
	if IsPermanent(r) || NotApplied(r) {
		t.Fatal("503 is retryable and ambiguous")
	}
	if IsPermanent(errors.New("network")) || NotApplied(errors.New("network")) {
		t.Fatal("unclassified errors are retryable and ambiguous")
	}
	m := &Error{Op: "op", Status: 300, Permanent: true, Err: ErrMultipleMatches}
	if !errors.Is(fmt.Errorf("x: %w", m), ErrMultipleMatches) || !strings.Contains(m.Error(), "HTTP 300") {
		t.Fatal(m.Error())
	}
}

func TestNoteRefIsShortAndStable(t *testing.T) {
	a := Note{Key: "tl:snd_1:cert:holder:sent:2026-11-21T14:02:00Z"}
	b := Note{Key: "tl:snd_2:cert:holder:sent:2026-11-21T14:02:00Z"}
	again := Note{Key: a.Key}
	if a.Ref() != again.Ref() || a.Ref() == b.Ref() || len(a.Ref()) != len("[coiflow ]")+16 {
		t.Fatalf("%q %q", a.Ref(), b.Ref())
	}
}
