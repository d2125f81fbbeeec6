// Package nowcerts is the NowCerts (Momentum AMS) API client: token handling with
// rotating refresh tokens stored in Secrets Manager, SendCertificate, Approve and
// the OData list endpoints.
//
// Tokens: TokenSource keeps the token pair in one Secrets Manager secret.
// Refresh tokens rotate, so one refresher at a time (a DynamoDB lease shared by
// all containers) re-reads the secret, refreshes, stores the new pair and
// releases the lease; the others wait and re-read. Reads are fenced by
// version: the refresher records the VersionId PutSecretValue returned, and the
// new token's expiry, on the lease item in the same conditional update that
// releases it. A reader whose AWSCURRENT token will not do (a waiter, or the
// next refresher right after acquiring) compares: if the lease names another
// version whose token expires later than the one read, the read lagged behind
// the write, and that exact version is read (GetSecretValue with VersionId).
// So a stale read does not spend an already-used refresh token (which would
// cost a password grant and could invalidate the pair just issued). A failed
// refresh grant falls back to the password grant.
//
// Retries: 429, 5xx, timeouts and connection failures are retried with
// exponential backoff and jitter (honouring Retry-After), within a bound;
// reads and Approve (idempotent) always. SendCertificate is not idempotent, so
// an answer that does not say whether NowCerts carried it out ends the call
// with ErrOutcomeUnknown instead, never retried: no answer after the request
// was written (timeout, reset), and HTTP 504 and 502 — a gateway answering
// for NowCerts, which may have handed the request over (504: it stopped
// waiting; 502: the connection to NowCerts broke, possibly mid-request).
// SendCertificate still retries 429, 500, 503 and the other 5xx (NowCerts
// refused the request) and connection failures before anything was sent.
//
// Ids: ValidGUID accepts a GUID with dashes (8-4-4-4-12) or without (32 hex
// digits), any letter case — NowCerts' model binder reads both; the client
// sends every id in the dashed form (CanonicalGUID), which OData filters need.
package nowcerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SendRequest is one SendCertificate call.
type SendRequest struct {
	CertificateID string   // master certificate databaseId
	HolderIDs     []string // CertificateHolderList databaseIds
	Emails        []string // joined with ", " on the wire
	Fax           string
	EmailSubject  string
	EmailBody     string
	InsuredID     string
	InsuredName   string
	Description   string
}

// Answer is NowCerts' answer to a write ({"status": 1, "message": ...}).
type Answer struct {
	Status  int             `json:"status"`
	Message string          `json:"message"`
	Raw     json.RawMessage `json:"-"`
}

// Holder is a row of CertificateHolderList.
type Holder struct {
	DatabaseID string    `json:"databaseId"`
	Name       string    `json:"name"`
	Email      string    `json:"eMail"`
	Fax        string    `json:"fax"`
	Phone      string    `json:"phone"`
	CreateDate time.Time `json:"createDate"`
	ChangeDate time.Time `json:"changeDate"`
}

// HistoricalHolder is a row of HistoricalCertificateHolderList: a holder that
// received (or is to receive) a certificate. Its DatabaseID is what Approve takes.
type HistoricalHolder struct {
	DatabaseID            string    `json:"databaseId"`
	Name                  string    `json:"name"`
	Email                 string    `json:"eMail"`
	Fax                   string    `json:"fax"`
	CertificateID         string    `json:"certificateId"`
	CertificateName       string    `json:"certificateName"`
	InsuredDatabaseID     string    `json:"insuredDatabaseId"`
	InsuredEmail          string    `json:"insuredEmail"`
	InsuredCommercialName string    `json:"insuredCommercialName"`
	CreateDate            time.Time `json:"createDate"`
	ChangeDate            time.Time `json:"changeDate"`
}

// Certificate is a row of CertificatesList.
type Certificate struct {
	DatabaseID        string    `json:"databaseId"`
	Name              string    `json:"name"`
	InsuredDatabaseID string    `json:"insuredDatabaseId"`
	InsuredEmail      string    `json:"insuredEmail"`
	CreateDate        time.Time `json:"createDate"`
}

