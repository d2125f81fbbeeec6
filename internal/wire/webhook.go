package wire

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/lambda"
)

// Webhook builds the webhook receiver. (Placeholder until internal/webhook lands.)
func Webhook(ctx context.Context, d Deps) (lambda.Handler, error) {
	return nil, errors.New("webhook receiver not built yet")
}
