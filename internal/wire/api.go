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
	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/staffapi"
	"github.com/coiflow/coiflow/internal/store"
)

// staffSecretTTL is how long the local staff tokens are cached: a token added
// to or removed from the secret takes effect within it.
const staffSecretTTL = time.Minute

// API builds the staff API: STAFF_AUTH (jwt | token; anything else refuses to
// start), STAFF_SECRET_ARN (token mode), and the send pipeline's configuration
// (TABLE_NAME, NOWCERTS_SECRET_ARN, NOWCERTS_BASE_URL, CRM_QUEUE_URL for the
// timeline of approvals and rejections).
func API(ctx context.Context, d Deps) (lambda.Handler, error) {
	log := obs.NewLogger(d.Stdout, d.Env("LOG_LEVEL")).With("function", "api")
	metrics := obs.NewMetrics(d.Stdout)

	// Authentication first: a misconfigured API must not start at all.
	var reader staffapi.SecretReader
	arn := d.Env("STAFF_SECRET_ARN")
	if arn != "" {
		reader = secrets.NewCache(secretsmanager.NewFromConfig(d.AWS), staffSecretTTL)
	}
	auth, err := staffapi.NewAuthenticator(d.Env("STAFF_AUTH"), reader, arn)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}

	table, err := d.Env.Require("TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	crmURL, err := d.Env.Require("CRM_QUEUE_URL")
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	nc, _, err := NowCerts(d, log, metrics)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	pub, err := queue.NewPublisher(queue.New(sqs.NewFromConfig(d.AWS)), map[jobs.Queue]string{jobs.QueueCRM: crmURL})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	st := store.New(dynamodb.NewFromConfig(d.AWS), table)
	svc := sending.New(sending.Deps{
		Store:    st,
		NowCerts: nc,
		Timeline: oneJob{pub},
		Metrics:  metrics,
		Logger:   log,
	})
	srv, err := staffapi.New(staffapi.Config{Sending: svc, Auth: auth, Quarantine: st, CRMFailures: st, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return lambda.NewHandler(srv.Handle), nil
}

// oneJob adapts the queue publisher (batches) to the pipeline's one-job
// Enqueuer.
type oneJob struct{ p *queue.Publisher }

func (o oneJob) Enqueue(ctx context.Context, j jobs.Job) error {
	return o.p.Enqueue(ctx, []jobs.Job{j})
}
