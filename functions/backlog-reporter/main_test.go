package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/backlog"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/wire"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// TestBacklogReporterWithEventFiles builds the function as Lambda would (the
// wire registry, TABLE_NAME) against DynamoDB Local and invokes it with the
// events/ file: it counts the holds in the table and emits both gauges.
func TestBacklogReporterWithEventFiles(t *testing.T) {
	env := testenv.Get(t)
	table := env.NewTable(t)
	var out bytes.Buffer
	build, ok := wire.Builders()["backlog-reporter"]
	if !ok {
		t.Fatal(`wire.Builders() has no "backlog-reporter"`)
	}
	h, err := build(context.Background(), wire.Deps{
		Env: func(k string) string { return map[string]string{"TABLE_NAME": table}[k] }, AWS: env.AWS, Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	event, err := os.ReadFile(filepath.Join("..", "..", "events", "backlog-reporter", "schedule.json"))
	if err != nil {
		t.Fatal(err)
	}
	invoke := func() backlog.Report {
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
		return rep
	}

	if rep := invoke(); rep != (backlog.Report{}) || !strings.Contains(out.String(), `"HoldsPending":0`) {
		t.Fatalf("empty table: %+v\n%s", rep, out.String())
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
	// h2, made two hours ago, is the oldest still waiting (the test's own run
	// time can only add to its age).
	rep := invoke()
	if rep.HoldsPending != 2 || rep.OldestHoldAgeSeconds < 2*3600 || rep.OldestHoldAgeSeconds > 3*3600 {
		t.Fatalf("report %+v", rep)
	}
	for _, want := range []string{`"HoldsPending":2`, fmt.Sprintf(`"OldestHoldAge":%d`, rep.OldestHoldAgeSeconds), `"msg":"approval backlog measured"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}
