package esm

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/local/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// queueFixture is a moto queue with a 1 s visibility timeout, so failed
// messages come back quickly.
func queueFixture(t *testing.T, maxReceive int) (c *sqs.Client, url, arn, dlq string) {
	t.Helper()
	env := testenv.Get(t)
	c = env.SQS()
	url, dlq = env.NewQueue(t, maxReceive)
	ctx := context.Background()
	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: map[string]string{"VisibilityTimeout": "1"}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return c, url, out.Attributes["QueueArn"], dlq
}

func send(t *testing.T, c *sqs.Client, url string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl: aws.String(url), MessageBody: aws.String(b),
			MessageAttributes: map[string]types.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("test")}},
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func depth(t *testing.T, c *sqs.Client, url string) (visible, inFlight int) {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	f, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return v, f
}

// seen records what a handler received.
type seen struct {
	mu      sync.Mutex
	records []events.SQSMessage
}

func (s *seen) add(rs []events.SQSMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rs...)
}

// receiveCounts returns, per message id carrying body, the receive counts it
// was delivered with, in order. SQS is at-least-once even on the sending
// side (an SDK retry after a lost response stores a second copy), so a body
// may belong to more than one message.
func (s *seen) receiveCounts(body string) map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for _, r := range s.records {
		if r.Body == body {
			out[r.MessageId] = append(out[r.MessageId], r.Attributes["ApproximateReceiveCount"])
		}
	}
	return out
}

// bodies returns the distinct bodies received so far and how many records
// carried each.
func (s *seen) bodies() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.records {
		out[r.Body]++
	}
	return out
}

