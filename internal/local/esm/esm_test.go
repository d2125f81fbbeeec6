package esm

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// fakeSQS hands out a fixed batch once and records deletes (unit tests only;
// the integration test runs against moto).
type fakeSQS struct {
	mu       sync.Mutex
	batch    []types.Message
	got      *sqs.ReceiveMessageInput
	deleted  []string
	failDel  map[string]bool
	received bool
}

func (f *fakeSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = in
	if f.received {
		return &sqs.ReceiveMessageOutput{}, nil
	}
	f.received = true
	return &sqs.ReceiveMessageOutput{Messages: f.batch}, nil
}

func (f *fakeSQS) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		rh := aws.ToString(e.ReceiptHandle)
		if f.failDel[rh] {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid")})
			continue
		}
		f.deleted = append(f.deleted, rh)
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func msg(id string) types.Message {
	return types.Message{
		MessageId:     aws.String(id),
		ReceiptHandle: aws.String("rh-" + id),
		Body:          aws.String(`{"n":"` + id + `"}`),
		MD5OfBody:     aws.String("md5-" + id),
		Attributes:    map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
		MessageAttributes: map[string]types.MessageAttributeValue{
			"trace": {DataType: aws.String("String"), StringValue: aws.String("t-" + id)},
		},
	}
}

// handlerFunc answers with out/err and records the event.
type handlerFunc func(ctx context.Context, payload []byte) ([]byte, error)

func (h handlerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return h(ctx, payload)
}

