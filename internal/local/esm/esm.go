// Package esm is a local stand-in for Lambda's SQS event source mapping: pollers
// long-poll a queue, hand each batch to the function's handler as an
// events.SQSEvent, and delete what succeeded. With ReportBatchItemFailures only
// the records the handler names in batchItemFailures stay on the queue; a
// handler error (or an invalid partial-batch response) leaves the whole batch,
// which reappears after the queue's visibility timeout. Redrive to the DLQ after
// maxReceiveCount is the queue's own job (its RedrivePolicy), as in AWS.
package esm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS is the part of the SQS client the poller uses.
type SQS interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Invoker is a Lambda handler (lambda.Handler satisfies it).
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Defaults.
const (
	DefaultPollers         = 2
	DefaultWaitTimeSeconds = 20
	DefaultTimeout         = 3 * time.Second
	maxBatch               = 10
)

// Mapping is one SQS event source mapping.
type Mapping struct {
	// Function names the function (for logs and its ARN).
	Function string
	Handler  Invoker
	QueueURL string
	// QueueARN is put in each record's eventSourceARN.
	QueueARN string
	// BatchSize is MaxNumberOfMessages (1..10; default 10).
	BatchSize int
	// ReportBatchItemFailures: the handler answers events.SQSEventResponse.
	ReportBatchItemFailures bool
	// Timeout is the function's timeout: the deadline of one invocation.
	Timeout time.Duration
	// WaitTimeSeconds is the long-poll wait (0..20; default 20).
	WaitTimeSeconds int
	// Pollers is how many receive-invoke loops run at once (default 2).
	Pollers int
	// Region fills awsRegion (default us-east-1).
	Region string
	// AccountID makes up the function ARN (default 000000000000).
	AccountID string
}

func (m Mapping) withDefaults() (Mapping, error) {
	if m.Handler == nil {
		return m, fmt.Errorf("esm %s: no handler", m.Function)
	}
	if m.QueueURL == "" {
		return m, fmt.Errorf("esm %s: no queue url", m.Function)
	}
	if m.BatchSize == 0 {
		m.BatchSize = maxBatch
	}
	if m.BatchSize < 1 || m.BatchSize > maxBatch {
		return m, fmt.Errorf("esm %s: batch size %d out of 1..%d (a batching window is not emulated)", m.Function, m.BatchSize, maxBatch)
	}
	if m.WaitTimeSeconds == 0 {
		m.WaitTimeSeconds = DefaultWaitTimeSeconds
	}
	if m.WaitTimeSeconds < 0 || m.WaitTimeSeconds > 20 {
		return m, fmt.Errorf("esm %s: wait time %d out of 0..20", m.Function, m.WaitTimeSeconds)
	}
	if m.Pollers <= 0 {
		m.Pollers = DefaultPollers
	}
	if m.Timeout <= 0 {
		m.Timeout = DefaultTimeout
	}
	if m.Region == "" {
		m.Region = "us-east-1"
	}
	if m.AccountID == "" {
		m.AccountID = "000000000000"
	}
	return m, nil
}

// Stats count what a poller did.
type Stats struct {
	Batches, Records, Succeeded, Failed, Deleted int64
	// InvokeErrors counts batches whose invocation failed as a whole.
	InvokeErrors int64
}

// BatchResult is what one poll did.
type BatchResult struct {
	Received int
	// Deleted are the message ids removed from the queue.
	Deleted []string
	// Left are the message ids left to reappear after the visibility timeout.
	Left []string
	// InvokeErr is set when the whole batch failed (handler error or invalid response).
	InvokeErr error
}

// Poller runs one mapping.
type Poller struct {
	m      Mapping
	client SQS
	log    *slog.Logger
	arn    string

	batches, records, succeeded, failed, deleted, invokeErrors atomic.Int64
}

