package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	empty := t.TempDir()
	event := filepath.Join(empty, "event.json")
	if err := os.WriteFile(event, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{nil, exitUsage, "usage: coiflow"},
		{[]string{"help"}, exitOK, "commands:"},
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{[]string{"run", "-h"}, exitOK, "-addr"},
		{[]string{"run", "--addr", "0.0.0.0:3000"}, exitUsage, "not a loopback address"},
		{[]string{"run", "extra"}, exitUsage, "usage: coiflow run"},
		{[]string{"run", "--nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"invoke", "webhook"}, exitUsage, "want FUNCTION and EVENT_FILE"},
		{[]string{"invoke", "webhook", filepath.Join(empty, "missing.json")}, exitFail, "no such file"},
		{[]string{"invoke", "--state-dir", empty, "no-such-function", event}, exitFail, `no function "no-such-function"`},
		{[]string{"queues", "--state", filepath.Join(empty, "local.json")}, exitFail, "is `coiflow run` (make run) running?"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.inStderr) {
			t.Errorf("coiflow %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr.String(), c.code, c.inStderr)
		}
	}
}
