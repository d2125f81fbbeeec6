package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/coiflow/coiflow/internal/local/run"
)

func cmdInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("invoke", "invoke [--state-dir DIR] FUNCTION EVENT_FILE   (EVENT_FILE - reads stdin)", stderr)
	stateDir := fs.String("state-dir", "", "where a running system's local.json is (default <repo>/.coiflow)")
	if code, stop := parse(fs, args); stop {
		return code
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(stderr, "coiflow invoke: want FUNCTION and EVENT_FILE, e.g. coiflow invoke webhook events/webhook/healthz.json")
		fs.Usage()
		return exitUsage
	}
	fn, file := fs.Arg(0), fs.Arg(1)
	var event []byte
	var err error
	if file == "-" {
		event, err = io.ReadAll(os.Stdin)
	} else {
		event, err = os.ReadFile(file)
	}
	if err != nil {
		return fail(stderr, "invoke", err)
	}
	// Logs (the runner's and the handler's) go to stderr; stdout is the response only.
	res, err := run.Invoke(ctx, run.Options{StateDir: *stateDir, Stdout: stderr, Log: stderr}, fn, event)
	if err != nil {
		return fail(stderr, "invoke", err)
	}
	fmt.Fprintf(stderr, "coiflow invoke: %s on %s stack\n", fn, res.Stack)
	if res.Err != nil {
		fmt.Fprintf(stdout, "%s\n", run.ErrorDocument(res.Err))
		fmt.Fprintf(stderr, "coiflow invoke: the function failed: %v\n", res.Err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s\n", res.Response)
	return exitOK
}
