package queue

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
)

type sent struct {
	url   string
	body  string
	attrs map[string]types.MessageAttributeValue
}

// fakeSQS records messages; failEntry makes batch entries with that position
// fail, failURL makes every call to that URL fail.
type fakeSQS struct {
	mu        sync.Mutex
	msgs      []sent
	batches   []int
	failEntry map[string]bool
	failURL   string
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if aws.ToString(in.QueueUrl) == f.failURL {
		return nil, errors.New("AWS.SimpleQueueService.NonExistentQueue")
	}
	f.msgs = append(f.msgs, sent{aws.ToString(in.QueueUrl), aws.ToString(in.MessageBody), in.MessageAttributes})
	return &sqs.SendMessageOutput{MessageId: aws.String("m")}, nil
}

func (f *fakeSQS) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if aws.ToString(in.QueueUrl) == f.failURL {
		return nil, errors.New("AWS.SimpleQueueService.NonExistentQueue")
	}
	f.batches = append(f.batches, len(in.Entries))
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		if f.failEntry[aws.ToString(e.Id)] {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("try again"), SenderFault: false})
			continue
		}
		f.msgs = append(f.msgs, sent{aws.ToString(in.QueueUrl), aws.ToString(e.MessageBody), e.MessageAttributes})
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

var now = time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)

func testEvent(i int) event.Event {
	key := event.Key("cowbell", "policy.certificate", "pol-"+strconv.Itoa(i), "2026-03-02T15:04:05Z")
	return event.Event{ID: event.IDFor(key), IdempotencyKey: key, Source: event.SourceCowbell, Type: "policy.certificate",
		Action: event.ActionDocument, EntityKind: event.KindCertificate, EntityID: "pol-" + strconv.Itoa(i)}
}

func attr(m map[string]types.MessageAttributeValue, k string) string {
	return aws.ToString(m[k].StringValue)
}

func TestSendSetsBodyAndAttributes(t *testing.T) {
	f := &fakeSQS{}
	c := New(f)
	ev := testEvent(1)
	j := jobs.New(jobs.QueueSend, ev, "req-1", now)
	if err := c.Send(context.Background(), "https://sqs/send", j); err != nil {
		t.Fatal(err)
	}
	if len(f.msgs) != 1 {
		t.Fatalf("sent %d messages, want 1", len(f.msgs))
	}
	m := f.msgs[0]
	got, err := jobs.Unmarshal(m.body)
	if err != nil {
		t.Fatalf("body is not a job: %v", err)
	}
	if got.ID != ev.ID+":send-jobs" || got.Event.ID != ev.ID || got.RequestID != "req-1" {
		t.Fatalf("job = %+v", got)
	}
	if attr(m.attrs, AttrEventID) != ev.ID || attr(m.attrs, AttrSource) != "cowbell" || attr(m.attrs, AttrKind) != "event" {
		t.Fatalf("attributes = eventId %q source %q kind %q", attr(m.attrs, AttrEventID), attr(m.attrs, AttrSource), attr(m.attrs, AttrKind))
	}

	// A timeline job has no event id: the attribute is left out, not empty.
	tl := jobs.NewTimeline(jobs.TimelineEntry{Outcome: "sent", CertificateID: "c1", Source: "nowcerts", At: now}, "req-2", now)
	if err := c.Send(context.Background(), "https://sqs/crm", tl); err != nil {
		t.Fatal(err)
	}
	m = f.msgs[1]
	if _, ok := m.attrs[AttrEventID]; ok {
		t.Fatalf("timeline job has an eventId attribute: %v", m.attrs)
	}
	if attr(m.attrs, AttrKind) != "timeline" || attr(m.attrs, AttrSource) != "nowcerts" {
		t.Fatalf("timeline attributes: %v", m.attrs)
	}
}

