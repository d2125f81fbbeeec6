package sending

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingDB counts the DynamoDB calls the store makes, by kind, and can fail
// chosen writes (to simulate a worker dying between SendCertificate and the
// completion).
type countingDB struct {
	store.DB
	reads, writes atomic.Int64
	ops           sync.Map // op name -> *atomic.Int64
	// failUpdate, when set, makes UpdateItem calls it returns true for fail.
	failUpdate atomic.Pointer[func(*dynamodb.UpdateItemInput) bool]
}

func (c *countingDB) count(op string, write bool) {
	if write {
		c.writes.Add(1)
	} else {
		c.reads.Add(1)
	}
	v, _ := c.ops.LoadOrStore(op, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (c *countingDB) reset() {
	c.reads.Store(0)
	c.writes.Store(0)
	c.ops.Range(func(k, _ any) bool { c.ops.Delete(k); return true })
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem", true)
	return c.DB.PutItem(ctx, in, o...)
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem", false)
	return c.DB.GetItem(ctx, in, o...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count("UpdateItem", true)
	if f := c.failUpdate.Load(); f != nil && (*f)(in) {
		return nil, errors.New("injected: worker stopped before this write")
	}
	return c.DB.UpdateItem(ctx, in, o...)
}

func (c *countingDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.count("DeleteItem", true)
	return c.DB.DeleteItem(ctx, in, o...)
}

func (c *countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query", false)
	return c.DB.Query(ctx, in, o...)
}

func (c *countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.count("TransactWriteItems", true)
	return c.DB.TransactWriteItems(ctx, in, o...)
}

// isCompletion reports whether an UpdateItem is a send completion to status.
func isCompletion(status string) func(*dynamodb.UpdateItemInput) bool {
	return func(in *dynamodb.UpdateItemInput) bool {
		v, ok := in.ExpressionAttributeValues[":status"].(*types.AttributeValueMemberS)
		_, hasHistory := in.ExpressionAttributeNames["#history"]
		return ok && v.Value == status && hasHistory && strings.HasPrefix(attrString(in.Key["PK"]), "SEND#")
	}
}

func attrString(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// timelineRecorder is the CRM queue stand-in of unit-level tests; it can fail.
type timelineRecorder struct {
	mu   sync.Mutex
	jobs []jobs.Job
	fail bool
}

func (r *timelineRecorder) Enqueue(_ context.Context, j jobs.Job) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("injected: CRM queue unavailable")
	}
	r.jobs = append(r.jobs, j)
	return nil
}

func (r *timelineRecorder) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, j := range r.jobs {
		out = append(out, j.Timeline.Outcome)
	}
	return out
}

// lockedBuffer collects log and metric lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// metric sums the values emitted for name.
func (l *lockedBuffer) metric(name string) float64 {
	var sum float64
	for line := range strings.SplitSeq(l.String(), "\n") {
		if !strings.Contains(line, `"_aws"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if v, ok := m[name].(float64); ok {
			sum += v
		}
	}
	return sum
}

// harness is one pipeline over the wire: a fresh table in DynamoDB Local, the
// NowCerts sandbox behind the real client (token in a moto secret).
type harness struct {
	t        testing.TB
	svc      *Service
	st       *store.Store
	db       *countingDB
	sb       *nowcertssandbox.Sandbox
	nc       *nowcerts.Client
	clk      *clock
	timeline *timelineRecorder
	logs     *lockedBuffer
	metrics  *lockedBuffer
}

type harnessOptions struct {
	// attempts per NowCerts call in the client (default 2).
	attempts int
	settings *store.Settings
	// quiet discards logs and metrics (benchmarks).
	quiet bool
	// sandbox are the NowCerts sandbox's options.
	sandbox nowcertssandbox.Options
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	env := testenv.Get(t)
	h := &harness{t: t, clk: &clock{t: time.Now().UTC().Truncate(time.Millisecond)}, timeline: &timelineRecorder{}, logs: &lockedBuffer{}, metrics: &lockedBuffer{}}
	h.db = &countingDB{DB: env.DynamoDB()}
	h.st = store.New(h.db, env.NewTable(t)).WithClock(h.clk.Now)

	h.sb = nowcertssandbox.New(o.sandbox)
	base, stop, err := h.sb.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	access, refresh, exp := h.sb.IssueTokens()
	user, pass := h.sb.Credentials()
	cred, _ := json.Marshal(map[string]string{"username": user, "password": pass, "clientId": "ngAuthApp",
		"accessToken": access, "refreshToken": refresh, "expiresAt": exp.UTC().Format(time.RFC3339)})
	arn := env.NewSecret(t, string(cred))
	attempts := o.attempts
	if attempts == 0 {
		attempts = 2
	}
	cfg := nowcerts.Config{
		BaseURL:   base,
		Timeout:   5 * time.Second,
		Retry:     nowcerts.Retry{MaxAttempts: attempts, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxElapsed: 10 * time.Second},
		RateLimit: nowcerts.RateLimit{PerSecond: 10000, Burst: 1000},
	}
	tokens, err := nowcerts.NewTokenSource(cfg, nowcerts.TokenConfig{
		Secrets: nowcerts.SecretsManager{API: env.SecretsManager()}, SecretID: arn, Lease: h.st,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.nc, err = nowcerts.NewClient(cfg, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if o.settings != nil {
		if err := h.st.PutSettings(context.Background(), *o.settings); err != nil {
			t.Fatal(err)
		}
	}
	logs, metrics := io.Writer(h.logs), io.Writer(h.metrics)
	if o.quiet {
		logs, metrics = io.Discard, io.Discard
	}
	h.svc = New(Deps{
		Store: h.st, NowCerts: h.nc, Timeline: h.timeline,
		Metrics: obs.NewMetrics(metrics), Logger: obs.NewLogger(logs, "debug"),
		Now: h.clk.Now, Lease: time.Minute,
	})
	return h
}

// sends returns the SendCertificate calls the sandbox carried out.
func (h *harness) sends() []nowcertssandbox.Send { return h.sb.Sends() }

// sandboxCalls returns the endpoints called, in order ("SendCertificate", "Approve", ...).
func (h *harness) sandboxCalls() []string {
	var out []string
	for _, c := range h.sb.Calls() {
		p := c.Path[strings.LastIndexByte(c.Path, '/')+1:]
		out = append(out, strings.TrimSuffix(p, "()"))
	}
	return out
}

// Seed ids (see nowcertssandbox.DefaultSeed).
const (
	certReady   = nowcertssandbox.SeedCertificateReady
	certReady2  = nowcertssandbox.SeedCertificateReady2
	certPending = nowcertssandbox.SeedCertificatePending
	holderEmail = nowcertssandbox.SeedHolderEmail
	holderFax   = nowcertssandbox.SeedHolderFax
	holderBoth  = nowcertssandbox.SeedHolderBoth
	holderNone  = nowcertssandbox.SeedHolderNeither
	insuredAcme = nowcertssandbox.SeedInsuredAcme
)

var seedHolders = map[string]event.Holder{
	holderEmail: {ID: holderEmail, Name: "Northwind Property Management", Email: "coi@northwind-pm.example"},
	holderFax:   {ID: holderFax, Name: "Harbor Street Lender Corp", Fax: "(309) 555-0198"},
	holderBoth:  {ID: holderBoth, Name: "City of Springfield", Email: "risk@springfield.example", Fax: "(217) 555-0101"},
	holderNone:  {ID: holderNone, Name: "Old Mill Partners"},
}

// holderEvent is a NowCerts CertificateHolder.Insert for cert and holder.
func holderEvent(cert event.Certificate, holders ...event.Holder) event.Event {
	key := event.Key("nowcerts", "CertificateHolder.Insert", cert.ID, cert.Revision)
	for _, h := range holders {
		key += "|" + h.ID
	}
	c := cert
	return event.Event{
		ID: event.IDFor(key), IdempotencyKey: key, Source: event.SourceNowCerts, Type: "CertificateHolder.Insert",
		Action: event.ActionInsert, EntityKind: event.KindCertificateHolder, EntityID: cert.ID,
		OccurredAt: time.Now().UTC().Add(-time.Minute), ReceivedAt: time.Now().UTC().Add(-time.Second),
		Certificate: &c, Holders: holders,
		Insured: &event.Party{ID: insuredAcme, Name: "Acme Builders LLC"},
	}
}

func sendJob(ev event.Event) jobs.Job {
	return jobs.New(jobs.QueueSend, ev, "req-"+ev.ID[4:12], time.Now())
}

func ready(rev string) event.Certificate {
	return event.Certificate{ID: certReady, Name: "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25)", InsuredID: insuredAcme, Revision: rev}
}
