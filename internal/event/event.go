// Package event defines coiflow's normalised webhook event and the parsers that
// turn each source's payload (NowCerts, Cowbell) into it.
//
// A parser never guesses silently: it returns a *SyntaxError for bytes that are not
// JSON (the receiver answers 400), ErrUnknownShape wrapped with the reason for JSON
// it cannot read (the receiver quarantines it), and an Event otherwise.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Source names the system that sent a webhook.
type Source string

// The sources coiflow accepts webhooks from.
const (
	SourceNowCerts Source = "nowcerts"
	SourceCowbell  Source = "cowbell"
)

// Valid reports whether s is a known source.
func (s Source) Valid() bool { return s == SourceNowCerts || s == SourceCowbell }

// Kind is the kind of entity an event is about.
type Kind string

// Entity kinds.
const (
	KindMasterCertificate Kind = "master_certificate" // NowCerts MasterCertificate
	KindCertificateHolder Kind = "certificate_holder" // NowCerts CertificateHolder
	KindCertificate       Kind = "certificate"        // Cowbell policy.certificate
	KindQuote             Kind = "quote"
	KindPolicy            Kind = "policy"
	KindAccount           Kind = "account"
	KindDocument          Kind = "document" // Cowbell policy/endorsement/non-renewal documents
	KindInsured           Kind = "insured"
)

// Action is what happened to the entity.
type Action string

// Actions.
const (
	ActionInsert   Action = "insert"
	ActionUpdate   Action = "update"
	ActionDelete   Action = "delete"
	ActionStatus   Action = "status"   // a status change (Cowbell *.status)
	ActionDocument Action = "document" // a document became available
)

// Event is one webhook, normalised. It is what travels on the queues (inside a
// jobs.Job) and what the workers act on.
type Event struct {
	// ID is derived from IdempotencyKey ("evt_" + 32 hex chars), so a redelivery of
	// the same webhook gets the same ID.
	ID string `json:"id"`
	// IdempotencyKey is stable across redeliveries: source, type, entity id and the
	// event's own timestamp (plus document type for Cowbell documents).
	IdempotencyKey string `json:"idempotencyKey"`
	Source         Source `json:"source"`
	// Type is the source's own event name, e.g. "CertificateHolder.Insert" or
	// "policy.certificate".
	Type       string    `json:"type"`
	Action     Action    `json:"action"`
	EntityKind Kind      `json:"entityKind"`
	EntityID   string    `json:"entityId"`
	AgencyID   string    `json:"agencyId,omitempty"`
	OccurredAt time.Time `json:"occurredAt"`
	ReceivedAt time.Time `json:"receivedAt"`

	Certificate *Certificate `json:"certificate,omitempty"`
	Holders     []Holder     `json:"holders,omitempty"`
	Insured     *Party       `json:"insured,omitempty"`
	Customer    *Person      `json:"customer,omitempty"`
	Agent       *Person      `json:"agent,omitempty"`
	Policy      *Policy      `json:"policy,omitempty"`
	Quote       *Quote       `json:"quote,omitempty"`
	Document    *Document    `json:"document,omitempty"`

	// Raw is the body exactly as received (after base64 decoding).
	Raw json.RawMessage `json:"raw,omitempty"`
}

// Certificate is a certificate of insurance as far as the event tells.
type Certificate struct {
	ID          string `json:"id"`             // NowCerts master certificate databaseId, or Cowbell's id
	Name        string `json:"name,omitempty"` // e.g. "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25)"
	InsuredID   string `json:"insuredId,omitempty"`
	PolicyID    string `json:"policyId,omitempty"`
	PolicyNo    string `json:"policyNumber,omitempty"`
	Revision    string `json:"revision,omitempty"` // change date or content hash; part of the send key
	Description string `json:"description,omitempty"`
	// Requested endorsements / wording: the E&O danger zone that rules hold for review.
	AdditionalInsured   bool   `json:"additionalInsured,omitempty"`
	WaiverOfSubrogation bool   `json:"waiverOfSubrogation,omitempty"`
	SpecialWording      bool   `json:"specialWording,omitempty"`
	PendingApproval     bool   `json:"pendingApproval,omitempty"`
	DocumentURL         string `json:"-"` // pre-signed, time-limited: never serialised or logged
}

// Holder is a certificate holder: who receives the certificate.
type Holder struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Email     string `json:"email,omitempty"`
	Fax       string `json:"fax,omitempty"`
	Phone     string `json:"phone,omitempty"`
	Address   string `json:"address,omitempty"`
	ChangedAt string `json:"changedAt,omitempty"`
}

// Party is an insured / account (a company in the CRM).
type Party struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Email  string `json:"email,omitempty"`
	Phone  string `json:"phone,omitempty"`
	Status string `json:"status,omitempty"` // Cowbell account status, e.g. "ACTIVE POLICY"
}

// Person is a contact: a customer or an agent.
type Person struct {
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone,omitempty"`
}

// Policy is a policy as reported by the event.
type Policy struct {
	ID            string    `json:"id,omitempty"`
	Number        string    `json:"number,omitempty"`
	Status        string    `json:"status,omitempty"` // e.g. ISSUED, CANCELLED
	EffectiveDate time.Time `json:"effectiveDate,omitzero"`
	EndDate       time.Time `json:"endDate,omitzero"`
	ProductType   string    `json:"productType,omitempty"`
}

// Quote is a quote as reported by the event.
type Quote struct {
	ID     string `json:"id,omitempty"`
	Number string `json:"number,omitempty"`
	Status string `json:"status,omitempty"`
}

// Document is a document that became available (Cowbell).
type Document struct {
	Type   string `json:"type,omitempty"` // e.g. Non_Renewal, policy, certificate, endorsement
	Reason string `json:"reason,omitempty"`
	// URL is pre-signed and time-limited: never serialised or logged.
	URL string `json:"-"`
}

// ErrUnknownShape marks valid JSON that a parser cannot read as an event. It is
// always wrapped with the specific reason; test with errors.Is.
var ErrUnknownShape = errors.New("unknown event shape")

// SyntaxError reports a body that is not valid JSON, with where and why.
type SyntaxError struct {
	Offset int64  // byte offset where decoding failed
	Msg    string // e.g. "unexpected end of JSON input"
	// Line and Column (1-based, column in characters) locate the offending
	// character; zero when unknown.
	Line, Column int
}

func (e *SyntaxError) Error() string {
	at := "malformed JSON at byte " + itoa(e.Offset)
	if e.Line > 0 {
		at += " (line " + itoa(int64(e.Line)) + ", column " + itoa(int64(e.Column)) + ")"
	}
	return at + ": " + e.Msg
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// IDFor derives the event ID from an idempotency key.
func IDFor(idempotencyKey string) string {
	sum := sha256.Sum256([]byte(idempotencyKey))
	return "evt_" + hex.EncodeToString(sum[:16])
}

// Key joins idempotency-key parts with "|", lower-casing GUID-like parts is the
// caller's job (NowCerts ids compare case-insensitively).
func Key(parts ...string) string { return strings.Join(parts, "|") }
