package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/replay"
	"github.com/coiflow/coiflow/internal/secrets"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/testsupport"
	"github.com/coiflow/coiflow/internal/webhook"
)

const (
	token  = "cowbell-token"
	agency = "2e054852-b63a-43da-bb78-28205748b658" // policy_certificate.json's
)

// drain receives (and deletes) every message of url.
func drain(t *testing.T, c *sqs.Client, url string) []types.Message {
	t.Helper()
	var all []types.Message
	for {
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		for _, m := range out.Messages {
			if _, err := c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, out.Messages...)
	}
}

// fixture is the webhook's world on local AWS: the table, two queue pairs
// (the replay's and a fresh delivery's) and the webhook secret.
type fixture struct {
	t           *testing.T
	sqs         *sqs.Client
	store       *store.Store
	crm, send   string
	creds       *webhook.SecretCredentials
	receiver    *webhook.Handler // delivers to the "fresh" queues
	freshQueues []string
	spy         *testsupport.SQSSpy // counts what the replayers send
}

func newFixture(t *testing.T) *fixture {
	env := testenv.Get(t)
	f := &fixture{t: t, sqs: env.SQS(), store: store.New(env.DynamoDB(), env.NewTable(t)), spy: &testsupport.SQSSpy{SQSSender: env.SQS()}}
	f.crm, _ = env.NewQueue(t, 0)
	f.send, _ = env.NewQueue(t, 0)
	freshCRM, _ := env.NewQueue(t, 0)
	freshSend, _ := env.NewQueue(t, 0)
	f.freshQueues = []string{freshCRM, freshSend}
	arn := env.NewSecret(t, `{"cowbell": {"tokens": ["`+token+`"], "agencyIds": ["`+strings.ToUpper(agency)+`"]}, "nowcerts": {"tokens": ["n"]}}`)
	f.creds = webhook.NewSecretCredentials(secrets.NewCache(env.SecretsManager(), time.Minute), arn)
	pub, err := queue.NewPublisher(queue.New(env.SQS()), map[jobs.Queue]string{jobs.QueueCRM: freshCRM, jobs.QueueSend: freshSend})
	if err != nil {
		t.Fatal(err)
	}
	if f.receiver, err = webhook.New(webhook.Config{Credentials: f.creds, Queue: pub, Quarantine: f.store}); err != nil {
		t.Fatal(err)
	}
	return f
}

