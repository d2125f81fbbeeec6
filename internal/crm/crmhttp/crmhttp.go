// Package crmhttp is the JSON-over-HTTP exchange the CRM adapters share: encode
// the request body once, send it with a bearer token, read a bounded answer,
// decode a 2xx answer and, when the adapter asks for it, read the credentials
// again and retry once after a 401.
//
// What differs between CRMs stays with each adapter, through Client's hooks:
// where the token comes from (Auth), client-side rate limiting (Before), rate
// headers (Observe) and the classification of error answers (Refused).
package crmhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/coiflow/coiflow/internal/crm"
)

// Client sends JSON API requests. It is safe for concurrent use when its hooks
// are. HTTP, MaxRead and Auth are required.
type Client struct {
	HTTP *http.Client
	// MaxRead is how many bytes of an answer are read at most.
	MaxRead int64
	// Auth returns the bearer token and the base URL a Request's Path is
	// appended to. refresh is false until the call has been answered 401 (with
	// OnUnauthorized set), true from then on. Its error ends the call as it is,
	// so it should be a *crm.Error naming op.
	Auth func(ctx context.Context, op string, refresh bool) (token, base string, err error)
	// Before, when set, runs before every attempt (a client-side rate limiter);
	// its error ends the call, wrapped in a *crm.Error.
	Before func(ctx context.Context) error
	// Observe, when set, sees the header of every answer, before its body is
	// judged (rate-limit and usage headers).
	Observe func(h http.Header)
	// OnUnauthorized, when set, is called on a call's first 401 answer, which is
	// then retried once with Auth's refresh set. When nil a 401 goes to Refused
	// like any other error answer.
	OnUnauthorized func(ctx context.Context, op string)
	// Refused turns an error answer (not 2xx) into the call's error; retry asks
	// for another attempt (e.g. once a 429 has been waited out). attempt counts
	// from 0. When nil the error is crm.StatusError(op, status, "", "").
	Refused func(ctx context.Context, op string, attempt int, a Answer) (retry bool, err error)
}

// Request is one API call.
type Request struct {
	Op     string // names the call in errors, e.g. "hubspot: upsert companies"
	Method string
	Path   string // appended to the base URL from Auth
	In     any    // encoded as the JSON body when not nil
	Out    any    // when not nil, a 2xx answer's non-empty body is decoded into it
}

// Answer is what the CRM answered: the status and header whenever an answer
// came, the body when it could be read.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r and returns the last answer. err is a *crm.Error, or Auth's or
// Refused's error as they returned it: encoding and request-building failures
// are permanent; transport, reading and decoding failures are not.
func (c *Client) Do(ctx context.Context, r Request) (Answer, error) {
	var payload []byte
	if r.In != nil {
		b, err := json.Marshal(r.In)
		if err != nil {
			return Answer{}, &crm.Error{Op: r.Op, Permanent: true, Err: fmt.Errorf("encode request: %w", err)}
		}
		payload = b
	}
	refresh := false
	for attempt := 0; ; attempt++ {
		if c.Before != nil {
			if err := c.Before(ctx); err != nil {
				return Answer{}, &crm.Error{Op: r.Op, Err: err}
			}
		}
		token, base, err := c.Auth(ctx, r.Op, refresh)
		if err != nil {
			return Answer{}, err
		}
		a, err := c.send(ctx, r, base, token, payload)
		if err != nil {
			return a, err
		}
		if a.Status >= 200 && a.Status < 300 {
			if r.Out != nil && len(a.Body) > 0 {
				if err := json.Unmarshal(a.Body, r.Out); err != nil {
					return a, &crm.Error{Op: r.Op, Status: a.Status, Err: fmt.Errorf("decode answer: %w", err)}
				}
			}
			return a, nil
		}
		if a.Status == http.StatusUnauthorized && !refresh && c.OnUnauthorized != nil {
			refresh = true
			c.OnUnauthorized(ctx, r.Op)
			continue
		}
		if c.Refused == nil {
			return a, crm.StatusError(r.Op, a.Status, "", "")
		}
		retry, err := c.Refused(ctx, r.Op, attempt, a)
		if !retry {
			return a, err
		}
	}
}

// send makes one attempt: the request with the bearer token, and the answer
// read up to MaxRead bytes.
func (c *Client) send(ctx context.Context, r Request, base, token string, payload []byte) (Answer, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.Path, body)
	if err != nil {
		return Answer{}, &crm.Error{Op: r.Op, Permanent: true, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Answer{}, &crm.Error{Op: r.Op, Err: err}
	}
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, c.MaxRead))
	resp.Body.Close()
	a := Answer{Status: resp.StatusCode, Header: resp.Header}
	if c.Observe != nil {
		c.Observe(resp.Header)
	}
	if rerr != nil {
		return a, &crm.Error{Op: r.Op, Status: resp.StatusCode, Err: fmt.Errorf("read answer: %w", rerr)}
	}
	a.Body = raw
	return a, nil
}
