package nowcerts_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/coiflow/coiflow/internal/testsupport"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// TestMain stops the local AWS stack the integration tests start (the unit
// tests do not start it).
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// memSecrets is an in-memory, versioned Secrets (unit tests only).
type memSecrets struct {
	mu       sync.Mutex
	versions map[string][]memVersion // oldest first; the last is current
	n        int                     // versions made
	gets     int
	puts     int
	onPut    func(value string)
	// lag: after each PutSecret, this many reads of the current version
	// return the previous version instead (a reader behind the write).
	lag     int
	lagLeft int
	stale   int // lagging reads served
}

type memVersion struct{ id, value string }

func newMemSecrets(id, value string) *memSecrets {
	m := &memSecrets{versions: map[string][]memVersion{}}
	m.set(id, value)
	return m
}

// set stores value as a new current version (no lag) and returns its id.
func (m *memSecrets) set(id, value string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setLocked(id, value)
}

func (m *memSecrets) setLocked(id, value string) string {
	m.n++
	v := memVersion{id: fmt.Sprintf("v%d", m.n), value: value}
	m.versions[id] = append(m.versions[id], v)
	return v.id
}

// current is the current value of id, as written (never lagging).
func (m *memSecrets) current(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[id]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1].value
}

func (m *memSecrets) GetSecret(_ context.Context, id, versionID string) (nowcerts.SecretVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	vs := m.versions[id]
	if len(vs) == 0 {
		return nowcerts.SecretVersion{}, errors.New("ResourceNotFoundException")
	}
	if versionID != "" {
		for _, v := range vs {
			if v.id == versionID {
				return nowcerts.SecretVersion{Value: v.value, VersionID: v.id}, nil
			}
		}
		return nowcerts.SecretVersion{}, errors.New("ResourceNotFoundException: no such version")
	}
	v := vs[len(vs)-1]
	if m.lagLeft > 0 && len(vs) > 1 {
		m.lagLeft--
		m.stale++
		v = vs[len(vs)-2]
	}
	return nowcerts.SecretVersion{Value: v.value, VersionID: v.id}, nil
}

func (m *memSecrets) PutSecret(_ context.Context, id, value string) (string, error) {
	m.mu.Lock()
	ver := m.setLocked(id, value)
	m.puts++
	m.lagLeft = m.lag
	f := m.onPut
	m.mu.Unlock()
	if f != nil {
		f(value)
	}
	return ver, nil
}

func (m *memSecrets) creds(t *testing.T, id string) nowcerts.Credentials {
	t.Helper()
	c, err := nowcerts.ParseCredentials(m.current(id))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// memLease is an in-memory Lease shared by several token sources (unit tests).
type memLease struct {
	mu       sync.Mutex
	owner    string
	until    time.Time
	acquired int
	ver      string // version note
	verExp   time.Time
}

func (l *memLease) AcquireLease(_ context.Context, _, owner string, ttl time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.owner != "" && l.owner != owner && now.Before(l.until) {
		return false, nil
	}
	l.owner, l.until = owner, now.Add(ttl)
	l.acquired++
	return true, nil
}

func (l *memLease) ReleaseLeaseWithVersion(_ context.Context, _, owner, version string, expiresAt time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owner != owner {
		return errors.New("not the owner")
	}
	l.owner = ""
	if version != "" {
		l.ver, l.verExp = version, expiresAt
	}
	return nil
}

func (l *memLease) LeaseVersion(_ context.Context, _ string) (string, time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ver, l.verExp, nil
}

// sleeps records requested sleeps and returns at once (honouring ctx).
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.ds...)
}

// syncBuffer is the shared goroutine-safe log sink.
type syncBuffer = testsupport.Buffer

const secretID = "arn:aws:secretsmanager:us-east-1:000000000000:secret:nowcerts-test"

// harness is a sandbox on loopback plus a client wired to it.
type harness struct {
	sb      *nowcertssandbox.Sandbox
	url     string
	secrets *memSecrets
	lease   *memLease
	sleeps  *sleeps
	logs    *syncBuffer
	metrics *syncBuffer
	cfg     nowcerts.Config
	tokens  *nowcerts.TokenSource
	client  *nowcerts.Client
}

// newHarness starts a sandbox and builds a client whose secret holds a valid
// token pair issued by the sandbox (edit h.secrets before the first call to
// start from another state).
func newHarness(t *testing.T, opts nowcertssandbox.Options) *harness {
	t.Helper()
	sb := nowcertssandbox.New(opts)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	user, pass := sb.Credentials()
	access, refresh, exp := sb.IssueTokens()
	sec := nowcerts.Credentials{Username: user, Password: pass, ClientID: "ngAuthApp", AccessToken: access, RefreshToken: refresh, ExpiresAt: exp}
	v, err := sec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{sb: sb, url: srv.URL, secrets: newMemSecrets(secretID, v), lease: &memLease{}, sleeps: &sleeps{},
		logs: &syncBuffer{}, metrics: &syncBuffer{}}
	h.cfg = nowcerts.Config{
		BaseURL:    srv.URL,
		HTTPClient: &http.Client{},
		Timeout:    5 * time.Second,
		Retry:      nowcerts.Retry{MaxAttempts: 5, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond, MaxElapsed: time.Minute},
		RateLimit:  nowcerts.RateLimit{PerSecond: 10000, Burst: 10000},
		Sleep:      h.sleeps.sleep,
		Logger:     obs.NewLogger(h.logs, "debug"),
		Metrics:    obs.NewMetrics(h.metrics),
	}
	h.rebuild(t)
	return h
}

// rebuild makes a new token source and client from h.cfg (a new container).
func (h *harness) rebuild(t *testing.T) {
	t.Helper()
	var err error
	h.tokens, err = nowcerts.NewTokenSource(h.cfg, nowcerts.TokenConfig{Secrets: h.secrets, SecretID: secretID, Lease: h.lease})
	if err != nil {
		t.Fatal(err)
	}
	h.client, err = nowcerts.NewClient(h.cfg, h.tokens)
	if err != nil {
		t.Fatal(err)
	}
}

// setSecret replaces the stored secret.
func (h *harness) setSecret(t *testing.T, c nowcerts.Credentials) {
	t.Helper()
	v, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h.secrets.set(secretID, v)
}

func sendReq() nowcerts.SendRequest {
	return nowcerts.SendRequest{
		CertificateID: nowcertssandbox.SeedCertificateReady,
		HolderIDs:     []string{nowcertssandbox.SeedHolderEmail},
		Emails:        []string{"coi@northwind-pm.example", "pm@northwind-pm.example"},
		EmailSubject:  "Certificate of insurance",
		EmailBody:     "Please find the certificate attached.",
		InsuredID:     nowcertssandbox.SeedInsuredAcme,
		InsuredName:   "Acme Builders LLC",
	}
}
