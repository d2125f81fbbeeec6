// Package secrets reads JSON secrets from AWS Secrets Manager through a small
// per-ARN cache: a value is fetched at most once per TTL, and concurrent misses
// for one ARN share a single GetSecretValue call.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// GetSecretValueAPI is the part of the Secrets Manager client the cache uses.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// fetchTimeout bounds one shared fetch: it runs detached from the caller that
// started it, so that caller's cancellation does not fail the others waiting.
const fetchTimeout = 10 * time.Second

// Cache caches secret values per ARN for a TTL. It is safe for concurrent use.
// Failed fetches are not cached: the next call tries again.
type Cache struct {
	api GetSecretValueAPI
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	value   string
	fetched time.Time
	// inflight is non-nil while a fetch runs; it is closed when the fetch ends.
	inflight chan struct{}
	err      error // the outcome of the last fetch, read after inflight closes
}

// NewCache returns a cache over api that keeps each value for ttl.
func NewCache(api GetSecretValueAPI, ttl time.Duration) *Cache {
	return &Cache{api: api, ttl: ttl, now: time.Now, entries: map[string]*entry{}}
}

// Value returns the secret's current string value (its SecretString, or its
// SecretBinary as a string when it has no string).
func (c *Cache) Value(ctx context.Context, arn string) (string, error) {
	c.mu.Lock()
	e := c.entries[arn]
	if e == nil {
		e = &entry{}
		c.entries[arn] = e
	}
	if e.inflight == nil && !e.fetched.IsZero() && c.now().Sub(e.fetched) < c.ttl {
		v := e.value
		c.mu.Unlock()
		return v, nil
	}
	wait := e.inflight
	if wait == nil {
		wait = make(chan struct{})
		e.inflight = wait
		go c.fetch(context.WithoutCancel(ctx), arn, e, wait)
	}
	c.mu.Unlock()

	select {
	case <-wait:
	case <-ctx.Done():
		return "", fmt.Errorf("secret %s: %w", arn, ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.err != nil {
		return "", e.err
	}
	return e.value, nil
}

// fetch reads arn into e and then closes done.
func (c *Cache) fetch(ctx context.Context, arn string, e *entry, done chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	v, err := c.get(ctx, arn)

	c.mu.Lock()
	defer c.mu.Unlock()
	e.err = err
	if err == nil {
		e.value, e.fetched = v, c.now()
	}
	e.inflight = nil
	close(done)
}

func (c *Cache) get(ctx context.Context, arn string) (string, error) {
	out, err := c.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("secret %s: get value: %w", arn, err)
	}
	switch {
	case out.SecretString != nil:
		return *out.SecretString, nil
	case out.SecretBinary != nil:
		return string(out.SecretBinary), nil
	}
	return "", fmt.Errorf("secret %s: %w", arn, ErrEmpty)
}

// ErrEmpty is returned for a secret with neither a string nor a binary value.
var ErrEmpty = errors.New("secret has no value")

// JSON decodes the secret's value into v. The error never quotes the value.
func (c *Cache) JSON(ctx context.Context, arn string, v any) error {
	s, err := c.Value(ctx, arn)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("secret %s: not the expected JSON: %w", arn, jsonReason(err))
	}
	return nil
}

// Invalidate drops the cached value of arn, e.g. after writing a new version. A
// fetch already running still answers its waiters but is not kept: the next call
// fetches again.
func (c *Cache) Invalidate(arn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, arn)
}

// jsonReason keeps the kind and position of a decoding error but drops anything
// that could quote the secret.
func jsonReason(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: JSON %s where %s is expected", te.Field, te.Value, te.Type)
	}
	return errors.New("invalid JSON")
}
