package runtimeapi

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// LaunchOptions describe the bootstrap process to start.
type LaunchOptions struct {
	// Bootstrap is the path of the built executable.
	Bootstrap string
	// Handler is _HANDLER (default "bootstrap").
	Handler string
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 128).
	MemoryMB int
	// Region is AWS_REGION / AWS_DEFAULT_REGION (default us-east-1).
	Region string
	// Env is the function's own environment (template.yaml's variables resolved,
	// plus credentials and endpoints). It is applied after the Lambda-provided
	// variables, except that AWS_LAMBDA_RUNTIME_API always points at the server.
	// Nothing is inherited from the launching process, as in Lambda.
	Env map[string]string
	// Stdout and Stderr receive the process's output (default: discarded).
	Stdout, Stderr io.Writer
}

// Process is a running bootstrap.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Launch starts a bootstrap against s (which must be started). When the process
// exits, s is told (RuntimeExited), so waiting invocations fail instead of hanging.
func Launch(s *Server, o LaunchOptions) (*Process, error) {
	if s.Addr() == "" {
		return nil, errors.New("launch: runtime api server not started")
	}
	path, err := filepath.Abs(o.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", o.Bootstrap, err)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	if o.Handler == "" {
		o.Handler = "bootstrap"
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = 128
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	env := map[string]string{
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
		"LANG":                            "en_US.UTF-8",
		"TZ":                              ":UTC",
		"LAMBDA_TASK_ROOT":                filepath.Dir(path),
		"LAMBDA_RUNTIME_DIR":              filepath.Dir(path),
		"_HANDLER":                        o.Handler,
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"AWS_LAMBDA_FUNCTION_NAME":        s.name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(o.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + s.name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + newUUID()[:8],
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_REGION":                      o.Region,
		"AWS_DEFAULT_REGION":              o.Region,
	}
	for k, v := range o.Env {
		env[k] = v
	}
	env["AWS_LAMBDA_RUNTIME_API"] = s.Addr()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cmd := exec.Command(path)
	cmd.Dir = filepath.Dir(path)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch %s: %w", path, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		s.RuntimeExited(p.err)
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit status once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process (by its PID), waits up to grace for it to
// exit, then kills it.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop pid %d: %w", p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill pid %d: %w", p.PID(), err)
	}
	<-p.done
	return nil
}
