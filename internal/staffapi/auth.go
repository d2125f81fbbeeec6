package staffapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Authentication modes (STAFF_AUTH).
const (
	AuthJWT   = "jwt"
	AuthToken = "token"
)

// LocalPrincipal is who a caller is when their bearer token is listed under
// "tokens" in the staff secret (rather than under a name in "names").
const LocalPrincipal = "local-staff"

// Authenticator says who made a request. It returns errUnauthenticated (wrapped
// with the reason) when the request carries no acceptable identity; any other
// error means the identity could not be checked (e.g. the secret is unreadable).
type Authenticator interface {
	Authenticate(ctx context.Context, req *events.APIGatewayV2HTTPRequest) (principal string, err error)
}

// SecretReader reads a JSON secret by ARN, from a per-container cache
// (internal/secrets' *Cache satisfies it).
type SecretReader interface {
	JSON(ctx context.Context, arn string, v any) error
}

// errUnauthenticated: the request carries no acceptable identity (401).
var errUnauthenticated = errors.New("unauthenticated")

// NewAuthenticator returns the authenticator for mode (the value of STAFF_AUTH):
//
//   - "jwt": API Gateway's JWT authorizer has verified the token; the principal
//     is the "email" claim, else "sub", from requestContext.authorizer.jwt.claims.
//     A request without either is refused (defence in depth: the route must not
//     be reachable without the authorizer).
//   - "token": "Authorization: Bearer <token>" is compared in constant time with
//     the tokens in the staff secret at secretARN, read through secrets on every
//     request (the reader caches). The secret is
//     {"tokens": ["..."], "names": {"<principal>": "<token>"}}: a token under
//     "tokens" authenticates as LocalPrincipal, one under "names" as its name.
//
// Any other mode, or "token" without a secret, is an error: the API fails closed.
func NewAuthenticator(mode string, secrets SecretReader, secretARN string) (Authenticator, error) {
	switch mode {
	case AuthJWT:
		return jwtAuth{}, nil
	case AuthToken:
		if secrets == nil || secretARN == "" {
			return nil, errors.New("staff auth: STAFF_AUTH=token needs STAFF_SECRET_ARN (the secret holding the staff tokens)")
		}
		return tokenAuth{secrets: secrets, arn: secretARN}, nil
	case "":
		return nil, errors.New(`staff auth: STAFF_AUTH is not set (want "jwt" or "token")`)
	default:
		return nil, fmt.Errorf(`staff auth: unknown STAFF_AUTH %q (want "jwt" or "token")`, mode)
	}
}

type jwtAuth struct{}

func (jwtAuth) Authenticate(_ context.Context, req *events.APIGatewayV2HTTPRequest) (string, error) {
	a := req.RequestContext.Authorizer
	if a == nil || a.JWT == nil {
		return "", fmt.Errorf("%w: no JWT authorizer context", errUnauthenticated)
	}
	for _, claim := range []string{"email", "sub"} {
		if v := strings.TrimSpace(a.JWT.Claims[claim]); v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: JWT has neither email nor sub claim", errUnauthenticated)
}

// staffSecret is the JSON of the staff secret (STAFF_SECRET_ARN).
type staffSecret struct {
	Tokens []string          `json:"tokens"`
	Names  map[string]string `json:"names"` // principal -> token
}

type tokenAuth struct {
	secrets SecretReader
	arn     string
}

func (a tokenAuth) Authenticate(ctx context.Context, req *events.APIGatewayV2HTTPRequest) (string, error) {
	given, ok := bearer(req.Headers)
	if !ok {
		return "", fmt.Errorf("%w: no bearer token", errUnauthenticated)
	}
	var sec staffSecret
	if err := a.secrets.JSON(ctx, a.arn, &sec); err != nil {
		return "", fmt.Errorf("read staff secret: %w", err)
	}
	// Hash both sides so the comparison takes the same time whatever the
	// lengths, and look at every token so the position of a match is not timed.
	g := sha256.Sum256([]byte(given))
	principal := ""
	check := func(token, name string) {
		if token == "" {
			return
		}
		t := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(g[:], t[:]) == 1 && principal == "" {
			principal = name
		}
	}
	names := slices.Sorted(maps.Keys(sec.Names)) // deterministic if a token is listed twice
	for _, name := range names {
		if strings.TrimSpace(name) != "" {
			check(sec.Names[name], name)
		}
	}
	for _, token := range sec.Tokens {
		check(token, LocalPrincipal)
	}
	if principal == "" {
		return "", fmt.Errorf("%w: bearer token not recognised", errUnauthenticated)
	}
	return principal, nil
}

// bearer returns the token of an "Authorization: Bearer <token>" header
// (header name and scheme case-insensitive).
func bearer(h map[string]string) (string, bool) {
	v := header(h, "authorization")
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// header looks a header up case-insensitively (API Gateway lower-cases names;
// local callers may not).
func header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
