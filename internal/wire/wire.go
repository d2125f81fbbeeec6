// Package wire builds each Lambda function's handler from configuration. The same
// builders serve the deployed functions (functions/<name>/main.go passes
// os.Getenv) and the local runner (which passes each function's environment as
// template.yaml defines it, resolved against the local stack).
package wire

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Env looks up a configuration variable ("" when unset).
type Env func(key string) string

// Deps are what every builder shares: configuration, AWS configuration, and where
// logs and metrics go (stdout in Lambda).
type Deps struct {
	Env    Env
	AWS    aws.Config
	Stdout io.Writer
}

// Builder builds one function's handler.
type Builder func(ctx context.Context, d Deps) (lambda.Handler, error)

// Builders maps a function's directory name under functions/ (the base name of
// its CodeUri in template.yaml) to its builder.
func Builders() map[string]Builder {
	return map[string]Builder{
		"webhook":          Webhook,
		"api":              API,
		"token-refresher":  TokenRefresher,
		"send-worker":      SendWorker,
		"crm-worker":       CRMWorker,
		"backlog-reporter": BacklogReporter,
	}
}

// Require returns the value of key or an error naming it.
func (e Env) Require(key string) (string, error) {
	v := e(key)
	if v == "" {
		return "", fmt.Errorf("configuration: %s is not set", key)
	}
	return v, nil
}

// Or returns the value of key, or def when unset.
func (e Env) Or(key, def string) string {
	if v := e(key); v != "" {
		return v
	}
	return def
}

// Main is what functions/<name>/main.go calls: build the function from the
// process environment with its builder and hand it to the Lambda runtime. The
// builder is passed (not looked up in Builders) so each binary links only its
// own function's code.
func Main(name string, build Builder) {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "coiflow %s: load AWS configuration: %v\n", name, err)
		os.Exit(1)
	}
	h, err := build(ctx, Deps{Env: os.Getenv, AWS: cfg, Stdout: os.Stdout})
	if err != nil {
		fmt.Fprintf(os.Stderr, "coiflow %s: %v\n", name, err)
		os.Exit(1)
	}
	lambda.Start(h)
}
