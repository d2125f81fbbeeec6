package nowcerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// expire makes the stored token expired (keeping its refresh token).
func expire(t *testing.T, h *harness) nowcerts.Credentials {
	t.Helper()
	c := h.secrets.creds(t, secretID)
	c.ExpiresAt = time.Now().Add(-time.Minute)
	h.setSecret(t, c)
	return c
}

// TestRefreshRotationStoredBeforeUse: an expired token is refreshed with the
// refresh grant, and the rotated pair is in the secret before any API call
// uses the new access token.
func TestRefreshRotationStoredBeforeUse(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	old := expire(t, h)
	var mu sync.Mutex
	var order []string
	h.secrets.onPut = func(v string) {
		c, _ := nowcerts.ParseCredentials(v)
		mu.Lock()
		order = append(order, "put:"+c.AccessToken)
		mu.Unlock()
	}
	h.rebuild(t)
	if _, err := h.client.SendCertificate(context.Background(), sendReq()); err != nil {
		t.Fatal(err)
	}
	if n := h.sb.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("%d refresh grants, want 1", n)
	}
	if n := h.sb.TokenCalls("password"); n != 0 {
		t.Fatalf("%d password grants, want 0", n)
	}
	cur := h.secrets.creds(t, secretID)
	if cur.RefreshToken == old.RefreshToken || cur.AccessToken == old.AccessToken || !cur.ExpiresAt.After(time.Now()) {
		t.Fatalf("secret not rotated: %+v", cur)
	}
	if cur.Username != old.Username || cur.Password != old.Password || cur.ClientID != "ngAuthApp" {
		t.Fatalf("credentials lost in the rewrite: %+v", cur)
	}
	send := h.sb.CallsTo("SendCertificate")[0]
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 1 || order[0] != "put:"+cur.AccessToken || send.Auth != "Bearer "+cur.AccessToken {
		t.Fatalf("put order %v, send auth %q", order, send.Auth)
	}
	// The put happened before the send was even recorded: the send's token is
	// the one stored, and the old refresh token is spent.
	if strings.Contains(send.Auth, old.AccessToken) {
		t.Fatal("send used the expired token")
	}
	if h.secrets.puts != 1 {
		t.Fatalf("%d secret writes, want 1", h.secrets.puts)
	}
}

// TestRefreshFailureFallsBackToPassword: a refresh token NowCerts no longer
// accepts → the password grant, and the new pair is stored.
func TestRefreshFailureFallsBackToPassword(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	c := expire(t, h)
	c.RefreshToken = "ffffffffffffffffffffffffffffffff" // spent or unknown
	h.setSecret(t, c)
	h.rebuild(t)
	if _, err := h.client.Approve(context.Background(), []string{nowcertssandbox.SeedHistoricalPending}); err != nil {
		t.Fatal(err)
	}
	if r, p := h.sb.TokenCalls("refresh_token"), h.sb.TokenCalls("password"); r != 1 || p != 1 {
		t.Fatalf("token calls: refresh %d, password %d; want 1 and 1", r, p)
	}
	cur := h.secrets.creds(t, secretID)
	if cur.RefreshToken == c.RefreshToken || cur.RefreshToken == "" {
		t.Fatalf("refresh token not replaced: %+v", cur)
	}
	if !strings.Contains(h.metrics.String(), `"Grant":"password"`) {
		t.Fatalf("no NowCertsTokenRefreshed metric for the password grant:\n%s", h.metrics.String())
	}
}

