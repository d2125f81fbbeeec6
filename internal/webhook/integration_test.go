package webhook_test

import (
	"context"
	"encoding/json"
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
	"github.com/coiflow/coiflow/internal/secrets"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/testsupport"
	"github.com/coiflow/coiflow/internal/webhook"
)

// TestReceiverOnLocalAWS runs events/webhook files through the handler wired to
// the real adapters: credentials from a Secrets Manager secret, jobs onto SQS
// queues and quarantine records into template.yaml's table (moto and DynamoDB
// Local over the wire).
func TestReceiverOnLocalAWS(t *testing.T) {
	env := testenv.Get(t)
	crmURL, _ := env.NewQueue(t, 5)
	sendURL, _ := env.NewQueue(t, 5)
	st := store.New(env.DynamoDB(), env.NewTable(t))
	arn := env.NewSecret(t, `{"nowcerts": {"tokens": ["local-nowcerts-token"]}, "cowbell": {"tokens": ["old-token", "local-cowbell-token"]}}`)
	spy := &testsupport.SQSSpy{SQSSender: env.SQS()}
	pub, err := queue.NewPublisher(queue.New(spy), map[jobs.Queue]string{jobs.QueueCRM: crmURL, jobs.QueueSend: sendURL})
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.New(webhook.Config{
		Credentials: webhook.NewSecretCredentials(secrets.NewCache(env.SecretsManager(), time.Minute), arn),
		Queue:       pub,
		Quarantine:  st,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	send := func(file string) (int, map[string]any) {
		t.Helper()
		b, err := os.ReadFile("../../events/webhook/" + file)
		if err != nil {
			t.Fatal(err)
		}
		var req events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		resp, err := h.Handle(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
			t.Fatalf("%s: body %q", file, resp.Body)
		}
		return resp.StatusCode, body
	}

	// Accepted: one job on each queue, the same event id on a redelivery.
	// SQS may hold a message twice (at-least-once), so the queues are read as
	// sets of job ids; that the receiver sent exactly one job to each queue is
	// counted by the spy, which sees our sends and not SQS's copies.
	queues := map[string]jobs.Queue{crmURL: jobs.QueueCRM, sendURL: jobs.QueueSend}
	oneJobEach := func(what, eventID string) {
		t.Helper()
		for url, q := range queues {
			if n := len(spy.Take(url)); n != 1 {
				t.Fatalf("%s: the receiver sent %d jobs to %s, want 1", what, n, q)
			}
			ids := jobIDs(t, drain(t, env.SQS(), url), eventID)
			if want := eventID + ":" + string(q); len(ids) != 1 || !ids[want] {
				t.Fatalf("%s: %s holds jobs %v, want only %s", what, q, ids, want)
			}
		}
	}
	status, body := send("cowbell-policy-certificate.json")
	if status != 202 {
		t.Fatalf("status %d: %v", status, body)
	}
	eventID := body["eventId"].(string)
	oneJobEach("delivery", eventID)
	if status, body := send("cowbell-policy-certificate-base64.json"); status != 202 || body["eventId"] != eventID {
		t.Fatalf("redelivery (base64): %d %v, want 202 with %s", status, body, eventID)
	}
	oneJobEach("redelivery (same ids; workers dedupe)", eventID)

	// Refused: nothing enqueued.
	for file, want := range map[string]int{"bad-wrong-token.json": 401, "bad-too-large.json": 413, "bad-text-plain.json": 415, "bad-truncated-json.json": 400} {
		if status, body := send(file); status != want {
			t.Errorf("%s: %d %v, want %d", file, status, body, want)
		}
	}
	for url, q := range queues {
		if sent, held := spy.Take(url), drain(t, env.SQS(), url); len(sent) != 0 || len(held) != 0 {
			t.Fatalf("refused requests enqueued to %s: %d sent, %d held", q, len(sent), len(held))
		}
	}

	// Unknown shape: 202 and a quarantine record holding the raw body.
	status, body = send("bad-unknown-shape.json")
	if status != 202 || body["status"] != "quarantined" {
		t.Fatalf("unknown shape: %d %v", status, body)
	}
	q, err := st.GetQuarantine(ctx, body["eventId"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(q.Body), `"EventType": "Insured.Update"`) || q.Source != "nowcerts" || !strings.Contains(q.Reason, "unknown event shape") {
		t.Fatalf("quarantine record = %+v", q)
	}
}

// drain receives and deletes every message now on url (moto delivers at once,
// so a short poll sees everything sent before it).
func drain(t *testing.T, c *sqs.Client, url string) []types.Message {
	t.Helper()
	var out []types.Message
	for {
		r, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			if _, err := c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, r.Messages...)
	}
}

// jobIDs returns the distinct job ids of msgs (a message SQS delivered twice
// counts once) and fails t unless every one is a job of eventID with that
// eventId attribute.
func jobIDs(t *testing.T, msgs []types.Message, eventID string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, m := range msgs {
		j, err := jobs.Unmarshal(aws.ToString(m.Body))
		if err != nil || j.Event.ID != eventID || aws.ToString(m.MessageAttributes["eventId"].StringValue) != eventID {
			t.Fatalf("message %s: job %+v, %v; want a job of %s", aws.ToString(m.MessageId), j, err, eventID)
		}
		ids[j.ID] = true
	}
	return ids
}
