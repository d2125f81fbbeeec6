// Command echo is a test function for the runtime API server: it answers with
// what it was given plus what Lambda told it, fails, or exits on request.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type in struct {
	Say   string `json:"say"`
	Fail  bool   `json:"fail"`
	Exit  bool   `json:"exit"`
	Sleep int    `json:"sleepMs"`
}

type out struct {
	Said        string `json:"said"`
	RequestID   string `json:"requestId"`
	ARN         string `json:"arn"`
	HasDeadline bool   `json:"hasDeadline"`
	Function    string `json:"function"`
	Custom      string `json:"custom"`
	TraceID     string `json:"traceId"`
}

func handle(ctx context.Context, e in) (out, error) {
	if e.Exit {
		os.Exit(3)
	}
	if e.Fail {
		return out{}, errors.New("asked to fail")
	}
	if e.Sleep > 0 {
		select {
		case <-time.After(time.Duration(e.Sleep) * time.Millisecond):
		case <-ctx.Done():
		}
	}
	lc, _ := lambdacontext.FromContext(ctx)
	_, ok := ctx.Deadline()
	o := out{Said: e.Say, HasDeadline: ok, Function: os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), Custom: os.Getenv("CUSTOM"), TraceID: os.Getenv("_X_AMZN_TRACE_ID")}
	if lc != nil {
		o.RequestID, o.ARN = lc.AwsRequestID, lc.InvokedFunctionArn
	}
	b, _ := json.Marshal(o)
	os.Stdout.Write(append(b, '\n'))
	return o, nil
}

func main() { lambda.Start(handle) }