// TestMissingTokenUsesPassword: a secret with only the login (as `make run`
// seeds it) → password grant.
func TestMissingTokenUsesPassword(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	user, pass := h.sb.Credentials()
	h.secrets.set(secretID, `{"username":"`+user+`","password":"`+pass+`","note":"kept"}`)
	h.rebuild(t)
	if _, err := h.tokens.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, p := h.sb.TokenCalls("refresh_token"), h.sb.TokenCalls("password"); r != 0 || p != 1 {
		t.Fatalf("token calls: refresh %d, password %d; want 0 and 1", r, p)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(h.secrets.current(secretID)), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["note"] != "kept" || raw["clientId"] != "ngAuthApp" || raw["accessToken"] == "" || raw["expiresAt"] == "" {
		t.Fatalf("stored secret = %v", raw)
	}
	if _, err := time.Parse(time.RFC3339, raw["expiresAt"].(string)); err != nil {
		t.Fatalf("expiresAt is not RFC 3339: %v", err)
	}
}

// TestBadPasswordIsErrAuth: the password grant refused → ErrAuth (an
// OAuthError with NowCerts' code), nothing stored.
func TestBadPasswordIsErrAuth(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	c := expire(t, h)
	c.RefreshToken, c.Password = "", "wrong"
	h.setSecret(t, c)
	h.rebuild(t)
	_, err := h.client.SendCertificate(context.Background(), sendReq())
	var oe *nowcerts.OAuthError
	if !errors.Is(err, nowcerts.ErrAuth) || !errors.As(err, &oe) || oe.Code != "invalid_grant" {
		t.Fatalf("err = %v, want ErrAuth with invalid_grant", err)
	}
	if h.secrets.puts != 0 || len(h.sb.CallsTo("SendCertificate")) != 0 {
		t.Fatalf("puts %d, sends %d: want none", h.secrets.puts, len(h.sb.CallsTo("SendCertificate")))
	}
	if n := h.sb.TokenCalls("password"); n != 1 {
		t.Fatalf("%d password grants: a 400 must not be retried", n)
	}
}

// Test401RefreshesOnceAndRetries: NowCerts refuses a token the secret still
// calls valid → one refresh, one retry.
func Test401RefreshesOnceAndRetries(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	ctx := context.Background()
	if _, err := h.client.SendCertificate(ctx, sendReq()); err != nil {
		t.Fatal(err)
	}
	h.sb.ExpireTokens() // revoked on NowCerts' side; the secret does not know
	if _, err := h.client.SendCertificate(ctx, sendReq()); err != nil {
		t.Fatalf("after a 401: %v", err)
	}
	calls := h.sb.CallsTo("SendCertificate")
	if len(calls) != 3 || calls[1].Status != 401 || calls[2].Status != 200 || calls[1].Auth == calls[2].Auth {
		t.Fatalf("calls = %+v, want 200, 401, 200 with a new token", calls)
	}
	if n := h.sb.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if n := len(h.sb.Sends()); n != 2 {
		t.Fatalf("%d sends, want 2", n)
	}
}

// Test401Twice: a token refused even after a refresh → ErrAuth, one refresh.
func Test401Twice(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 401}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.SendCertificate(context.Background(), sendReq())
	if !errors.Is(err, nowcerts.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if n, r := len(h.sb.CallsTo("SendCertificate")), h.sb.TokenCalls("refresh_token"); n != 2 || r != 1 {
		t.Fatalf("%d sends and %d refreshes, want 2 and 1", n, r)
	}
}

// Test401StormIsOneRefresh: many goroutines of one container (and a second
// container) hit 401 with the same token at once → one refresh in all.
func Test401StormIsOneRefresh(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	other, err := nowcerts.NewTokenSource(h.cfg, nowcerts.TokenConfig{Secrets: h.secrets, SecretID: secretID, Lease: h.lease})
	if err != nil {
		t.Fatal(err)
	}
	otherClient, err := nowcerts.NewClient(h.cfg, other)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Both containers cache the token.
	if _, err := h.tokens.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Token(ctx); err != nil {
		t.Fatal(err)
	}
	h.sb.ExpireTokens()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.client
			if i%2 == 1 {
				c = otherClient
			}
			if _, err := c.Certificate(ctx, nowcertssandbox.SeedCertificateReady); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if r, p := h.sb.TokenCalls("refresh_token"), h.sb.TokenCalls("password"); r != 1 || p != 0 {
		t.Fatalf("token calls: refresh %d, password %d; want 1 and 0", r, p)
	}
}

// TestConcurrentContainersOneRefresh (unit, in-memory lease): 50 containers
// with an expired token → one refresh; also when the next 20 readers of the
// secret after the write still get the previous version.
func TestConcurrentContainersOneRefresh(t *testing.T) {
	for _, lag := range []int{0, 20} {
		t.Run(fmt.Sprintf("lag %d", lag), func(t *testing.T) {
			h := newHarness(t, nowcertssandbox.Options{})
			expire(t, h)
			h.secrets.lag = lag
			h.cfg.Sleep = nowcerts.SleepContext
			var wg sync.WaitGroup
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ts, err := nowcerts.NewTokenSource(h.cfg, nowcerts.TokenConfig{Secrets: h.secrets, SecretID: secretID, Lease: h.lease})
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := ts.Token(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if r, p := h.sb.TokenCalls("refresh_token"), h.sb.TokenCalls("password"); r != 1 || p != 0 {
				t.Fatalf("token calls: refresh %d, password %d; want 1 and 0", r, p)
			}
			if h.secrets.puts != 1 {
				t.Fatalf("%d secret writes, want 1", h.secrets.puts)
			}
			t.Logf("lagging reads served: %d", h.secrets.stale)
		})
	}
}

// TestRefresher: the scheduled handler refreshes only within the window.
func TestRefresher(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{AccessTTL: 24 * time.Hour})
	r := nowcerts.Refresher{Tokens: h.tokens, Window: 2 * time.Hour}
	ctx := context.Background()
	sched := json.RawMessage(`{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.scheduler","detail":{}}`)

	sum, err := r.Handle(ctx, sched)
	if err != nil || sum.Refreshed || sum.Reason != "fresh" {
		t.Fatalf("fresh token: %+v, %v", sum, err)
	}
	c := h.secrets.creds(t, secretID)
	c.ExpiresAt = time.Now().Add(time.Hour) // inside the 2h window
	h.setSecret(t, c)
	sum, err = r.Handle(ctx, sched)
	if err != nil || !sum.Refreshed || sum.Grant != "refresh_token" || !sum.ExpiresAt.After(time.Now().Add(23*time.Hour)) {
		t.Fatalf("expiring token: %+v, %v", sum, err)
	}
	sum, err = r.Handle(ctx, json.RawMessage(`{}`))
	if err != nil || sum.Refreshed {
		t.Fatalf("just refreshed: %+v, %v", sum, err)
	}
	sum, err = r.Handle(ctx, json.RawMessage(`{"force":true}`))
	if err != nil || !sum.Refreshed {
		t.Fatalf("forced: %+v, %v", sum, err)
	}
	if _, err := r.Handle(ctx, json.RawMessage(`{"window":"soon"}`)); err == nil {
		t.Fatal("a bad window was accepted")
	}
	if n := h.sb.TokenCalls("refresh_token"); n != 2 {
		t.Fatalf("%d refreshes, want 2", n)
	}
	b, _ := json.Marshal(sum)
	cur := h.secrets.creds(t, secretID)
	if strings.Contains(string(b), cur.AccessToken) || strings.Contains(string(b), cur.RefreshToken) {
		t.Fatalf("summary carries a token: %s", b)
	}
}

// betweenLease runs between() once, right after the first LeaseVersion
// read, and returns the note as read before — the interleaving where
// another container refreshes after our read and before our lease.
type betweenLease struct {
	nowcerts.Lease
	mu      sync.Mutex
	between func()
}

func (l *betweenLease) LeaseVersion(ctx context.Context, name string) (string, time.Time, error) {
	v, e, err := l.Lease.LeaseVersion(ctx, name)
	l.mu.Lock()
	f := l.between
	l.between = nil
	l.mu.Unlock()
	if f != nil {
		f()
	}
	return v, e, err
}

// interleaved builds container b whose first look at the secret and the
// lease happens just before container a (h.tokens) refreshes.
func interleaved(t *testing.T, h *harness) *nowcerts.TokenSource {
	t.Helper()
	a := h.tokens
	l := &betweenLease{Lease: h.lease, between: func() {
		if _, err := a.Token(context.Background()); err != nil {
			t.Error(err)
		}
	}}
	b, err := nowcerts.NewTokenSource(h.cfg, nowcerts.TokenConfig{Secrets: h.secrets, SecretID: secretID, Lease: l})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDoubleCheckAfterLease: a container that read the expired token, then got
// the lease after another container refreshed, re-reads the secret under the
// lease and does not refresh again (which would also spend the new refresh
// token).
func TestDoubleCheckAfterLease(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	expire(t, h)
	b := interleaved(t, h)
	tok, err := b.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := h.sb.TokenCalls("refresh_token"); r != 1 {
		t.Fatalf("%d refreshes, want 1", r)
	}
	if cur := h.secrets.creds(t, secretID); tok != cur.AccessToken {
		t.Fatal("b does not use the token a stored")
	}
	if h.lease.acquired != 2 {
		t.Fatalf("lease acquired %d times, want 2 (a, then b, which found the fresh token)", h.lease.acquired)
	}
}

// TestLaggingSecretReadIsFenced: Secrets Manager hands the version before a
// just-stored one to the next reader of AWSCURRENT. Whether that reader is
// the next refresher, right after taking the lease (lag 1, interleaved), or a
// container arriving after the refresh that reads twice behind (lag 2), the
// lease's version note sends it to the stored version: one refresh grant in
// all, no password grant, and both containers use the stored token.
func TestLaggingSecretReadIsFenced(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lag         int
		interleaved bool
		acquired    int
	}{
		{"refresher after the lease", 1, true, 2},
		{"reader after the release", 2, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nowcertssandbox.Options{})
			expire(t, h)
			h.secrets.lag = tc.lag
			ctx := context.Background()
			var b *nowcerts.TokenSource
			if tc.interleaved {
				b = interleaved(t, h)
			} else {
				if _, err := h.tokens.Token(ctx); err != nil {
					t.Fatal(err)
				}
				var err error
				b, err = nowcerts.NewTokenSource(h.cfg, nowcerts.TokenConfig{Secrets: h.secrets, SecretID: secretID, Lease: h.lease})
				if err != nil {
					t.Fatal(err)
				}
			}
			tok, err := b.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r, p := h.sb.TokenCalls("refresh_token"), h.sb.TokenCalls("password"); r != 1 || p != 0 {
				t.Fatalf("token calls: refresh %d, password %d; want 1 and 0", r, p)
			}
			if h.secrets.stale != 1 {
				t.Fatalf("%d lagging reads served, want 1 (the fake did not lag as meant)", h.secrets.stale)
			}
			cur := h.secrets.creds(t, secretID)
			if tok != cur.AccessToken || h.secrets.puts != 1 {
				t.Fatalf("b's token is the stored one: %v; %d writes, want 1", tok == cur.AccessToken, h.secrets.puts)
			}
			if a, err := h.tokens.Token(ctx); err != nil || a != cur.AccessToken {
				t.Fatalf("a's token is the stored one: %v, %v", a == cur.AccessToken, err)
			}
			if h.lease.acquired != tc.acquired {
				t.Fatalf("lease acquired %d times, want %d", h.lease.acquired, tc.acquired)
			}
		})
	}
}

