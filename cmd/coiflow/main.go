// Command coiflow is the operator CLI: it runs the whole system locally,
// invokes one function on an event file, shows the queues, redrives dead-letter
// queues, replays quarantined webhooks, exports the send log, and installs the
// local tools.
//
//	coiflow run                      start everything locally (what `make run` does)
//	coiflow queues                   queue depths and the latest jobs of a running system
//	coiflow invoke FUNCTION EVENT    run a function's handler on an event (like `sam local invoke`)
//	coiflow tools [--dir .tools]     install the npm-delivered local stand-ins (`make tools`)
//	coiflow redrive QUEUE            move a DLQ's messages back to its source queue
//	coiflow quarantine list|replay   show quarantined bodies; replay one the parser reads now
//	coiflow export [--from D --to D] the send log as CSV or XLSX, paged through the staff API
//
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "start the whole system locally: AWS stand-ins, sandboxes, HTTP API, queue pollers", cmdRun},
		{"queues", "show queue depths (visible / in flight / DLQ) and the latest jobs of a running system", cmdQueues},
		{"invoke", "run one function's handler on an event file and print the Lambda response (like sam local invoke)", cmdInvoke},
		{"tools", "install the npm-delivered local stand-ins (DynamoDB Local, local-aws-sqs)", cmdTools},
		{"redrive", "move the messages of a dead-letter queue back to its source queue, with progress", cmdRedrive},
		{"quarantine", "list quarantined webhook bodies; replay one the parser can read now", cmdQuarantine},
		{"export", "write the send log (filtered by dates, certificate, holder, status) as CSV or XLSX, with progress", cmdExport},
	}
}

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "coiflow: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: coiflow <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `coiflow <command> -h` for a command's flags.\n")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("coiflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: coiflow %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; it returns an exit code when the command should stop.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitUsage, true
	}
	return 0, false
}

func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "coiflow %s: %v\n", cmd, err)
	return exitFail
}
