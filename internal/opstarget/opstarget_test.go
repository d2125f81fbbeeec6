package opstarget

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coiflow/coiflow/internal/local/run"
	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/samtemplate"
)

// TestWorkQueuesMatchTemplate: the names an operator may use are template.yaml's:
// each queue exists, redrives to the named DLQ, and the webhook function's
// environment variable refers to it.
func TestWorkQueuesMatchTemplate(t *testing.T) {
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var webhook samtemplate.Function
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fns {
		if f.Dir() == "webhook" {
			webhook = f
		}
	}
	for _, wq := range WorkQueues() {
		q, err := tmpl.Queue(wq.LogicalID)
		if err != nil {
			t.Fatalf("%s: %v", wq.Name, err)
		}
		if q.DLQLogicalID != wq.DLQLogicalID {
			t.Errorf("%s redrives to %q in template.yaml, WorkQueues says %q", wq.LogicalID, q.DLQLogicalID, wq.DLQLogicalID)
		}
		if ref := webhook.Environment[wq.EnvVar]; !reflect.DeepEqual(ref, map[string]any{"Ref": wq.LogicalID}) {
			t.Errorf("webhook's %s = %v, want a Ref to %s", wq.EnvVar, ref, wq.LogicalID)
		}
	}
}

func TestLocalTarget(t *testing.T) {
	info := run.Info{
		Table:     "coiflow-local-table",
		Endpoints: run.Endpoints{DynamoDB: "http://127.0.0.1:8000", SQS: "http://127.0.0.1:5000", SecretsManager: "http://127.0.0.1:5000"},
		Queues: map[string]run.QueueInfo{
			"CrmJobsQueue":  {URL: "http://127.0.0.1:5000/123456789012/crm", DLQURL: "http://127.0.0.1:5000/123456789012/crm-dlq"},
			"SendJobsQueue": {URL: "http://127.0.0.1:5000/123456789012/send", DLQURL: "http://127.0.0.1:5000/123456789012/send-dlq"},
		},
		Functions: map[string]run.FunctionInfo{"webhook": {Env: map[string]string{
			EnvTable: "coiflow-local-table", EnvCRMQueue: "http://127.0.0.1:5000/123456789012/crm",
			EnvSendQueue: "http://127.0.0.1:5000/123456789012/send", EnvWebhookSecret: "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook",
		}}},
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "local.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tg, err := Local(path)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Kind != KindLocal || tg.Get(EnvTable) != "coiflow-local-table" || tg.Get(EnvWebhookSecret) == "" || tg.AWS.Region == "" {
		t.Fatalf("target %+v", tg)
	}
	for name, want := range map[string]string{
		"crm-jobs": info.Queues["CrmJobsQueue"].URL, "CrmJobsQueue": info.Queues["CrmJobsQueue"].URL,
		"crm-jobs-dlq": info.Queues["CrmJobsQueue"].URL, "CRMJOBSDLQ": info.Queues["CrmJobsQueue"].URL,
		"send-jobs": info.Queues["SendJobsQueue"].URL, "SendJobsDLQ": info.Queues["SendJobsQueue"].URL,
		"http://127.0.0.1:5000/123456789012/crm-dlq": "http://127.0.0.1:5000/123456789012/crm-dlq",
	} {
		if got, err := tg.QueueURL(name); err != nil || got != want {
			t.Errorf("QueueURL(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := tg.QueueURL("nope"); err == nil || !strings.Contains(err.Error(), "crm-jobs") {
		t.Errorf("QueueURL(nope) = %v, want the known names", err)
	}
	if got := tg.SourceQueueURLs(); len(got) != 2 {
		t.Errorf("SourceQueueURLs = %v", got)
	}
	tg.Set(EnvCRMQueue, "http://127.0.0.1:5000/123456789012/other")
	if got, _ := tg.QueueURL("crm-jobs"); got != "http://127.0.0.1:5000/123456789012/other" {
		t.Errorf("after Set, QueueURL(crm-jobs) = %q", got)
	}

	if _, err := Local(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "coiflow run") {
		t.Errorf("Local(missing) = %v, want a hint to start coiflow run", err)
	}
}

func TestAWSTargetNeedsConfiguration(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	tg, err := AWS(t.Context(), func(k string) string {
		return map[string]string{EnvSendQueue: "https://sqs.us-east-1.amazonaws.com/111122223333/send"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tg.QueueURL("send-jobs"); err != nil || got != "https://sqs.us-east-1.amazonaws.com/111122223333/send" {
		t.Errorf("QueueURL(send-jobs) = %q, %v", got, err)
	}
	if _, err := tg.QueueURL("crm-jobs"); err == nil || !strings.Contains(err.Error(), "CRM_QUEUE_URL is not set") {
		t.Errorf("QueueURL(crm-jobs) without CRM_QUEUE_URL = %v", err)
	}
}

func TestIsAWSURL(t *testing.T) {
	for u, want := range map[string]bool{
		"https://sqs.us-east-1.amazonaws.com/111122223333/q": true,
		"http://127.0.0.1:5000/123456789012/q":               false,
		"https://evil.example/sqs.amazonaws.com/q":           false,
		"crm-jobs": false,
	} {
		if IsAWSURL(u) != want {
			t.Errorf("IsAWSURL(%q) = %v", u, !want)
		}
	}
}
