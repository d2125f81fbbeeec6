package redrive

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// Defaults of Options.
const (
	DefaultVisibility    = 2 * time.Minute
	DefaultWaitSeconds   = 1
	DefaultEmptyReceives = 3
)

// maxBatch is SQS's limit of messages per receive and entries per batch call.
const maxBatch = 10

// maxBatchBytes bounds the body and attributes of one SendMessageBatch (SQS's
// classic 256 KiB limit, which every SQS implementation accepts).
const maxBatchBytes = 256 << 10

// maxFailures bounds how many failures Stats keeps (they are all counted).
const maxFailures = 20

// Options tune Move. The zero value moves everything with the defaults.
type Options struct {
	// Max is the most messages taken from the DLQ (moved or failed); 0: no limit.
	Max int
	// Visibility hides received messages from other consumers (and concurrent
	// redrives) while they are moved. Default DefaultVisibility.
	Visibility time.Duration
	// WaitSeconds is each receive's long poll. Default DefaultWaitSeconds.
	WaitSeconds int
	// EmptyReceives is how many receives in a row must find nothing new before
	// the DLQ counts as empty. Default DefaultEmptyReceives.
	EmptyReceives int
	// Progress, when set, is called after every batch.
	Progress func(Stats)
}

// Stats is a move's progress and result.
type Stats struct {
	// Moved messages are on the source queue.
	Moved int
	// Failed messages could not be sent; they are still in the DLQ.
	Failed int
	// Undeleted messages were sent but their delete from the DLQ failed: they
	// are on the source queue and still in the DLQ (a later redrive sends them
	// again). Included in Moved.
	Undeleted int
	// Left is the DLQ's approximate depth (visible + in flight) when the move
	// ended; -1 when it could not be read.
	Left int
	// Failures are the first failures, with SQS's reason.
	Failures []Failure
}

// Failure is one message that stayed in the DLQ, and why.
type Failure struct {
	MessageID string
	Reason    string
}

func (o Options) withDefaults() Options {
	if o.Visibility <= 0 {
		o.Visibility = DefaultVisibility
	}
	if o.WaitSeconds <= 0 {
		o.WaitSeconds = DefaultWaitSeconds
	}
	if o.EmptyReceives <= 0 {
		o.EmptyReceives = DefaultEmptyReceives
	}
	return o
}

// mover is one Move in progress.
type mover struct {
	api   API
	r     Route
	o     Options
	fifo  bool
	stats Stats
	// failed are the messages that could not be sent, by id, with their latest
	// receipt handle: they are not tried again in this move and are made
	// visible again at its end.
	failed map[string]string
	// undeleted are messages sent whose delete failed: when received again they
	// are only deleted, never sent twice by this move.
	undeleted map[string]bool
}

// Move moves messages from r.DLQURL to r.SourceURL until the DLQ is empty
// (o.EmptyReceives receives in a row find nothing new) or o.Max messages were
// taken. A batch that was received is always finished, even when ctx ends;
// then Move stops and returns ctx's error with the stats so far. Messages that
// failed are made visible in the DLQ again before Move returns.
func Move(ctx context.Context, api API, r Route, o Options) (Stats, error) {
	if r.DLQURL == "" || r.SourceURL == "" {
		return Stats{Left: -1}, errors.New("redrive: route without DLQ or source queue")
	}
	if r.DLQURL == r.SourceURL {
		return Stats{Left: -1}, fmt.Errorf("redrive: %s is its own dead-letter queue", r.DLQURL)
	}
	m := &mover{api: api, r: r, o: o.withDefaults(), fifo: strings.HasSuffix(r.SourceURL, ".fifo"),
		failed: map[string]string{}, undeleted: map[string]bool{}}
	err := m.run(ctx)
	// Finish with a context that outlives an interrupt: releasing the failed
	// messages and reading the depth are quick and worth doing.
	done, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if rerr := m.release(done); rerr != nil && err == nil {
		err = rerr
	}
	m.stats.Left = -1
	if v, f, derr := Depth(done, api, r.DLQURL); derr == nil {
		m.stats.Left = v + f
	}
	return m.stats, err
}

