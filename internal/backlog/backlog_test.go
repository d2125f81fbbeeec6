package backlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/backlog"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// gauges reads the EMF lines in out: metric name → value, and checks each
// line declares the metric in the Coiflow namespace with the given unit.
func gauges(t *testing.T, out string) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for line := range strings.Lines(out) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["_aws"] == nil {
			continue // a log line
		}
		aws := rec["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
		m := aws["Metrics"].([]any)[0].(map[string]any)
		name := m["Name"].(string)
		want := map[string]string{obs.MetricHoldsPending: "Count", obs.MetricOldestHoldAge: "Seconds"}[name]
		if aws["Namespace"] != obs.Namespace || m["Unit"] != want {
			t.Errorf("EMF record %s", line)
		}
		got[name] = rec[name].(float64)
	}
	return got
}

type failing struct{}

func (failing) CountPendingHolds(context.Context) (store.HoldBacklog, error) {
	return store.HoldBacklog{}, errors.New("throttled")
}

// TestFailedCountEmitsNothing: a gap in the metric, not a false zero, when the
// count fails (the stale-hold alarm treats missing data as breaching).
func TestFailedCountEmitsNothing(t *testing.T) {
	var out bytes.Buffer
	r := backlog.Reporter{Holds: failing{}, Metrics: obs.NewMetrics(&out)}
	if _, err := r.Handle(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "throttled") {
		t.Fatalf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("emitted %q", out.String())
	}
}

type fixed struct{ b store.HoldBacklog }

func (f fixed) CountPendingHolds(context.Context) (store.HoldBacklog, error) { return f.b, nil }

// TestGauges: the count and the oldest hold's age in whole seconds; an empty
// backlog reports zero for both (an empty queue is data, not a gap).
func TestGauges(t *testing.T) {
	now := time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		backlog store.HoldBacklog
		want    backlog.Report
	}{
		{"empty", store.HoldBacklog{}, backlog.Report{}},
		{"three waiting", store.HoldBacklog{Pending: 3, Oldest: now.Add(-90*time.Minute - 500*time.Millisecond)}, backlog.Report{HoldsPending: 3, OldestHoldAgeSeconds: 5400}},
		{"clock behind the store", store.HoldBacklog{Pending: 1, Oldest: now.Add(time.Minute)}, backlog.Report{HoldsPending: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := backlog.Reporter{Holds: fixed{tc.backlog}, Metrics: obs.NewMetrics(&out), Now: func() time.Time { return now }}
			rep, err := r.Handle(context.Background(), nil)
			if err != nil || rep != tc.want {
				t.Fatalf("report %+v %v, want %+v", rep, err, tc.want)
			}
			g := gauges(t, out.String())
			if len(g) != 2 || g[obs.MetricHoldsPending] != float64(tc.want.HoldsPending) || g[obs.MetricOldestHoldAge] != float64(tc.want.OldestHoldAgeSeconds) {
				t.Fatalf("gauges %v", g)
			}
		})
	}
}
