package redrive_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
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

// checkBodies asserts msgs carry exactly the bodies in want, each with the
// attributes put gave it. A body may arrive more than once: SQS is
// at-least-once and may hold a message twice. That a move sent each message
// once is checked on the move's side of the client (recorder.sends).
func checkBodies(t *testing.T, msgs []types.Message, want []string) {
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
		if seen[b] == 0 {
			t.Errorf("message %q is missing", b)
		}
	}
}

// distinct is the set of bodies of msgs.
func distinct(msgs []types.Message) map[string]bool {
	out := map[string]bool{}
	for _, m := range msgs {
		out[aws.ToString(m.Body)] = true
	}
	return out
}

// recorder wraps the API a move uses and records, by body, the ids of the DLQ
// messages the move received and how many times SQS accepted the body from
// it. It sees the move's own calls: the SDK's retries happen inside the
// client, and SQS's at-least-once copies after it.
type recorder struct {
	redrive.API
	mu   sync.Mutex
	ids  map[string]map[string]bool // body -> ids of the messages received with it
	sent map[string]int             // body -> sends SQS accepted
}

func newRecorder(api redrive.API) *recorder {
	return &recorder{API: api, ids: map[string]map[string]bool{}, sent: map[string]int{}}
}

func (r *recorder) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := r.API.ReceiveMessage(ctx, in, opts...)
	if err == nil {
		r.mu.Lock()
		for _, m := range out.Messages {
			b := aws.ToString(m.Body)
			if r.ids[b] == nil {
				r.ids[b] = map[string]bool{}
			}
			r.ids[b][aws.ToString(m.MessageId)] = true
		}
		r.mu.Unlock()
	}
	return out, err
}

func (r *recorder) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	out, err := r.API.SendMessage(ctx, in, opts...)
	if err == nil {
		r.mu.Lock()
		r.sent[aws.ToString(in.MessageBody)]++
		r.mu.Unlock()
	}
	return out, err
}

func (r *recorder) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out, err := r.API.SendMessageBatch(ctx, in, opts...)
	if err == nil {
		ok := map[string]bool{}
		for _, e := range out.Successful {
			ok[aws.ToString(e.Id)] = true
		}
		r.mu.Lock()
		for _, e := range in.Entries {
			if ok[aws.ToString(e.Id)] {
				r.sent[aws.ToString(e.MessageBody)]++
			}
		}
		r.mu.Unlock()
	}
	return out, err
}

// copies is how many distinct DLQ messages carrying body the move received
// (more than one only when SQS held the body twice).
func (r *recorder) copies(body string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids[body])
}

