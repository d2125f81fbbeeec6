package main

import (
	"context"
	"encoding/json"
	"github.com/coiflow/coiflow/internal/testsupport"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

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
	h, err := build(ctx, wire.Deps{Env: func(k string) string { return vars[k] }, AWS: env.AWS, Stdout: &stdout})
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
	// The timeline jobs reached the CRM queue: one sent, three held.
	outcomes := map[string]int{}
	for range 5 {
		msgs, err := env.SQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(crmURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs.Messages {
			j, err := jobs.Unmarshal(aws.ToString(m.Body))
			if err != nil || j.Kind != jobs.KindTimeline {
				t.Fatalf("CRM queue message %v: %+v", err, j)
			}
			outcomes[j.Timeline.Outcome]++
		}
		if outcomes["sent"]+outcomes["held"] >= 4 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if outcomes["sent"] != 1 || outcomes["held"] != 3 {
		t.Fatalf("timeline outcomes = %v", outcomes)
	}
}
