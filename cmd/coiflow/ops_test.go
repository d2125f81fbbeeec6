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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/local/run"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

func TestOpsUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "local.json")
	cases := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"redrive"}, exitUsage, "want one QUEUE"},
		{[]string{"redrive", "a", "b"}, exitUsage, "want one QUEUE"},
		{[]string{"redrive", "--max", "-1", "crm-jobs"}, exitUsage, "--max must be 0 or more"},
		{[]string{"redrive", "--native", "--max", "3", "crm-jobs"}, exitUsage, "--max cannot limit a --native move"},
		{[]string{"redrive", "--state", missing, "crm-jobs"}, exitFail, "is `coiflow run` (make run) running?"},
		{[]string{"redrive", "-h"}, exitOK, "-dry-run"},
		{[]string{"quarantine"}, exitUsage, "quarantine list [flags] | quarantine replay [flags] ID"},
		{[]string{"quarantine", "bogus"}, exitUsage, `unknown subcommand "bogus"`},
		{[]string{"quarantine", "replay"}, exitUsage, "want one quarantine ID"},
		{[]string{"quarantine", "list", "extra"}, exitUsage, "usage: coiflow quarantine list"},
		{[]string{"quarantine", "list", "--state", missing}, exitFail, "is `coiflow run` (make run) running?"},
		{[]string{"quarantine", "replay", "-h"}, exitOK, "-force"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.inStderr) {
			t.Errorf("coiflow %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr.String(), c.code, c.inStderr)
		}
	}
}

// localStack writes a local.json describing queues, a table and a webhook
// secret on the test's local AWS, as `coiflow run` would.
type localStack struct {
	env                        *testenv.Env
	state                      string
	crm, crmDLQ, send, sendDLQ string
	store                      *store.Store
}