func TestSendBatchChunksAndReportsFailures(t *testing.T) {
	f := &fakeSQS{failEntry: map[string]bool{"3": true}}
	c := New(f)
	var js []jobs.Job
	for i := range 23 {
		js = append(js, jobs.New(jobs.QueueCRM, testEvent(i), "r", now))
	}
	err := c.SendBatch(context.Background(), "https://sqs/crm", js)
	if got := f.batches; len(got) != 3 || got[0] != 10 || got[1] != 10 || got[2] != 3 {
		t.Fatalf("batches = %v, want [10 10 3]", got)
	}
	// Entry "3" fails in each of the three batches: jobs 3, 13 and (none: the
	// last batch has entries 0..2).
	if err == nil {
		t.Fatal("SendBatch = nil, want the failed jobs")
	}
	for _, i := range []int{3, 13} {
		if !strings.Contains(err.Error(), js[i].ID) {
			t.Errorf("error does not name job %s: %v", js[i].ID, err)
		}
	}
	if len(f.msgs) != 21 {
		t.Fatalf("accepted %d messages, want 21", len(f.msgs))
	}
}

func TestTooLargeSendsNothing(t *testing.T) {
	f := &fakeSQS{}
	c := New(f)
	big := testEvent(2)
	big.Raw = []byte(`"` + strings.Repeat("x", MaxMessageBytes) + `"`)
	js := []jobs.Job{jobs.New(jobs.QueueCRM, testEvent(1), "r", now), jobs.New(jobs.QueueCRM, big, "r", now)}
	if err := c.SendBatch(context.Background(), "https://sqs/crm", js); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("SendBatch = %v, want ErrTooLarge", err)
	}
	p, _ := NewPublisher(c, map[jobs.Queue]string{jobs.QueueCRM: "https://sqs/crm", jobs.QueueSend: "https://sqs/send"})
	if err := p.Enqueue(context.Background(), js); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Enqueue = %v, want ErrTooLarge", err)
	}
	if len(f.msgs) != 0 {
		t.Fatalf("sent %d messages, want none", len(f.msgs))
	}
}

func TestBatchLenRespectsTotalSize(t *testing.T) {
	ms := []message{{size: MaxMessageBytes / 2}, {size: MaxMessageBytes / 2}, {size: 10}}
	if n := batchLen(ms); n != 2 {
		t.Fatalf("batchLen = %d, want 2", n)
	}
	ms = []message{{size: MaxMessageBytes}, {size: 1}}
	if n := batchLen(ms); n != 1 {
		t.Fatalf("batchLen = %d, want 1", n)
	}
}

func TestPublisherRoutesAndJoinsErrors(t *testing.T) {
	f := &fakeSQS{}
	p, err := NewPublisher(New(f), map[jobs.Queue]string{jobs.QueueCRM: "https://sqs/crm", jobs.QueueSend: "https://sqs/send"})
	if err != nil {
		t.Fatal(err)
	}
	ev := testEvent(1)
	js := []jobs.Job{jobs.New(jobs.QueueCRM, ev, "r", now), jobs.New(jobs.QueueSend, ev, "r", now)}
	if err := p.Enqueue(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	for _, m := range f.msgs {
		j, _ := jobs.Unmarshal(m.body)
		urls[m.url] = string(j.Queue)
	}
	if urls["https://sqs/crm"] != "crm-jobs" || urls["https://sqs/send"] != "send-jobs" {
		t.Fatalf("messages went to %v", urls)
	}

	f.failURL = "https://sqs/send"
	if err := p.Enqueue(context.Background(), js); err == nil || !strings.Contains(err.Error(), "send-jobs") {
		t.Fatalf("Enqueue with a failing queue = %v, want an error naming the job", err)
	}

	if err := p.Enqueue(context.Background(), []jobs.Job{{ID: "x", Queue: "other"}}); err == nil {
		t.Fatal("Enqueue to an unknown queue = nil error")
	}
	if _, err := NewPublisher(New(f), map[jobs.Queue]string{jobs.QueueCRM: ""}); err == nil {
		t.Fatal("NewPublisher with an empty URL = nil error")
	}
}
