// Package testenv gives integration tests a real local AWS: DynamoDB Local and
// moto_server (SQS, Secrets Manager) on 127.0.0.1, started lazily once per test
// binary and stopped when the tests end.
//
// Use:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		env := testenv.Get(t)                 // starts the services on first use
//		table := env.NewTable(t)              // template.yaml's CoiflowTable, unique name
//		url, dlq := env.NewQueue(t, 3)        // queue + DLQ, redrive after 3 receives
//		arn := env.NewSecret(t, `{"tokens":["x"]}`)
//		db := env.DynamoDB()                  // or dynamodb.NewFromConfig(env.AWS)
//	}
//
// Everything a test creates has a unique name and is deleted at its cleanup,
// so tests may run in parallel. The npm tools are installed into <repo>/.tools
// on first use if `make tools` has not run. When something is missing (java,
// npm, moto_server) Get fails the test with a message naming it.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"

	"github.com/coiflow/coiflow/internal/local/provision"
	"github.com/coiflow/coiflow/internal/local/services"
	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/samtemplate"
)

// TableLogicalID is the template table NewTable copies.
const TableLogicalID = "CoiflowTable"

// Env is the running local AWS of this test binary.
type Env struct {
	// AWS is region us-east-1 with static credentials; clients built from it
	// with the plain NewFromConfig talk to the local services. Their retries
	// are logged to stderr (see retryLog); nothing else is.
	AWS aws.Config
	// DynamoDBEndpoint is DynamoDB Local's URL.
	DynamoDBEndpoint string
	// MotoEndpoint is moto_server's URL (SQS and Secrets Manager).
	MotoEndpoint string

	stack   *services.Stack
	ddb     *dynamodb.Client
	sqs     *sqs.Client
	secrets *secretsmanager.Client

	tmplOnce sync.Once
	tmpl     *samtemplate.Template
	tmplErr  error
}

// binary is the one stack of this test binary. Tests in a binary share it; it
// is the only package-level state, and Run ends it.
var binary struct {
	once sync.Once
	mu   sync.Mutex
	env  *Env
	err  error
	log  lockedBuffer
}

