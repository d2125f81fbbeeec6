package tools

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeApt records the commands it is asked to run; install creates the binary.
type fakeApt struct {
	calls   [][]string
	path    string
	failOn  string
	creates bool
}

func (f *fakeApt) run(_ context.Context, _ io.Writer, env []string, name string, args ...string) error {
	f.calls = append(f.calls, append([]string{name}, args...))
	if !slices.Contains(env, "DEBIAN_FRONTEND=noninteractive") {
		return errors.New("apt run without DEBIAN_FRONTEND=noninteractive")
	}
	if len(args) > 0 && args[0] == f.failOn {
		return errors.New("exit status 100")
	}
	if len(args) > 0 && args[0] == "install" && f.creates {
		return os.WriteFile(f.path, []byte("#!/bin/sh\n"), 0o755)
	}
	return nil
}

func installer(path string, root bool, apt *fakeApt) chromiumInstaller {
	return chromiumInstaller{
		path:     path,
		isRoot:   func() bool { return root },
		lookPath: func(string) (string, error) { return "/usr/bin/apt-get", nil },
		run:      apt.run,
	}
}

func TestEnsureChromiumPresent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chromium")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	apt := &fakeApt{path: path}
	if err := installer(path, false, apt).ensure(context.Background(), nil); err != nil {
		t.Fatalf("present: %v", err)
	}
	if len(apt.calls) != 0 {
		t.Fatalf("ran %v with chromium present", apt.calls)
	}
}

func TestEnsureChromiumInstallsAsRoot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chromium")
	apt := &fakeApt{path: path, creates: true}
	var log strings.Builder
	if err := installer(path, true, apt).ensure(context.Background(), &log); err != nil {
		t.Fatalf("install: %v", err)
	}
	want := [][]string{{"/usr/bin/apt-get", "update"}, {"/usr/bin/apt-get", "install", "-y", "--no-install-recommends", "chromium"}}
	if !slices.EqualFunc(apt.calls, want, slices.Equal) {
		t.Fatalf("calls %v, want %v", apt.calls, want)
	}
	if !strings.Contains(log.String(), "chromium installed") {
		t.Fatalf("log %q", log.String())
	}
}

func TestEnsureChromiumFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chromium")

	// Not root: nothing run, a message saying what to do.
	apt := &fakeApt{path: path}
	err := installer(path, false, apt).ensure(context.Background(), nil)
	if !errors.Is(err, ErrChromiumMissing) || !strings.Contains(err.Error(), "apt-get install -y chromium") || len(apt.calls) != 0 {
		t.Fatalf("not root: %v (calls %v)", err, apt.calls)
	}
	// No apt-get.
	in := installer(path, true, apt)
	in.lookPath = func(string) (string, error) { return "", errors.New("not found") }
	if err := in.ensure(context.Background(), nil); !errors.Is(err, ErrChromiumMissing) || !strings.Contains(err.Error(), "apt-get is not available") {
		t.Fatalf("no apt-get: %v", err)
	}
	// apt-get update fails: no install attempted.
	apt = &fakeApt{path: path, failOn: "update"}
	if err := installer(path, true, apt).ensure(context.Background(), nil); err == nil || errors.Is(err, ErrChromiumMissing) ||
		!strings.Contains(err.Error(), "apt-get update") || len(apt.calls) != 1 {
		t.Fatalf("update failure: %v (calls %v)", err, apt.calls)
	}
	// Install "succeeds" but the binary is not there.
	apt = &fakeApt{path: path}
	if err := installer(path, true, apt).ensure(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "is not there") {
		t.Fatalf("missing after install: %v", err)
	}
}
