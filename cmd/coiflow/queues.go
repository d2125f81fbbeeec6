package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/local/run"
	"github.com/coiflow/coiflow/internal/local/services"
)

func cmdQueues(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("queues", "queues [--state FILE] [--peek N] [--json]", stderr)
	state := fs.String("state", "", "the running system's local.json (default <repo>/.coiflow/local.json)")
	peek := fs.Int("peek", 10, "show the latest N jobs of each queue and DLQ (0: depths only; peeking adds one to each job's receive count)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if code, stop := parse(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	path := *state
	if path == "" {
		path = stateFile("")
	}
	info, err := run.ReadInfo(path)
	if errors.Is(err, os.ErrNotExist) {
		return fail(stderr, "queues", fmt.Errorf("%s not found: is `coiflow run` (make run) running? (or pass --state)", path))
	}
	if err != nil {
		return fail(stderr, "queues", err)
	}
	cfg := services.Config(map[string]string{
		dynamodb.ServiceID: info.Endpoints.DynamoDB, sqs.ServiceID: info.Endpoints.SQS, secretsmanager.ServiceID: info.Endpoints.SecretsManager,
	})
	qs, err := run.QueueReport(ctx, sqs.NewFromConfig(cfg), info, *peek)
	if err != nil {
		return fail(stderr, "queues", fmt.Errorf("%w (is the system in %s still running?)", err, path))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(qs); err != nil {
			return fail(stderr, "queues", err)
		}
		return exitOK
	}
	run.WriteQueueReport(stdout, qs, *peek > 0)
	return exitOK
}