// Errors the client returns, wrapped with detail; test with errors.Is.
var (
	// ErrRejected: NowCerts answered and refused (HTTP 200 with status 0, or a 4xx
	// other than 401/429). Permanent: retrying will not help.
	ErrRejected = errors.New("nowcerts rejected the request")
	// ErrUnavailable: 429/5xx/timeouts persisted through every retry. Retryable later.
	ErrUnavailable = errors.New("nowcerts unavailable")
	// ErrOutcomeUnknown: a SendCertificate request may have reached NowCerts but no
	// answer came back (timeout or connection lost after the request was written,
	// or a gateway's 502/504).
	// The certificate may or may not have been sent: never retry blindly.
	ErrOutcomeUnknown = errors.New("nowcerts send outcome unknown")
	// ErrAuth: credentials were refused (password grant failed).
	ErrAuth = errors.New("nowcerts authentication failed")
)

// RejectedError is NowCerts refusing a request: HTTP 200 with "status": 0, or a
// 4xx other than 401/429. It wraps ErrRejected; Message is NowCerts' own words.
type RejectedError struct {
	Op         string // operation, e.g. "SendCertificate"
	HTTPStatus int    // HTTP status of the answer
	Message    string // NowCerts' message (or the body's first bytes)
	Answer     *Answer
}

func (e *RejectedError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("nowcerts %s: rejected (HTTP %d)", e.Op, e.HTTPStatus)
	}
	return fmt.Sprintf("nowcerts %s: rejected (HTTP %d): %s", e.Op, e.HTTPStatus, e.Message)
}

// Unwrap makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// Query is an OData query on a list endpoint. Zero values mean: Top = the
// client's page size, OrderBy = "databaseId", no filter, Skip 0.
type Query struct {
	Filter  string // e.g. "certificateId eq 95c5..." (GUIDs unquoted)
	OrderBy string // e.g. "changeDate desc"
	Top     int
	Skip    int
}

// Page is one page of a list endpoint. Count is "@odata.count" (the total number
// of matching rows), or -1 when the answer did not carry it.
type Page[T any] struct {
	Items []T
	Count int
}

// The list rows' UnmarshalJSON methods decode the row in place through a
// shadow: a struct embedding the row as a type without the method, whose
// timestamp fields point at the row's own as *flexTime, so they are parsed
// offset-aware and missing or null ones are tolerated. The row is zeroed first,
// so absent keys leave zero values.

// UnmarshalJSON reads a CertificateHolderList row.
func (h *Holder) UnmarshalJSON(b []byte) error {
	type plain Holder
	*h = Holder{}
	return json.Unmarshal(b, &struct {
		*plain
		CreateDate *flexTime `json:"createDate"`
		ChangeDate *flexTime `json:"changeDate"`
	}{(*plain)(h), (*flexTime)(&h.CreateDate), (*flexTime)(&h.ChangeDate)})
}

// UnmarshalJSON reads a HistoricalCertificateHolderList row.
func (h *HistoricalHolder) UnmarshalJSON(b []byte) error {
	type plain HistoricalHolder
	*h = HistoricalHolder{}
	return json.Unmarshal(b, &struct {
		*plain
		CreateDate *flexTime `json:"createDate"`
		ChangeDate *flexTime `json:"changeDate"`
	}{(*plain)(h), (*flexTime)(&h.CreateDate), (*flexTime)(&h.ChangeDate)})
}

// UnmarshalJSON reads a CertificatesList row.
func (c *Certificate) UnmarshalJSON(b []byte) error {
	type plain Certificate
	*c = Certificate{}
	return json.Unmarshal(b, &struct {
		*plain
		CreateDate *flexTime `json:"createDate"`
	}{(*plain)(c), (*flexTime)(&c.CreateDate)})
}

// flexTime parses the timestamps NowCerts returns: RFC 3339 with an offset
// ("2023-10-19T23:27:17.103+04:00"), and tolerates a missing offset (read as
// UTC), null and "".
type flexTime time.Time

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02",
	time.RFC1123,
}

func (t *flexTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = flexTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	v, err := parseTime(s)
	if err != nil {
		return err
	}
	*t = flexTime(v)
	return nil
}

// parseTime parses s with the first layout of timeLayouts that fits.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			return v, nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: not RFC 3339", s)
}
