package nowcerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/obs"
)

// Tokens hands out bearer tokens. Token returns the current access token;
// Refresh is called after a 401 with the token that was refused and returns a
// newer one (refreshing only if that token is still the current one).
type Tokens interface {
	Token(ctx context.Context) (string, error)
	Refresh(ctx context.Context, refused string) (string, error)
}

// maxBody bounds what is read of an answer.
const maxBody = 16 << 20

// call describes one logical API call (all its attempts).
type call struct {
	op          string // Operation dimension and error prefix
	method      string
	path        string // under the base URL, e.g. "/api/SendCertificate/SendCertificate"
	rawQuery    string
	body        []byte
	contentType string
	tokens      Tokens // nil: no Authorization header (the token endpoint)
	limit       *bucket
	// unsafe: not idempotent. A transport failure after the request may have
	// been written, and a 502 or 504, are returned as ErrOutcomeUnknown and
	// never retried.
	unsafe bool
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// transport runs calls with retries, backoff and the 401 → refresh → retry rule.
type transport struct {
	cfg Config
}

// do runs c until it gets a 2xx answer, a permanent refusal, or the retry budget
// is spent. Errors wrap ErrRejected (4xx), ErrAuth (401 twice), ErrUnavailable
// (429/5xx/timeouts through every retry) or ErrOutcomeUnknown (unsafe calls:
// no answer after the request was written, or a 502/504, never retried).
func (t *transport) do(ctx context.Context, c call) (reply, error) {
	cfg := t.cfg
	start := cfg.Now()
	refreshed := false
	var lastErr error
	for attempt := 1; ; attempt++ {
		if c.limit != nil {
			if err := c.limit.wait(ctx); err != nil {
				return reply{}, fmt.Errorf("nowcerts %s: rate limit wait: %w", c.op, err)
			}
		}
		token := ""
		if c.tokens != nil {
			var err error
			if token, err = c.tokens.Token(ctx); err != nil {
				return reply{}, fmt.Errorf("nowcerts %s: %w", c.op, err)
			}
		}
		rep, err := t.once(ctx, c, token)
		var retryAfter time.Duration
		switch {
		case err != nil:
			if c.unsafe && !notSent(err) {
				return reply{}, fmt.Errorf("%w: %s: no answer after the request was sent: %w", ErrOutcomeUnknown, c.op, err)
			}
			if ctx.Err() != nil {
				return reply{}, fmt.Errorf("nowcerts %s: %w", c.op, err)
			}
			lastErr = err
		case rep.status >= 200 && rep.status < 300:
			return rep, nil
		case rep.status == http.StatusUnauthorized && c.tokens != nil:
			if refreshed {
				return reply{}, fmt.Errorf("%w: %s: token refused twice (HTTP 401)", ErrAuth, c.op)
			}
			refreshed = true
			cfg.Logger.WarnContext(ctx, "nowcerts answered 401; refreshing the token once", "op", c.op)
			if _, err := c.tokens.Refresh(ctx, token); err != nil {
				return reply{}, fmt.Errorf("nowcerts %s: refresh after 401: %w", c.op, err)
			}
			attempt-- // the retry after a refresh is not a failure attempt
			continue
		case c.unsafe && gatewayUncertain(rep.status):
			// A gateway answered for NowCerts: it may have handed the request
			// over and lost the answer. Repeating it could send twice.
			return reply{}, fmt.Errorf("%w: %s: HTTP %d from a gateway: NowCerts may have carried it out: %s",
				ErrOutcomeUnknown, c.op, rep.status, snippet(rep.body))
		case rep.status == http.StatusTooManyRequests || rep.status >= 500:
			lastErr = fmt.Errorf("HTTP %d: %s", rep.status, snippet(rep.body))
			retryAfter = parseRetryAfter(rep.header.Get("Retry-After"), cfg.Now())
		default:
			msg := answerMessage(rep.body)
			return reply{}, &RejectedError{Op: c.op, HTTPStatus: rep.status, Message: msg, Answer: &Answer{Message: msg, Raw: rep.body}}
		}

		if attempt >= cfg.Retry.MaxAttempts {
			return reply{}, fmt.Errorf("%w: %s: %d attempts: %w", ErrUnavailable, c.op, attempt, lastErr)
		}
		d := backoff(cfg.Retry, attempt, cfg.Rand)
		if retryAfter > d {
			d = retryAfter
		}
		if cfg.Now().Add(d).Sub(start) > cfg.Retry.MaxElapsed {
			return reply{}, fmt.Errorf("%w: %s: retry budget of %s spent after %d attempts: %w", ErrUnavailable, c.op, cfg.Retry.MaxElapsed, attempt, lastErr)
		}
		cfg.Logger.WarnContext(ctx, "nowcerts call failed; retrying", "op", c.op, "attempt", attempt, "delay", d.String(), "error", lastErr.Error())
		if err := cfg.Sleep(ctx, d); err != nil {
			return reply{}, fmt.Errorf("nowcerts %s: %w (last failure: %w)", c.op, err, lastErr)
		}
	}
}

// once sends one attempt and reads its answer.
func (t *transport) once(ctx context.Context, c call, token string) (reply, error) {
	cfg := t.cfg
	actx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	u := cfg.BaseURL + c.path
	if c.rawQuery != "" {
		u += "?" + c.rawQuery
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(actx, c.method, u, body)
	if err != nil {
		return reply{}, &dialError{fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Accept", "application/json")
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	began := cfg.Now()
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		cfg.Metrics.Duration(obs.MetricNowCertsLatency, cfg.Now().Sub(began), obs.Dims{"Operation": c.op})
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	cfg.Metrics.Duration(obs.MetricNowCertsLatency, cfg.Now().Sub(began), obs.Dims{"Operation": c.op})
	if err != nil {
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return reply{status: resp.StatusCode, header: resp.Header}, nil
		}
		return reply{}, fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// gatewayUncertain reports the answers that do not say whether the request
// was carried out: 504 Gateway Timeout (the gateway stopped waiting for
// NowCerts, which may still finish) and 502 Bad Gateway (the connection to
// NowCerts failed, possibly after the request was handed over). 429, 500, 503
// and the other 5xx are NowCerts (or its front end) refusing the request:
// retried. Only calls that are not idempotent (unsafe) treat these as
// unknown; reads and Approve retry them.
func gatewayUncertain(status int) bool {
	return status == http.StatusGatewayTimeout || status == http.StatusBadGateway
}

// dialError marks a failure before anything was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// notSent reports whether err proves the request never left: it could not be
// built, or no connection was made (dial or DNS failure). Anything else — a
// timeout, a reset, a lost connection — may have happened after NowCerts got it.
// (Go's transport already retries, by itself, requests it knows it never wrote
// on a reused connection.)
func notSent(err error) bool {
	var de *dialError
	if errors.As(err, &de) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return false
}

// backoff is the full-jitter delay before attempt n+1 (n ≥ 1).
func backoff(r Retry, n int, rnd func() float64) time.Duration {
	ceil := r.BaseDelay
	for i := 1; i < n && ceil < r.MaxDelay; i++ {
		ceil *= 2
	}
	if ceil > r.MaxDelay {
		ceil = r.MaxDelay
	}
	return time.Duration(rnd() * float64(ceil))
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// answerMessage finds a human message in an error body: "message", "Message",
// "error_description", "error" (case-insensitive), else the body's start.
func answerMessage(b []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) == nil {
		for _, k := range []string{"message", "error_description", "error", "exceptionmessage"} {
			for key, v := range m {
				if strings.EqualFold(key, k) {
					var s string
					if json.Unmarshal(v, &s) == nil && s != "" {
						return s
					}
				}
			}
		}
	}
	return snippet(b)
}

// snippet is the first bytes of b, for error messages.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
