package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/webhook/signature"
)

type fakeReader struct {
	value string
	err   error
	arns  []string
}

func (f *fakeReader) Value(_ context.Context, arn string) (string, error) {
	f.arns = append(f.arns, arn)
	return f.value, f.err
}

const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestSecretCredentials(t *testing.T) {
	ctx := context.Background()
	r := &fakeReader{value: `{
		"nowcerts": {"tokens": ["n1", " ", "n2"], "agencyIds": ["A1", ""]},
		"cowbell": {"tokens": ["c1"], "signingSecrets": ["` + whsec + `", ""]},
		"generated": "Xk3...from GenerateSecretString"}`}
	s := NewSecretCredentials(r, "arn:webhook")

	nc, err := s.Credentials(ctx, event.SourceNowCerts)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(nc.Tokens, ",") != "n1,n2" || strings.Join(nc.AgencyIDs, ",") != "A1" || len(nc.SigningSecrets) != 0 {
		t.Fatalf("nowcerts = %+v", nc)
	}
	cb, err := s.Credentials(ctx, event.SourceCowbell)
	if err != nil {
		t.Fatal(err)
	}
	if len(cb.SigningSecrets) != 1 || cb.SigningSecrets[0].Encode() != whsec || strings.Join(cb.Tokens, ",") != "c1" {
		t.Fatalf("cowbell = %+v", cb)
	}
	if r.arns[0] != "arn:webhook" {
		t.Fatalf("read %v", r.arns)
	}

	// A new value is picked up.
	r.value = `{"cowbell": {"tokens": ["c2"]}}`
	cb, _ = s.Credentials(ctx, event.SourceCowbell)
	if strings.Join(cb.Tokens, ",") != "c2" {
		t.Fatalf("after rotation: %+v", cb)
	}
	// A source missing from the secret has no tokens (the handler refuses it).
	nc, err = s.Credentials(ctx, event.SourceNowCerts)
	if err != nil || len(nc.Tokens) != 0 {
		t.Fatalf("missing source = %+v, %v", nc, err)
	}
}

func TestSecretCredentialsErrors(t *testing.T) {
	ctx := context.Background()
	r := &fakeReader{err: errors.New("AccessDenied")}
	s := NewSecretCredentials(r, "arn:webhook")
	if _, err := s.Credentials(ctx, event.SourceCowbell); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("reader error = %v", err)
	}

	r.err, r.value = nil, `{"cowbell": {"tokens": ["hunter2"]`
	if _, err := s.Credentials(ctx, event.SourceCowbell); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad JSON = %v (must fail without quoting the secret)", err)
	}

	r.value = `{"cowbell": {"tokens": "hunter2"}, "nowcerts": {"tokens": ["n1"], "signingSecrets": ["whsec_hunter2!"]}}`
	if _, err := s.Credentials(ctx, event.SourceCowbell); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad cowbell entry = %v", err)
	}
	_, err := s.Credentials(ctx, event.SourceNowCerts)
	if err == nil || !strings.Contains(err.Error(), "signingSecrets[0]") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad signing secret = %v", err)
	}
}

// TestSecretCredentialsDriveTheHandler wires the secret-backed source into the
// handler: a signing secret in the secret makes signatures mandatory.
func TestSecretCredentialsDriveTheHandler(t *testing.T) {
	hs := newHarness(t)
	r := &fakeReader{value: `{"cowbell": {"tokens": ["` + cowbellToken + `"], "signingSecrets": ["` + whsec + `"]}}`}
	h, err := New(Config{Credentials: NewSecretCredentials(r, "arn"), Queue: hs.queue, Quarantine: hs.quar, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	resp, body := hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, resp, body, 401, "missing signature header")
	sec, _ := signature.ParseSecret(whsec)
	sig := signature.Sign([]byte(certBody), "msg_1", testNow, sec)
	resp, body = hs.do(t, post("cowbell", cowbellToken, certBody, "webhook-id", "msg_1", "webhook-timestamp", "1772463845", "webhook-signature", sig))
	wantStatus(t, resp, body, 202, "")
	resp, body = hs.do(t, post("nowcerts", "anything", `{}`))
	wantStatus(t, resp, body, 401, "not configured")
}

func TestCheckAgency(t *testing.T) {
	allowed := []string{" AB-1 ", "cd-2"}
	for _, tc := range []struct {
		id      string
		allowed []string
		refusal string // "" when accepted
	}{
		{"anything", nil, ""},
		{"", nil, ""},
		{"ab-1", allowed, ""},
		{" CD-2", allowed, ""},
		{"", allowed, "the event has no agency id, and cowbell webhooks are accepted only for listed agencies"},
		{"ef-3", allowed, "agency ef-3 is not allowed for cowbell webhooks"},
	} {
		err := CheckAgency(event.SourceCowbell, tc.id, tc.allowed)
		if (err == nil) != (tc.refusal == "") || (err != nil && err.Error() != tc.refusal) {
			t.Errorf("CheckAgency(%q, %q) = %v, want %q", tc.id, tc.allowed, err, tc.refusal)
		}
	}
}
