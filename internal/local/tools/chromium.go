package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// ChromiumPath is where Debian's chromium package puts the browser the
// approvals page's browser test drives (headless, through chromedp).
const ChromiumPath = "/usr/bin/chromium"

// ErrChromiumMissing: chromium is not installed and this process cannot
// install it (not root, or no apt-get). The error's text says what to run.
var ErrChromiumMissing = errors.New("chromium is missing")

// EnsureChromium makes sure Debian's chromium is at ChromiumPath: nothing to do
// when it is there; as root with apt-get, it runs
// `apt-get update && apt-get install -y --no-install-recommends chromium`
// (its fonts come with its dependencies); otherwise it returns
// ErrChromiumMissing with the command to run. Output goes to log.
func EnsureChromium(ctx context.Context, log io.Writer) error {
	return chromiumInstaller{
		path:     ChromiumPath,
		isRoot:   func() bool { return os.Geteuid() == 0 },
		lookPath: exec.LookPath,
		run:      runLogged,
	}.ensure(ctx, log)
}

// chromiumInstaller is EnsureChromium with its effects replaceable in tests.
type chromiumInstaller struct {
	path     string
	isRoot   func() bool
	lookPath func(string) (string, error)
	run      func(ctx context.Context, log io.Writer, env []string, name string, args ...string) error
}

func (c chromiumInstaller) ensure(ctx context.Context, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	if isExecutable(c.path) {
		return nil
	}
	const how = "install Debian's chromium as root: apt-get update && apt-get install -y chromium"
	if !c.isRoot() {
		return fmt.Errorf("tools: %w at %s (needed by the approvals page's browser test) and this user is not root: %s",
			ErrChromiumMissing, c.path, how)
	}
	aptGet, err := c.lookPath("apt-get")
	if err != nil {
		return fmt.Errorf("tools: %w at %s and apt-get is not available (not a Debian-like system?): install a chromium at %s",
			ErrChromiumMissing, c.path, c.path)
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	fmt.Fprintf(log, "tools: %s is missing: apt-get update && apt-get install -y --no-install-recommends chromium\n", c.path)
	if err := c.run(ctx, log, env, aptGet, "update"); err != nil {
		return fmt.Errorf("tools: apt-get update (to install chromium): %w", err)
	}
	if err := c.run(ctx, log, env, aptGet, "install", "-y", "--no-install-recommends", "chromium"); err != nil {
		return fmt.Errorf("tools: apt-get install chromium: %w", err)
	}
	if !isExecutable(c.path) {
		return fmt.Errorf("tools: apt-get install chromium finished but %s is not there", c.path)
	}
	fmt.Fprintf(log, "tools: chromium installed at %s\n", c.path)
	return nil
}

// isExecutable reports whether path is a file someone may execute.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// runLogged runs name with args, its output going to log; a failure carries
// the output's tail.
func runLogged(ctx context.Context, log io.Writer, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out strings.Builder
	cmd.Stdout = io.MultiWriter(log, &out)
	cmd.Stderr = io.MultiWriter(log, &out)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	return nil
}
