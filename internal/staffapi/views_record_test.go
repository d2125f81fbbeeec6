package staffapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sending"
)

// fillAll sets every field of the struct v points to (recursively: slices
// get two elements) to a distinct non-zero value, so that a field a
// conversion forgets shows up in a comparison.
func fillAll(t *testing.T, v reflect.Value, seq *int) {
	t.Helper()
	*seq++
	n := *seq
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("value-%d <x@example.com> \"q\"", n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillAll(t, s.Index(i), seq)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			// Distinct, with nanoseconds, in a zone other than UTC.
			v.Set(reflect.ValueOf(time.Date(2026, 11, 21, 10, n%60, n%60, n*1001, time.FixedZone("EST", -5*3600))))
			return
		}
		for i := range v.NumField() {
			fillAll(t, v.Field(i), seq)
		}
	default:
		t.Fatalf("fillAll: unhandled kind %s", v.Kind())
	}
}

// TestSendViewRecordRoundTrip: a record with every field set survives
// NewSendView, JSON, and SendView.Record unchanged (times as UTC): what
// `coiflow export` reads is what GET /api/sends/export writes from. A field
// added to sending.SendRecord but not to the view fails here.
func TestSendViewRecordRoundTrip(t *testing.T) {
	var rec sending.SendRecord
	seq := 0
	fillAll(t, reflect.ValueOf(&rec).Elem(), &seq)
	rec.HolderEmailMasked = obs.MaskEmail(rec.HolderEmail) // derived, not carried by the view

	b, err := json.Marshal(SendList{Sends: []SendView{NewSendView(rec)}, Next: "c"})
	if err != nil {
		t.Fatal(err)
	}
	var list SendList
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	got, err := list.Sends[0].Record()
	if err != nil {
		t.Fatal(err)
	}
	want := rec
	for _, p := range []*time.Time{&want.ApprovedAt, &want.CreatedAt, &want.SentAt, &want.UpdatedAt} {
		*p = p.UTC()
	}
	want.History = append([]sending.Attempt(nil), rec.History...)
	for i := range want.History {
		want.History[i].At = want.History[i].At.UTC()
	}
	if !reflect.DeepEqual(got, want) {
		gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
		for i := range gv.NumField() {
			if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
				t.Errorf("%s: got %v, want %v", gv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface())
			}
		}
	}

	// An unset time stays unset; a bad one names its field.
	v := NewSendView(sending.SendRecord{ID: "snd_1", CreatedAt: rec.CreatedAt})
	if r, err := v.Record(); err != nil || !r.SentAt.IsZero() || !r.CreatedAt.Equal(rec.CreatedAt) || r.History != nil {
		t.Fatalf("sparse record: %+v %v", r, err)
	}
	v.SentAt = "yesterday"
	if _, err := v.Record(); err == nil || !strings.Contains(err.Error(), "sentAt") || !strings.Contains(err.Error(), "snd_1") {
		t.Fatalf("bad time: %v", err)
	}
	v.SentAt = ""
	v.History = []AttemptView{{Status: "SENT", At: "2026-13-01T00:00:00Z"}}
	if _, err := v.Record(); err == nil || !strings.Contains(err.Error(), "history[0].at") {
		t.Fatalf("bad attempt time: %v", err)
	}
}