// New checks m and returns its poller.
func New(client SQS, m Mapping, log *slog.Logger) (*Poller, error) {
	m, err := m.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Poller{m: m, client: client, log: log, arn: "arn:aws:lambda:" + m.Region + ":" + m.AccountID + ":function:" + m.Function}, nil
}

// Stats returns the counters so far.
func (p *Poller) Stats() Stats {
	return Stats{
		Batches: p.batches.Load(), Records: p.records.Load(), Succeeded: p.succeeded.Load(),
		Failed: p.failed.Load(), Deleted: p.deleted.Load(), InvokeErrors: p.invokeErrors.Load(),
	}
}

// Run polls with m.Pollers loops until ctx ends, then returns nil once every
// loop has stopped. A receive error is logged and retried with a backoff.
func (p *Poller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range p.m.Pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx, i)
		}()
	}
	wg.Wait()
	return nil
}

func (p *Poller) loop(ctx context.Context, n int) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		_, err := p.Poll(ctx)
		if err == nil {
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
		p.log.Warn("sqs poll failed", "function", p.m.Function, "queue", p.m.QueueURL, "poller", n, "err", err, "retryIn", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// Poll receives one batch (waiting up to WaitTimeSeconds), invokes the handler
// if anything arrived, and deletes what succeeded. The error is about SQS
// (receive or delete); a failed invocation is reported in BatchResult.InvokeErr.
func (p *Poller) Poll(ctx context.Context) (BatchResult, error) {
	out, err := p.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.m.QueueURL),
		MaxNumberOfMessages:         int32(p.m.BatchSize),
		WaitTimeSeconds:             int32(p.m.WaitTimeSeconds),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return BatchResult{}, fmt.Errorf("receive from %s: %w", p.m.QueueURL, err)
	}
	if len(out.Messages) == 0 {
		return BatchResult{}, nil
	}
	res := BatchResult{Received: len(out.Messages)}
	p.batches.Add(1)
	p.records.Add(int64(len(out.Messages)))

	ev := p.event(out.Messages)
	failedIDs, invokeErr := p.invoke(ctx, ev)
	if invokeErr != nil {
		res.InvokeErr = invokeErr
		p.invokeErrors.Add(1)
		p.failed.Add(int64(len(out.Messages)))
		for _, m := range out.Messages {
			res.Left = append(res.Left, aws.ToString(m.MessageId))
		}
		p.log.Error("sqs batch failed; messages return after the visibility timeout",
			"function", p.m.Function, "queue", p.m.QueueURL, "records", len(out.Messages), "err", invokeErr)
		return res, nil
	}
	var toDelete []types.Message
	for _, m := range out.Messages {
		id := aws.ToString(m.MessageId)
		if failedIDs[id] {
			res.Left = append(res.Left, id)
			continue
		}
		toDelete = append(toDelete, m)
	}
	p.succeeded.Add(int64(len(toDelete)))
	p.failed.Add(int64(len(res.Left)))
	if len(res.Left) > 0 {
		p.log.Warn("sqs batch item failures; those messages return after the visibility timeout",
			"function", p.m.Function, "queue", p.m.QueueURL, "failed", len(res.Left), "records", len(out.Messages))
	}
	deleted, err := p.delete(ctx, toDelete)
	res.Deleted = deleted
	p.deleted.Add(int64(len(deleted)))
	if err != nil {
		return res, err
	}
	return res, nil
}