func (m *mover) run(ctx context.Context) error {
	empty := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := maxBatch
		if m.o.Max > 0 {
			want = min(want, m.o.Max-m.stats.Moved-m.stats.Failed)
			if want <= 0 {
				return nil
			}
		}
		out, err := m.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(m.r.DLQURL),
			MaxNumberOfMessages:         int32(want),
			VisibilityTimeout:           int32(m.o.Visibility / time.Second),
			WaitTimeSeconds:             int32(m.o.WaitSeconds),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("receive from %s: %w", m.r.DLQURL, err)
		}
		var fresh, redelete []types.Message
		for _, msg := range out.Messages {
			id := aws.ToString(msg.MessageId)
			switch {
			case m.undeleted[id]:
				redelete = append(redelete, msg)
			case m.failed[id] != "":
				m.failed[id] = aws.ToString(msg.ReceiptHandle) // the newest handle releases it
			default:
				fresh = append(fresh, msg)
			}
		}
		// The batch is finished whatever happens to ctx meanwhile.
		bctx := context.WithoutCancel(ctx)
		if len(redelete) > 0 {
			for _, msg := range m.delete(bctx, redelete) {
				delete(m.undeleted, aws.ToString(msg.MessageId))
				m.stats.Undeleted--
			}
		}
		if len(fresh) == 0 {
			empty++
			if empty >= m.o.EmptyReceives {
				return nil
			}
			continue
		}
		empty = 0
		sent := m.send(bctx, fresh)
		m.stats.Moved += len(sent)
		deleted := m.delete(bctx, sent)
		gone := make(map[string]bool, len(deleted))
		for _, msg := range deleted {
			gone[aws.ToString(msg.MessageId)] = true
		}
		for _, msg := range sent {
			if id := aws.ToString(msg.MessageId); !gone[id] {
				m.undeleted[id] = true
				m.stats.Undeleted++
			}
		}
		if m.o.Progress != nil {
			m.o.Progress(m.stats)
		}
	}
}

// fail records that msg stays in the DLQ.
func (m *mover) fail(msg types.Message, reason string) {
	m.failed[aws.ToString(msg.MessageId)] = aws.ToString(msg.ReceiptHandle)
	m.stats.Failed++
	if len(m.stats.Failures) < maxFailures {
		m.stats.Failures = append(m.stats.Failures, Failure{MessageID: aws.ToString(msg.MessageId), Reason: reason})
	}
}

// send puts msgs on the source queue and returns those it accepted; the others
// are recorded as failed.
func (m *mover) send(ctx context.Context, msgs []types.Message) []types.Message {
	var sent []types.Message
	for len(msgs) > 0 {
		n := m.batchLen(msgs)
		sent = append(sent, m.sendBatch(ctx, msgs[:n], true)...)
		msgs = msgs[n:]
	}
	return sent
}

// batchLen is how many of msgs fit one SendMessageBatch (at least one).
func (m *mover) batchLen(msgs []types.Message) int {
	n, total := 0, 0
	for n < len(msgs) && n < maxBatch && total+size(msgs[n]) <= maxBatchBytes {
		total += size(msgs[n])
		n++
	}
	return max(n, 1)
}

// sendBatch sends msgs in one SendMessageBatch. Entries SQS failed through no
// fault of the request are sent once more when retry is set. When SQS refuses
// the whole batch as invalid (one message too large for the source queue, say)
// the messages are sent one by one, so that only the bad one stays behind.
func (m *mover) sendBatch(ctx context.Context, msgs []types.Message, retry bool) []types.Message {
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	for i, msg := range msgs {
		entries[i] = m.entry(strconv.Itoa(i), msg)
	}
	out, err := m.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(m.r.SourceURL), Entries: entries})
	if err != nil {
		if len(msgs) > 1 && isClientFault(err) {
			var sent []types.Message
			for _, msg := range msgs {
				if m.sendOne(ctx, msg) {
					sent = append(sent, msg)
				}
			}
			return sent
		}
		for _, msg := range msgs {
			m.fail(msg, fmt.Sprintf("send to %s: %v", m.r.SourceURL, err))
		}
		return nil
	}
	ok := make(map[string]bool, len(out.Successful))
	for _, s := range out.Successful {
		ok[aws.ToString(s.Id)] = true
	}
	failed := make(map[string]types.BatchResultErrorEntry, len(out.Failed))
	for _, f := range out.Failed {
		failed[aws.ToString(f.Id)] = f
	}
	var sent, again []types.Message
	for i, msg := range msgs {
		id := strconv.Itoa(i)
		f, bad := failed[id]
		switch {
		case ok[id] && !bad:
			sent = append(sent, msg)
		case bad && !f.SenderFault && retry:
			again = append(again, msg)
		case bad:
			m.fail(msg, fmt.Sprintf("send to %s: %s: %s", m.r.SourceURL, aws.ToString(f.Code), aws.ToString(f.Message)))
		default:
			m.fail(msg, fmt.Sprintf("send to %s: SQS reported no result for the message", m.r.SourceURL))
		}
	}
	if len(again) > 0 {
		sent = append(sent, m.sendBatch(ctx, again, false)...)
	}
	return sent
}

