// Package signature verifies Standard Webhooks signatures
// (https://www.standardwebhooks.com): HMAC-SHA256 over "id.timestamp.body",
// carried in the webhook-id, webhook-timestamp and webhook-signature headers.
//
// Verify the raw request bytes before parsing them:
//
//	err := signature.Verify(body, signature.Header{ID: id, Timestamp: ts, Signature: sig}, secrets, time.Now())
//
// Several secrets (rotation) and several "v1,<base64>" entries in the header are
// accepted: a request is authentic when any entry matches any secret. Every
// comparison is constant-time.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far webhook-timestamp may be from now, either way.
const DefaultTolerance = 5 * time.Minute

// SecretPrefix starts every Standard Webhooks secret: "whsec_" + base64(key).
const SecretPrefix = "whsec_"

// Errors returned by Verify, wrapped with details; test with errors.Is.
var (
	ErrMissingHeader = errors.New("missing signature header")
	ErrBadTimestamp  = errors.New("invalid webhook-timestamp")
	ErrNoSecrets     = errors.New("no signing secrets")
	ErrNoMatch       = errors.New("no matching signature")
)

// Secret is a signing key. Its String form never shows the key.
type Secret struct{ key []byte }

// ParseSecret reads "whsec_<base64>" (the prefix may be omitted). The HMAC key is
// the decoded bytes, which must not be empty.
func ParseSecret(s string) (Secret, error) {
	raw := strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		// Never echo the secret: report only what is wrong with it.
		return Secret{}, fmt.Errorf("signing secret is not %s followed by standard base64", SecretPrefix)
	}
	if len(key) == 0 {
		return Secret{}, errors.New("signing secret is empty")
	}
	return Secret{key: key}, nil
}

// NewSecret returns the secret whose HMAC key is key (copied).
func NewSecret(key []byte) Secret { return Secret{key: append([]byte(nil), key...)} }

// String returns "whsec_[redacted]" so a secret cannot leak through logs.
func (s Secret) String() string { return SecretPrefix + "[redacted]" }

// Encode returns the "whsec_<base64>" form, for configuring a sender.
func (s Secret) Encode() string { return SecretPrefix + base64.StdEncoding.EncodeToString(s.key) }

// Header holds the three Standard Webhooks header values as received.
type Header struct {
	ID        string // webhook-id: stable across retries of one message
	Timestamp string // webhook-timestamp: unix seconds
	Signature string // webhook-signature: space-separated "v1,<base64>" entries
}

// Verify reports whether h signs payload with any of secrets, with the timestamp
// within DefaultTolerance of now. It returns nil when authentic, and otherwise an
// error wrapping ErrMissingHeader, ErrBadTimestamp, ErrNoSecrets or ErrNoMatch.
func Verify(payload []byte, h Header, secrets []Secret, now time.Time) error {
	return VerifyWithTolerance(payload, h, secrets, now, DefaultTolerance)
}

// VerifyWithTolerance is Verify with a chosen timestamp tolerance.
func VerifyWithTolerance(payload []byte, h Header, secrets []Secret, now time.Time, tolerance time.Duration) error {
	var missing []string
	if h.ID == "" {
		missing = append(missing, "webhook-id")
	}
	if h.Timestamp == "" {
		missing = append(missing, "webhook-timestamp")
	}
	if h.Signature == "" {
		missing = append(missing, "webhook-signature")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrMissingHeader, strings.Join(missing, ", "))
	}
	ts, err := strconv.ParseInt(h.Timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrBadTimestamp, h.Timestamp)
	}
	switch d := now.Sub(time.Unix(ts, 0)); {
	case d > tolerance:
		return fmt.Errorf("%w: %s old, more than %s", ErrBadTimestamp, d.Truncate(time.Second), tolerance)
	case d < -tolerance:
		return fmt.Errorf("%w: %s in the future, more than %s", ErrBadTimestamp, (-d).Truncate(time.Second), tolerance)
	}
	if len(secrets) == 0 {
		return ErrNoSecrets
	}

	// Decode the header's v1 entries once; unknown versions and undecodable
	// entries are ignored (a sender may add schemes we do not know).
	var sigs [][]byte
	for entry := range strings.FieldsSeq(h.Signature) {
		version, value, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(sig) != sha256.Size {
			continue
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: webhook-signature has no v1 entry", ErrNoMatch)
	}

	matched := 0
	for _, s := range secrets {
		want := mac(s.key, h.ID, h.Timestamp, payload)
		for _, sig := range sigs {
			// hmac.Equal is constant-time; keep looping to not reveal which matched.
			if hmac.Equal(want, sig) {
				matched++
			}
		}
	}
	if matched == 0 {
		return fmt.Errorf("%w: none of %d signature(s) matches", ErrNoMatch, len(sigs))
	}
	return nil
}

// Sign returns the webhook-signature entry ("v1,<base64>") for payload sent with
// the given id and timestamp.
func Sign(payload []byte, id string, timestamp time.Time, secret Secret) string {
	sum := mac(secret.key, id, strconv.FormatInt(timestamp.Unix(), 10), payload)
	return "v1," + base64.StdEncoding.EncodeToString(sum)
}

// mac is HMAC-SHA256(key, id "." timestamp "." payload).
func mac(key []byte, id, timestamp string, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(payload)
	return m.Sum(nil)
}
