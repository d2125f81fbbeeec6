package wire

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestWebhookNeedsItsConfiguration(t *testing.T) {
	full := map[string]string{
		"TABLE_NAME":         "coiflow",
		"CRM_QUEUE_URL":      "https://sqs.us-east-1.amazonaws.com/123456789012/crm-jobs",
		"SEND_QUEUE_URL":     "https://sqs.us-east-1.amazonaws.com/123456789012/send-jobs",
		"WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook",
	}
	deps := func(env map[string]string) Deps {
		return Deps{Env: func(k string) string { return env[k] }, AWS: aws.Config{Region: "us-east-1"}, Stdout: io.Discard}
	}
	h, err := Webhook(context.Background(), deps(full))
	if err != nil || h == nil {
		t.Fatalf("Webhook = %v, %v", h, err)
	}
	// The health check needs no AWS call: the built handler answers it.
	out, err := h.Invoke(context.Background(), []byte(`{"version":"2.0","rawPath":"/healthz","requestContext":{"requestId":"r","http":{"method":"GET","path":"/healthz"}}}`))
	if err != nil || !strings.Contains(string(out), `"statusCode":200`) {
		t.Fatalf("healthz: %s, %v", out, err)
	}
	for key := range full {
		env := map[string]string{}
		for k, v := range full {
			if k != key {
				env[k] = v
			}
		}
		if _, err := Webhook(context.Background(), deps(env)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("without %s: %v, want an error naming it", key, err)
		}
	}
}