func (m *mover) sendOne(ctx context.Context, msg types.Message) bool {
	e := m.entry("0", msg)
	_, err := m.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:                aws.String(m.r.SourceURL),
		MessageBody:             e.MessageBody,
		MessageAttributes:       e.MessageAttributes,
		MessageSystemAttributes: e.MessageSystemAttributes,
		MessageGroupId:          e.MessageGroupId,
		MessageDeduplicationId:  e.MessageDeduplicationId,
	})
	if err != nil {
		m.fail(msg, fmt.Sprintf("send to %s: %v", m.r.SourceURL, err))
		return false
	}
	return true
}

// entry is msg as a send entry: the same body and message attributes, the
// X-Ray trace header, and on a FIFO source its group and deduplication ids.
func (m *mover) entry(id string, msg types.Message) types.SendMessageBatchRequestEntry {
	e := types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: msg.Body}
	if len(msg.MessageAttributes) > 0 {
		e.MessageAttributes = make(map[string]types.MessageAttributeValue, len(msg.MessageAttributes))
		for k, v := range msg.MessageAttributes {
			e.MessageAttributes[k] = types.MessageAttributeValue{DataType: v.DataType, StringValue: v.StringValue, BinaryValue: v.BinaryValue}
		}
	}
	if th := msg.Attributes[string(types.MessageSystemAttributeNameAWSTraceHeader)]; th != "" {
		e.MessageSystemAttributes = map[string]types.MessageSystemAttributeValue{
			string(types.MessageSystemAttributeNameForSendsAWSTraceHeader): {DataType: aws.String("String"), StringValue: aws.String(th)},
		}
	}
	if m.fifo {
		if g := msg.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]; g != "" {
			e.MessageGroupId = aws.String(g)
		}
		if d := msg.Attributes[string(types.MessageSystemAttributeNameMessageDeduplicationId)]; d != "" {
			e.MessageDeduplicationId = aws.String(d)
		}
	}
	return e
}

// size is what msg counts toward a batch's size limit.
func size(msg types.Message) int {
	n := len(aws.ToString(msg.Body))
	for k, v := range msg.MessageAttributes {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

// delete deletes msgs from the DLQ and returns those deleted. Entries SQS
// failed through no fault of the request are tried once more.
func (m *mover) delete(ctx context.Context, msgs []types.Message) []types.Message {
	var deleted []types.Message
	pending := msgs
	for attempt := 0; attempt < 2 && len(pending) > 0; attempt++ {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(pending))
		for i, msg := range pending {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msg.ReceiptHandle}
		}
		out, err := m.api.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(m.r.DLQURL), Entries: entries})
		if err != nil {
			return deleted
		}
		ok := make(map[string]bool, len(out.Successful))
		for _, s := range out.Successful {
			ok[aws.ToString(s.Id)] = true
		}
		retriable := make(map[string]bool, len(out.Failed))
		for _, f := range out.Failed {
			retriable[aws.ToString(f.Id)] = !f.SenderFault
		}
		var again []types.Message
		for i, msg := range pending {
			id := strconv.Itoa(i)
			switch {
			case ok[id]:
				deleted = append(deleted, msg)
			case retriable[id]:
				again = append(again, msg)
			}
		}
		pending = again
	}
	return deleted
}

// release makes the failed messages visible in the DLQ again at once.
func (m *mover) release(ctx context.Context) error {
	var entries []types.ChangeMessageVisibilityBatchRequestEntry
	for _, handle := range m.failed {
		entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{
			Id: aws.String(strconv.Itoa(len(entries))), ReceiptHandle: aws.String(handle), VisibilityTimeout: 0,
		})
	}
	var errs []error
	for len(entries) > 0 {
		n := min(len(entries), maxBatch)
		out, err := m.api.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(m.r.DLQURL), Entries: entries[:n]})
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(out.Failed) > 0:
			errs = append(errs, fmt.Errorf("%d not released: %s", len(out.Failed), aws.ToString(out.Failed[0].Message)))
		}
		entries = entries[n:]
	}
	if len(errs) > 0 {
		return fmt.Errorf("making failed messages visible in %s again (they reappear when the visibility timeout ends): %w", m.r.DLQURL, errors.Join(errs...))
	}
	return nil
}

// isClientFault reports whether SQS refused a request as invalid (rather than
// failing to serve it).
func isClientFault(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultClient
}

// String is the move's summary: "moved N, failed N, left N".
func (s Stats) String() string {
	left := "unknown"
	if s.Left >= 0 {
		left = strconv.Itoa(s.Left)
	}
	return fmt.Sprintf("moved %d, failed %d, left %s", s.Moved, s.Failed, left)
}
