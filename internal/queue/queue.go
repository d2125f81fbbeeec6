// Package queue puts jobs (internal/jobs) on SQS queues.
//
// A message's body is the job's JSON (jobs.Marshal); its attributes carry
// eventId, source and kind so queues can be inspected and filtered without
// decoding bodies. Job IDs are deterministic, so a redelivered webhook enqueues
// messages with the same job IDs and the workers' conditional writes absorb them.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/jobs"
)

// API is the part of the SQS client the queue uses.
type API interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// MaxMessageBytes is the largest message (body plus attributes) the queue sends:
// SQS's classic 256 KiB limit, which every queue accepts.
const MaxMessageBytes = 256 << 10

// maxBatch is SQS's limit of entries per SendMessageBatch.
const maxBatch = 10

// ErrTooLarge is returned, before anything is sent, when a job's message would
// exceed MaxMessageBytes.
var ErrTooLarge = errors.New("job message too large for SQS")

// Message attribute names.
const (
	AttrEventID = "eventId"
	AttrSource  = "source"
	AttrKind    = "kind"
)

// Client sends jobs to queue URLs.
type Client struct{ api API }

// New returns a Client over an SQS client.
func New(api API) *Client { return &Client{api: api} }

// Send puts one job on the queue at url.
func (c *Client) Send(ctx context.Context, url string, j jobs.Job) error {
	m, err := prepare(j)
	if err != nil {
		return err
	}
	return c.sendOne(ctx, url, m)
}

// SendBatch puts jobs on the queue at url, in batches of up to ten messages. It
// returns an error naming every job SQS did not accept; the others are on the
// queue. An oversized job fails the whole call before anything is sent.
func (c *Client) SendBatch(ctx context.Context, url string, js []jobs.Job) error {
	ms := make([]message, 0, len(js))
	for _, j := range js {
		m, err := prepare(j)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	return c.send(ctx, url, ms)
}

// message is a prepared job: its body and attributes.
type message struct {
	jobID string
	body  string
	attrs map[string]types.MessageAttributeValue
	size  int
}

func prepare(j jobs.Job) (message, error) {
	body, err := jobs.Marshal(j)
	if err != nil {
		return message{}, err
	}
	m := message{jobID: j.ID, body: body, attrs: attributes(j), size: len(body)}
	for k, v := range m.attrs {
		m.size += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue))
	}
	if m.size > MaxMessageBytes {
		return message{}, fmt.Errorf("%w: job %s is %d bytes, the limit is %d", ErrTooLarge, j.ID, m.size, MaxMessageBytes)
	}
	return m, nil
}

// attributes returns the message attributes of j (SQS rejects empty values, so
// absent ones are left out).
func attributes(j jobs.Job) map[string]types.MessageAttributeValue {
	kind := j.Kind
	if kind == "" {
		kind = jobs.KindEvent
	}
	attrs := map[string]types.MessageAttributeValue{AttrKind: str(string(kind))}
	source := string(j.Event.Source)
	if j.Timeline != nil && source == "" {
		source = j.Timeline.Source
	}
	if source != "" {
		attrs[AttrSource] = str(source)
	}
	if j.Event.ID != "" {
		attrs[AttrEventID] = str(j.Event.ID)
	}
	return attrs
}

func str(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
}

// send sends ms to url: one SendMessage for a single message, batches otherwise.
func (c *Client) send(ctx context.Context, url string, ms []message) error {
	switch len(ms) {
	case 0:
		return nil
	case 1:
		return c.sendOne(ctx, url, ms[0])
	}
	var errs []error
	for len(ms) > 0 {
		n := batchLen(ms)
		if err := c.sendBatch(ctx, url, ms[:n]); err != nil {
			errs = append(errs, err)
		}
		ms = ms[n:]
	}
	return errors.Join(errs...)
}

// batchLen returns how many of ms fit one SendMessageBatch (at most ten, at most
// MaxMessageBytes in total; at least one, each message fits alone).
func batchLen(ms []message) int {
	n, total := 0, 0
	for n < len(ms) && n < maxBatch && total+ms[n].size <= MaxMessageBytes {
		total += ms[n].size
		n++
	}
	return max(n, 1)
}

func (c *Client) sendOne(ctx context.Context, url string, m message) error {
	_, err := c.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(url),
		MessageBody:       aws.String(m.body),
		MessageAttributes: m.attrs,
	})
	if err != nil {
		return fmt.Errorf("send job %s to %s: %w", m.jobID, url, err)
	}
	return nil
}

func (c *Client) sendBatch(ctx context.Context, url string, ms []message) error {
	entries := make([]types.SendMessageBatchRequestEntry, len(ms))
	for i, m := range ms {
		// Batch entry ids only allow [A-Za-z0-9_-]: use the position.
		entries[i] = types.SendMessageBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			MessageBody:       aws.String(m.body),
			MessageAttributes: m.attrs,
		}
	}
	out, err := c.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil {
		return fmt.Errorf("send %d jobs to %s: %w", len(ms), url, err)
	}
	if len(out.Failed) == 0 {
		return nil
	}
	failed := make([]string, 0, len(out.Failed))
	for _, f := range out.Failed {
		id := aws.ToString(f.Id)
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < len(ms) {
			id = ms[i].jobID
		}
		failed = append(failed, fmt.Sprintf("%s (%s: %s)", id, aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	return fmt.Errorf("send jobs to %s: %d of %d not accepted: %s", url, len(failed), len(ms), strings.Join(failed, "; "))
}

// Publisher sends jobs to the queue each names (jobs.Job.Queue), resolving
// logical queues to URLs.
type Publisher struct {
	c    *Client
	urls map[jobs.Queue]string
}

// NewPublisher returns a Publisher sending through c to the given queue URLs.
func NewPublisher(c *Client, urls map[jobs.Queue]string) (*Publisher, error) {
	u := make(map[jobs.Queue]string, len(urls))
	for q, url := range urls {
		if url == "" {
			return nil, fmt.Errorf("queue %s: no URL", q)
		}
		u[q] = url
	}
	return &Publisher{c: c, urls: u}, nil
}

// Enqueue puts every job on its queue and returns nil only when SQS accepted all
// of them. Jobs for different queues are sent concurrently. Nothing is sent when
// a job names an unknown queue or is too large (ErrTooLarge).
func (p *Publisher) Enqueue(ctx context.Context, js []jobs.Job) error {
	var order []string
	byURL := map[string][]message{}
	for _, j := range js {
		url, ok := p.urls[j.Queue]
		if !ok {
			return fmt.Errorf("job %s: no URL configured for queue %q", j.ID, j.Queue)
		}
		m, err := prepare(j)
		if err != nil {
			return err
		}
		if _, seen := byURL[url]; !seen {
			order = append(order, url)
		}
		byURL[url] = append(byURL[url], m)
	}
	if len(order) == 1 {
		return p.c.send(ctx, order[0], byURL[order[0]])
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, url := range order {
		wg.Go(func() { errs[i] = p.c.send(ctx, url, byURL[url]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
