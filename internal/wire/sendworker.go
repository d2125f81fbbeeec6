package wire

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/store"
)

// SendWorker builds the send-jobs consumer: TABLE_NAME (claims, holds, audit,
// settings), NOWCERTS_SECRET_ARN and NOWCERTS_BASE_URL (the NowCerts client),
// CRM_QUEUE_URL (timeline jobs for the CRM worker).
func SendWorker(ctx context.Context, d Deps) (lambda.Handler, error) {
	log := obs.NewLogger(d.Stdout, d.Env("LOG_LEVEL")).With("function", "send-worker")
	metrics := obs.NewMetrics(d.Stdout)
	table, err := d.Env.Require("TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("send-worker: %w", err)
	}
	crmURL, err := d.Env.Require("CRM_QUEUE_URL")
	if err != nil {
		return nil, fmt.Errorf("send-worker: %w", err)
	}
	nc, _, err := NowCerts(d, log, metrics)
	if err != nil {
		return nil, fmt.Errorf("send-worker: %w", err)
	}
	pub, err := queue.NewPublisher(queue.New(sqs.NewFromConfig(d.AWS)), map[jobs.Queue]string{jobs.QueueCRM: crmURL})
	if err != nil {
		return nil, fmt.Errorf("send-worker: %w", err)
	}
	svc := sending.New(sending.Deps{
		Store:    store.New(dynamodb.NewFromConfig(d.AWS), table),
		NowCerts: nc,
		Timeline: oneJob{pub},
		Metrics:  metrics,
		Logger:   log,
	})
	return lambda.NewHandler(svc.HandleSQS), nil
}