// replayer replays onto the fixture's queues with the same publisher the
// webhook uses.
func (f *fixture) replayer(now time.Time) *replay.Replayer {
	pub, err := queue.NewPublisher(queue.New(f.spy), map[jobs.Queue]string{jobs.QueueCRM: f.crm, jobs.QueueSend: f.send})
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := replay.New(replay.Config{Store: f.store, Queue: pub, Credentials: f.creds, By: "ops@desk", Now: func() time.Time { return now }})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// deliver posts body to the webhook receiver as Cowbell would.
func (f *fixture) deliver(body []byte) (int, map[string]any) {
	f.t.Helper()
	var req events.APIGatewayV2HTTPRequest
	req.RawPath = "/webhooks/cowbell/" + token
	req.RequestContext.HTTP.Method = "POST"
	req.RequestContext.RequestID = "req-fresh"
	req.Headers = map[string]string{"content-type": "application/json"}
	req.Body = string(body)
	resp, err := f.receiver.Handle(context.Background(), req)
	if err != nil {
		f.t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		f.t.Fatalf("webhook answer %q", resp.Body)
	}
	return resp.StatusCode, out
}

// queued returns the jobs now on the replay's queues (and removes them), one
// per distinct body: SQS may hold a message twice (at-least-once). How many
// messages the replay sent is sent's business.
func (f *fixture) queued() map[string][]jobs.Job {
	f.t.Helper()
	out := map[string][]jobs.Job{}
	for q, url := range map[string]string{"crm-jobs": f.crm, "send-jobs": f.send} {
		seen := map[string]bool{}
		for _, m := range drain(f.t, f.sqs, url) {
			if seen[aws.ToString(m.Body)] {
				continue
			}
			seen[aws.ToString(m.Body)] = true
			j, err := jobs.Unmarshal(aws.ToString(m.Body))
			if err != nil {
				f.t.Fatalf("%s: %v", q, err)
			}
			if got := aws.ToString(m.MessageAttributes[queue.AttrEventID].StringValue); got != j.Event.ID {
				f.t.Errorf("%s: eventId attribute %q, job's event %q", q, got, j.Event.ID)
			}
			out[q] = append(out[q], j)
		}
	}
	return out
}

// ids are the ids of the jobs queued returned, for messages.
func ids(queued map[string][]jobs.Job) map[string][]string {
	out := map[string][]string{}
	for q, js := range queued {
		for _, j := range js {
			out[q] = append(out[q], j.ID)
		}
	}
	return out
}

// sent returns how many messages the replayers sent to each of the replay's
// queues since the last call (only queues sent to appear).
func (f *fixture) sent() map[string]int {
	out := map[string]int{}
	for q, url := range map[string]string{"crm-jobs": f.crm, "send-jobs": f.send} {
		if n := len(f.spy.Take(url)); n > 0 {
			out[q] = n
		}
	}
	return out
}

func certificateBody(t *testing.T) []byte {
	b, err := os.ReadFile("../event/testdata/cowbell/policy_certificate.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayLearnedShape: a body quarantined before the parser knew its shape
// (written directly, as the receiver would have) is replayed: its jobs land on
// both queues with the event id a fresh delivery gets and the original
// received-at; the record is marked; a second replay is refused unless forced.
func TestReplayLearnedShape(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	body := certificateBody(t)
	receivedAt := time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)
	now := receivedAt.Add(48 * time.Hour)
	rec := store.Quarantined{ID: "evt_0123456789abcdef0123456789abcdef", Source: "cowbell", RequestID: "req-original",
		Reason: `unknown event shape: unknown Cowbell meta.event "policy.certificate"`, ContentType: "application/json", ReceivedAt: receivedAt, Body: body}
	if _, err := f.store.PutQuarantine(ctx, rec); err != nil {
		t.Fatal(err)
	}
	r := f.replayer(now)

	// A dry run enqueues and marks nothing.
	dry, err := r.Replay(ctx, rec.ID, replay.Options{DryRun: true})
	if err != nil || !dry.DryRun || len(dry.Jobs) != 2 {
		t.Fatalf("dry run = %+v, %v", dry, err)
	}
	if q, n := f.queued(), f.sent(); len(q) != 0 || len(n) != 0 {
		t.Fatalf("dry run enqueued %v (sent %v)", ids(q), n)
	}
	if got, _ := f.store.GetQuarantine(ctx, rec.ID); got.Replay != nil {
		t.Fatalf("dry run marked the record: %+v", got.Replay)
	}

	res, err := r.Replay(ctx, rec.ID, replay.Options{})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	// The event id is the one a fresh delivery of the same body gets.
	status, answer := f.deliver(body)
	if status != 202 || answer["eventId"] != res.Event.ID {
		t.Fatalf("fresh delivery: %d %v; replay's event id %s", status, answer, res.Event.ID)
	}
	got, sent := f.queued(), f.sent()
	for _, q := range []string{"crm-jobs", "send-jobs"} {
		js := got[q]
		if len(js) != 1 || sent[q] != 1 {
			t.Fatalf("%s: %d distinct jobs, %d sent; want 1 (all: %v)", q, len(js), sent[q], ids(got))
		}
		j := js[0]
		if j.ID != res.Event.ID+":"+q || j.Event.ID != res.Event.ID || string(j.Queue) != q ||
			!j.Event.ReceivedAt.Equal(receivedAt) || j.RequestID != "req-original" || !j.EnqueuedAt.Equal(now) ||
			j.Event.Type != "policy.certificate" || j.Event.AgencyID != agency {
			t.Fatalf("%s: job %+v", q, j)
		}
	}
	marked, err := f.store.GetQuarantine(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m := marked.Replay; m == nil || m.EventID != res.Event.ID || m.By != "ops@desk" || !m.At.Equal(now) ||
		strings.Join(m.Queues, ",") != "crm-jobs,send-jobs" || m.Forced {
		t.Fatalf("record's replay mark = %+v", marked.Replay)
	}

	// Twice: refused, naming the first replay; nothing enqueued.
	_, err = r.Replay(ctx, rec.ID, replay.Options{})
	if !errors.Is(err, replay.ErrAlreadyReplayed) || !strings.Contains(err.Error(), "by ops@desk at 2026-03-04T15:04:05Z as event "+res.Event.ID) ||
		!strings.Contains(err.Error(), "--force") {
		t.Fatalf("second replay = %v, want ErrAlreadyReplayed naming the first", err)
	}
	if q, n := f.queued(), f.sent(); len(q) != 0 || len(n) != 0 {
		t.Fatalf("refused replay enqueued %v (sent %v)", ids(q), n)
	}

	// Forced: the same jobs again (same ids: the workers absorb them).
	forced, err := r.Replay(ctx, rec.ID, replay.Options{Force: true})
	if err != nil || forced.Record.Replay == nil || !forced.Record.Replay.Forced {
		t.Fatalf("forced replay = %+v, %v", forced.Record.Replay, err)
	}
	again, sent := f.queued(), f.sent()
	for _, q := range []string{"crm-jobs", "send-jobs"} {
		if js := again[q]; len(js) != 1 || js[0].ID != res.Event.ID+":"+q || sent[q] != 1 {
			t.Fatalf("forced replay enqueued %v (sent %v), want one job %s:%s", ids(again), sent, res.Event.ID, q)
		}
	}

	// The list shows it replayed.
	entries, err := replay.List(ctx, f.store, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !entries[0].ParsesNow || entries[0].EventID != res.Event.ID || entries[0].Replayed == nil {
		t.Fatalf("List = %+v", entries)
	}
}

// TestReplayUnreadable: a body the receiver quarantined (an unknown Cowbell
// event) still does not parse: the parser's reason is returned, nothing is
// enqueued and the record is left as it was.
func TestReplayUnreadable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	status, answer := f.deliver([]byte(`{"meta": {"event": "claim.opened"}, "data": {"claimId": "c-1", "agencyId": "` + agency + `"}}`))
	if status != 202 || answer["status"] != "quarantined" {
		t.Fatalf("delivery: %d %v, want quarantined", status, answer)
	}
	id := answer["eventId"].(string)

	_, err := f.replayer(time.Now()).Replay(ctx, id, replay.Options{})
	if !errors.Is(err, replay.ErrUnreadable) || !strings.Contains(err.Error(), `unknown Cowbell meta.event "claim.opened"`) {
		t.Fatalf("Replay = %v, want ErrUnreadable with the parser's reason", err)
	}
	if q, n := f.queued(), f.sent(); len(q) != 0 || len(n) != 0 {
		t.Fatalf("unreadable replay enqueued %v (sent %v)", ids(q), n)
	}
	if rec, err := f.store.GetQuarantine(ctx, id); err != nil || rec.Replay != nil {
		t.Fatalf("record after a failed replay = %+v, %v; want it unmarked", rec.Replay, err)
	}
	entries, err := replay.List(ctx, f.store, 10)
	if err != nil || len(entries) != 1 || entries[0].ParsesNow || !strings.Contains(entries[0].Problem, "claim.opened") {
		t.Fatalf("List = %+v, %v", entries, err)
	}
	var out bytes.Buffer
	if err := replay.WriteList(&out, entries); err != nil || !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "unreadable") {
		t.Fatalf("WriteList = %q, %v", out.String(), err)
	}

	if _, err := f.replayer(time.Now()).Replay(ctx, "evt_nope", replay.Options{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replay(missing) = %v, want ErrNotFound", err)
	}
}

// TestReplayAgencyNotAllowed: an event a fresh delivery would refuse (403) for
// its agency is not replayed either.
func TestReplayAgencyNotAllowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	body := bytes.Replace(certificateBody(t), []byte(agency), []byte("99999999-0000-0000-0000-000000000000"), 1)
	if status, _ := f.deliver(body); status != 403 {
		t.Fatalf("fresh delivery status %d, want 403", status)
	}
	rec := store.Quarantined{ID: "evt_agency", Source: "cowbell", Reason: "unknown", ReceivedAt: time.Now(), Body: body}
	if _, err := f.store.PutQuarantine(ctx, rec); err != nil {
		t.Fatal(err)
	}
	_, err := f.replayer(time.Now()).Replay(ctx, rec.ID, replay.Options{})
	if !errors.Is(err, replay.ErrAgencyNotAllowed) || !strings.Contains(err.Error(), "99999999-0000-0000-0000-000000000000") {
		t.Fatalf("Replay = %v, want ErrAgencyNotAllowed", err)
	}
	if q, n := f.queued(), f.sent(); len(q) != 0 || len(n) != 0 {
		t.Fatalf("refused replay enqueued %v (sent %v)", ids(q), n)
	}
	if got, _ := f.store.GetQuarantine(ctx, rec.ID); got.Replay != nil {
		t.Fatalf("refused replay marked the record")
	}
}
