package signature

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example from Standard Webhooks' / Svix's documentation.
const (
	docSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	docID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	docTimestamp = "1614265330"
	docPayload   = `{"test": 2432232314}`
	docSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t testing.TB, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return sec
}

func TestKnownVector(t *testing.T) {
	sec := mustSecret(t, docSecret)
	ts, _ := strconv.ParseInt(docTimestamp, 10, 64)
	if got := Sign([]byte(docPayload), docID, time.Unix(ts, 0), sec); got != docSignature {
		t.Fatalf("Sign = %s, want %s", got, docSignature)
	}
	h := Header{ID: docID, Timestamp: docTimestamp, Signature: docSignature}
	if err := Verify([]byte(docPayload), h, []Secret{sec}, time.Unix(ts, 0)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	old := mustSecret(t, "whsec_"+"c2VjcmV0LW9sZC1zZWNyZXQtb2xkLXNlY3JldC1vbGQ=")
	cur := mustSecret(t, "whsec_"+"Y3VycmVudC1jdXJyZW50LWN1cnJlbnQtY3VycmVudA==")
	other := NewSecret([]byte("someone else's key"))
	body := []byte(`{"meta":{"event":"policy.certificate"}}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	sigCur := Sign(body, "msg_1", now, cur)
	sigOther := Sign(body, "msg_1", now, other)

	cases := []struct {
		name    string
		body    []byte
		h       Header
		secrets []Secret
		now     time.Time
		want    error // nil: authentic
	}{
		{"one secret one signature", body, Header{"msg_1", ts, sigCur}, []Secret{cur}, now, nil},
		{"rotation: second secret matches", body, Header{"msg_1", ts, sigCur}, []Secret{old, cur}, now, nil},
		{"several entries, last matches", body, Header{"msg_1", ts, sigOther + " v2,abc " + sigCur}, []Secret{cur}, now, nil},
		{"4m59s old", body, Header{"msg_1", ts, sigCur}, []Secret{cur}, now.Add(4*time.Minute + 59*time.Second), nil},
		{"4m59s early", body, Header{"msg_1", ts, sigCur}, []Secret{cur}, now.Add(-4*time.Minute - 59*time.Second), nil},
		{"no match", body, Header{"msg_1", ts, sigOther}, []Secret{old, cur}, now, ErrNoMatch},
		{"body changed", append([]byte(" "), body...), Header{"msg_1", ts, sigCur}, []Secret{cur}, now, ErrNoMatch},
		{"id changed", body, Header{"msg_2", ts, sigCur}, []Secret{cur}, now, ErrNoMatch},
		{"timestamp changed", body, Header{"msg_1", strconv.FormatInt(now.Unix()+1, 10), sigCur}, []Secret{cur}, now, ErrNoMatch},
		{"too old", body, Header{"msg_1", ts, sigCur}, []Secret{cur}, now.Add(5*time.Minute + time.Second), ErrBadTimestamp},
		{"too new", body, Header{"msg_1", ts, sigCur}, []Secret{cur}, now.Add(-5*time.Minute - time.Second), ErrBadTimestamp},
		{"timestamp not a number", body, Header{"msg_1", "2024-01-01T00:00:00Z", sigCur}, []Secret{cur}, now, ErrBadTimestamp},
		{"timestamp in milliseconds", body, Header{"msg_1", strconv.FormatInt(now.UnixMilli(), 10), sigCur}, []Secret{cur}, now, ErrBadTimestamp},
		{"missing id", body, Header{"", ts, sigCur}, []Secret{cur}, now, ErrMissingHeader},
		{"missing timestamp", body, Header{"msg_1", "", sigCur}, []Secret{cur}, now, ErrMissingHeader},
		{"missing signature", body, Header{"msg_1", ts, ""}, []Secret{cur}, now, ErrMissingHeader},
		{"no v1 entry", body, Header{"msg_1", ts, "v1a," + sigCur[3:]}, []Secret{cur}, now, ErrNoMatch},
		{"bad base64 entry", body, Header{"msg_1", ts, "v1,!!!"}, []Secret{cur}, now, ErrNoMatch},
		{"truncated signature", body, Header{"msg_1", ts, sigCur[:len(sigCur)-8]}, []Secret{cur}, now, ErrNoMatch},
		{"no secrets", body, Header{"msg_1", ts, sigCur}, nil, now, ErrNoSecrets},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.body, c.h, c.secrets, c.now)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestErrorsNameTheProblem(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	sec := NewSecret([]byte("k"))
	err := Verify([]byte("{}"), Header{ID: "", Timestamp: "", Signature: "v1,x"}, []Secret{sec}, now)
	if err == nil || !strings.Contains(err.Error(), "webhook-id, webhook-timestamp") {
		t.Fatalf("missing headers error = %v, want both names", err)
	}
	err = Verify([]byte("{}"), Header{ID: "m", Timestamp: strconv.FormatInt(now.Unix()-3600, 10), Signature: "v1,x"}, []Secret{sec}, now)
	if err == nil || !strings.Contains(err.Error(), "1h0m0s old") {
		t.Fatalf("old timestamp error = %v, want the age", err)
	}
}

func TestParseSecret(t *testing.T) {
	s, err := ParseSecret(docSecret)
	if err != nil {
		t.Fatal(err)
	}
	if s.Encode() != docSecret {
		t.Fatalf("Encode = %s, want %s", s.Encode(), docSecret)
	}
	if got := s.String(); strings.Contains(got, "MfKQ") {
		t.Fatalf("String leaks the key: %s", got)
	}
	if _, err := ParseSecret(strings.TrimPrefix(docSecret, SecretPrefix)); err != nil {
		t.Fatalf("without prefix: %v", err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_not base64!", "whsec_" + "QUJD="} {
		_, err := ParseSecret(bad)
		if err == nil {
			t.Errorf("ParseSecret(%q) = nil error", bad)
			continue
		}
		if raw := strings.TrimPrefix(bad, SecretPrefix); raw != "" && strings.Contains(err.Error(), raw) {
			t.Errorf("error %q echoes the secret", err)
		}
	}
}
