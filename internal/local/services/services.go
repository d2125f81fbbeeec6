// Package services starts the local stand-ins for AWS on 127.0.0.1 and stops
// them: DynamoDB Local (Amazon's, through internal/local/dynamodblocal) and
// moto_server for SQS and Secrets Manager. When moto_server is missing, SQS
// falls back to local-aws-sqs and Secrets Manager is unavailable
// (Stack.RequireSecretsManager says so clearly).
//
// Use:
//
//	st, err := services.Start(ctx, services.Options{Log: os.Stderr})
//	defer st.Stop()
//	cfg := st.AWSConfig()                 // aws.Config pointed at the stack
//	env := st.Environ()                   // AWS_* variables for child processes
//
// Start installs the npm tools when missing (internal/local/tools), picks free
// ports unless fixed ones are given, waits until each service answers a real
// API call, and writes each process's output to a log file under the state
// folder. Child processes get SIGKILL when the parent dies (Linux Pdeathsig).
package services

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/local/dynamodblocal"
	"github.com/coiflow/coiflow/internal/local/tools"
)

// The region and static credentials the local stack uses.
const (
	Region          = "us-east-1"
	AccessKeyID     = "test"
	SecretAccessKey = "test"
	// AccountID is moto's (and local-aws-sqs's) default account.
	AccountID = "123456789012"
)

// SQS providers.
const (
	ProviderMoto     = "moto"
	ProviderLocalSQS = "local-aws-sqs"
)

//go:embed sqs-starter.js
var sqsStarter []byte

// Options configure Start. The zero value is usable.
type Options struct {
	// ToolsDir holds the npm tools (default tools.DefaultDir(): <repo>/.tools).
	ToolsDir string
	// StateDir receives the logs and DynamoDB Local's scratch folder. Default:
	// a new temporary folder, removed by Stop.
	StateDir string
	// DynamoDBPort and MotoPort fix the ports; 0 picks a free port. MotoPort
	// is also the local-aws-sqs port in the fallback.
	DynamoDBPort, MotoPort int
	// StartTimeout bounds the wait for each service to answer (default 90s).
	StartTimeout time.Duration
	// WithoutMoto forces the local-aws-sqs fallback even when moto_server is
	// installed.
	WithoutMoto bool
	// Log receives progress lines (nil: discarded).
	Log io.Writer
}

// Timing is how long one service took from launch to its first good answer.
type Timing struct {
	Service string
	Ready   time.Duration
}

// Stack is a running set of local services.
type Stack struct {
	DynamoDBEndpoint       string
	SQSEndpoint            string
	SecretsManagerEndpoint string // "" when moto_server is missing
	// SQSProvider is ProviderMoto or ProviderLocalSQS.
	SQSProvider string
	// Missing explains what is unavailable ("" when everything runs).
	Missing string
	// Timings per service, and Total from Start's call to all ready.
	Timings []Timing
	Total   time.Duration
	// StateDir holds the logs (<service>.log).
	StateDir string

	procs      []*proc
	ownedState bool
	stopOnce   sync.Once
	stopErr    error
}

