package nowcerts_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/store"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// wired is the over-the-wire setup: the sandbox on loopback, the token in a
// moto Secrets Manager secret, the lease in a DynamoDB Local table.
type wired struct {
	sb      *nowcertssandbox.Sandbox
	cfg     nowcerts.Config
	tc      nowcerts.TokenConfig
	secrets nowcerts.SecretsManager
	arn     string
	st      *store.Store
}

func newWired(t *testing.T, secret func(sb *nowcertssandbox.Sandbox) nowcerts.Credentials) *wired {
	t.Helper()
	env := testenv.Get(t)
	sb := nowcertssandbox.New(nowcertssandbox.Options{})
	base, stop, err := sb.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	v, err := secret(sb).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	arn := env.NewSecret(t, v)
	sm := nowcerts.SecretsManager{API: secretsmanager.NewFromConfig(env.AWS)}
	st := store.New(env.DynamoDB(), env.NewTable(t))
	return &wired{
		sb:  sb,
		arn: arn,
		st:  st,
		cfg: nowcerts.Config{
			BaseURL:    base,
			HTTPClient: &http.Client{},
			Timeout:    5 * time.Second,
			Retry:      nowcerts.Retry{MaxAttempts: 12, BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxElapsed: time.Minute},
			RateLimit:  nowcerts.RateLimit{PerSecond: 1000, Burst: 1000},
		},
		tc:      nowcerts.TokenConfig{Secrets: sm, SecretID: arn, Lease: st, LeaseTTL: 2 * time.Minute, LeaseWait: 3 * time.Minute},
		secrets: sm,
	}
}

