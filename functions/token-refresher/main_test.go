package main

import (
	"context"
	"encoding/json"
	"github.com/coiflow/coiflow/internal/testsupport"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/wire"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// lockedBuffer is the shared goroutine-safe log sink.
type lockedBuffer = testsupport.Buffer

// TestTokenRefresherWithEventFiles builds the function as Lambda would (the
// wire registry, configuration from the environment) against DynamoDB Local,
// moto and the NowCerts sandbox, and invokes it with the events/ files.
func TestTokenRefresherWithEventFiles(t *testing.T) {
	env := testenv.Get(t)
	sb := nowcertssandbox.New(nowcertssandbox.Options{})
	base, stop, err := sb.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	user, pass := sb.Credentials()
	access, refresh, _ := sb.IssueTokens()
	secret, err := nowcerts.Credentials{Username: user, Password: pass, ClientID: "ngAuthApp", AccessToken: access,
		RefreshToken: refresh, ExpiresAt: time.Now().Add(30 * time.Minute)}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"TABLE_NAME":          env.NewTable(t),
		"NOWCERTS_SECRET_ARN": env.NewSecret(t, secret),
		"NOWCERTS_BASE_URL":   base,
		"LOG_LEVEL":           "debug",
	}
	var stdout lockedBuffer
	build, ok := wire.Builders()["token-refresher"]
	if !ok {
		t.Fatal(`wire.Builders() has no "token-refresher"`)
	}
	h, err := build(context.Background(), wire.Deps{Env: func(k string) string { return vars[k] }, AWS: env.AWS, Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(file string) nowcerts.RefreshSummary {
		t.Helper()
		payload, err := os.ReadFile(filepath.Join("..", "..", "events", "token-refresher", file))
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatalf("invoke %s: %v", file, err)
		}
		var sum nowcerts.RefreshSummary
		if err := json.Unmarshal(out, &sum); err != nil {
			t.Fatalf("invoke %s: answer %s: %v", file, out, err)
		}
		return sum
	}

	// 30 minutes left: inside the 2h window → refreshed with the refresh token.
	if sum := invoke("schedule.json"); !sum.Refreshed || sum.Grant != nowcerts.GrantRefreshToken {
		t.Fatalf("schedule.json: %+v", sum)
	}
	// Fresh now → nothing to do.
	if sum := invoke("schedule.json"); sum.Refreshed || sum.Reason != "fresh" {
		t.Fatalf("schedule.json again: %+v", sum)
	}
	// An operator's forced refresh.
	if sum := invoke("force.json"); !sum.Refreshed {
		t.Fatalf("force.json: %+v", sum)
	}
	if n := sb.TokenCalls("refresh_token"); n != 2 {
		t.Fatalf("%d refresh calls, want 2", n)
	}
	out := stdout.String()
	if c := strings.Count(out, `"`+obs.MetricTokenRefreshed+`":1`); c != 2 {
		t.Fatalf("%d %s metrics, want 2:\n%s", c, obs.MetricTokenRefreshed, out)
	}
	v, err := nowcerts.SecretsManager{API: env.SecretsManager()}.GetSecretValue(context.Background(), vars["NOWCERTS_SECRET_ARN"])
	if err != nil {
		t.Fatal(err)
	}
	cur, err := nowcerts.ParseCredentials(v)
	if err != nil {
		t.Fatal(err)
	}
	if cur.RefreshToken == refresh || cur.AccessToken == access {
		t.Fatal("the secret was not rotated")
	}
	for _, s := range []string{access, refresh, pass, cur.AccessToken, cur.RefreshToken} {
		if strings.Contains(out, s) {
			t.Fatalf("a secret (%.6s…) appears on stdout", s)
		}
	}
}