// Start launches DynamoDB Local and moto_server (or the SQS fallback) and
// waits until they answer. On error everything already started is stopped.
func Start(ctx context.Context, o Options) (*Stack, error) {
	begin := time.Now()
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 90 * time.Second
	}
	if o.ToolsDir == "" {
		d, err := tools.DefaultDir()
		if err != nil {
			return nil, fmt.Errorf("services: %w", err)
		}
		o.ToolsDir = d
	}
	if err := tools.Install(ctx, o.ToolsDir, o.Log); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	s := &Stack{StateDir: o.StateDir}
	if s.StateDir == "" {
		d, err := os.MkdirTemp("", "coiflow-stack-")
		if err != nil {
			return nil, fmt.Errorf("services: state folder: %w", err)
		}
		s.StateDir, s.ownedState = d, true
	} else if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("services: state folder: %w", err)
	}

	motoPath, motoErr := exec.LookPath("moto_server")
	if o.WithoutMoto {
		motoPath, motoErr = "", errors.New("disabled by WithoutMoto")
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(f func() (*proc, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := f()
			mu.Lock()
			defer mu.Unlock()
			if p != nil {
				s.procs = append(s.procs, p)
				s.Timings = append(s.Timings, Timing{Service: p.name, Ready: p.ready})
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	run(func() (*proc, error) { return s.startDynamoDB(ctx, o) })
	if motoErr == nil {
		run(func() (*proc, error) { return s.startMoto(ctx, o, motoPath) })
	} else {
		s.Missing = "moto_server is missing (it comes with the machine image: pip package moto[server]); " +
			"SQS runs on local-aws-sqs and Secrets Manager is unavailable"
		if o.WithoutMoto {
			s.Missing = "moto_server disabled (WithoutMoto); SQS runs on local-aws-sqs and Secrets Manager is unavailable"
		}
		fmt.Fprintf(o.Log, "services: %s\n", s.Missing)
		run(func() (*proc, error) { return s.startLocalSQS(ctx, o) })
	}
	wg.Wait()
	if len(errs) > 0 {
		_ = s.Stop()
		return nil, errors.Join(errs...)
	}
	s.Total = time.Since(begin)
	for _, t := range s.Timings {
		fmt.Fprintf(o.Log, "services: %s ready in %s\n", t.Service, t.Ready.Round(time.Millisecond))
	}
	return s, nil
}

// Stop kills every process the stack started (by process group id, so their
// children go too), waits for them, and removes a temporary state folder. It
// is safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		for _, p := range s.procs {
			if err := p.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.ownedState {
			if err := os.RemoveAll(s.StateDir); err != nil {
				errs = append(errs, fmt.Errorf("services: remove %s: %w", s.StateDir, err))
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// RequireSecretsManager returns an error naming what is missing when the
// stack has no Secrets Manager (moto_server missing).
func (s *Stack) RequireSecretsManager() error {
	if s.SecretsManagerEndpoint == "" {
		return fmt.Errorf("services: Secrets Manager is unavailable: %s", s.Missing)
	}
	return nil
}

// Environ returns the variables that point an AWS SDK (in this or a child
// process, via config.LoadDefaultConfig) at the stack.
func (s *Stack) Environ() []string {
	env := []string{
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_ENDPOINT_URL_DYNAMODB=" + s.DynamoDBEndpoint,
		"AWS_ENDPOINT_URL_SQS=" + s.SQSEndpoint,
	}
	if s.SecretsManagerEndpoint != "" {
		env = append(env, "AWS_ENDPOINT_URL_SECRETS_MANAGER="+s.SecretsManagerEndpoint)
	}
	return env
}

// AWSConfig returns an aws.Config (region, static credentials) whose clients,
// built with the plain NewFromConfig, talk to the stack. It ignores the
// process's AWS_* variables and shared config files.
func (s *Stack) AWSConfig() aws.Config {
	return Config(map[string]string{
		dynamodb.ServiceID:       s.DynamoDBEndpoint,
		sqs.ServiceID:            s.SQSEndpoint,
		secretsmanager.ServiceID: s.SecretsManagerEndpoint,
	})
}

// Config builds an aws.Config for the local region and credentials whose
// service clients use the given base endpoints (keyed by the SDK's ServiceID,
// e.g. dynamodb.ServiceID). Clients of any other service get a closed
// 127.0.0.1 port: nothing built from it reaches real AWS.
func Config(endpoints map[string]string) aws.Config {
	return aws.Config{
		Region:        Region,
		Credentials:   aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		ConfigSources: []any{endpointSource(endpoints)},
	}
}

// unavailableEndpoint is where clients of services the stack does not run
// are sent: a closed local port, so that a request fails at once instead of
// leaving the machine for real AWS.
const unavailableEndpoint = "http://127.0.0.1:1"

// endpointSource gives service clients their base endpoint the way the SDK's
// own AWS_ENDPOINT_URL_<SERVICE> support does (aws.Config.ConfigSources).
// Services without an endpoint get unavailableEndpoint.
type endpointSource map[string]string

func (e endpointSource) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	if v := e[sdkID]; v != "" {
		return v, true, nil
	}
	return unavailableEndpoint, true, nil
}

func (s *Stack) startDynamoDB(ctx context.Context, o Options) (*proc, error) {
	work := filepath.Join(s.StateDir, "dynamodb")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return launch(ctx, o, "dynamodb-local", s.StateDir, o.DynamoDBPort, func(port int) (*exec.Cmd, error) {
		return dynamodblocal.Command(ctx, o.ToolsDir, port, work)
	}, func(ctx context.Context, endpoint string) error {
		c := dynamodb.NewFromConfig(healthConfig(dynamodb.ServiceID, endpoint))
		_, err := c.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
		return err
	}, func(endpoint string) { s.DynamoDBEndpoint = endpoint })
}

func (s *Stack) startMoto(ctx context.Context, o Options, motoPath string) (*proc, error) {
	return launch(ctx, o, "moto", s.StateDir, o.MotoPort, func(port int) (*exec.Cmd, error) {
		cmd := exec.Command(motoPath, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
		cmd.Dir = s.StateDir
		return cmd, nil
	}, func(ctx context.Context, endpoint string) error {
		if _, err := sqs.NewFromConfig(healthConfig(sqs.ServiceID, endpoint)).ListQueues(ctx, &sqs.ListQueuesInput{}); err != nil {
			return err
		}
		_, err := secretsmanager.NewFromConfig(healthConfig(secretsmanager.ServiceID, endpoint)).ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		return err
	}, func(endpoint string) {
		s.SQSEndpoint, s.SecretsManagerEndpoint, s.SQSProvider = endpoint, endpoint, ProviderMoto
	})
}

func (s *Stack) startLocalSQS(ctx context.Context, o Options) (*proc, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("services: moto_server and node are both missing: no SQS stand-in can run (install moto[server] or Node.js 20)")
	}
	starter := filepath.Join(s.StateDir, "sqs-starter.js")
	if err := os.WriteFile(starter, sqsStarter, 0o644); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	mod := tools.ModuleDir(o.ToolsDir, tools.LocalSQS.Name)
	return launch(ctx, o, "local-aws-sqs", s.StateDir, o.MotoPort, func(port int) (*exec.Cmd, error) {
		cmd := exec.Command(node, starter, mod, strconv.Itoa(port))
		cmd.Dir = s.StateDir
		return cmd, nil
	}, func(ctx context.Context, endpoint string) error {
		_, err := sqs.NewFromConfig(healthConfig(sqs.ServiceID, endpoint)).ListQueues(ctx, &sqs.ListQueuesInput{})
		return err
	}, func(endpoint string) { s.SQSEndpoint, s.SQSProvider = endpoint, ProviderLocalSQS })
}

// healthConfig is a client configuration without retries, for readiness polls.
func healthConfig(serviceID, endpoint string) aws.Config {
	cfg := Config(map[string]string{serviceID: endpoint})
	cfg.RetryMaxAttempts = 1
	return cfg
}

// launch starts one service on port (a free one when 0; it retries with a new
// free port if the process dies before answering, in case another process took
// the port in between), waits for health, and reports the endpoint.
func launch(ctx context.Context, o Options, name, stateDir string, fixedPort int,
	build func(port int) (*exec.Cmd, error),
	health func(ctx context.Context, endpoint string) error,
	ready func(endpoint string),
) (*proc, error) {
	attempts := 1
	if fixedPort == 0 {
		attempts = 3
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		port := fixedPort
		if port != 0 {
			// A server already there would answer the health check in our
			// place: refuse instead.
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return nil, fmt.Errorf("services: %s: port %d on 127.0.0.1 is in use: %w", name, port, err)
			}
			l.Close()
		}
		if port == 0 {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			port = p
		}
		cmd, err := build(port)
		if err != nil {
			return nil, err
		}
		p, err := startProc(name, cmd, filepath.Join(stateDir, name+".log"))
		if err != nil {
			return nil, err
		}
		endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
		fmt.Fprintf(o.Log, "services: started %s (pid %d) on %s, log %s\n", name, cmd.Process.Pid, endpoint, p.logPath)
		err = p.waitHealthy(ctx, o.StartTimeout, endpoint, health)
		if err == nil {
			ready(endpoint)
			return p, nil
		}
		_ = p.stop()
		lastErr = err
		if !p.exited() {
			break // a timeout, not a lost port race: do not try again
		}
	}
	return nil, lastErr
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("services: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	started time.Time
	ready   time.Duration
	done    chan struct{}
	waitErr error
}

func startProc(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("services: log file for %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group (Stop kills the whole group; Ctrl-C in a terminal
	// reaches only the parent, which stops us in order) and SIGKILL when the
	// parent dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, logPath: logPath, logFile: f, started: time.Now(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("services: start %s (%s): %w", name, cmd.Path, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) waitHealthy(ctx context.Context, timeout time.Duration, endpoint string, health func(context.Context, string) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("services: %s exited before answering (%v); last lines of %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail())
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = health(cctx, endpoint)
		cancel()
		if last == nil {
			p.ready = time.Since(p.started)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("services: waiting for %s: %w", p.name, ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("services: %s did not answer on %s within %s (last error: %v); last lines of %s:\n%s", p.name, endpoint, timeout, last, p.logPath, p.logTail())
		}
		select {
		case <-ctx.Done():
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *proc) stop() error {
	if p.exited() {
		return nil
	}
	// Negative pid: the process group we created with Setpgid.
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("services: kill %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("services: %s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 3000 {
		s = "..." + s[len(s)-3000:]
	}
	return s
}