// container is what one Lambda container builds: its own token source and client.
func (w *wired) container(t *testing.T) (*nowcerts.TokenSource, *nowcerts.Client) {
	t.Helper()
	ts, err := nowcerts.NewTokenSource(w.cfg, w.tc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := nowcerts.NewClient(w.cfg, ts)
	if err != nil {
		t.Fatal(err)
	}
	return ts, c
}

func (w *wired) stored(t *testing.T) nowcerts.Credentials {
	t.Helper()
	v, err := w.secrets.GetSecretValue(context.Background(), w.arn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := nowcerts.ParseCredentials(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func expiredPair(sb *nowcertssandbox.Sandbox) nowcerts.Credentials {
	user, pass := sb.Credentials()
	access, refresh, _ := sb.IssueTokens()
	return nowcerts.Credentials{Username: user, Password: pass, ClientID: "ngAuthApp",
		AccessToken: access, RefreshToken: refresh, ExpiresAt: time.Now().Add(-time.Hour)}
}

// TestIntegrationFiftyWorkersOneRefresh: 50 concurrent workers (each its own
// token source and client, like separate Lambda containers) with an expired
// token → exactly one refresh call at the sandbox; every call succeeds with the
// refreshed token, which is the one stored in Secrets Manager.
func TestIntegrationFiftyWorkersOneRefresh(t *testing.T) {
	w := newWired(t, expiredPair)
	old := w.stored(t)
	const n = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		_, client := w.container(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := sendReq()
			r.EmailSubject = fmt.Sprintf("worker %d", i)
			if _, err := client.SendCertificate(context.Background(), r); err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()

	if r, p := w.sb.TokenCalls("refresh_token"), w.sb.TokenCalls("password"); r != 1 || p != 0 {
		t.Fatalf("token calls: refresh %d, password %d; want exactly 1 refresh", r, p)
	}
	cur := w.stored(t)
	if cur.RefreshToken == old.RefreshToken || cur.AccessToken == old.AccessToken {
		t.Fatal("the rotated pair is not in Secrets Manager")
	}
	sends := w.sb.Sends()
	if len(sends) != n {
		t.Fatalf("%d sends, want %d", len(sends), n)
	}
	for _, s := range sends {
		if s.Auth != "Bearer "+cur.AccessToken {
			t.Fatalf("a send used a token other than the stored one")
		}
	}
	for _, c := range w.sb.CallsTo("SendCertificate") {
		if c.Status != 200 {
			t.Fatalf("a call was answered %d", c.Status)
		}
	}
	// The refresher recorded the version it stored in the lease.
	sv, err := w.secrets.GetSecret(context.Background(), w.arn, "")
	if err != nil {
		t.Fatal(err)
	}
	ver, exp, err := w.st.LeaseVersion(context.Background(), "nowcerts-token")
	if err != nil || ver != sv.VersionID || !exp.Equal(cur.ExpiresAt) {
		t.Fatalf("lease note %q until %s (%v); want %q until %s", ver, exp, err, sv.VersionID, cur.ExpiresAt)
	}
}

// TestIntegrationRotationAndFallback: the rotated pair is stored at once (a
// new container sees it without any refresh); a stale write of the secret is
// seen through by the lease's version note (GetSecretValue with VersionId over
// moto); and a spent refresh token falls back to the password grant.
func TestIntegrationRotationAndFallback(t *testing.T) {
	w := newWired(t, expiredPair)
	ctx := context.Background()
	old := w.stored(t)
	ts1, _ := w.container(t)
	tok1, err := ts1.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur := w.stored(t)
	if cur.AccessToken != tok1 || cur.RefreshToken == old.RefreshToken || !cur.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("stored after refresh: %+v", cur)
	}
	ts2, _ := w.container(t)
	if tok2, err := ts2.Token(ctx); err != nil || tok2 != tok1 {
		t.Fatalf("a new container: %v (same token: %v)", err, tok2 == tok1)
	}
	if n := w.sb.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}

	// Put the expired token and spent refresh token back (as if a stale
	// write won): the lease names the refreshed version, which a new
	// container reads by its VersionId instead of refreshing.
	stale := cur
	stale.RefreshToken, stale.ExpiresAt = old.RefreshToken, time.Now().Add(-time.Minute)
	v, _ := stale.Marshal()
	if _, err := w.secrets.PutSecret(ctx, w.arn, v); err != nil {
		t.Fatal(err)
	}
	ts3, _ := w.container(t)
	if tok3, err := ts3.Token(ctx); err != nil || tok3 != tok1 {
		t.Fatalf("after a stale write: %v (the refreshed token: %v)", err, tok3 == tok1)
	}
	if r, p := w.sb.TokenCalls("refresh_token"), w.sb.TokenCalls("password"); r != 1 || p != 0 {
		t.Fatalf("token calls: refresh %d, password %d; want 1 and 0", r, p)
	}

	// A spent refresh token and no version to fall back on (a new table, so
	// no lease note): the refresh grant fails, the password grant takes over,
	// and its pair is stored.
	w2 := newWired(t, func(sb *nowcertssandbox.Sandbox) nowcerts.Credentials {
		c := expiredPair(sb)
		c.RefreshToken = old.RefreshToken // spent at the other sandbox, unknown here
		return c
	})
	_, c4 := w2.container(t)
	if _, err := c4.Certificate(ctx, nowcertssandbox.SeedCertificateReady); err != nil {
		t.Fatal(err)
	}
	if r, p := w2.sb.TokenCalls("refresh_token"), w2.sb.TokenCalls("password"); r != 1 || p != 1 {
		t.Fatalf("token calls: refresh %d, password %d; want 1 and 1", r, p)
	}
	if after := w2.stored(t); after.RefreshToken == old.RefreshToken || after.AccessToken == "" || !after.ExpiresAt.After(time.Now()) {
		t.Fatalf("password grant's pair not stored")
	}
}

// TestIntegrationVersionedSecrets: the Secrets Manager adapter over moto —
// PutSecret returns the new version's id, GetSecret reads the current version
// or an exact older one by id.
func TestIntegrationVersionedSecrets(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	arn := env.NewSecret(t, `{"n":1}`)
	sm := nowcerts.SecretsManager{API: env.SecretsManager()}
	first, err := sm.GetSecret(ctx, arn, "")
	if err != nil || first.Value != `{"n":1}` || first.VersionID == "" {
		t.Fatalf("first: %+v, %v", first, err)
	}
	ver, err := sm.PutSecret(ctx, arn, `{"n":2}`)
	if err != nil || ver == "" || ver == first.VersionID {
		t.Fatalf("put: %q, %v", ver, err)
	}
	if cur, err := sm.GetSecret(ctx, arn, ""); err != nil || cur.Value != `{"n":2}` || cur.VersionID != ver {
		t.Fatalf("current: %+v, %v; want version %s", cur, err, ver)
	}
	if prev, err := sm.GetSecret(ctx, arn, first.VersionID); err != nil || prev.Value != `{"n":1}` || prev.VersionID != first.VersionID {
		t.Fatalf("by version id: %+v, %v", prev, err)
	}
	if v, err := sm.GetSecretValue(ctx, arn); err != nil || v != `{"n":2}` {
		t.Fatalf("GetSecretValue: %q, %v", v, err)
	}
	if _, err := sm.GetSecret(ctx, arn, "00000000-0000-0000-0000-000000000000"); err == nil {
		t.Fatal("an unknown version id was read")
	}
}

// TestIntegrationRefresher: the token-refresher's handler over the wire.
func TestIntegrationRefresher(t *testing.T) {
	w := newWired(t, expiredPair)
	ts, _ := w.container(t)
	r := nowcerts.Refresher{Tokens: ts}
	sum, err := r.Handle(context.Background(), []byte(`{"version":"0","detail-type":"Scheduled Event","source":"aws.scheduler"}`))
	if err != nil || !sum.Refreshed || sum.Grant != nowcerts.GrantRefreshToken {
		t.Fatalf("refresher: %+v, %v", sum, err)
	}
	if cur := w.stored(t); !cur.ExpiresAt.Equal(sum.ExpiresAt) {
		t.Fatalf("stored expiry %s, summary %s", cur.ExpiresAt, sum.ExpiresAt)
	}
	sum, err = r.Handle(context.Background(), []byte(`{}`))
	if err != nil || sum.Refreshed {
		t.Fatalf("second run: %+v, %v", sum, err)
	}
	if n := w.sb.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
}
