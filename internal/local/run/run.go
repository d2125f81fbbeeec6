// Package run starts the whole coiflow system locally, the way `coiflow run`
// (and `make run`) does: the local AWS stand-ins (DynamoDB Local, moto), the
// template's table, queues and secrets, the NowCerts and CRM sandboxes, every
// function's handler built from wire.Builders with its template environment,
// the HTTP API (API Gateway payload v2 events) and the SQS event source
// mappings. It also answers `coiflow invoke` and `coiflow queues`.
//
// Use:
//
//	sys, err := run.Start(ctx, run.Options{Root: root})
//	fmt.Println(sys.Info.API, sys.Info.Webhooks["cowbell"], sys.Info.StaffToken)
//	defer sys.Stop()
package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/local/apigw"
	"github.com/coiflow/coiflow/internal/local/esm"
	"github.com/coiflow/coiflow/internal/local/provision"
	"github.com/coiflow/coiflow/internal/local/services"
	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/samtemplate"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/wire"
)

// DefaultAddr is where the HTTP API listens unless COIFLOW_ADDR says otherwise.
const DefaultAddr = "127.0.0.1:3000"

// StateDirName is the state folder under the repository root.
const StateDirName = ".coiflow"

// InfoFile is the name of the run's description in the state folder.
const InfoFile = "local.json"

// Options configure Start.
type Options struct {
	// Root is the repository root (template.yaml; default: the folder holding go.mod).
	Root string
	// Template is the template path (default <Root>/template.yaml).
	Template string
	// Addr is the HTTP API's listen address (default $COIFLOW_ADDR, else
	// DefaultAddr; port 0 picks a free port). Non-loopback hosts are refused
	// unless AllowNonLoopback.
	Addr             string
	AllowNonLoopback bool
	// StateDir receives local.json and logs/ (default <Root>/.coiflow).
	StateDir string
	// Stdout receives the handlers' output (slog JSON, EMF), each line prefixed
	// with the function's name (default os.Stdout).
	Stdout io.Writer
	// Log receives the runner's own log lines (default os.Stderr).
	Log io.Writer
	// Pollers per SQS-triggered function (default: the event's
	// ScalingConfig.MaximumConcurrency, else esm.DefaultPollers).
	Pollers int
	// WaitTimeSeconds is the pollers' long-poll wait (default 20).
	WaitTimeSeconds int
	// Getenv reads overrides: NOWCERTS_BASE_URL, CRM_BASE_URL, CRM_KIND,
	// LOG_LEVEL, NOWCERTS_USERNAME/PASSWORD (default os.Getenv).
	Getenv func(string) string
	// Builders maps function dir names to builders (default wire.Builders()).
	Builders map[string]wire.Builder
	// Prefix starts every resource name (default "coiflow-local").
	Prefix string
	// NoServe skips the HTTP API and the pollers (what `coiflow invoke` needs).
	NoServe bool
	// NoStateFile skips writing local.json (invoke's temporary stack).
	NoStateFile bool
	// Only, when set, builds just that function (by dir name); the others are
	// reported as "skipped".
	Only string
}

// Info describes a running system; it is written to <StateDir>/local.json.
type Info struct {
	API        string            `json:"api"`
	Webhooks   map[string]string `json:"webhooks"`
	StaffToken string            `json:"staffToken"`
	Health     string            `json:"health"`
	PID        int               `json:"pid"`
	StartedAt  time.Time         `json:"startedAt"`
	Endpoints  Endpoints         `json:"endpoints"`
	Table      string            `json:"table"`
	// Queues by logical id (work queues only; each with its DLQ).
	Queues map[string]QueueInfo `json:"queues"`
	// Sandboxes: "nowcerts" and "crm" base URLs when the run started them.
	Sandboxes map[string]string `json:"sandboxes,omitempty"`
	// Functions by dir name.
	Functions map[string]FunctionInfo `json:"functions"`
	Logs      string                  `json:"logs"`
	Notes     []string                `json:"notes,omitempty"`
}

