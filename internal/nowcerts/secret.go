package nowcerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Secrets reads and writes one secret's string value, by version. The Secrets
// Manager adapter (SecretsManager) implements it; tests use an in-memory one.
type Secrets interface {
	// GetSecret returns the version versionID of the secret id, or its current
	// version when versionID is "".
	GetSecret(ctx context.Context, id, versionID string) (SecretVersion, error)
	// PutSecret stores value as the new current version of the secret id and
	// returns the new version's id.
	PutSecret(ctx context.Context, id, value string) (versionID string, err error)
}

// SecretVersion is one version of a secret as read.
type SecretVersion struct {
	Value     string
	VersionID string
}

// Credentials is the NowCerts secret: the login and the current token pair.
// On the wire (Secrets Manager) it is JSON:
//
//	{"username","password","clientId","accessToken","refreshToken","expiresAt"}
//
// with expiresAt in RFC 3339. Fields this type does not know are kept as they are
// when the secret is written back.
type Credentials struct {
	Username     string
	Password     string
	ClientID     string
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time

	extra map[string]json.RawMessage
}

// DefaultClientID is NowCerts' public OAuth client id.
const DefaultClientID = "ngAuthApp"

var credentialKeys = []string{"username", "password", "clientId", "accessToken", "refreshToken", "expiresAt"}

// ParseCredentials reads the secret's JSON. A missing clientId reads as
// DefaultClientID; a missing or unreadable expiresAt reads as zero (expired).
func ParseCredentials(s string) (Credentials, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return Credentials{}, fmt.Errorf("nowcerts secret: not a JSON object: %w", err)
	}
	str := func(k string) string {
		var v string
		if b, ok := raw[k]; ok {
			_ = json.Unmarshal(b, &v) // a non-string reads as empty
		}
		return v
	}
	c := Credentials{
		Username:     str("username"),
		Password:     str("password"),
		ClientID:     str("clientId"),
		AccessToken:  str("accessToken"),
		RefreshToken: str("refreshToken"),
		extra:        map[string]json.RawMessage{},
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if e := str("expiresAt"); e != "" {
		if t, err := time.Parse(time.RFC3339Nano, e); err == nil {
			c.ExpiresAt = t
		}
	}
	for k, v := range raw {
		if !isCredentialKey(k) {
			c.extra[k] = v
		}
	}
	return c, nil
}

func isCredentialKey(k string) bool {
	for _, c := range credentialKeys {
		if c == k {
			return true
		}
	}
	return false
}

// Marshal renders the secret's JSON, keeping unknown fields.
func (c Credentials) Marshal() (string, error) {
	out := make(map[string]any, len(c.extra)+len(credentialKeys))
	for k, v := range c.extra {
		out[k] = v
	}
	out["username"] = c.Username
	out["password"] = c.Password
	out["clientId"] = c.ClientID
	out["accessToken"] = c.AccessToken
	out["refreshToken"] = c.RefreshToken
	exp := ""
	if !c.ExpiresAt.IsZero() {
		exp = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	out["expiresAt"] = exp
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("nowcerts secret: encode: %w", err)
	}
	return string(b), nil
}

// validFor reports whether the access token exists and is good for at least d
// more after now.
func (c Credentials) validFor(now time.Time, d time.Duration) bool {
	return c.AccessToken != "" && c.ExpiresAt.After(now.Add(d))
}

// errNoCredentials: the secret has neither a usable refresh token nor a login.
var errNoCredentials = errors.New("nowcerts secret has no username/password")
