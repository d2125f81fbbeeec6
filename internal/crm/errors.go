package crm

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is a CRM call that failed, classified for the worker: a permanent error
// is recorded and not retried; any other error is retried (SQS redelivery, then
// the DLQ).
type Error struct {
	Op        string // e.g. "hubspot: upsert companies"
	Status    int    // HTTP status; 0 when there was no answer
	Code      string // the CRM's error code or category, e.g. VALIDATION_ERROR, REQUEST_LIMIT_EXCEEDED
	Message   string
	Permanent bool
	// RetryAfter is how long the CRM asked to wait, when it said.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	s := e.Op
	if e.Status != 0 {
		s += fmt.Sprintf(": HTTP %d", e.Status)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ErrMultipleMatches marks an external id that matches several CRM records (the
// CRM wrote nothing). It is permanent: someone has to merge the duplicates.
var ErrMultipleMatches = errors.New("external id matches several records")

// ErrRateLimited marks a request refused for rate or API-usage limits (retryable).
var ErrRateLimited = errors.New("rate limited")

// IsPermanent reports whether err is a CRM error that retrying cannot fix.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// NotApplied reports whether the CRM certainly did not apply the request: it
// answered with a client error (4xx, including 429). Server errors and transport
// failures are ambiguous (the write may have happened).
func NotApplied(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500
}

// PermanentStatus classifies an HTTP error status: request errors (400, 404,
// 405, 409, 410, 413, 415, 422, ...) are permanent; 401/403 (credentials or
// permissions: a configuration problem fixed outside, then redriven from the
// DLQ), 408, 425, 429 and 5xx are retryable.
func PermanentStatus(status int) bool {
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests:
		return false
	case status >= 400 && status < 500:
		return true
	default:
		return false
	}
}

// StatusError builds the Error for an HTTP error answer.
func StatusError(op string, status int, code, msg string) *Error {
	return &Error{Op: op, Status: status, Code: code, Message: msg, Permanent: PermanentStatus(status)}
}
