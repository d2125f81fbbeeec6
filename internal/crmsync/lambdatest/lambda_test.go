package lambdatest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/crm/hubspot/hubspotspec"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
	"github.com/coiflow/coiflow/internal/wire"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// The crm-worker function as Lambda runs it: built by wire from its
// environment (table in DynamoDB Local, credentials in moto's Secrets Manager,
// CRM_BASE_URL pointing at the CRM sandbox), invoked with the events/ files.
func TestCRMWorkerFunctionEndToEnd(t *testing.T) {
	env := testenv.Get(t)
	dir, err := hubspotspec.Dir()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := hubspotspec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	sb := crmsandbox.New(crmsandbox.Options{})
	rec := spec.Wrap(sb, true)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	base := srv.URL
	vars := map[string]string{
		"TABLE_NAME":     env.NewTable(t),
		"CRM_KIND":       "hubspot",
		"CRM_BASE_URL":   base,
		"CRM_SECRET_ARN": env.NewSecret(t, `{"hubspotToken":"`+crmsandbox.DefaultToken+`"}`),
		"LOG_LEVEL":      "info",
	}
	var out bytes.Buffer
	ctx := context.Background()
	h, err := wire.Builders()["crm-worker"](ctx, wire.Deps{Env: func(k string) string { return vars[k] }, AWS: env.AWS, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cowbell-quote-status.json", "nowcerts-holder-insert.json", "timeline-sent.json", "timeline-sent.json"} {
		payload, err := os.ReadFile(filepath.Join("..", "..", "..", "events", "crm-worker", name))
		if err != nil {
			t.Fatal(err)
		}
		res, err := h.Invoke(ctx, payload)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var resp events.SQSEventResponse
		if err := json.Unmarshal(res, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: %s %v\n%s", name, res, err, out.String())
		}
	}
	get := sb.Objects
	cos, cts, notes := get("companies"), get("contacts"), get("notes")
	if len(cos) != 2 || len(cts) != 3 || len(notes) != 1 {
		t.Fatalf("%d companies, %d contacts, %d notes\n%s", len(cos), len(cts), len(notes), out.String())
	}
	if rec.Requests() == 0 {
		t.Fatal("no request validated")
	}
	for _, err := range rec.Errors() {
		t.Errorf("HubSpot spec violation: %v", err)
	}
	if !bytes.Contains(out.Bytes(), []byte(`"CrmNotes":1`)) || !bytes.Contains(out.Bytes(), []byte(`"function":"crm-worker"`)) {
		t.Fatalf("metrics/logs on stdout:\n%s", out.String())
	}
}
