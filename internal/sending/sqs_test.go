package sending

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/esm"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/testsupport"
)

// queueDepth is visible + in-flight messages.
func queueDepth(t *testing.T, c *sqs.Client, url string) int {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

// TestFlakyNowCertsEverySendCompletesOnce runs the worker the way AWS does —
// jobs on an SQS queue (moto), an event source mapping with partial batch
// failures and redelivery — against a sandbox where 30% of calls fail with 500
// or 429. The client does not retry (one attempt), so every failure goes back
// through SQS. Every certificate must be sent exactly once.
func TestFlakyNowCertsEverySendCompletesOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{attempts: 1})
	env := testenv.Get(t)
	ctx := context.Background()
	url, dlq := env.NewQueue(t, 50)
	if _, err := env.SQS().SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"VisibilityTimeout": "1"}}); err != nil {
		t.Fatal(err)
	}
	// P(fail) = 0.15 + 0.85 × 0.1765 ≈ 0.30.
	for _, f := range []nowcertssandbox.Fault{
		{Path: "*", Status: 500, Rate: 0.15},
		{Path: "*", Status: 429, Rate: 0.1765, RetryAfter: "0"},
	} {
		if err := h.sb.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	// One certificate revision to 30 holders (only a certificate's newest
	// revision goes out), some with several emails: one call, emails joined.
	const n = 30
	var js []jobs.Job
	for i := range n {
		hd := event.Holder{Name: fmt.Sprintf("Holder %02d", i), Email: fmt.Sprintf("coi%02d@holders.example", i)}
		if i%5 == 0 {
			hd = event.Holder{Name: fmt.Sprintf("City %02d", i), Email: fmt.Sprintf("risk%02d@springfield.example, clerk%02d@springfield.example", i, i), Fax: "(217) 555-0101"}
		}
		js = append(js, sendJob(holderEvent(ready("rev-flaky"), hd)))
	}
	// Every job twice: duplicates on the queue too.
	js = append(js, js...)
	pub, err := queue.NewPublisher(queue.New(env.SQS()), map[jobs.Queue]string{jobs.QueueSend: url})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Enqueue(ctx, js); err != nil {
		t.Fatal(err)
	}
	p, err := esm.New(env.SQS(), esm.Mapping{
		Function: "send-worker", Handler: lambda.NewHandler(h.svc.HandleSQS), QueueURL: url, QueueARN: "arn:aws:sqs:us-east-1:000000000000:send-jobs",
		BatchSize: 10, ReportBatchItemFailures: true, Timeout: 30 * time.Second, WaitTimeSeconds: 1, Pollers: 1,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	for round := 0; ; round++ {
		if round > 400 {
			t.Fatalf("queue not drained after %d polls (%d sends)", round, len(h.sends()))
		}
		res, err := p.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.InvokeErr != nil {
			t.Fatalf("invoke: %v", res.InvokeErr)
		}
		failures += len(res.Left)
		if res.Received == 0 && queueDepth(t, env.SQS(), url) == 0 {
			break
		}
	}
	if failures == 0 {
		t.Fatal("no delivery failed: the faults did not fire")
	}
	sends := h.sends()
	if len(sends) != n {
		t.Fatalf("SendCertificate carried out %d times for %d certificates", len(sends), n)
	}
	seen := map[string]bool{}
	page, err := h.svc.QuerySends(ctx, SendQuery{CertificateID: certReady, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Sends {
		if r.Status != StatusSent {
			t.Fatalf("record %s is %s: %s", r.ID, r.Status, r.Error)
		}
		seen[r.HolderID] = true
	}
	if len(seen) != n || len(page.Sends) != n {
		t.Fatalf("%d records, %d holders", len(page.Sends), len(seen))
	}
	joined := 0
	for _, s := range sends {
		if len(s.Emails) == 2 {
			joined++
			if !strings.HasPrefix(s.Emails[0], "risk") || !strings.HasPrefix(s.Emails[1], "clerk") || s.Fax == "" {
				t.Fatalf("send = %+v", s)
			}
		}
	}
	if joined != n/5 {
		t.Fatalf("%d sends with two emails, want %d", joined, n/5)
	}
	if d := queueDepth(t, env.SQS(), dlq); d != 0 {
		t.Fatalf("%d messages in the DLQ", d)
	}
	calls := h.sb.CallsTo("SendCertificate")
	failed := 0
	for _, c := range calls {
		if c.Status != 200 {
			failed++
		}
	}
	t.Logf("%d SendCertificate calls, %d failed (%.0f%%), %d delivery failures", len(calls), failed, 100*float64(failed)/float64(len(calls)), failures)
	if !strings.Contains(h.logs.String(), "send failed") {
		t.Fatal("failures were not logged")
	}
}

// TestTimelineJobsReachTheCRMQueue checks the timeline jobs through the real
// queue adapter: one per outcome, readable by jobs.Unmarshal. SQS may hold a
// message twice (at-least-once): the queue is read as a set of bodies, and the
// one send is counted on our side of the SQS client.
func TestTimelineJobsReachTheCRMQueue(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	env := testenv.Get(t)
	ctx := context.Background()
	url, _ := env.NewQueue(t, 0)
	spy := &testsupport.SQSSpy{SQSSender: env.SQS()}
	pub, err := queue.NewPublisher(queue.New(spy), map[jobs.Queue]string{jobs.QueueCRM: url})
	if err != nil {
		t.Fatal(err)
	}
	h.svc.timeline = publisherOne{pub}
	ev := holderEvent(ready("r-tl"), seedHolders[holderEmail])
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if n := len(spy.Take(url)); n != 1 {
		t.Fatalf("%d timeline messages sent, want 1", n)
	}
	var bodies []string
	seen := map[string]bool{}
	for wait := int32(1); ; wait = 0 { // moto: a short poll sees every message
		out, err := env.SQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: wait, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if b := aws.ToString(m.Body); !seen[b] {
				seen[b] = true
				bodies = append(bodies, b)
			}
		}
	}
	if len(bodies) != 1 {
		t.Fatalf("%d distinct timeline messages on the queue, want 1", len(bodies))
	}
	j, err := jobs.Unmarshal(bodies[0])
	if err != nil {
		t.Fatal(err)
	}
	tl := j.Timeline
	if j.Kind != jobs.KindTimeline || tl.Outcome != "sent" || tl.CertificateID != certReady || tl.InsuredID != insuredAcme ||
		tl.InsuredName != "Acme Builders LLC" || tl.Channel != "email" || tl.Source != "nowcerts" || tl.SendID == "" {
		t.Fatalf("timeline job = %+v %+v", j, tl)
	}
}

type publisherOne struct{ p *queue.Publisher }

func (o publisherOne) Enqueue(ctx context.Context, j jobs.Job) error {
	return o.p.Enqueue(ctx, []jobs.Job{j})
}
