package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/webhook/signature"
)

// SecretReader returns a secret's current value (internal/secrets.Cache).
type SecretReader interface {
	Value(ctx context.Context, arn string) (string, error)
}

// SecretCredentials reads every source's credentials from one JSON secret
// (WEBHOOK_SECRET_ARN):
//
//	{"nowcerts": {"tokens": ["t1", "t2"], "signingSecrets": ["whsec_..."], "agencyIds": ["..."]},
//	 "cowbell":  {...}}
//
// A missing source, or one without tokens, refuses everything (fail closed).
// Keys other than the sources are ignored. The secret is parsed once per value:
// the reader caches it, and a new value is parsed on first use.
type SecretCredentials struct {
	r   SecretReader
	arn string

	mu     sync.Mutex
	raw    string
	parsed map[event.Source]parsedCreds
}

type parsedCreds struct {
	c   Credentials
	err error
}

// NewSecretCredentials returns a CredentialSource reading the secret arn.
func NewSecretCredentials(r SecretReader, arn string) *SecretCredentials {
	return &SecretCredentials{r: r, arn: arn}
}

// Credentials returns src's credentials. A source whose entry cannot be read
// (bad JSON, a signing secret that is not whsec_ base64) is an error, never an
// open door.
func (s *SecretCredentials) Credentials(ctx context.Context, src event.Source) (Credentials, error) {
	raw, err := s.r.Value(ctx, s.arn)
	if err != nil {
		return Credentials{}, fmt.Errorf("webhook credentials: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parsed == nil || raw != s.raw {
		s.parsed, s.raw = parseCredentials(raw), raw
	}
	p, ok := s.parsed[src]
	if !ok {
		if e, bad := s.parsed[""]; bad {
			return Credentials{}, e.err
		}
		return Credentials{}, nil // not configured: no tokens, refuses all
	}
	return p.c, p.err
}

// credentialsDoc is one source's entry of the secret.
type credentialsDoc struct {
	Tokens         []string `json:"tokens"`
	SigningSecrets []string `json:"signingSecrets"`
	AgencyIDs      []string `json:"agencyIds"`
}

// parseCredentials reads the secret; an error about the whole document is kept
// under the "" key, errors about one source under that source.
func parseCredentials(raw string) map[event.Source]parsedCreds {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		// Never quote the secret: say only that it is not a JSON object.
		return map[event.Source]parsedCreds{"": {err: fmt.Errorf("webhook credentials: the secret is not a JSON object")}}
	}
	out := map[event.Source]parsedCreds{}
	for _, src := range []event.Source{event.SourceNowCerts, event.SourceCowbell} {
		if entry, ok := doc[string(src)]; ok {
			c, err := parseSource(src, entry)
			out[src] = parsedCreds{c: c, err: err}
		}
	}
	return out
}

// parseSource reads one source's entry, dropping blank values.
func parseSource(src event.Source, entry json.RawMessage) (Credentials, error) {
	var d credentialsDoc
	if err := json.Unmarshal(entry, &d); err != nil {
		return Credentials{}, fmt.Errorf("webhook credentials: %s is not {\"tokens\": [...], \"signingSecrets\": [...], \"agencyIds\": [...]}", src)
	}
	var c Credentials
	for _, t := range d.Tokens {
		if t = strings.TrimSpace(t); t != "" {
			c.Tokens = append(c.Tokens, t)
		}
	}
	for i, ss := range d.SigningSecrets {
		if strings.TrimSpace(ss) == "" {
			continue
		}
		sec, err := signature.ParseSecret(ss)
		if err != nil {
			return Credentials{}, fmt.Errorf("webhook credentials: %s signingSecrets[%d]: %w", src, i, err)
		}
		c.SigningSecrets = append(c.SigningSecrets, sec)
	}
	for _, a := range d.AgencyIDs {
		if a = strings.TrimSpace(a); a != "" {
			c.AgencyIDs = append(c.AgencyIDs, a)
		}
	}
	return c, nil
}