// TestFenceIgnoresOlderNote: the note is followed only when it names a
// version whose token expires later than the one read, and that can be read.
func TestFenceIgnoresOlderNote(t *testing.T) {
	t.Run("secret written after the refresh", func(t *testing.T) {
		h := newHarness(t, nowcertssandbox.Options{})
		expire(t, h)
		ctx := context.Background()
		if _, err := h.tokens.Token(ctx); err != nil { // refresh: the note names its version
			t.Fatal(err)
		}
		// An operator stores a pair that expires later than the refreshed one;
		// then NowCerts revokes every access token.
		c := h.secrets.creds(t, secretID)
		var exp time.Time
		c.AccessToken, c.RefreshToken, exp = h.sb.IssueTokens()
		c.ExpiresAt = exp.Add(time.Hour)
		h.setSecret(t, c)
		h.sb.ExpireTokens()
		b, err := nowcerts.NewTokenSource(h.cfg, nowcerts.TokenConfig{Secrets: h.secrets, SecretID: secretID, Lease: h.lease})
		if err != nil {
			t.Fatal(err)
		}
		// Following the note would hand out the (revoked) refreshed token;
		// instead the operator's refresh token is spent, successfully.
		tok, err := b.Refresh(ctx, c.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if r, p := h.sb.TokenCalls("refresh_token"), h.sb.TokenCalls("password"); r != 2 || p != 0 {
			t.Fatalf("token calls: refresh %d, password %d; want 2 and 0", r, p)
		}
		if cur := h.secrets.creds(t, secretID); tok != cur.AccessToken || cur.RefreshToken == c.RefreshToken {
			t.Fatal("the operator's pair was not the one refreshed")
		}
	})
	t.Run("note names a version that cannot be read", func(t *testing.T) {
		h := newHarness(t, nowcertssandbox.Options{})
		expire(t, h)
		h.lease.ver, h.lease.verExp = "v404", time.Now().Add(24*time.Hour)
		if _, err := h.tokens.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r, p := h.sb.TokenCalls("refresh_token"), h.sb.TokenCalls("password"); r != 1 || p != 0 {
			t.Fatalf("token calls: refresh %d, password %d; want 1 and 0", r, p)
		}
		if !strings.Contains(h.logs.String(), "cannot read the version the lease names") {
			t.Fatalf("no warning logged:\n%s", h.logs.String())
		}
		if h.lease.ver == "v404" {
			t.Fatal("the refresh did not record its version in the lease")
		}
	})
}
