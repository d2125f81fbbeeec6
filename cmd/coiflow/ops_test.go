package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/jobs"
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

// drain receives and deletes every message of url (moto's short poll sees
// them all) and returns their distinct bodies: SQS is at-least-once and may
// hold a message twice.
func (s *localStack) drain(t *testing.T, url string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	bodies := map[string]bool{}
	for {
		out, err := s.env.SQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return bodies
		}
		for _, m := range out.Messages {
			if _, err := s.env.SQS().DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			bodies[aws.ToString(m.Body)] = true
		}
	}
}

// jobIDs drains url and returns the distinct ids of the jobs it held.
func (s *localStack) jobIDs(t *testing.T, url string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for b := range s.drain(t, url) {
		j, err := jobs.Unmarshal(b)
		if err != nil {
			t.Fatalf("%s holds a message that is not a job: %v", url, err)
		}
		ids[j.ID] = true
	}
	return ids
}

// TestRedriveCommand runs `coiflow redrive` against a local.json on moto: a
// DLQ named by its template logical id is found from its source's
// RedrivePolicy, a dry run moves nothing, and the move empties it.
func TestRedriveCommand(t *testing.T) {
	s := newLocalStack(t)
	want := map[string]bool{}
	for i := range 12 {
		body := fmt.Sprintf(`{"n":%d}`, i)
		want[body] = true
		if _, err := s.env.SQS().SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(s.crmDLQ), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	// SQS is at-least-once: the DLQ holds 12 messages unless it stored one
	// twice. The counts the command reports follow what it holds, and the
	// source is checked as a set of bodies.
	n := s.depth(t, s.crmDLQ)
	if n < 12 {
		t.Fatalf("the DLQ holds %d messages after 12 sends", n)
	}
	code, stdout, stderr := s.coiflow(t, "redrive", "--state", s.state, "--dry-run", "CrmJobsDLQ")
	if code != exitOK || !strings.Contains(stdout, fmt.Sprintf("would move %d of about %d visible messages from %s to %s", n, n, s.crmDLQ, s.crm)) {
		t.Fatalf("dry run (%d in the DLQ): exit %d\nstdout %s\nstderr %s", n, code, stdout, stderr)
	}
	if d := s.depth(t, s.crmDLQ); d != n {
		t.Fatalf("dry run moved messages: DLQ has %d, had %d", d, n)
	}
	code, stdout, stderr = s.coiflow(t, "redrive", "--state", s.state, "--max", "5", "crm-jobs")
	if code != exitOK || strings.TrimSpace(stdout) != fmt.Sprintf("moved 5, failed 0, left %d", n-5) || !strings.Contains(stderr, "redrive: moved 5, failed 0") {
		t.Fatalf("redrive --max 5 (%d in the DLQ): exit %d\nstdout %s\nstderr %s", n, code, stdout, stderr)
	}
	code, stdout, stderr = s.coiflow(t, "redrive", "--state", s.state, s.crmDLQ)
	if code != exitOK || strings.TrimSpace(stdout) != fmt.Sprintf("moved %d, failed 0, left 0", n-5) {
		t.Fatalf("redrive DLQ URL (%d left in the DLQ): exit %d\nstdout %s\nstderr %s", n-5, code, stdout, stderr)
	}
	// Plain progress lines (stderr is not a terminal here): no carriage returns.
	if strings.ContainsAny(stderr, "\r\x1b") {
		t.Fatalf("progress on a non-terminal has control characters: %q", stderr)
	}
	if d := s.depth(t, s.crmDLQ); d != 0 {
		t.Fatalf("the DLQ still holds %d messages", d)
	}
	got := s.drain(t, s.crm)
	for b := range want {
		if !got[b] {
			t.Errorf("message %s did not reach the source queue", b)
		}
	}
	for b := range got {
		if !want[b] {
			t.Errorf("unexpected message %s on the source queue", b)
		}
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
	// One job per queue, read as sets of job ids (SQS is at-least-once and
	// may hold a message twice); the queues are empty afterwards.
	m := regexp.MustCompile(`as event (\S+) \(`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("replay: no event id in %q", stdout)
	}
	for url, q := range map[string]jobs.Queue{s.crm: jobs.QueueCRM, s.send: jobs.QueueSend} {
		if ids, want := s.jobIDs(t, url), m[1]+":"+string(q); len(ids) != 1 || !ids[want] {
			t.Fatalf("after replay %s holds jobs %v, want only %s", q, ids, want)
		}
	}
	code, _, stderr = s.coiflow(t, "quarantine", "replay", "--state", s.state, "evt_learned")
	if code != exitFail || !strings.Contains(stderr, "already replayed by ann@desk") {
		t.Fatalf("second replay: exit %d, stderr %s", code, stderr)
	}
	code, _, stderr = s.coiflow(t, "quarantine", "replay", "--state", s.state, "evt_unknown")
	if code != exitFail || !strings.Contains(stderr, `unknown Cowbell meta.event "claim.opened"`) || !strings.Contains(stderr, "left as it is") {
		t.Fatalf("unreadable replay: exit %d, stderr %s", code, stderr)
	}
	if crm, send := s.jobIDs(t, s.crm), s.jobIDs(t, s.send); len(crm) != 0 || len(send) != 0 {
		t.Fatalf("a refused replay enqueued %v %v", crm, send)
	}
	code, stdout, _ = s.coiflow(t, "quarantine", "list", "--state", s.state, "--json")
	var entries []map[string]any
	if code != exitOK || json.Unmarshal([]byte(stdout), &entries) != nil || len(entries) != 2 {
		t.Fatalf("list --json: exit %d, %s", code, stdout)
	}
}
