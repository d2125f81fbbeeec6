package main

import (
	"context"
	"encoding/json"
	"github.com/coiflow/coiflow/internal/testsupport"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/wire"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// lockedBuffer is the shared goroutine-safe log sink.
type lockedBuffer = testsupport.Buffer

// TestSendWorkerWithEventFiles builds the function as Lambda would (the wire
// registry, configuration from the environment) against DynamoDB Local, moto
// and the NowCerts sandbox, and invokes it with every events/send-worker file.
func TestSendWorkerWithEventFiles(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	sb := nowcertssandbox.New(nowcertssandbox.Options{})
	base, stop, err := sb.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	user, pass := sb.Credentials()
	access, refresh, exp := sb.IssueTokens()
	secret, err := nowcerts.Credentials{Username: user, Password: pass, ClientID: "ngAuthApp", AccessToken: access,
		RefreshToken: refresh, ExpiresAt: exp}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	crmURL, _ := env.NewQueue(t, 0)
	vars := map[string]string{
		"TABLE_NAME":          env.NewTable(t),
		"NOWCERTS_SECRET_ARN": env.NewSecret(t, secret),
		"NOWCERTS_BASE_URL":   base,
		"CRM_QUEUE_URL":       crmURL,
		"LOG_LEVEL":           "debug",
	}
	var stdout lockedBuffer
	build, ok := wire.Builders()["send-worker"]
	if !ok {
		t.Fatal(`wire.Builders() has no "send-worker"`)
	}
	// The function's SDK clients count what it sends to the CRM queue.
	crmSends := &sendCounter{url: crmURL}
	cfg := env.AWS.Copy()
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), crmSends.install)
	h, err := build(ctx, wire.Deps{Env: func(k string) string { return vars[k] }, AWS: cfg, Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "send-worker", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no event files: %v", err)
	}
	// Policy status first, so the Cowbell certificate meets the cancellation.
	for i, f := range files {
		if strings.Contains(f, "policy-status") {
			files[0], files[i] = files[i], files[0]
		}
	}
	for _, f := range files {
		payload, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // every file twice: redelivery changes nothing
			out, err := h.Invoke(ctx, payload)
			if err != nil {
				t.Fatalf("invoke %s: %v", f, err)
			}
			var resp events.SQSEventResponse
			if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("invoke %s: answer %s (%v)\n%s", f, out, err, stdout.String())
			}
		}
	}
	sends := sb.Sends()
	if len(sends) != 1 || sends[0].CertificateID != nowcertssandbox.SeedCertificateReady || sends[0].Emails[0] != "coi@northwind-pm.example" {
		t.Fatalf("sandbox sends = %+v", sends)
	}
	out := stdout.String()
	for _, m := range []string{obs.MetricCertificatesSent, obs.MetricHeld, obs.MetricDuplicateSuppressed} {
		if !strings.Contains(out, `"`+m+`":`) {
			t.Fatalf("no %s metric:\n%s", m, out)
		}
	}
	for _, secretish := range []string{"coi@northwind-pm.example", "risk@springfield.example", access, refresh, pass} {
		if i := strings.Index(out, secretish); i >= 0 {
			t.Fatalf("%.8s… appears on stdout in clear: …%s…", secretish, out[max(0, i-300):i])
		}
	}
	// The timeline jobs reached the CRM queue: one sent, three held, each
	// sent once although every file came twice. SQS may hold a message twice
	// (at-least-once), so the queue is read as a set of job ids; the sends
	// are counted on the function's side of its SQS client.
	if n := crmSends.sent(); n != 4 {
		t.Fatalf("the function sent %d timeline jobs, want 4 (one sent, three held)", n)
	}
	byID := map[string]string{} // job id -> outcome
	for tries := 0; tries < 5; tries++ {
		wait := int32(1)
		if len(byID) >= 4 {
			wait = 0 // moto: a short poll sees every message left
		}
		msgs, err := env.SQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(crmURL), MaxNumberOfMessages: 10, WaitTimeSeconds: wait, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs.Messages {
			j, err := jobs.Unmarshal(aws.ToString(m.Body))
			if err != nil || j.Kind != jobs.KindTimeline {
				t.Fatalf("CRM queue message %v: %+v", err, j)
			}
			byID[j.ID] = j.Timeline.Outcome
		}
		if len(byID) >= 4 && len(msgs.Messages) == 0 {
			break
		}
	}
	outcomes := map[string]int{}
	for _, o := range byID {
		outcomes[o]++
	}
	if len(byID) != 4 || outcomes["sent"] != 1 || outcomes["held"] != 3 {
		t.Fatalf("timeline outcomes of %d distinct jobs = %v", len(byID), outcomes)
	}
}

// sendCounter counts the messages SQS accepted for url from the clients of a
// config it is installed on (aws.Config.APIOptions). It sits at the Initialize
// step, which runs once per call the code makes, before the SDK's retries: a
// message SQS holds twice is still one send here.
type sendCounter struct {
	url string
	mu  sync.Mutex
	n   int
}

func (c *sendCounter) install(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("countSends", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleInitialize(ctx, in)
		if err != nil {
			return out, md, err
		}
		n := 0
		switch p := in.Parameters.(type) {
		case *sqs.SendMessageInput:
			if aws.ToString(p.QueueUrl) == c.url {
				n = 1
			}
		case *sqs.SendMessageBatchInput:
			if r, ok := out.Result.(*sqs.SendMessageBatchOutput); ok && aws.ToString(p.QueueUrl) == c.url {
				n = len(r.Successful)
			}
		}
		c.mu.Lock()
		c.n += n
		c.mu.Unlock()
		return out, md, err
	}), middleware.After)
}

func (c *sendCounter) sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
