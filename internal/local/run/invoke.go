package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/local/services"
	"github.com/coiflow/coiflow/internal/samtemplate"
	"github.com/coiflow/coiflow/internal/wire"
)

// InvokeResult is the outcome of one invocation.
type InvokeResult struct {
	// Response is the handler's answer (the Lambda response JSON).
	Response []byte
	// Err is the handler's error (the invocation ran and failed).
	Err error
	// Stack says which stack served it: "running" (coiflow run's) or "temporary".
	Stack string
}

// ErrorDocument is Lambda's error answer for err.
func ErrorDocument(err error) []byte {
	typ := fmt.Sprintf("%T", err)
	typ = strings.TrimPrefix(typ, "*")
	if i := strings.LastIndexByte(typ, '.'); i >= 0 {
		typ = typ[i+1:]
	}
	b, _ := json.Marshal(map[string]string{"errorMessage": err.Error(), "errorType": typ})
	return b
}

// Invoke runs one function's handler (named by its folder under functions/ or
// its logical id) on event, in-process, like `sam local invoke`: against the
// stack of a running `coiflow run` when <StateDir>/local.json names a live one,
// otherwise against a temporary stack started and stopped for the call. The
// handler's own output goes to o.Stdout. The error is about setting up; a
// handler error comes back in InvokeResult.Err.
func Invoke(ctx context.Context, o Options, function string, event []byte) (InvokeResult, error) {
	if err := o.defaults(); err != nil {
		return InvokeResult{}, err
	}
	if !json.Valid(event) {
		return InvokeResult{}, errors.New("the event is not valid JSON")
	}
	info, err := ReadInfo(filepath.Join(o.StateDir, InfoFile))
	if err == nil && processAlive(info.PID) {
		return invokeRunning(ctx, o, info, function, event)
	}

	// Find the function in the template before starting anything.
	tmpl, err := samtemplate.Load(o.Template)
	if err != nil {
		return InvokeResult{}, err
	}
	fns, err := tmpl.Functions()
	if err != nil {
		return InvokeResult{}, err
	}
	known := Info{Functions: map[string]FunctionInfo{}}
	for _, fn := range fns {
		known.Functions[fn.Dir()] = FunctionInfo{LogicalID: fn.LogicalID}
	}
	name, _, err := findFunction(known, function)
	if err != nil {
		return InvokeResult{}, err
	}
	if _, ok := o.Builders[name]; !ok {
		return InvokeResult{}, fmt.Errorf("function %s has no builder yet (internal/wire)", name)
	}

	o.NoServe, o.NoStateFile, o.Only = true, true, name
	sys, err := Start(ctx, o)
	if err != nil {
		return InvokeResult{}, err
	}
	defer func() { _ = sys.Stop() }()
	fi := sys.Info.Functions[name]
	h, ok := sys.Handler(name)
	if !ok {
		return InvokeResult{}, fmt.Errorf("function %s is not available (%s)", name, fi.Status)
	}
	out, herr := invokeHandler(ctx, h, name, fi.TimeoutSec, event)
	return InvokeResult{Response: out, Err: herr, Stack: "temporary"}, nil
}

func invokeRunning(ctx context.Context, o Options, info Info, function string, event []byte) (InvokeResult, error) {
	name, fi, err := findFunction(info, function)
	if err != nil {
		return InvokeResult{}, err
	}
	b, ok := o.Builders[name]
	if !ok {
		return InvokeResult{}, fmt.Errorf("function %s has no builder yet (internal/wire)", name)
	}
	cfg := services.Config(map[string]string{
		dynamodb.ServiceID:       info.Endpoints.DynamoDB,
		sqs.ServiceID:            info.Endpoints.SQS,
		secretsmanager.ServiceID: info.Endpoints.SecretsManager,
	})
	out := newPrefixWriter(o.Stdout, name)
	defer out.Flush()
	h, err := b(ctx, wire.Deps{Env: mapEnv(fi.Env), AWS: cfg, Stdout: out})
	if err != nil {
		return InvokeResult{}, fmt.Errorf("build %s: %w", name, err)
	}
	resp, herr := invokeHandler(ctx, h, name, fi.TimeoutSec, event)
	return InvokeResult{Response: resp, Err: herr, Stack: "running"}, nil
}

// findFunction finds a function by dir name or logical id.
func findFunction(info Info, function string) (string, FunctionInfo, error) {
	if fi, ok := info.Functions[function]; ok {
		return function, fi, nil
	}
	names := make([]string, 0, len(info.Functions))
	for name, fi := range info.Functions {
		if strings.EqualFold(fi.LogicalID, function) {
			return name, fi, nil
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return "", FunctionInfo{}, fmt.Errorf("no function %q in template.yaml (functions: %s)", function, strings.Join(names, ", "))
}

func invokeHandler(ctx context.Context, h lambda.Handler, name string, timeoutSec int, event []byte) ([]byte, error) {
	if timeoutSec <= 0 {
		timeoutSec = 3
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(timeoutSec)*time.Second)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       fmt.Sprintf("local-%d", time.Now().UnixNano()),
		InvokedFunctionArn: "arn:aws:lambda:" + services.Region + ":" + services.AccountID + ":function:" + name,
	})
	return h.Invoke(ctx, event)
}