func newLocalStack(t *testing.T) *localStack {
	env := testenv.Get(t)
	s := &localStack{env: env}
	s.crm, s.crmDLQ = env.NewQueue(t, 3)
	s.send, s.sendDLQ = env.NewQueue(t, 3)
	table := env.NewTable(t)
	s.store = store.New(env.DynamoDB(), table)
	secret := env.NewSecret(t, `{"cowbell": {"tokens": ["t"]}, "nowcerts": {"tokens": ["t"]}}`)
	info := run.Info{
		Table:     table,
		Endpoints: run.Endpoints{DynamoDB: env.DynamoDBEndpoint, SQS: env.MotoEndpoint, SecretsManager: env.MotoEndpoint},
		Queues: map[string]run.QueueInfo{
			"CrmJobsQueue":  {URL: s.crm, DLQURL: s.crmDLQ},
			"SendJobsQueue": {URL: s.send, DLQURL: s.sendDLQ},
		},
		Functions: map[string]run.FunctionInfo{"webhook": {Env: map[string]string{
			"TABLE_NAME": table, "CRM_QUEUE_URL": s.crm, "SEND_QUEUE_URL": s.send, "WEBHOOK_SECRET_ARN": secret,
		}}},
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	s.state = filepath.Join(t.TempDir(), "local.json")
	if err := os.WriteFile(s.state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *localStack) coiflow(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = dispatch(context.Background(), args, &out, &errw)
	return code, out.String(), errw.String()
}

func (s *localStack) depth(t *testing.T, url string) int {
	t.Helper()
	out, err := s.env.SQS().GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(out.Attributes["ApproximateNumberOfMessages"], &n)
	return n
}

// TestRedriveCommand runs `coiflow redrive` against a local.json on moto: a
// DLQ named by its template logical id is found from its source's
// RedrivePolicy, a dry run moves nothing, and the move empties it.
func TestRedriveCommand(t *testing.T) {
	s := newLocalStack(t)
	for i := range 12 {
		if _, err := s.env.SQS().SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(s.crmDLQ), MessageBody: aws.String(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := s.coiflow(t, "redrive", "--state", s.state, "--dry-run", "CrmJobsDLQ")
	if code != exitOK || !strings.Contains(stdout, "would move 12 of about 12 visible messages from "+s.crmDLQ+" to "+s.crm) {
		t.Fatalf("dry run: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if n := s.depth(t, s.crmDLQ); n != 12 {
		t.Fatalf("dry run moved messages: DLQ has %d", n)
	}
	code, stdout, stderr = s.coiflow(t, "redrive", "--state", s.state, "--max", "5", "crm-jobs")
	if code != exitOK || strings.TrimSpace(stdout) != "moved 5, failed 0, left 7" || !strings.Contains(stderr, "redrive: moved 5, failed 0") {
		t.Fatalf("redrive --max 5: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, stdout, stderr = s.coiflow(t, "redrive", "--state", s.state, s.crmDLQ)
	if code != exitOK || strings.TrimSpace(stdout) != "moved 7, failed 0, left 0" {
		t.Fatalf("redrive DLQ URL: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	// Plain progress lines (stderr is not a terminal here): no carriage returns.
	if strings.ContainsAny(stderr, "\r\x1b") {
		t.Fatalf("progress on a non-terminal has control characters: %q", stderr)
	}
	if n := s.depth(t, s.crm); n != 12 {
		t.Fatalf("source queue has %d messages, want 12", n)
	}
}

// TestQuarantineCommands lists and replays quarantine records through the
// CLI against a local.json on DynamoDB Local and moto.
func TestQuarantineCommands(t *testing.T) {
	s := newLocalStack(t)
	ctx := context.Background()
	body, err := os.ReadFile("../../internal/event/testdata/cowbell/policy_certificate.json")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)
	for _, q := range []store.Quarantined{
		{ID: "evt_learned", Source: "cowbell", Reason: "unknown event shape", ReceivedAt: at, Body: body},
		{ID: "evt_unknown", Source: "cowbell", Reason: "unknown event shape", ReceivedAt: at.Add(time.Minute), Body: []byte(`{"meta":{"event":"claim.opened"},"data":{}}`)},
	} {
		if _, err := s.store.PutQuarantine(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := s.coiflow(t, "quarantine", "list", "--state", s.state)
	if code != exitOK || !strings.Contains(stdout, "evt_learned") || !strings.Contains(stdout, "parses now: replayable") || !strings.Contains(stdout, "unreadable") {
		t.Fatalf("list: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	code, stdout, stderr = s.coiflow(t, "quarantine", "replay", "--state", s.state, "--by", "ann@desk", "evt_learned")
	if code != exitOK || !strings.Contains(stdout, "replayed quarantine evt_learned as event evt_") || !strings.Contains(stdout, ":crm-jobs") || !strings.Contains(stdout, "by ann@desk") {
		t.Fatalf("replay: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if s.depth(t, s.crm) != 1 || s.depth(t, s.send) != 1 {
		t.Fatalf("after replay: crm %d, send %d messages; want 1 each", s.depth(t, s.crm), s.depth(t, s.send))
	}
	code, _, stderr = s.coiflow(t, "quarantine", "replay", "--state", s.state, "evt_learned")
	if code != exitFail || !strings.Contains(stderr, "already replayed by ann@desk") {
		t.Fatalf("second replay: exit %d, stderr %s", code, stderr)
	}
	code, _, stderr = s.coiflow(t, "quarantine", "replay", "--state", s.state, "evt_unknown")
	if code != exitFail || !strings.Contains(stderr, `unknown Cowbell meta.event "claim.opened"`) || !strings.Contains(stderr, "left as it is") {
		t.Fatalf("unreadable replay: exit %d, stderr %s", code, stderr)
	}
	if s.depth(t, s.crm) != 1 || s.depth(t, s.send) != 1 {
		t.Fatal("a refused replay enqueued something")
	}
	code, stdout, _ = s.coiflow(t, "quarantine", "list", "--state", s.state, "--json")
	var entries []map[string]any
	if code != exitOK || json.Unmarshal([]byte(stdout), &entries) != nil || len(entries) != 2 {
		t.Fatalf("list --json: exit %d, %s", code, stdout)
	}
}
