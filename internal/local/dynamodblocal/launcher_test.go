package dynamodblocal

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coiflow/coiflow/internal/local/tools"
)

func TestCommandCompilesOnceAndBindsLoopback(t *testing.T) {
	dir, err := tools.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := tools.Install(ctx, dir, nil); err != nil {
		t.Fatalf("install tools: %v", err)
	}
	cmd, err := Command(ctx, dir, 8000, t.TempDir())
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	for _, want := range []string{"-Dcoiflow.bindHost=127.0.0.1", "-inMemory", "-sharedDb", "-disableTelemetry", "LoopbackLauncher"} {
		if !slices.Contains(cmd.Args, want) {
			t.Errorf("args %v lack %s", cmd.Args, want)
		}
	}
	cp := cmd.Args[slices.Index(cmd.Args, "-cp")+1]
	classDir := strings.Split(cp, string(os.PathListSeparator))[0]
	class := filepath.Join(classDir, launcherClass+".class")
	before, err := os.Stat(class)
	if err != nil {
		t.Fatalf("compiled launcher: %v", err)
	}
	if _, err := Command(ctx, dir, 8001, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(class)
	if err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("launcher recompiled on the second call (%v)", err)
	}
}

func TestCommandNamesMissingJava(t *testing.T) {
	t.Setenv("PATH", "")
	_, err := Command(context.Background(), t.TempDir(), 8000, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "java is missing") {
		t.Fatalf("Command without java = %v", err)
	}
}
