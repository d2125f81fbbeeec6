package redrive_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/redrive"
)

// put sends n messages to url; message i has body "<prefix>-i" and three
// attributes (String, Number, Binary) derived from i. It returns the bodies.
func put(t *testing.T, c *sqs.Client, url, prefix string, n int) []string {
	t.Helper()
	var bodies []string
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(n, i+10); j++ {
			body := fmt.Sprintf("%s-%d", prefix, j)
			bodies = append(bodies, body)
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(body), MessageAttributes: attrsFor(body, j),
			})
		}
		out, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("put: %v %+v", err, out)
		}
	}
	return bodies
}

func attrsFor(body string, i int) map[string]types.MessageAttributeValue {
	return map[string]types.MessageAttributeValue{
		"eventId": {DataType: aws.String("String"), StringValue: aws.String("evt_" + body)},
		"attempt": {DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(i))},
		"blob":    {DataType: aws.String("Binary"), BinaryValue: []byte{0, byte(i), 0xff}},
	}
}

// drain receives every message of url (deleting them) until a receive finds
// none (moto's short poll sees every message, unlike AWS's sampling).
func drain(t *testing.T, c *sqs.Client, url string) []types.Message {
	t.Helper()
	var all []types.Message
	for {
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 60,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("drain %s: %v", url, err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		all = append(all, out.Messages...)
		for _, m := range out.Messages {
			if _, err := c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkOnce asserts msgs are exactly the bodies in want, each once, with the
// attributes put gave them.
func checkOnce(t *testing.T, msgs []types.Message, want []string) {
	t.Helper()
	index := map[string]int{}
	for i, b := range want {
		index[b] = i
	}
	seen := map[string]int{}
	for _, m := range msgs {
		body := aws.ToString(m.Body)
		seen[body]++
		i, ok := index[body]
		if !ok {
			t.Errorf("unexpected message %q", body)
			continue
		}
		var n int
		fmt.Sscanf(body[strings.LastIndexByte(body, '-')+1:], "%d", &n)
		wantAttrs := attrsFor(body, n)
		if len(m.MessageAttributes) != len(wantAttrs) {
			t.Errorf("%s: attributes %v, want %v", body, m.MessageAttributes, wantAttrs)
		}
		for k, w := range wantAttrs {
			g := m.MessageAttributes[k]
			if aws.ToString(g.DataType) != aws.ToString(w.DataType) || aws.ToString(g.StringValue) != aws.ToString(w.StringValue) || !bytes.Equal(g.BinaryValue, w.BinaryValue) {
				t.Errorf("%s: attribute %s = %s %q %v, want %s %q %v", body, k,
					aws.ToString(g.DataType), aws.ToString(g.StringValue), g.BinaryValue, aws.ToString(w.DataType), aws.ToString(w.StringValue), w.BinaryValue)
			}
		}
		_ = i
	}
	for _, b := range want {
		if seen[b] != 1 {
			t.Errorf("message %q arrived %d times, want once", b, seen[b])
		}
	}
}

func depth(t *testing.T, c *sqs.Client, url string) int {
	t.Helper()
	v, f, err := redrive.Depth(context.Background(), c, url)
	if err != nil {
		t.Fatal(err)
	}
	return v + f
}

// TestResolveOnMoto finds the pair from either end, through SQS's own
// metadata (RedrivePolicy, ListDeadLetterSourceQueues).
func TestResolveOnMoto(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ctx := context.Background()
	src, dlq := env.NewQueue(t, 3)
	other, otherDLQ := env.NewQueue(t, 3)

	for _, from := range []string{src, dlq} {
		// The other pair is a candidate too: it must not be mistaken for a source.
		r, err := redrive.Resolve(ctx, env.SQS(), from, []string{other, src})
		if err != nil {
			t.Fatalf("Resolve(%s): %v", from, err)
		}
		if r.SourceURL != src || r.DLQURL != dlq || r.SourceARN == "" || r.DLQARN == "" || r.Via == "" {
			t.Fatalf("Resolve(%s) = %+v, want %s → %s", from, r, dlq, src)
		}
	}
	// A queue with no redrive either way has no source.
	plain, _ := env.NewQueue(t, 0)
	if _, err := redrive.Resolve(ctx, env.SQS(), plain, []string{src, other}); err == nil || !strings.Contains(err.Error(), "no source queue") {
		t.Fatalf("Resolve(plain queue) = %v, want no source", err)
	}
	_ = otherDLQ
}

// TestMoveOnMoto moves 25 messages in batches: all arrive once with body and
// attributes intact, and the DLQ is empty.
func TestMoveOnMoto(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ctx := context.Background()
	src, dlq := env.NewQueue(t, 3)
	bodies := put(t, env.SQS(), dlq, "job", 25)

	r, err := redrive.Resolve(ctx, env.SQS(), dlq, nil)
	if err != nil {
		t.Fatal(err)
	}
	var updates []redrive.Stats
	st, err := redrive.Move(ctx, env.SQS(), r, redrive.Options{Progress: func(s redrive.Stats) { updates = append(updates, s) }})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if st.Moved != 25 || st.Failed != 0 || st.Undeleted != 0 || st.Left != 0 {
		t.Fatalf("Move = %+v, want 25 moved, none failed, none left", st)
	}
	if len(updates) < 3 || updates[len(updates)-1].Moved != 25 {
		t.Fatalf("progress updates %+v, want one per batch ending at 25", updates)
	}
	if got := st.String(); got != "moved 25, failed 0, left 0" {
		t.Fatalf("summary %q", got)
	}
	checkOnce(t, drain(t, env.SQS(), src), bodies)
	if n := depth(t, env.SQS(), dlq); n != 0 {
		t.Fatalf("DLQ depth after the move = %d, want 0", n)
	}
}

// TestMoveMax stops after --max messages.
func TestMoveMax(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ctx := context.Background()
	src, dlq := env.NewQueue(t, 3)
	put(t, env.SQS(), dlq, "job", 15)
	r, err := redrive.Resolve(ctx, env.SQS(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := redrive.Move(ctx, env.SQS(), r, redrive.Options{Max: 4, EmptyReceives: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st.Moved != 4 || st.Left != 11 {
		t.Fatalf("Move(max 4) = %+v, want 4 moved, 11 left", st)
	}
	if got := len(drain(t, env.SQS(), src)); got != 4 {
		t.Fatalf("source has %d messages, want 4", got)
	}
}

// TestMoveKeepsWhatCannotBeSent: the source queue refuses one message (too
// large for it); SQS rejects the whole batch, the move sends the others one
// by one, and the refused message stays in the DLQ, intact and visible.
func TestMoveKeepsWhatCannotBeSent(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ctx := context.Background()
	src, dlq := env.NewQueue(t, 3)
	if _, err := env.SQS().SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(src),
		Attributes: map[string]string{"MaximumMessageSize": "1024"}}); err != nil {
		t.Fatal(err)
	}
	small := put(t, env.SQS(), dlq, "small", 4)
	big := strings.Repeat("x", 2000) + "-99"
	if _, err := env.SQS().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(big), MessageAttributes: attrsFor(big, 99)}); err != nil {
		t.Fatal(err)
	}
	r, err := redrive.Resolve(ctx, env.SQS(), dlq, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := redrive.Move(ctx, env.SQS(), r, redrive.Options{EmptyReceives: 1})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if st.Moved != 4 || st.Failed != 1 || st.Left != 1 || len(st.Failures) != 1 || !strings.Contains(st.Failures[0].Reason, "shorter than 1024") {
		t.Fatalf("Move = %+v, want 4 moved, 1 failed (too long), 1 left", st)
	}
	checkOnce(t, drain(t, env.SQS(), src), small)
	// The failed message was made visible again: it can be received at once.
	checkOnce(t, drain(t, env.SQS(), dlq), []string{big})
}

// flaky wraps the real client and fails chosen batch entries.
type flaky struct {
	*sqs.Client
	mu sync.Mutex
	// poison bodies always fail to send (sender fault).
	poison string
	// hiccup bodies fail their first send with a server fault (retried).
	hiccup  string
	hiccups int
	// undeletable bodies fail their first delete with a server fault twice
	// (so the move gives up on them in that batch).
	undeletable string
	deleteFails map[string]int
	bodyOf      map[string]string // receipt handle -> body
}

func (f *flaky) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := f.Client.ReceiveMessage(ctx, in, opts...)
	if err == nil {
		f.mu.Lock()
		for _, m := range out.Messages {
			f.bodyOf[aws.ToString(m.ReceiptHandle)] = aws.ToString(m.Body)
		}
		f.mu.Unlock()
	}
	return out, err
}

func (f *flaky) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	var pass []types.SendMessageBatchRequestEntry
	var failed []types.BatchResultErrorEntry
	for _, e := range in.Entries {
		body := aws.ToString(e.MessageBody)
		switch {
		case strings.HasPrefix(body, f.poison):
			failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InvalidMessageContents"), Message: aws.String("poisoned by the test"), SenderFault: true})
		case strings.HasPrefix(body, f.hiccup) && f.hiccups == 0:
			f.hiccups++
			failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("hiccup"), SenderFault: false})
		default:
			pass = append(pass, e)
		}
	}
	f.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{}
	if len(pass) > 0 {
		real, err := f.Client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: pass}, opts...)
		if err != nil {
			return nil, err
		}
		out.Successful, out.Failed = real.Successful, real.Failed
	}
	out.Failed = append(out.Failed, failed...)
	return out, nil
}

