package webhook

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/secrets"
	"github.com/coiflow/coiflow/internal/webhook/signature"
)

// nopSQS accepts every message without doing anything.
type nopSQS struct{}

func (nopSQS) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return &sqs.SendMessageOutput{}, nil
}

func (nopSQS) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return &sqs.SendMessageBatchOutput{}, nil
}

// staticSM serves one secret value.
type staticSM struct{ value string }

func (s staticSM) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(s.value)}, nil
}

// benchBody returns the policy.certificate event of events/webhook grown to
// about 2 KB with coverage details a carrier might add (the parser ignores them).
func benchBody(b *testing.B) []byte {
	raw, err := os.ReadFile(eventsDir + "/cowbell-policy-certificate.json")
	if err != nil {
		b.Fatal(err)
	}
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		b.Fatal(err)
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal([]byte(req.Body), &doc); err != nil {
		b.Fatal(err)
	}
	var coverages []map[string]any
	for i, name := range []string{"Network Security & Privacy Liability", "Regulatory Proceedings", "PCI Fines and Assessments", "Ransomware", "Business Interruption", "Funds Transfer Fraud"} {
		coverages = append(coverages, map[string]any{"name": name, "limit": 1_000_000 / (i + 1), "retention": 10_000, "waitingPeriodHours": 8})
	}
	doc["data"]["coverages"] = coverages
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkWebhook measures one Cowbell policy.certificate webhook (~2 KB)
// through routing, token auth (credentials from a cached secret), size and
// content-type checks, parsing and normalisation, job building and enqueueing
// through the real queue adapter onto a no-op SQS client (two queues), with
// JSON logs and EMF metrics written to io.Discard. The "signed" case adds a
// Standard Webhooks signature check.
func BenchmarkWebhook(b *testing.B) {
	body := benchBody(b)
	now := time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)
	const whsecKey = "whsec_Y29pZmxvdy1iZW5jaC1zaWduaW5nLWtleS0wMTIzNDU2Nzg5"
	sec, err := signature.ParseSecret(whsecKey)
	if err != nil {
		b.Fatal(err)
	}

	for _, bc := range []struct {
		name   string
		secret string
		extra  map[string]string
	}{
		{"token", `{"cowbell": {"tokens": ["local-cowbell-token", "next-token"]}}`, nil},
		{"signed", `{"cowbell": {"tokens": ["local-cowbell-token"], "signingSecrets": ["` + whsecKey + `"]}}`, map[string]string{
			"webhook-id": "msg_bench", "webhook-timestamp": strconv.FormatInt(now.Unix(), 10),
			"webhook-signature": signature.Sign(body, "msg_bench", now, sec),
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pub, err := queue.NewPublisher(queue.New(nopSQS{}), map[jobs.Queue]string{
				jobs.QueueCRM: "https://sqs.us-east-1.amazonaws.com/123456789012/crm-jobs", jobs.QueueSend: "https://sqs.us-east-1.amazonaws.com/123456789012/send-jobs",
			})
			if err != nil {
				b.Fatal(err)
			}
			h, err := New(Config{
				Credentials: NewSecretCredentials(secrets.NewCache(staticSM{bc.secret}, time.Hour), "arn:webhook"),
				Queue:       pub,
				Quarantine:  &fakeQuarantine{},
				Now:         func() time.Time { return now },
				Logger:      obs.NewLogger(io.Discard, "info"),
				Metrics:     obs.NewMetrics(io.Discard),
			})
			if err != nil {
				b.Fatal(err)
			}
			req := post("cowbell", "local-cowbell-token", string(body))
			for k, v := range bc.extra {
				req.Headers[k] = v
			}
			ctx := context.Background()
			resp, _ := h.Handle(ctx, req)
			if resp.StatusCode != 202 || len(resp.Body) < 60 {
				b.Fatalf("warm-up: %d %s", resp.StatusCode, resp.Body)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				resp, _ := h.Handle(ctx, req)
				if resp.StatusCode != 202 {
					b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
				}
			}
		})
	}
}