func TestPollEventShapeAndDelete(t *testing.T) {
	f := &fakeSQS{batch: []types.Message{msg("a"), msg("b")}}
	var got events.SQSEvent
	h := handlerFunc(func(ctx context.Context, p []byte) ([]byte, error) {
		if err := json.Unmarshal(p, &got); err != nil {
			return nil, err
		}
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		return []byte(`{"batchItemFailures":[]}`), nil
	})
	p, err := New(f, Mapping{Function: "crm-worker", Handler: h, QueueURL: "http://q/crm", QueueARN: "arn:aws:sqs:us-east-1:1:crm", BatchSize: 5, ReportBatchItemFailures: true, WaitTimeSeconds: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Poll(context.Background())
	if err != nil || res.InvokeErr != nil {
		t.Fatalf("poll: %v %v", err, res.InvokeErr)
	}
	if f.got.MaxNumberOfMessages != 5 || f.got.WaitTimeSeconds != 1 || !slices.Contains(f.got.MessageAttributeNames, "All") ||
		!slices.Contains(f.got.MessageSystemAttributeNames, types.MessageSystemAttributeNameAll) {
		t.Errorf("receive input %+v", f.got)
	}
	if len(got.Records) != 2 {
		t.Fatalf("records %d", len(got.Records))
	}
	r := got.Records[0]
	if r.MessageId != "a" || r.ReceiptHandle != "rh-a" || r.Body != `{"n":"a"}` || r.Md5OfBody != "md5-a" ||
		r.EventSource != "aws:sqs" || r.EventSourceARN != "arn:aws:sqs:us-east-1:1:crm" || r.AWSRegion != "us-east-1" ||
		r.Attributes["ApproximateReceiveCount"] != "1" || aws.ToString(r.MessageAttributes["trace"].StringValue) != "t-a" ||
		r.MessageAttributes["trace"].DataType != "String" {
		t.Errorf("record %+v", r)
	}
	if !slices.Equal(f.deleted, []string{"rh-a", "rh-b"}) || len(res.Deleted) != 2 || len(res.Left) != 0 {
		t.Errorf("deleted %v, result %+v", f.deleted, res)
	}
	if s := p.Stats(); s.Batches != 1 || s.Records != 2 || s.Succeeded != 2 || s.Deleted != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestPartialBatchAndFailures(t *testing.T) {
	cases := []struct {
		name       string
		report     bool
		out        string
		err        error
		wantDelete []string
		wantLeft   []string
		wholeFail  bool
	}{
		{name: "partial", report: true, out: `{"batchItemFailures":[{"itemIdentifier":"b"}]}`, wantDelete: []string{"rh-a", "rh-c"}, wantLeft: []string{"b"}},
		{name: "null response", report: true, out: `null`, wantDelete: []string{"rh-a", "rh-b", "rh-c"}},
		{name: "empty object", report: true, out: `{}`, wantDelete: []string{"rh-a", "rh-b", "rh-c"}},
		{name: "null list", report: true, out: `{"batchItemFailures":null}`, wantDelete: []string{"rh-a", "rh-b", "rh-c"}},
		{name: "handler error", report: true, err: errors.New("boom"), wantLeft: []string{"a", "b", "c"}, wholeFail: true},
		{name: "handler error without reporting", err: errors.New("boom"), wantLeft: []string{"a", "b", "c"}, wholeFail: true},
		{name: "not json", report: true, out: `oops`, wantLeft: []string{"a", "b", "c"}, wholeFail: true},
		{name: "empty identifier", report: true, out: `{"batchItemFailures":[{"itemIdentifier":""}]}`, wantLeft: []string{"a", "b", "c"}, wholeFail: true},
		{name: "null identifier", report: true, out: `{"batchItemFailures":[{"itemIdentifier":null}]}`, wantLeft: []string{"a", "b", "c"}, wholeFail: true},
		{name: "bad key", report: true, out: `{"batchItemFailures":[{"itemId":"a"}]}`, wantLeft: []string{"a", "b", "c"}, wholeFail: true},
		{name: "unknown id", report: true, out: `{"batchItemFailures":[{"itemIdentifier":"zz"}]}`, wantLeft: []string{"a", "b", "c"}, wholeFail: true},
		{name: "failures ignored without reporting", out: `{"batchItemFailures":[{"itemIdentifier":"b"}]}`, wantDelete: []string{"rh-a", "rh-b", "rh-c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeSQS{batch: []types.Message{msg("a"), msg("b"), msg("c")}}
			h := handlerFunc(func(context.Context, []byte) ([]byte, error) { return []byte(c.out), c.err })
			p, err := New(f, Mapping{Function: "w", Handler: h, QueueURL: "q", ReportBatchItemFailures: c.report}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Poll(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if (res.InvokeErr != nil) != c.wholeFail {
				t.Errorf("invoke err %v, want whole failure %v", res.InvokeErr, c.wholeFail)
			}
			if !slices.Equal(f.deleted, c.wantDelete) {
				t.Errorf("deleted %v want %v", f.deleted, c.wantDelete)
			}
			if !slices.Equal(res.Left, c.wantLeft) {
				t.Errorf("left %v want %v", res.Left, c.wantLeft)
			}
		})
	}
}

func TestDeleteFailureIsReported(t *testing.T) {
	f := &fakeSQS{batch: []types.Message{msg("a"), msg("b")}, failDel: map[string]bool{"rh-b": true}}
	h := handlerFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil })
	p, err := New(f, Mapping{Function: "w", Handler: h, QueueURL: "q"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Poll(context.Background())
	if err == nil || !slices.Equal(res.Deleted, []string{"a"}) {
		t.Fatalf("err %v deleted %v", err, res.Deleted)
	}
}

func TestMappingValidation(t *testing.T) {
	h := handlerFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil })
	for _, m := range []Mapping{
		{Function: "w", QueueURL: "q"},
		{Function: "w", Handler: h},
		{Function: "w", Handler: h, QueueURL: "q", BatchSize: 11},
		{Function: "w", Handler: h, QueueURL: "q", WaitTimeSeconds: 21},
	} {
		if _, err := New(&fakeSQS{}, m, nil); err == nil {
			t.Errorf("accepted %+v", m)
		}
	}
}

// blockingSQS blocks in ReceiveMessage until ctx ends, like a long poll.
type blockingSQS struct{ fakeSQS }

func (b *blockingSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestRunStopsOnCancel(t *testing.T) {
	h := handlerFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil })
	p, err := New(&blockingSQS{}, Mapping{Function: "w", Handler: h, QueueURL: "q", Pollers: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
