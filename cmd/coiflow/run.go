package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/coiflow/coiflow/internal/local/run"
	"github.com/coiflow/coiflow/internal/local/tools"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "run [--addr HOST:PORT] [--allow-non-loopback] [--pollers N] [--state-dir DIR]", stderr)
	addr := fs.String("addr", "", "HTTP API address (default $COIFLOW_ADDR, else "+run.DefaultAddr+")")
	allow := fs.Bool("allow-non-loopback", false, "allow a non-loopback API address (the local tokens are well known)")
	pollers := fs.Int("pollers", 0, "SQS pollers per worker function (default 2)")
	stateDir := fs.String("state-dir", "", "where local.json and logs/ go (default <repo>/.coiflow)")
	if code, stop := parse(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if *addr != "" {
		if err := run.CheckAddr(*addr, *allow); err != nil {
			fmt.Fprintf(stderr, "coiflow run: %v\n", err)
			return exitUsage
		}
	}
	fmt.Fprintln(stderr, "coiflow run: starting DynamoDB Local, moto, the sandboxes and the functions…")
	sys, err := run.Start(ctx, run.Options{
		Addr: *addr, AllowNonLoopback: *allow, Pollers: *pollers, StateDir: *stateDir,
		Stdout: stdout, Log: stderr,
	})
	if err != nil {
		return fail(stderr, "run", err)
	}
	fmt.Fprint(stdout, sys.Summary())
	if p := stateFile(*stateDir); p != "" {
		fmt.Fprintf(stdout, "  (the same as JSON in %s)\n\n", p)
	}
	code := exitOK
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "\ncoiflow run: stopping…")
	case err := <-sys.Err():
		fmt.Fprintf(stderr, "coiflow run: HTTP server failed: %v; stopping\n", err)
		code = exitFail
	}
	if err := sys.Stop(); err != nil {
		fmt.Fprintf(stderr, "coiflow run: stop: %v\n", err)
		code = exitFail
	}
	fmt.Fprintln(stderr, "coiflow run: stopped")
	return code
}

// stateFile is the local.json path for a --state-dir value ("" if unknown).
func stateFile(stateDir string) string {
	if stateDir != "" {
		return filepath.Join(stateDir, run.InfoFile)
	}
	root, err := tools.RepoRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, run.StateDirName, run.InfoFile)
}
