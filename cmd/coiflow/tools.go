package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/coiflow/coiflow/internal/local/tools"
)

func cmdTools(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("tools", "tools [--dir DIR]", stderr)
	dir := fs.String("dir", "", "tools folder (default: $COIFLOW_TOOLS_DIR, else <repo>/.tools)")
	if code, stop := parse(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	d := *dir
	if d == "" {
		var err error
		if d, err = tools.DefaultDir(); err != nil {
			return fail(stderr, "tools", err)
		}
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return fail(stderr, "tools", err)
	}
	if err := tools.Install(ctx, abs, stderr); err != nil {
		return fail(stderr, "tools", err)
	}
	// Debian's chromium, for the approvals page's browser test. When it cannot be
	// installed here (not root), say so and go on: that test fails with the same
	// message, and everything else works without it.
	if err := tools.EnsureChromium(ctx, stderr); err != nil {
		if !errors.Is(err, tools.ErrChromiumMissing) {
			return fail(stderr, "tools", err)
		}
		fmt.Fprintf(stderr, "coiflow tools: warning: %v\n", err)
	}
	return exitOK
}
