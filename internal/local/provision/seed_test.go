package provision

import (
	"encoding/json"
	"testing"
)

func TestSeedNowCertsCredentialsFromEnvironment(t *testing.T) {
	env := map[string]string{"NOWCERTS_USERNAME": "agent@example.com", "NOWCERTS_PASSWORD": "pw"}
	v, ok, err := seedValue("NowCertsSecret", Options{Getenv: func(k string) string { return env[k] }})
	if err != nil || !ok {
		t.Fatalf("seedValue: %v %v", ok, err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(v), &got); err != nil {
		t.Fatal(err)
	}
	if got["username"] != "agent@example.com" || got["password"] != "pw" || got["clientId"] != "ngAuthApp" {
		t.Errorf("seeded %v", got)
	}
	// Only one of the two set: sandbox credentials, not a half pair.
	delete(env, "NOWCERTS_PASSWORD")
	v, _, _ = seedValue("NowCertsSecret", Options{Getenv: func(k string) string { return env[k] }})
	if err := json.Unmarshal([]byte(v), &got); err != nil {
		t.Fatal(err)
	}
	if got["username"] != SandboxNowCertsUsername {
		t.Errorf("with only NOWCERTS_USERNAME set: %v", got)
	}
}

func TestSeedWebhookTokensRotate(t *testing.T) {
	v, ok, err := seedValue("WebhookSecret", Options{})
	if err != nil || !ok {
		t.Fatalf("seedValue: %v %v", ok, err)
	}
	toks := webhookTokens(v)
	for src, fixed := range map[string]string{"nowcerts": LocalNowCertsToken, "cowbell": LocalCowbellToken} {
		if len(toks[src]) != 2 || toks[src][0] != fixed || len(toks[src][1]) < 20 {
			t.Errorf("%s tokens = %v, want [%s, <random>]", src, toks[src], fixed)
		}
	}
	if _, ok, _ := seedValue("SomethingElse", Options{}); ok {
		t.Error("seeded a secret that has no local value")
	}
}
