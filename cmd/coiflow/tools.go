package main

import (
	"context"
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
	return exitOK
}
