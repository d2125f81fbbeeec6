package nowcerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Grant types of the token endpoint.
const (
	GrantPassword     = "password"
	GrantRefreshToken = "refresh_token"
)

// grantResult is a successful token endpoint answer, read tolerantly.
type grantResult struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	UserName     string
	AgencyID     string
}

// OAuthError is the token endpoint's refusal ({"error", "error_description"}).
// It wraps ErrAuth.
type OAuthError struct {
	Grant       string
	HTTPStatus  int
	Code        string
	Description string
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("nowcerts token (%s grant): HTTP %d %s: %s", e.Grant, e.HTTPStatus, e.Code, e.Description)
}

// Unwrap makes errors.Is(err, ErrAuth) true.
func (e *OAuthError) Unwrap() error { return ErrAuth }

// grant calls POST /api/token with a form-encoded grant.
func (t *transport) grant(ctx context.Context, form url.Values) (grantResult, error) {
	kind := form.Get("grant_type")
	rep, err := t.do(ctx, call{
		op:          "Token",
		method:      http.MethodPost,
		path:        "/api/token",
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded",
	})
	if err != nil {
		var rej *RejectedError
		if errors.As(err, &rej) {
			oe := &OAuthError{Grant: kind, HTTPStatus: rej.HTTPStatus, Description: rej.Message}
			var body struct {
				Error string `json:"error"`
				Desc  string `json:"error_description"`
			}
			if rej.Answer != nil && json.Unmarshal(rej.Answer.Raw, &body) == nil {
				oe.Code, oe.Description = body.Error, body.Desc
			}
			return grantResult{}, oe
		}
		return grantResult{}, err
	}
	return parseGrant(rep.body, t.cfg.Now())
}

// parseGrant reads a token answer: access_token, refresh_token, expires_in
// (seconds, number or string) or else .expires (RFC 1123).
func parseGrant(b []byte, now time.Time) (grantResult, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return grantResult{}, fmt.Errorf("nowcerts token: answer is not a JSON object: %w", err)
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(raw[k], &s)
		return s
	}
	g := grantResult{
		AccessToken:  str("access_token"),
		RefreshToken: str("refresh_token"),
		UserName:     str("userName"),
		AgencyID:     str("agencyId"),
	}
	if g.AccessToken == "" {
		return grantResult{}, fmt.Errorf("%w: token answer has no access_token", ErrAuth)
	}
	var secs float64
	if v, ok := raw["expires_in"]; ok {
		if json.Unmarshal(v, &secs) != nil {
			var s string
			if json.Unmarshal(v, &s) == nil {
				secs, _ = strconv.ParseFloat(strings.TrimSpace(s), 64)
			}
		}
	}
	switch {
	case secs > 0:
		g.ExpiresAt = now.Add(time.Duration(secs * float64(time.Second)))
	case str(".expires") != "":
		t, err := http.ParseTime(str(".expires"))
		if err != nil {
			return grantResult{}, fmt.Errorf("nowcerts token: .expires %q: %w", str(".expires"), err)
		}
		g.ExpiresAt = t
	default:
		// Neither field: assume a short life so the token is refreshed soon.
		g.ExpiresAt = now.Add(time.Hour)
	}
	// The secret stores whole seconds; keep the cached copy identical.
	g.ExpiresAt = g.ExpiresAt.Truncate(time.Second)
	return g, nil
}
