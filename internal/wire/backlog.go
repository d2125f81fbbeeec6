package wire

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/coiflow/coiflow/internal/backlog"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// BacklogReporter builds the scheduled function that emits the approval
// backlog gauges (TABLE_NAME).
func BacklogReporter(ctx context.Context, d Deps) (lambda.Handler, error) {
	table, err := d.Env.Require("TABLE_NAME")
	if err != nil {
		return nil, err
	}
	log := obs.NewLogger(d.Stdout, d.Env("LOG_LEVEL")).With("function", "backlog-reporter")
	r := backlog.Reporter{
		Holds:   store.New(dynamodb.NewFromConfig(d.AWS), table),
		Metrics: obs.NewMetrics(d.Stdout),
		Logger:  log,
	}
	return lambda.NewHandler(r.Handle), nil
}
