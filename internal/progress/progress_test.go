package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestTerminalRedrawsInPlace(t *testing.T) {
	var b bytes.Buffer
	l := NewLine(&b, true, time.Hour, nil)
	l.Update("moved 10")
	l.Update("moved 20")
	l.Done("moved 25, failed 0")
	want := "\rmoved 10\x1b[K\rmoved 20\x1b[K\rmoved 25, failed 0\x1b[K\n"
	if b.String() != want {
		t.Fatalf("output %q, want %q", b.String(), want)
	}
}

func TestPlainPrintsAtMostEveryInterval(t *testing.T) {
	var b bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLine(&b, false, 5*time.Second, func() time.Time { return now })
	l.Update("moved 10") // first: shown
	now = now.Add(time.Second)
	l.Update("moved 20") // too soon: not shown
	now = now.Add(4 * time.Second)
	l.Update("moved 30") // 5 s after the last shown
	l.Done("done: moved 35")
	want := "moved 10\nmoved 30\ndone: moved 35\n"
	if b.String() != want {
		t.Fatalf("output %q, want %q", b.String(), want)
	}
	if strings.ContainsAny(b.String(), "\r\x1b") {
		t.Fatal("plain output has terminal control characters")
	}

	// A final line equal to the last one shown is not repeated.
	b.Reset()
	l = NewLine(&b, false, time.Hour, func() time.Time { return now })
	l.Update("moved 3")
	l.Done("moved 3")
	if b.String() != "moved 3\n" {
		t.Fatalf("output %q, want the line once", b.String())
	}
}

func TestIsTerminal(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file is not a terminal")
	}
}