// Endpoints are the local AWS endpoints.
type Endpoints struct {
	DynamoDB       string `json:"dynamodb"`
	SQS            string `json:"sqs"`
	SecretsManager string `json:"secretsManager,omitempty"`
	SQSProvider    string `json:"sqsProvider,omitempty"`
}

// QueueInfo is one work queue.
type QueueInfo struct {
	URL    string `json:"url"`
	ARN    string `json:"arn"`
	DLQURL string `json:"dlqUrl,omitempty"`
	// Consumer is the function its event source mapping invokes ("" if none).
	Consumer string `json:"consumer,omitempty"`
}

// FunctionInfo is one function of the template.
type FunctionInfo struct {
	LogicalID string `json:"logicalId"`
	// Status: "running", "missing" (no builder yet), "skipped" (Options.Only)
	// or "failed: <error>".
	Status     string            `json:"status"`
	Routes     []string          `json:"routes,omitempty"`
	Queue      string            `json:"queue,omitempty"`
	Schedules  []string          `json:"schedules,omitempty"`
	TimeoutSec int               `json:"timeoutSeconds"`
	Env        map[string]string `json:"env"`
}

// System is a running local coiflow.
type System struct {
	Info Info
	// NowCerts and CRM are the sandboxes this run started (nil when
	// NOWCERTS_BASE_URL / CRM_BASE_URL pointed elsewhere).
	NowCerts *nowcertssandbox.Sandbox
	CRM      *crmsandbox.Sandbox

	stack     *services.Stack
	sandboxes []func() error
	server    *http.Server
	cancel    context.CancelFunc
	pollers   sync.WaitGroup
	handlers  map[string]lambda.Handler
	awsCfg    aws.Config
	infoPath  string
	log       *slog.Logger
	stopOnce  sync.Once
	stopErr   error
	serveErr  chan error
	closeOuts []func()
}

func (o *Options) defaults() error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Root == "" {
		r, err := tools.RepoRoot()
		if err != nil {
			return fmt.Errorf("run: find the repository root: %w", err)
		}
		o.Root = r
	}
	if o.Template == "" {
		o.Template = filepath.Join(o.Root, "template.yaml")
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(o.Root, StateDirName)
	}
	if o.Addr == "" {
		o.Addr = o.Getenv("COIFLOW_ADDR")
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Builders == nil {
		o.Builders = wire.Builders()
	}
	if o.Prefix == "" {
		o.Prefix = "coiflow-local"
	}
	return nil
}

// CheckAddr refuses an address whose host is not a loopback address (an empty
// host listens everywhere) unless allowNonLoopback.
func CheckAddr(addr string, allowNonLoopback bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("address %q: bad port", addr)
	}
	if allowNonLoopback {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("address %q is not a loopback address: the local system has well-known tokens; pass --allow-non-loopback to serve it beyond this machine", addr)
}