// Run runs the tests and then stops the services Get started. Use it in
// TestMain: os.Exit(testenv.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	binary.mu.Lock()
	env := binary.env
	binary.mu.Unlock()
	if env != nil {
		if err := env.stack.Stop(); err != nil {
			fmt.Printf("testenv: stop local AWS stack: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Get returns the binary's local AWS, starting it on first use. It fails t
// with a message naming what is missing when the services cannot start.
func Get(t testing.TB) *Env {
	t.Helper()
	first := false
	binary.once.Do(func() {
		first = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		st, err := services.Start(ctx, services.Options{Log: &binary.log})
		binary.mu.Lock()
		defer binary.mu.Unlock()
		if err != nil {
			binary.err = err
			return
		}
		cfg := st.AWSConfig()
		// Retries go to stderr: a retried send may have been stored twice.
		cfg.ClientLogMode = aws.LogRetries
		cfg.Logger = retryLog{logging.NewStandardLogger(os.Stderr)}
		binary.env = &Env{
			AWS:              cfg,
			DynamoDBEndpoint: st.DynamoDBEndpoint,
			MotoEndpoint:     st.SQSEndpoint,
			stack:            st,
			ddb:              dynamodb.NewFromConfig(cfg),
			sqs:              sqs.NewFromConfig(cfg),
			secrets:          secretsmanager.NewFromConfig(cfg),
		}
	})
	binary.mu.Lock()
	env, err := binary.env, binary.err
	binary.mu.Unlock()
	if err != nil {
		t.Fatalf("testenv: the local AWS stack (DynamoDB Local + moto_server) cannot start: %v\nprogress:\n%s", err, binary.log.String())
	}
	if first {
		var parts []string
		for _, tm := range env.stack.Timings {
			parts = append(parts, fmt.Sprintf("%s ready in %s", tm.Service, tm.Ready.Round(time.Millisecond)))
		}
		t.Logf("testenv: local AWS started in %s (%s)", env.stack.Total.Round(time.Millisecond), strings.Join(parts, ", "))
		if env.stack.Missing != "" {
			t.Logf("testenv: %s", env.stack.Missing)
		}
	}
	return env
}

// retryLog passes on only the SDK's lines about retried requests ("retrying
// request SQS/SendMessage, attempt 2"), so that a message SQS holds twice can
// be traced to a retry. The SDK also logs every unretryable error in this mode
// (conditional puts that fail on purpose, among others) and, once any logger
// is set, a warning about DynamoDB Local's error responses' checksums: those
// lines are dropped, so a run without retries prints nothing.
type retryLog struct{ logging.Logger }

func (l retryLog) Logf(c logging.Classification, format string, v ...any) {
	if strings.HasPrefix(format, "retrying request") || strings.HasPrefix(format, "max retry attempts") {
		l.Logger.Logf(c, format, v...)
	}
}

// lockedBuffer is a goroutine-safe sink for the stack's progress lines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// DynamoDB is a client for DynamoDB Local.
func (e *Env) DynamoDB() *dynamodb.Client { return e.ddb }

// SQS is a client for moto's SQS.
func (e *Env) SQS() *sqs.Client { return e.sqs }

// SecretsManager is a client for moto's Secrets Manager.
func (e *Env) SecretsManager() *secretsmanager.Client { return e.secrets }

// Environ returns the AWS_* variables (region, credentials, endpoint URLs)
// that point a child process's SDK at the local services.
func (e *Env) Environ() []string { return e.stack.Environ() }

// Template returns template.yaml from the repository root, parsed.
func (e *Env) Template(t testing.TB) *samtemplate.Template {
	t.Helper()
	e.tmplOnce.Do(func() {
		root, err := tools.RepoRoot()
		if err != nil {
			e.tmplErr = err
			return
		}
		e.tmpl, e.tmplErr = samtemplate.Load(filepath.Join(root, "template.yaml"))
	})
	if e.tmplErr != nil {
		t.Fatalf("testenv: template.yaml: %v", e.tmplErr)
	}
	return e.tmpl
}

// NewTable creates a table from template.yaml's CoiflowTable definition
// (keys, GSIs, TTL) with a unique name, deleted at cleanup, and returns its name.
func (e *Env) NewTable(t testing.TB) string {
	t.Helper()
	tbl, err := e.Template(t).Table(TableLogicalID)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	name := UniqueName(t, 255)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := provision.CreateTable(ctx, e.ddb, tbl, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := provision.DeleteTable(ctx, e.ddb, name); err != nil {
			t.Errorf("testenv: cleanup: %v", err)
		}
	})
	return name
}

// NewQueue creates a queue with a unique name and, when maxReceive > 0, a
// DLQ it redrives to after maxReceive receives; both are deleted at cleanup.
// The queue has SQS's default 30 s visibility timeout: a test makes a
// received message visible again at once with ChangeMessageVisibility(0).
// dlqURL is "" when maxReceive <= 0.
func (e *Env) NewQueue(t testing.TB, maxReceive int) (url, dlqURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := UniqueName(t, 76) // room for "-dlq"
	attrs := map[string]string{}
	if maxReceive > 0 {
		dlq, err := provision.CreateQueue(ctx, e.sqs, base+"-dlq", nil)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		dlqURL = dlq.Ref
		e.cleanupQueue(t, dlqURL)
		attrs["RedrivePolicy"] = provision.RedrivePolicy(dlq.Attrs["Arn"], maxReceive)
	}
	q, err := provision.CreateQueue(ctx, e.sqs, base, attrs)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	e.cleanupQueue(t, q.Ref)
	return q.Ref, dlqURL
}

func (e *Env) cleanupQueue(t testing.TB, url string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := provision.DeleteQueue(ctx, e.sqs, url); err != nil {
			t.Errorf("testenv: cleanup: %v", err)
		}
	})
}

// NewSecret creates a secret holding value with a unique name, deleted at
// cleanup, and returns its ARN.
func (e *Env) NewSecret(t testing.TB, value string) (arn string) {
	t.Helper()
	if err := e.stack.RequireSecretsManager(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ph, _, err := provision.CreateSecret(ctx, e.secrets, "testenv/"+UniqueName(t, 200), value, true)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := provision.DeleteSecret(ctx, e.secrets, ph.Ref); err != nil {
			t.Errorf("testenv: cleanup: %v", err)
		}
	})
	return ph.Ref
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// UniqueName is a name made of the test's name and a random suffix, at most
// max characters of [A-Za-z0-9_-] (valid for tables, queues and secrets).
func UniqueName(t testing.TB, max int) string {
	suffix := "-" + strings.ToLower(rand.Text()[:10])
	base := strings.Trim(unsafeName.ReplaceAllString(t.Name(), "-"), "-")
	if base == "" {
		base = "test"
	}
	if len(base)+len(suffix) > max {
		base = base[:max-len(suffix)]
	}
	return base + suffix
}