func (f *flaky) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	var pass []types.DeleteMessageBatchRequestEntry
	var failed []types.BatchResultErrorEntry
	for _, e := range in.Entries {
		body := f.bodyOf[aws.ToString(e.ReceiptHandle)]
		if f.undeletable != "" && strings.HasPrefix(body, f.undeletable) && f.deleteFails[body] < 2 {
			f.deleteFails[body]++
			failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("delete hiccup"), SenderFault: false})
			continue
		}
		pass = append(pass, e)
	}
	f.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	if len(pass) > 0 {
		real, err := f.Client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: in.QueueUrl, Entries: pass}, opts...)
		if err != nil {
			return nil, err
		}
		out.Successful, out.Failed = real.Successful, real.Failed
	}
	out.Failed = append(out.Failed, failed...)
	return out, nil
}

func newFlaky(c *sqs.Client) *flaky {
	return &flaky{Client: c, poison: "\x00none", hiccup: "\x00none", deleteFails: map[string]int{}, bodyOf: map[string]string{}}
}

// TestMovePerEntryFailures: an entry SQS fails for the request's fault stays
// in the DLQ; one it fails for its own is retried and moved; the rest of the
// batch moves.
func TestMovePerEntryFailures(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ctx := context.Background()
	src, dlq := env.NewQueue(t, 3)
	good := put(t, env.SQS(), dlq, "good", 7)
	poison := put(t, env.SQS(), dlq, "poison", 2)
	hiccup := put(t, env.SQS(), dlq, "hiccup", 1)

	api := newFlaky(env.SQS())
	api.poison, api.hiccup = "poison", "hiccup"
	r, err := redrive.Resolve(ctx, api, dlq, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := redrive.Move(ctx, api, r, redrive.Options{EmptyReceives: 1})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if st.Moved != 8 || st.Failed != 2 || st.Left != 2 || api.hiccups != 1 {
		t.Fatalf("Move = %+v (hiccups %d), want 8 moved, 2 failed, 2 left, one retried hiccup", st, api.hiccups)
	}
	for _, f := range st.Failures {
		if !strings.Contains(f.Reason, "InvalidMessageContents: poisoned by the test") {
			t.Errorf("failure %+v, want SQS's code and message", f)
		}
	}
	checkOnce(t, drain(t, env.SQS(), src), append(good, hiccup...))
	checkOnce(t, drain(t, env.SQS(), dlq), poison)
}

// TestMoveUndeletedIsNotSentTwice: a message whose delete from the DLQ fails
// is on the source queue and still in the DLQ; when it comes back within the
// same move it is only deleted, never sent again.
func TestMoveUndeletedIsNotSentTwice(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ctx := context.Background()
	src, dlq := env.NewQueue(t, 3)
	bodies := put(t, env.SQS(), dlq, "job", 5)
	api := newFlaky(env.SQS())
	api.undeletable = "job-3"
	r, err := redrive.Resolve(ctx, api, dlq, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A one-second visibility brings the undeleted message back while the
	// move still polls (it waits for four empty receives of a second each).
	st, err := redrive.Move(ctx, api, r, redrive.Options{Visibility: time.Second, EmptyReceives: 4})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if st.Moved != 5 || st.Failed != 0 || st.Undeleted != 0 || st.Left != 0 || api.deleteFails["job-3"] != 2 {
		t.Fatalf("Move = %+v (delete failures %v), want 5 moved, the undeleted one deleted on its return", st, api.deleteFails)
	}
	checkOnce(t, drain(t, env.SQS(), src), bodies)
}

// TestConcurrentMovesMoveOnce: two redrives of one DLQ at the same time move
// every message exactly once (the receive's visibility timeout keeps them
// apart).
func TestConcurrentMovesMoveOnce(t *testing.T) {
	t.Parallel()
	env := testenv.Get(t)
	ctx := context.Background()
	src, dlq := env.NewQueue(t, 3)
	bodies := put(t, env.SQS(), dlq, "job", 40)
	r, err := redrive.Resolve(ctx, env.SQS(), dlq, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stats := make([]redrive.Stats, 2)
	errs := make([]error, 2)
	for i := range stats {
		wg.Go(func() { stats[i], errs[i] = redrive.Move(ctx, env.SQS(), r, redrive.Options{EmptyReceives: 1}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if stats[0].Moved+stats[1].Moved != 40 || stats[0].Failed+stats[1].Failed != 0 {
		t.Fatalf("moves = %+v, want 40 moved between them", stats)
	}
	checkOnce(t, drain(t, env.SQS(), src), bodies)
}
