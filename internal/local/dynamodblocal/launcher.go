// Package dynamodblocal runs Amazon's DynamoDB Local (installed by
// internal/local/tools) bound to 127.0.0.1 only.
//
// DynamoDB Local has no bind-address flag, so the package embeds a small Java
// launcher (LoopbackLauncher.java) that builds the server with
// ServerRunner.createServerFromCommandLineArgs and sets the Jetty connector's
// host before start. The launcher is compiled with the machine's javac against
// the installed jar on first use and cached in the tools folder under a hash of
// the source and the jar.
//
// Use:
//
//	cmd, err := dynamodblocal.Command(ctx, toolsDir, port, workDir)
//	// set cmd.Stdout/Stderr/SysProcAttr, then cmd.Start()
package dynamodblocal

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/coiflow/coiflow/internal/local/tools"
)

//go:embed LoopbackLauncher.java
var launcherSource []byte

const launcherClass = "LoopbackLauncher"

// JVMFlags shorten start-up and cap memory; DynamoDB Local needs little.
var JVMFlags = []string{"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m", "-Xss1m"}

// Command returns the command that runs DynamoDB Local in memory
// (-inMemory -sharedDb -disableTelemetry) on 127.0.0.1:port with workDir as its
// working directory (it writes a metadata file there). It compiles the launcher
// first when needed. The caller sets the output and starts it.
func Command(ctx context.Context, toolsDir string, port int, workDir string) (*exec.Cmd, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("dynamodblocal: java is missing: DynamoDB Local needs a Java 17+ runtime and javac (Debian: apt-get install openjdk-17-jdk-headless)")
	}
	jar, err := tools.DynamoDBLocalJar(toolsDir)
	if err != nil {
		return nil, fmt.Errorf("dynamodblocal: %w", err)
	}
	classDir, err := compileLauncher(ctx, toolsDir, jar)
	if err != nil {
		return nil, err
	}
	libDir := filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib")
	args := append([]string{}, JVMFlags...)
	args = append(args,
		"-Djava.library.path="+libDir,
		"-Djava.net.preferIPv4Stack=true",
		"-Dcoiflow.bindHost=127.0.0.1",
		"-cp", classDir+string(os.PathListSeparator)+jar,
		launcherClass,
		"-inMemory", "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port),
	)
	cmd := exec.Command(java, args...)
	cmd.Dir = workDir
	return cmd, nil
}

// Prepare compiles the launcher ahead of time (for `coiflow tools`), so the
// first start does not pay for javac. Command does the same when needed.
func Prepare(ctx context.Context, toolsDir string) error {
	jar, err := tools.DynamoDBLocalJar(toolsDir)
	if err != nil {
		return fmt.Errorf("dynamodblocal: %w", err)
	}
	_, err = compileLauncher(ctx, toolsDir, jar)
	return err
}

// compileLauncher compiles LoopbackLauncher.java against jar into
// toolsDir/dynamodb-launcher/<hash>/ unless it is already there, and returns
// that folder. Concurrent callers compile into private temporary folders and
// rename, so a half-written class is never seen.
func compileLauncher(ctx context.Context, toolsDir, jar string) (string, error) {
	h := sha256.New()
	h.Write(launcherSource)
	jf, err := os.Open(jar)
	if err != nil {
		return "", fmt.Errorf("dynamodblocal: open jar: %w", err)
	}
	_, err = io.Copy(h, jf)
	jf.Close()
	if err != nil {
		return "", fmt.Errorf("dynamodblocal: hash jar: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	base := filepath.Join(toolsDir, "dynamodb-launcher")
	final := filepath.Join(base, sum)
	if _, err := os.Stat(filepath.Join(final, launcherClass+".class")); err == nil {
		return final, nil
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return "", errors.New("dynamodblocal: javac is missing: it compiles the loopback launcher for DynamoDB Local (Debian: apt-get install openjdk-17-jdk-headless)")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("dynamodblocal: %w", err)
	}
	tmp, err := os.MkdirTemp(base, "build-")
	if err != nil {
		return "", fmt.Errorf("dynamodblocal: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, launcherClass+".java")
	if err := os.WriteFile(src, launcherSource, 0o644); err != nil {
		return "", fmt.Errorf("dynamodblocal: %w", err)
	}
	out := filepath.Join(tmp, "classes")
	cmd := exec.CommandContext(ctx, javac, "-nowarn", "-cp", jar, "-d", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dynamodblocal: javac LoopbackLauncher.java: %w\n%s", err, b)
	}
	if err := os.Rename(out, final); err != nil {
		// Another process won the race: use its copy.
		if _, statErr := os.Stat(filepath.Join(final, launcherClass+".class")); statErr == nil {
			return final, nil
		}
		return "", fmt.Errorf("dynamodblocal: install launcher: %w", err)
	}
	return final, nil
}
