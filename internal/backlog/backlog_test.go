package backlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/backlog"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/wire"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

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

// TestReporterOverDynamoDBLocal: the function as template.yaml wires it
// (wire.BacklogReporter, TABLE_NAME) counts the holds in the table and emits
// the two gauges.
func TestReporterOverDynamoDBLocal(t *testing.T) {
	env := testenv.Get(t)
	table := env.NewTable(t)
	var out bytes.Buffer
	h, err := wire.BacklogReporter(context.Background(), wire.Deps{
		Env: func(k string) string { return map[string]string{"TABLE_NAME": table}[k] }, AWS: env.AWS, Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	event := []byte(`{"version":"0","id":"e1","detail-type":"Scheduled Event","source":"aws.scheduler","detail":{}}`)
	invoke := func() (backlog.Report, map[string]float64) {
		t.Helper()
		out.Reset()
		b, err := h.Invoke(context.Background(), event)
		if err != nil {
			t.Fatal(err)
		}
		var rep backlog.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		return rep, gauges(t, out.String())
	}

	rep, g := invoke()
	if rep.HoldsPending != 0 || rep.OldestHoldAgeSeconds != 0 || len(g) != 2 || g[obs.MetricHoldsPending] != 0 || g[obs.MetricOldestHoldAge] != 0 {
		t.Fatalf("empty table: %+v %v", rep, g)
	}

	st := store.New(env.DynamoDB(), table)
	made := time.Now().Add(-3 * time.Hour)
	for i, id := range []string{"h1", "h2", "h3"} {
		h := store.Hold{ID: id, SendID: "snd_" + id, CertificateID: "cert-1", Revision: "r1", HolderID: "holder-" + id,
			Reasons: []string{"additional insured requested"}, CreatedAt: made.Add(time.Duration(i) * time.Hour)}
		rec := store.Send{ID: h.SendID, CertificateID: h.CertificateID, Revision: h.Revision, HolderID: h.HolderID, Channel: "email"}
		if err := st.PutHold(context.Background(), h, rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RejectHold(context.Background(), "h1", "jane", "wrong holder"); err != nil {
		t.Fatal(err)
	}
	rep, g = invoke()
	// h2, made two hours ago, is the oldest still waiting (the test's own
	// run time is added to its age, never subtracted).
	if rep.HoldsPending != 2 || rep.OldestHoldAgeSeconds < 2*3600 || rep.OldestHoldAgeSeconds > 3*3600 {
		t.Fatalf("report %+v", rep)
	}
	if g[obs.MetricHoldsPending] != 2 || g[obs.MetricOldestHoldAge] != float64(rep.OldestHoldAgeSeconds) {
		t.Fatalf("gauges %v for %+v", g, rep)
	}
}
