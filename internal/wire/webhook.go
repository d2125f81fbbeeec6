package wire

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/secrets"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/webhook"
)

// webhookSecretTTL is how long webhook credentials are cached: a rotated token
// takes effect within it (both tokens are valid during a rotation).
const webhookSecretTTL = time.Minute

// Webhook builds the webhook receiver from TABLE_NAME, CRM_QUEUE_URL,
// SEND_QUEUE_URL and WEBHOOK_SECRET_ARN.
func Webhook(ctx context.Context, d Deps) (lambda.Handler, error) {
	var cfg struct{ table, crmURL, sendURL, secretARN string }
	for _, v := range []struct {
		key string
		dst *string
	}{
		{"TABLE_NAME", &cfg.table},
		{"CRM_QUEUE_URL", &cfg.crmURL},
		{"SEND_QUEUE_URL", &cfg.sendURL},
		{"WEBHOOK_SECRET_ARN", &cfg.secretARN},
	} {
		val, err := d.Env.Require(v.key)
		if err != nil {
			return nil, err
		}
		*v.dst = val
	}

	pub, err := queue.NewPublisher(queue.New(sqs.NewFromConfig(d.AWS)), map[jobs.Queue]string{
		jobs.QueueCRM:  cfg.crmURL,
		jobs.QueueSend: cfg.sendURL,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	cache := secrets.NewCache(secretsmanager.NewFromConfig(d.AWS), webhookSecretTTL)
	h, err := webhook.New(webhook.Config{
		Credentials: webhook.NewSecretCredentials(cache, cfg.secretARN),
		Queue:       pub,
		Quarantine:  store.New(dynamodb.NewFromConfig(d.AWS), cfg.table),
		Logger:      obs.NewLogger(d.Stdout, d.Env("LOG_LEVEL")),
		Metrics:     obs.NewMetrics(d.Stdout),
	})
	if err != nil {
		return nil, err
	}
	return lambda.NewHandler(h.Handle), nil
}