// Start brings the system up. On error everything started so far is stopped.
func Start(ctx context.Context, o Options) (sys *System, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if !o.NoServe {
		if err := CheckAddr(o.Addr, o.AllowNonLoopback); err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
	}
	tmpl, err := samtemplate.Load(o.Template)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	infoPath := filepath.Join(o.StateDir, InfoFile)
	if !o.NoStateFile {
		if prev, err := ReadInfo(infoPath); err == nil && processAlive(prev.PID) {
			return nil, fmt.Errorf("run: coiflow run is already running (pid %d, API %s); stop it first or remove %s", prev.PID, prev.API, infoPath)
		}
	}

	s := &System{
		log:      obs.NewLogger(o.Log, o.Getenv("LOG_LEVEL")),
		handlers: map[string]lambda.Handler{},
		serveErr: make(chan error, 1),
	}
	if !o.NoStateFile {
		s.infoPath = infoPath
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()

	logs := filepath.Join(o.StateDir, "logs")
	stateDir := logs
	if o.NoStateFile {
		stateDir = "" // a temporary folder the stack removes
	}
	progress := &lineLog{log: s.log.With("component", "services")}
	s.stack, err = services.Start(ctx, services.Options{StateDir: stateDir, Log: progress})
	if err != nil {
		return nil, fmt.Errorf("run: start the local AWS services: %w", err)
	}
	s.awsCfg = s.stack.AWSConfig()
	s.Info = Info{
		PID:       os.Getpid(),
		StartedAt: time.Now().UTC(),
		Endpoints: Endpoints{DynamoDB: s.stack.DynamoDBEndpoint, SQS: s.stack.SQSEndpoint, SecretsManager: s.stack.SecretsManagerEndpoint, SQSProvider: s.stack.SQSProvider},
		Queues:    map[string]QueueInfo{},
		Functions: map[string]FunctionInfo{},
		Sandboxes: map[string]string{},
		Webhooks:  map[string]string{},
		Logs:      s.stack.StateDir,
	}
	if s.stack.Missing != "" {
		s.Info.Notes = append(s.Info.Notes, s.stack.Missing)
	}

	params, err := s.startSandboxes(o)
	if err != nil {
		return nil, err
	}

	res, err := provision.Provision(ctx, tmpl, provision.NewClients(s.awsCfg), provision.Options{
		Prefix: o.Prefix, Seed: true, Parameters: params, AWSEnv: s.stack.Environ(), Getenv: o.Getenv,
	})
	if err != nil {
		return nil, fmt.Errorf("run: provision from %s: %w", o.Template, err)
	}
	if tb, ok := res.Resources["CoiflowTable"]; ok {
		s.Info.Table = tb.Ref
	}
	s.Info.StaffToken = res.Local.StaffToken

	fns, err := tmpl.Functions()
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	var routes []apigw.Route
	apiFns := map[string]apigw.Function{}
	var mappings []esm.Mapping
	var schedules []schedule
	for _, fn := range fns {
		name := fn.Dir()
		env, err := res.FunctionEnv(fn)
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		timeout := 3
		if fn.Timeout != nil {
			if timeout, err = res.Resolver.Int(fn.Timeout); err != nil {
				return nil, fmt.Errorf("run: timeout of %s: %w", fn.LogicalID, err)
			}
		}
		fi := FunctionInfo{LogicalID: fn.LogicalID, TimeoutSec: timeout, Env: env}
		var h lambda.Handler
		if o.Only == "" || o.Only == name {
			h, fi.Status = s.build(ctx, o, name, env)
		} else {
			fi.Status = "skipped"
		}
		if h != nil {
			s.handlers[name] = h
		}
		var inv apigw.Invoker
		if h != nil {
			inv = h
		}
		arn := "arn:aws:lambda:" + services.Region + ":" + services.AccountID + ":function:" + name
		for _, e := range fn.HTTPEvents {
			routes = append(routes, apigw.Route{Method: e.Method, Path: e.Path, Function: name})
			fi.Routes = append(fi.Routes, e.Method+" "+e.Path)
		}
		if len(fn.HTTPEvents) > 0 {
			apiFns[name] = apigw.Function{Handler: inv, Timeout: time.Duration(timeout) * time.Second, ARN: arn}
		}
		for _, e := range fn.SQSEvents {
			q, ok := res.Resources[e.QueueLogicalID]
			if !ok {
				return nil, fmt.Errorf("run: %s's event %s reads a queue that is not in the template", fn.LogicalID, e.Name)
			}
			qi := QueueInfo{URL: q.Ref, ARN: q.Attrs["Arn"], Consumer: name}
			if tq, err := tmpl.Queue(e.QueueLogicalID); err == nil && tq.DLQLogicalID != "" {
				qi.DLQURL = res.Resources[tq.DLQLogicalID].Ref
			}
			s.Info.Queues[e.QueueLogicalID] = qi
			fi.Queue = e.QueueLogicalID
			if !e.Enabled || h == nil {
				continue
			}
			pollers := o.Pollers
			if pollers == 0 && e.MaximumConcurrency > 0 {
				pollers = e.MaximumConcurrency
			}
			mappings = append(mappings, esm.Mapping{
				Function: name, Handler: h, QueueURL: qi.URL, QueueARN: qi.ARN,
				BatchSize: e.BatchSize, ReportBatchItemFailures: e.ReportsBatchItemFailures(),
				Timeout: time.Duration(timeout) * time.Second, WaitTimeSeconds: o.WaitTimeSeconds,
				Pollers: pollers, Region: services.Region, AccountID: services.AccountID,
			})
		}
		scs, errs := schedulesOf(tmpl, res.Resolver, fn, time.Duration(timeout)*time.Second)
		for _, e := range errs {
			s.Info.Notes = append(s.Info.Notes, e.Error())
		}
		for _, sc := range scs {
			fi.Schedules = append(fi.Schedules, "every "+sc.every.String())
			if h != nil {
				schedules = append(schedules, sc)
			}
		}
		s.Info.Functions[name] = fi
	}
	// Work queues nobody consumes yet (a worker not in the template) still show up.
	queues, err := tmpl.Queues()
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	dlqs := map[string]bool{}
	for _, q := range queues {
		if q.DLQLogicalID != "" {
			dlqs[q.DLQLogicalID] = true
		}
	}
	for _, q := range queues {
		if _, ok := s.Info.Queues[q.LogicalID]; ok || dlqs[q.LogicalID] {
			continue
		}
		ph := res.Resources[q.LogicalID]
		qi := QueueInfo{URL: ph.Ref, ARN: ph.Attrs["Arn"]}
		if q.DLQLogicalID != "" {
			qi.DLQURL = res.Resources[q.DLQLogicalID].Ref
		}
		s.Info.Queues[q.LogicalID] = qi
	}

	if o.NoServe {
		return s, nil
	}

	gw, err := apigw.New(routes, apiFns, apigw.Options{Logger: s.log.With("component", "apigw"), AccountID: services.AccountID})
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("run: listen on %s (set COIFLOW_ADDR to use another address): %w", o.Addr, err)
	}
	s.server = &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
	api := "http://" + ln.Addr().String()
	s.Info.API = api
	s.Info.Health = api + "/healthz"
	for src, toks := range res.Local.WebhookTokens {
		if len(toks) > 0 {
			s.Info.Webhooks[src] = api + "/webhooks/" + src + "/" + toks[0]
		}
	}

	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	sqsClient := sqs.NewFromConfig(s.awsCfg)
	for _, m := range mappings {
		p, err := esm.New(sqsClient, m, s.log.With("component", "esm"))
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		s.pollers.Add(1)
		go func() {
			defer s.pollers.Done()
			_ = p.Run(pctx)
		}()
	}

	for _, sc := range schedules {
		h := s.handlers[sc.function]
		s.pollers.Add(1)
		go func() {
			defer s.pollers.Done()
			runSchedule(pctx, sc, h, s.log.With("component", "schedule"))
		}()
	}

	if s.infoPath != "" {
		if err := writeInfo(s.infoPath, s.Info); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// build builds one function's handler; a missing builder or a failing one is
// reported in the status, not fatal.
func (s *System) build(ctx context.Context, o Options, name string, env map[string]string) (lambda.Handler, string) {
	b, ok := o.Builders[name]
	if !ok {
		s.log.Warn("function has no builder yet; its routes answer 500 and its queue is not polled", "function", name)
		return nil, "missing"
	}
	out := newPrefixWriter(o.Stdout, name)
	s.closeOuts = append(s.closeOuts, out.Flush)
	h, err := b(ctx, wire.Deps{Env: mapEnv(env), AWS: s.awsCfg, Stdout: out})
	if err != nil {
		s.log.Error("function failed to build; its routes answer 500 and its queue is not polled", "function", name, "err", err)
		return nil, "failed: " + err.Error()
	}
	return h, "running"
}

func mapEnv(env map[string]string) wire.Env {
	return func(k string) string { return env[k] }
}

// Handler returns the built handler of a function (by dir name).
func (s *System) Handler(name string) (lambda.Handler, bool) {
	h, ok := s.handlers[name]
	return h, ok
}

// AWSConfig is the configuration pointed at the local services.
func (s *System) AWSConfig() aws.Config { return s.awsCfg }

// Clients for tests and the CLI.
func (s *System) SQS() *sqs.Client           { return sqs.NewFromConfig(s.awsCfg) }
func (s *System) DynamoDB() *dynamodb.Client { return dynamodb.NewFromConfig(s.awsCfg) }
func (s *System) SecretsManager() *secretsmanager.Client {
	return secretsmanager.NewFromConfig(s.awsCfg)
}

// Err reports a failure of the HTTP server (nil channel read blocks until one).
func (s *System) Err() <-chan error { return s.serveErr }

// Stop stops everything Start started, in reverse order, and removes local.json.
// It is safe to call more than once.
func (s *System) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		if s.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.server.Shutdown(ctx); err != nil {
				_ = s.server.Close()
			}
			cancel()
		}
		if s.cancel != nil {
			s.cancel()
		}
		s.pollers.Wait()
		for _, f := range s.closeOuts {
			f()
		}
		for i := len(s.sandboxes) - 1; i >= 0; i-- {
			if err := s.sandboxes[i](); err != nil {
				errs = append(errs, err)
			}
		}
		if s.stack != nil {
			if err := s.stack.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.infoPath != "" {
			if err := os.Remove(s.infoPath); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("run: remove %s: %w", s.infoPath, err))
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// Summary is the human-readable banner `coiflow run` prints.
func (s *System) Summary() string {
	var b strings.Builder
	i := s.Info
	fmt.Fprintf(&b, "coiflow is running locally\n\n")
	fmt.Fprintf(&b, "  API              %s\n", i.API)
	fmt.Fprintf(&b, "  health           %s\n", i.Health)
	for _, src := range sortedKeys(i.Webhooks) {
		fmt.Fprintf(&b, "  webhook %-8s POST %s\n", src, i.Webhooks[src])
	}
	fmt.Fprintf(&b, "  staff token      %s   (Authorization: Bearer <token> on %s/api/...)\n", i.StaffToken, i.API)
	for _, name := range sortedKeys(i.Sandboxes) {
		fmt.Fprintf(&b, "  %-16s %s\n", name+" sandbox", i.Sandboxes[name])
	}
	fmt.Fprintf(&b, "\n  functions:\n")
	for _, name := range sortedKeys(i.Functions) {
		f := i.Functions[name]
		what := strings.Join(f.Routes, ", ")
		if f.Queue != "" {
			if what != "" {
				what += "; "
			}
			what += "polls " + f.Queue
		}
		for _, sc := range f.Schedules {
			if what != "" {
				what += "; "
			}
			what += "scheduled " + sc
		}
		fmt.Fprintf(&b, "    %-16s %-8s %s\n", name, f.Status, what)
	}
	fmt.Fprintf(&b, "\n  AWS (local)      DynamoDB %s · SQS %s (%s)", i.Endpoints.DynamoDB, i.Endpoints.SQS, i.Endpoints.SQSProvider)
	if i.Endpoints.SecretsManager != "" {
		fmt.Fprintf(&b, " · Secrets Manager %s", i.Endpoints.SecretsManager)
	}
	fmt.Fprintf(&b, "\n  logs             %s\n", i.Logs)
	for _, n := range i.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	fmt.Fprintf(&b, "\n  `coiflow queues` shows queue depths and the latest jobs. Ctrl-C stops everything.\n")
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ReadInfo reads a local.json.
func ReadInfo(path string) (Info, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Info{}, fmt.Errorf("read %s: %w", path, err)
	}
	var i Info
	if err := json.Unmarshal(b, &i); err != nil {
		return Info{}, fmt.Errorf("read %s: %w", path, err)
	}
	return i, nil
}

// writeInfo writes local.json readable by the owner only (it holds tokens).
func writeInfo(path string, i Info) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	b, err := json.MarshalIndent(i, "", "  ")
	if err != nil {
		return fmt.Errorf("run: encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("run: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("run: write %s: %w", path, err)
	}
	return nil
}