// event builds the Lambda SQS event for msgs.
func (p *Poller) event(msgs []types.Message) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		attrs := make(map[string]string, len(m.Attributes))
		for k, v := range m.Attributes {
			attrs[k] = v
		}
		var mattrs map[string]events.SQSMessageAttribute
		if len(m.MessageAttributes) > 0 {
			mattrs = make(map[string]events.SQSMessageAttribute, len(m.MessageAttributes))
			for k, v := range m.MessageAttributes {
				mattrs[k] = events.SQSMessageAttribute{
					StringValue:      v.StringValue,
					BinaryValue:      v.BinaryValue,
					StringListValues: nonNil(v.StringListValues),
					BinaryListValues: nonNilBytes(v.BinaryListValues),
					DataType:         aws.ToString(v.DataType),
				}
			}
		} else {
			mattrs = map[string]events.SQSMessageAttribute{}
		}
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             attrs,
			MessageAttributes:      mattrs,
			EventSource:            "aws:sqs",
			EventSourceARN:         p.m.QueueARN,
			AWSRegion:              p.m.Region,
		})
	}
	return ev
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilBytes(s [][]byte) [][]byte {
	if s == nil {
		return [][]byte{}
	}
	return s
}

// invoke runs the handler and returns the ids it reported as failed. An error
// means the whole batch failed.
func (p *Poller) invoke(ctx context.Context, ev events.SQSEvent) (map[string]bool, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode sqs event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.m.Timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: newUUID(), InvokedFunctionArn: p.arn})
	out, err := p.m.Handler.Invoke(ctx, payload)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("invoke %s: timed out after %s: %w", p.m.Function, p.m.Timeout, err)
		}
		return nil, fmt.Errorf("invoke %s: %w", p.m.Function, err)
	}
	if !p.m.ReportBatchItemFailures {
		return nil, nil
	}
	return parseBatchResponse(out, ev)
}

// parseBatchResponse applies Lambda's rules for partial batch responses: an
// empty or null response or list means every record succeeded; invalid JSON, or
// an itemIdentifier that is empty or not a message of the batch, fails the whole
// batch.
func parseBatchResponse(out []byte, ev events.SQSEvent) (map[string]bool, error) {
	trimmed := strings.TrimSpace(string(out))
	if trimmed == "" || trimmed == "null" {
		return nil, nil
	}
	var resp struct {
		BatchItemFailures []map[string]any `json:"batchItemFailures"`
	}
	if err := json.Unmarshal([]byte(trimmed), &resp); err != nil {
		return nil, fmt.Errorf("invalid partial batch response: %w", err)
	}
	inBatch := make(map[string]bool, len(ev.Records))
	for _, r := range ev.Records {
		inBatch[r.MessageId] = true
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		raw, ok := f["itemIdentifier"]
		if !ok {
			return nil, errors.New("invalid partial batch response: an entry has no itemIdentifier")
		}
		id, ok := raw.(string)
		if !ok || id == "" {
			return nil, fmt.Errorf("invalid partial batch response: itemIdentifier %v", raw)
		}
		if !inBatch[id] {
			return nil, fmt.Errorf("invalid partial batch response: itemIdentifier %q is not in the batch", id)
		}
		failed[id] = true
	}
	return failed, nil
}

// delete removes msgs from the queue and returns the ids it removed.
func (p *Poller) delete(ctx context.Context, msgs []types.Message) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	byEntry := make(map[string]string, len(msgs))
	for i, m := range msgs {
		eid := strconv.Itoa(i)
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(eid), ReceiptHandle: m.ReceiptHandle}
		byEntry[eid] = aws.ToString(m.MessageId)
	}
	// The batch is processed: deleting it must not be cut short by shutdown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := p.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.m.QueueURL), Entries: entries})
	if err != nil {
		return nil, fmt.Errorf("delete from %s: %w", p.m.QueueURL, err)
	}
	var deleted []string
	for _, s := range out.Successful {
		deleted = append(deleted, byEntry[aws.ToString(s.Id)])
	}
	if len(out.Failed) > 0 {
		var msgs []string
		for _, f := range out.Failed {
			msgs = append(msgs, byEntry[aws.ToString(f.Id)]+": "+aws.ToString(f.Code)+" "+aws.ToString(f.Message))
		}
		return deleted, fmt.Errorf("delete from %s: %d failed: %s", p.m.QueueURL, len(out.Failed), strings.Join(msgs, "; "))
	}
	return deleted, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
