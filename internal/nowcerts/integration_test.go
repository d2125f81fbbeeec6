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
		cfg: nowcerts.Config{
			BaseURL:    base,
			HTTPClient: &http.Client{},
			Timeout:    5 * time.Second,
			Retry:      nowcerts.Retry{MaxAttempts: 12, BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxElapsed: time.Minute},
			RateLimit:  nowcerts.RateLimit{PerSecond: 1000, Burst: 1000},
		},
		tc:      nowcerts.TokenConfig{Secrets: sm, SecretID: arn, Lease: st, LeaseTTL: 20 * time.Second, LeaseWait: time.Minute},
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
}

// TestIntegrationRotationAndFallback: the rotated pair is stored at once (a
// new container sees it without any refresh), and a spent refresh token falls
// back to the password grant.
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

	// Put the spent refresh token back (as if a stale write won): the refresh
	// grant fails, the password grant takes over, and its pair is stored.
	cur.RefreshToken, cur.ExpiresAt = old.RefreshToken, time.Now().Add(-time.Minute)
	v, _ := cur.Marshal()
	if err := w.secrets.PutSecretValue(ctx, w.arn, v); err != nil {
		t.Fatal(err)
	}
	_, c3 := w.container(t)
	if _, err := c3.Certificate(ctx, nowcertssandbox.SeedCertificateReady); err != nil {
		t.Fatal(err)
	}
	if r, p := w.sb.TokenCalls("refresh_token"), w.sb.TokenCalls("password"); r != 2 || p != 1 {
		t.Fatalf("token calls: refresh %d, password %d; want 2 and 1", r, p)
	}
	after := w.stored(t)
	if after.RefreshToken == old.RefreshToken || after.AccessToken == cur.AccessToken {
		t.Fatalf("password grant's pair not stored")
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