// sends checks what the move sent: only bodies of allowed, each exactly once
// per DLQ message that carried it, so a message received again is never sent
// again while a body SQS held twice may be. It returns the distinct bodies
// sent and the number of sends.
func (r *recorder) sends(t *testing.T, allowed []string) (bodies map[string]bool, total int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := map[string]bool{}
	for _, b := range allowed {
		ok[b] = true
	}
	bodies = map[string]bool{}
	for b, n := range r.sent {
		if !ok[b] {
			t.Errorf("the move sent %q (%d times), which it should not have", b, n)
		}
		if copies := len(r.ids[b]); n != copies {
			t.Errorf("the move sent %q %d times; it received %d DLQ messages with that body", b, n, copies)
		}
		bodies[b] = true
		total += n
	}
	return bodies, total
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
	api := newRecorder(env.SQS())
	var updates []redrive.Stats
	st, err := redrive.Move(ctx, api, r, redrive.Options{Progress: func(s redrive.Stats) { updates = append(updates, s) }})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	// 25 unless SQS held a message twice: Moved counts the move's sends.
	moved, sends := api.sends(t, bodies)
	if len(moved) != 25 || st.Moved != sends || st.Failed != 0 || st.Undeleted != 0 || st.Left != 0 {
		t.Fatalf("Move = %+v (%d of 25 bodies sent, %d sends), want all 25 moved, none failed, none left", st, len(moved), sends)
	}
	if len(updates) < 3 || updates[len(updates)-1].Moved != st.Moved {
		t.Fatalf("progress updates %+v, want one per batch ending at %d", updates, st.Moved)
	}
	if got, want := st.String(), fmt.Sprintf("moved %d, failed 0, left 0", st.Moved); got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
	checkBodies(t, drain(t, env.SQS(), src), bodies)
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
	all := put(t, env.SQS(), dlq, "job", 15)
	r, err := redrive.Resolve(ctx, env.SQS(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := newRecorder(env.SQS())
	st, err := redrive.Move(ctx, api, r, redrive.Options{Max: 4, EmptyReceives: 1})
	if err != nil {
		t.Fatal(err)
	}
	moved, sends := api.sends(t, all)
	if st.Moved != 4 || sends != 4 || st.Failed != 0 {
		t.Fatalf("Move(max 4) = %+v with %d sends, want 4 moved", st, sends)
	}
	var movedBodies []string
	for b := range moved {
		movedBodies = append(movedBodies, b)
	}
	checkBodies(t, drain(t, env.SQS(), src), movedBodies)
	// 11 left unless SQS held a message twice; what is left is reported, and
	// with what was moved it is every message.
	left := drain(t, env.SQS(), dlq)
	if st.Left != len(left) || st.Left < 11 {
		t.Fatalf("Move(max 4) left %d, the DLQ holds %d messages; want 11 or more, and the same", st.Left, len(left))
	}
	inDLQ := distinct(left)
	for _, b := range all {
		if !inDLQ[b] && !moved[b] {
			t.Errorf("message %q is neither moved nor left in the DLQ", b)
		}
	}
	for b := range inDLQ {
		if !slices.Contains(all, b) {
			t.Errorf("unexpected message %q in the DLQ", b)
		}
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
	api := newRecorder(env.SQS())
	st, err := redrive.Move(ctx, api, r, redrive.Options{EmptyReceives: 1})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	// 4 moved and 1 failed unless SQS held a message twice.
	moved, sends := api.sends(t, small)
	if len(moved) != 4 || st.Moved != sends || st.Failed < 1 || st.Failed != api.copies(big) || len(st.Failures) != st.Failed {
		t.Fatalf("Move = %+v (%d of 4 small bodies sent, %d sends), want the 4 small ones moved, the big one failed", st, len(moved), sends)
	}
	for _, f := range st.Failures {
		if !strings.Contains(f.Reason, "shorter than 1024") {
			t.Errorf("failure %+v, want too long", f)
		}
	}
	checkBodies(t, drain(t, env.SQS(), src), small)
	// The failed message was made visible again: it can be received at once.
	left := drain(t, env.SQS(), dlq)
	checkBodies(t, left, []string{big})
	if st.Left != len(left) {
		t.Fatalf("Move left %d, the DLQ holds %d messages", st.Left, len(left))
	}
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
	// (so the move gives up on them in that batch), counted per message: a
	// body SQS holds twice is two messages, each undeletable at first.
	undeletable string
	deleteFails map[string]int    // message id -> failed deletes
	bodyOf      map[string]string // receipt handle -> body
	idOf        map[string]string // receipt handle -> message id
}

func (f *flaky) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := f.Client.ReceiveMessage(ctx, in, opts...)
	if err == nil {
		f.mu.Lock()
		for _, m := range out.Messages {
			f.bodyOf[aws.ToString(m.ReceiptHandle)] = aws.ToString(m.Body)
			f.idOf[aws.ToString(m.ReceiptHandle)] = aws.ToString(m.MessageId)
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
		body, id := f.bodyOf[aws.ToString(e.ReceiptHandle)], f.idOf[aws.ToString(e.ReceiptHandle)]
		if f.undeletable != "" && strings.HasPrefix(body, f.undeletable) && f.deleteFails[id] < 2 {
			f.deleteFails[id]++
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
	return &flaky{Client: c, poison: "\x00none", hiccup: "\x00none", deleteFails: map[string]int{}, bodyOf: map[string]string{}, idOf: map[string]string{}}
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

	fl := newFlaky(env.SQS())
	fl.poison, fl.hiccup = "poison", "hiccup"
	api := newRecorder(fl)
	r, err := redrive.Resolve(ctx, api, dlq, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := redrive.Move(ctx, api, r, redrive.Options{EmptyReceives: 1})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	// 8 moved and 2 failed unless SQS held a message twice.
	movable := append(slices.Clone(good), hiccup...)
	moved, sends := api.sends(t, movable)
	failed := api.copies(poison[0]) + api.copies(poison[1])
	if len(moved) != 8 || st.Moved != sends || failed < 2 || st.Failed != failed || fl.hiccups != 1 {
		t.Fatalf("Move = %+v (hiccups %d; %d of 8 bodies sent, %d sends), want 8 moved, the 2 poisoned failed, one retried hiccup", st, fl.hiccups, len(moved), sends)
	}
	for _, f := range st.Failures {
		if !strings.Contains(f.Reason, "InvalidMessageContents: poisoned by the test") {
			t.Errorf("failure %+v, want SQS's code and message", f)
		}
	}
	checkBodies(t, drain(t, env.SQS(), src), movable)
	left := drain(t, env.SQS(), dlq)
	checkBodies(t, left, poison)
	if st.Left != len(left) {
		t.Fatalf("Move left %d, the DLQ holds %d messages", st.Left, len(left))
	}
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
	fl := newFlaky(env.SQS())
	fl.undeletable = "job-3"
	api := newRecorder(fl)
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
	// job-3 comes back with its message id and must not be sent again:
	// sends allows one send per DLQ message (5 unless SQS held one twice).
	moved, sends := api.sends(t, bodies)
	failedTwice := len(fl.deleteFails) > 0 && len(fl.deleteFails) == api.copies("job-3")
	for _, n := range fl.deleteFails {
		failedTwice = failedTwice && n == 2
	}
	if len(moved) != 5 || st.Moved != sends || st.Failed != 0 || st.Undeleted != 0 || st.Left != 0 || !failedTwice {
		t.Fatalf("Move = %+v (delete failures %v; %d of 5 bodies sent, %d sends), want all 5 moved, the undeleted one deleted on its return", st, fl.deleteFails, len(moved), sends)
	}
	checkBodies(t, drain(t, env.SQS(), src), bodies)
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
	// A recorder per move: each move sends a DLQ message once per time it
	// received it. Between the two, SQS may hand one message to both (it is
	// at-least-once; moto's receive does so under concurrency), and then both
	// move it: the source queue is read as a set.
	apis := []*recorder{newRecorder(env.SQS()), newRecorder(env.SQS())}
	var wg sync.WaitGroup
	stats := make([]redrive.Stats, 2)
	errs := make([]error, 2)
	for i := range stats {
		wg.Go(func() { stats[i], errs[i] = redrive.Move(ctx, apis[i], r, redrive.Options{EmptyReceives: 1}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	moved := map[string]bool{}
	for i, api := range apis {
		got, sends := api.sends(t, bodies)
		if stats[i].Moved != sends || stats[i].Failed != 0 {
			t.Fatalf("move %d: %+v, %d sends", i, stats[i], sends)
		}
		for b := range got {
			moved[b] = true
		}
	}
	if len(moved) != 40 {
		t.Fatalf("%d of 40 bodies moved between the two moves (%+v)", len(moved), stats)
	}
	checkBodies(t, drain(t, env.SQS(), src), bodies)
	if n := depth(t, env.SQS(), dlq); n != 0 {
		t.Fatalf("DLQ depth after the moves = %d, want 0", n)
	}
}
