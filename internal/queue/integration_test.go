package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/testsupport"
)

// TestPublisherOnMoto sends jobs through the real SDK to moto's SQS and reads
// them back: bodies decode to the jobs, attributes are set, batches of more than
// ten are split. SQS may hold a message twice (at-least-once): the queues are
// read as sets of bodies, and how many messages the publisher sent is counted
// on our side of the client.
func TestPublisherOnMoto(t *testing.T) {
	env := testenv.Get(t)
	crmURL, _ := env.NewQueue(t, 5)
	sendURL, _ := env.NewQueue(t, 5)
	spy := &testsupport.SQSSpy{SQSSender: env.SQS()}
	p, err := queue.NewPublisher(queue.New(spy), map[jobs.Queue]string{jobs.QueueCRM: crmURL, jobs.QueueSend: sendURL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)

	ev := integrationEvent(0)
	if err := p.Enqueue(ctx, []jobs.Job{jobs.New(jobs.QueueCRM, ev, "req-1", now), jobs.New(jobs.QueueSend, ev, "req-1", now)}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	for url, q := range map[string]jobs.Queue{crmURL: jobs.QueueCRM, sendURL: jobs.QueueSend} {
		if n := len(spy.Take(url)); n != 1 {
			t.Fatalf("%s: the publisher sent %d messages, want 1", q, n)
		}
		msgs := receiveAll(t, env.SQS(), url, 1)
		j, err := jobs.Unmarshal(aws.ToString(msgs[0].Body))
		if err != nil {
			t.Fatalf("%s: body is not a job: %v", q, err)
		}
		if j.ID != ev.ID+":"+string(q) || j.Queue != q || j.Event.ID != ev.ID || j.RequestID != "req-1" {
			t.Fatalf("%s: job = %+v", q, j)
		}
		a := msgs[0].MessageAttributes
		if v := aws.ToString(a[queue.AttrEventID].StringValue); v != ev.ID {
			t.Errorf("%s: eventId attribute = %q", q, v)
		}
		if v := aws.ToString(a[queue.AttrSource].StringValue); v != "cowbell" {
			t.Errorf("%s: source attribute = %q", q, v)
		}
		if v := aws.ToString(a[queue.AttrKind].StringValue); v != "event" {
			t.Errorf("%s: kind attribute = %q", q, v)
		}
	}

	// 23 jobs to one queue: three batches, all delivered.
	var many []jobs.Job
	want := map[string]bool{}
	for i := 1; i <= 23; i++ {
		j := jobs.New(jobs.QueueCRM, integrationEvent(i), "req-2", now)
		many = append(many, j)
		want[j.ID] = true
	}
	if err := p.Enqueue(ctx, many); err != nil {
		t.Fatalf("Enqueue 23: %v", err)
	}
	if n := len(spy.Take(crmURL)); n != 23 {
		t.Fatalf("the publisher sent %d messages for 23 jobs", n)
	}
	got := map[string]bool{}
	for _, m := range receiveAll(t, env.SQS(), crmURL, 23) {
		j, err := jobs.Unmarshal(aws.ToString(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		if !want[j.ID] {
			t.Fatalf("unexpected job %s", j.ID)
		}
		got[j.ID] = true
	}
	if len(got) != 23 {
		t.Fatalf("received %d distinct jobs, want 23", len(got))
	}

	// A queue that does not exist: Enqueue fails (the webhook answers 503).
	bad, _ := queue.NewPublisher(queue.New(env.SQS()), map[jobs.Queue]string{jobs.QueueCRM: crmURL + "-missing"})
	if err := bad.Enqueue(ctx, []jobs.Job{jobs.New(jobs.QueueCRM, ev, "req-3", now)}); err == nil {
		t.Fatal("Enqueue to a missing queue = nil error")
	}
}

func integrationEvent(i int) event.Event {
	key := event.Key("cowbell", "policy.certificate", fmt.Sprintf("pol-%d", i), "2026-03-02T15:04:05Z")
	return event.Event{ID: event.IDFor(key), IdempotencyKey: key, Source: event.SourceCowbell, Type: "policy.certificate",
		Action: event.ActionDocument, EntityKind: event.KindCertificate, EntityID: fmt.Sprintf("pol-%d", i), Raw: []byte(`{"meta":{"event":"policy.certificate"}}`)}
}

// receiveAll receives and deletes the messages of url until it has seen n
// distinct bodies, then empties the queue, and returns one message per
// distinct body. A body SQS stored twice counts once (SQS is at-least-once);
// fewer or more than n distinct bodies fail t.
func receiveAll(t *testing.T, c *sqs.Client, url string, n int) []types.Message {
	t.Helper()
	ctx := context.Background()
	var out []types.Message
	seen := map[string]bool{}
	receive := func(wait int32) int {
		r, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: wait, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range r.Messages {
			if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			if b := aws.ToString(m.Body); !seen[b] {
				seen[b] = true
				out = append(out, m)
			}
		}
		return len(r.Messages)
	}
	for tries := 0; len(out) < n && tries < 20; tries++ {
		receive(1)
	}
	// Whatever else is there (moto's short poll sees every message): a copy
	// is absorbed, another body makes the count wrong.
	for receive(0) > 0 {
	}
	if len(out) != n {
		t.Fatalf("received %d distinct messages from %s, want %d", len(out), url, n)
	}
	return out
}
