// Package nowcerts is the NowCerts (Momentum AMS) API client: token handling with
// rotating refresh tokens stored in Secrets Manager, SendCertificate, Approve and
// the OData list endpoints.
package nowcerts

import (
	"encoding/json"
	"errors"
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
	// answer came back (timeout or connection lost after the request was written).
	// The certificate may or may not have been sent: never retry blindly.
	ErrOutcomeUnknown = errors.New("nowcerts send outcome unknown")
	// ErrAuth: credentials were refused (password grant failed).
	ErrAuth = errors.New("nowcerts authentication failed")
)