// TestPartialBatchAndRedrive: with ReportBatchItemFailures the good records are
// deleted, the failed one comes back after the visibility timeout with a higher
// receive count, and after maxReceiveCount receives moto's redrive moves it to
// the DLQ.
func TestPartialBatchAndRedrive(t *testing.T) {
	c, url, arn, dlq := queueFixture(t, 2)
	send(t, c, url, "a", "poison", "c")

	var got seen
	h := handlerFunc(func(ctx context.Context, p []byte) ([]byte, error) {
		var ev events.SQSEvent
		if err := json.Unmarshal(p, &ev); err != nil {
			return nil, err
		}
		got.add(ev.Records)
		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			if r.Body == "poison" {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return json.Marshal(resp)
	})
	p, err := New(c, Mapping{Function: "worker", Handler: h, QueueURL: url, QueueARN: arn, ReportBatchItemFailures: true, WaitTimeSeconds: 1, Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	// First pass: poll until every body has been handled once. A body may
	// arrive as two messages (SendMessage is at-least-once too), so the
	// checks below count records, not the three bodies sent.
	for len(got.bodies()) < 3 {
		if _, err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	poisons := len(got.receiveCounts("poison"))
	if s := p.Stats(); s.Failed != int64(poisons) || s.Deleted != s.Records-int64(poisons) || s.Succeeded != s.Deleted {
		t.Fatalf("after first pass: %+v (poison messages: %d)", s, poisons)
	}
	if v, f := depth(t, c, url); v+f != poisons {
		t.Fatalf("queue holds %d visible + %d in flight, want the %d failed", v, f, poisons)
	}
	first := got.records[0]
	if first.EventSource != "aws:sqs" || first.EventSourceARN != arn || first.Md5OfBody == "" || first.ReceiptHandle == "" ||
		first.Attributes["SentTimestamp"] == "" || aws.ToString(first.MessageAttributes["kind"].StringValue) != "test" {
		t.Errorf("record %+v", first)
	}

	// Keep polling until the poison message reaches the DLQ (bounded: a failsafe, not a timing assertion).
	stop := time.Now().Add(2 * time.Minute)
	for {
		if v, f := depth(t, c, dlq); v+f == poisons {
			break
		}
		if time.Now().After(stop) {
			t.Fatalf("poison message never reached the DLQ; receive counts %v", got.receiveCounts("poison"))
		}
		if _, err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for id, counts := range got.receiveCounts("poison") {
		if !slices.Equal(counts, []string{"1", "2"}) {
			t.Errorf("poison %s received with counts %v, want [1 2] (maxReceiveCount 2)", id, counts)
		}
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != poisons {
		t.Fatalf("DLQ: %+v %v", out, err)
	}
	for _, m := range out.Messages {
		if aws.ToString(m.Body) != "poison" {
			t.Errorf("DLQ holds %q", aws.ToString(m.Body))
		}
	}
	if v, f := depth(t, c, url); v+f != 0 {
		t.Errorf("source queue still holds %d+%d", v, f)
	}
	for _, b := range []string{"a", "c"} {
		for id, counts := range got.receiveCounts(b) {
			if len(counts) != 1 {
				t.Errorf("message %s (%s) delivered %d times after being deleted", id, b, len(counts))
			}
		}
	}
}

// TestHandlerErrorLeavesBatch: a failed invocation deletes nothing; the batch
// comes back and succeeds the second time.
func TestHandlerErrorLeavesBatch(t *testing.T) {
	c, url, arn, _ := queueFixture(t, 5)
	send(t, c, url, "x", "y")
	var mu sync.Mutex
	calls := 0
	h := handlerFunc(func(ctx context.Context, p []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return nil, errors.New("transient")
		}
		return []byte(`{"batchItemFailures":[]}`), nil
	})
	p, err := New(c, Mapping{Function: "worker", Handler: h, QueueURL: url, QueueARN: arn, ReportBatchItemFailures: true, WaitTimeSeconds: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := p.Poll(ctx)
	for err == nil && res.Received == 0 {
		res, err = p.Poll(ctx)
	}
	if err != nil || res.InvokeErr == nil || len(res.Deleted) != 0 {
		t.Fatalf("first poll: %+v %v", res, err)
	}
	stop := time.Now().Add(time.Minute)
	for p.Stats().Deleted < 2 {
		if time.Now().After(stop) {
			t.Fatalf("batch never succeeded: %+v", p.Stats())
		}
		if _, err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v, f := depth(t, c, url); v+f != 0 {
		t.Errorf("queue still holds %d+%d", v, f)
	}
}

// TestRunAgainstMoto: Run's pollers drain the queue and stop on cancel, even in
// the middle of a 20 s long poll.
func TestRunAgainstMoto(t *testing.T) {
	c, url, arn, _ := queueFixture(t, 5)
	// Nothing here fails on purpose: a long visibility timeout keeps a batch
	// slowed down by a loaded machine from reaching the other poller too.
	if _, err := c.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: map[string]string{"VisibilityTimeout": "30"}}); err != nil {
		t.Fatal(err)
	}
	var got seen
	done := make(chan struct{}, 16)
	h := handlerFunc(func(ctx context.Context, p []byte) ([]byte, error) {
		var ev events.SQSEvent
		if err := json.Unmarshal(p, &ev); err != nil {
			return nil, err
		}
		got.add(ev.Records)
		for range ev.Records {
			done <- struct{}{}
		}
		return nil, nil
	})
	// One poller: moto's ReceiveMessage is not atomic across concurrent
	// callers (two may get the same message), which this test would count as
	// a redelivery.
	p, err := New(c, Mapping{Function: "worker", Handler: h, QueueURL: url, QueueARN: arn, ReportBatchItemFailures: true, BatchSize: 2, Pollers: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- p.Run(ctx) }()
	send(t, c, url, "1", "2", "3", "4", "5")
	failsafe := time.After(2 * time.Minute) // a bound on a hang, not a timing assertion
	for len(got.bodies()) < 5 {
		select {
		case <-done:
		case <-failsafe:
			t.Fatalf("only %v handled", got.bodies())
		}
	}
	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return after cancel")
	}
	if s := p.Stats(); s.Records < 5 || s.Deleted < 5 {
		t.Errorf("stats %+v", s)
	}
	for _, b := range []string{"1", "2", "3", "4", "5"} {
		for id, counts := range got.receiveCounts(b) {
			if len(counts) != 1 {
				t.Errorf("message %s (%s) handled %d times", id, b, len(counts))
			}
		}
	}
}
