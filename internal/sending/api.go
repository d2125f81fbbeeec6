// Package sending is coiflow's send pipeline: it applies the agency's hold rules
// to each certificate job, records holds for staff approval, sends certificates
// through NowCerts exactly once per (certificate, holder, revision), and keeps the
// audit log of every attempt.
//
// The send-worker calls Handle for each SQS job; the staff API calls ListHolds,
// Approve, Reject, Resend, QuerySends and GetSend.
package sending

import (
	"context"
	"errors"
	"time"
)

// Errors the service returns to the staff API; test with errors.Is.
var (
	// ErrNotFound: no hold or send with that id.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the hold was already decided (approved, rejected, or being
	// approved right now), or a send is in a state that forbids the request.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request itself is wrong (bad status filter, bad cursor, ...).
	ErrInvalid = errors.New("invalid request")
)

// Send statuses (SendRecord.Status, SendQuery.Status).
const (
	StatusSending = "SENDING" // claimed; NowCerts call in flight (or the worker died: see UNKNOWN)
	StatusSent    = "SENT"    // NowCerts accepted it
	StatusFailed  = "FAILED"  // NowCerts refused it, or was unavailable (then retried)
	StatusUnknown = "UNKNOWN" // the call may or may not have happened: review before resending
	// StatusHeld: a hold waits for approval (the record exists from the hold on).
	StatusHeld = "HELD"
	// StatusRejected: the hold was rejected; never sent.
	StatusRejected = "REJECTED"
)

// Hold statuses (Hold.Status, HoldQuery.Status).
const (
	HoldPending   = "pending"
	HoldApproving = "approving" // an approval is in progress
	HoldApproved  = "approved"
	HoldRejected  = "rejected"
)

// Outcome statuses (Outcome.Status) besides the send statuses above.
const (
	OutcomeDuplicate = "DUPLICATE" // already sent (or being sent): nothing new happened
	OutcomeHeld      = "HELD"
	// OutcomeSuperseded: a newer revision of the certificate was handled for
	// the holder; NowCerts would send that newer content, so nothing is sent.
	OutcomeSuperseded = "SUPERSEDED"
)

// SystemActor is who decides what coiflow decides by itself (a hold retired
// because a newer revision of its certificate arrived).
const SystemActor = "coiflow"

// SendQuery selects send records. CertificateID queries the certificate's index;
// otherwise From/To (default: the last 7 days) select days. Holder matches a
// holder id or email (case-insensitive); Status one of the send statuses. Limit
// defaults to 50 (max 500); Cursor is the Next of a previous page.
type SendQuery struct {
	CertificateID, Holder string
	From, To              time.Time
	Status                string
	Limit                 int
	Cursor                string
}

// SendPage is one page of send records, newest first; Next is "" on the last page.
type SendPage struct {
	Sends []SendRecord
	Next  string
}

// HoldQuery selects holds by status (pending, approved, rejected; default
// pending), newest first. Limit defaults to 50 (max 500).
type HoldQuery struct {
	Status string
	Limit  int
}

// Hold is a certificate (for one holder) waiting for a staff decision. It is
// never sent before Approve.
type Hold struct {
	ID            string
	CertificateID string
	Revision      string
	HolderID      string
	HolderName    string
	// HolderEmail is the recipient address(es) in clear, for staff eyes (the API is
	// authenticated); HolderEmailMasked is safe for logs.
	HolderEmail       string
	HolderEmailMasked string
	Fax               string
	AgencyID          string
	InsuredID         string
	InsuredName       string
	PolicyNumber      string
	Source            string // nowcerts | cowbell
	Reasons           []string
	Status            string // pending | approving | approved | rejected
	EventID           string
	RequestID         string
	CreatedAt         time.Time
	// DecidedBy/DecidedAt: who approved or rejected, and when; Reason: why rejected.
	DecidedBy string
	DecidedAt time.Time
	Reason    string
	// LastError is set when an approval attempt failed (the hold is pending again).
	LastError string
	// SendIDs are the send records an approval produced.
	SendIDs []string
}

// SendRecord is one send of a certificate to a holder: the claim and its audit
// record (every attempt is in Attempts/History).
type SendRecord struct {
	ID, CertificateID, HolderID, HolderName, HolderEmail, Fax, Channel, Status, NowCertsAnswer, Error, EventID, RequestID, ApprovedBy, ResendOf string
	ApprovedAt, CreatedAt, SentAt                                                                                                               time.Time
	Attempts                                                                                                                                    int

	Revision          string
	HolderEmailMasked string
	AgencyID          string
	InsuredID         string
	InsuredName       string
	PolicyNumber      string
	Source            string
	HoldID            string
	ResendBy          string
	ResendReason      string
	// SupersededBy is the id of a later resend of this send.
	SupersededBy string
	UpdatedAt    time.Time
	History      []Attempt
}

// Attempt is one completed attempt of a send (the record keeps them all).
type Attempt struct {
	RequestID string
	Status    string
	Answer    string
	Error     string
	At        time.Time
}

// Outcome is what an approval or resend did.
type Outcome struct {
	SendIDs []string
	Status  string // SENT, FAILED, UNKNOWN, DUPLICATE
	Message string
	// Repeat: the request repeated an earlier one (a resend of a send resent
	// already, with that request's idempotency key or none) and nothing new
	// was sent; Status is that resend's as it stands.
	Repeat bool
}

// ResendRequest is an explicit resend (Service.Resend).
type ResendRequest struct {
	SendID string // the send to resend
	By     string // who asks: the authenticated principal
	Reason string
	// IdempotencyKey (optional, at most MaxIdempotencyKey bytes) names the
	// request. A send is resent once (to send again, resend the resend); a
	// request for a send resent already is a repeat when it carries the key of
	// the request that resent it (same principal), or no key at all: it gets
	// that resend's outcome and nothing is sent (a resend that failed
	// retryably is retried). With another key it is another request: ErrConflict.
	IdempotencyKey string
}

// ListHolds returns holds in q.Status, newest first.
func (s *Service) ListHolds(ctx context.Context, q HoldQuery) ([]Hold, error) {
	return s.listHolds(ctx, q)
}

// Approve releases a pending hold: NowCerts Approve (with the historical-holder
// ids where known), then SendCertificate through the exactly-once claim, recording
// approver on the send. The hold ends approved; if the send could not be made it
// returns to pending with LastError set. ErrConflict when the hold is not pending.
func (s *Service) Approve(ctx context.Context, holdID, approver string) (Outcome, error) {
	return s.approve(ctx, holdID, approver)
}

// Reject closes a pending hold without sending, recording who and why.
func (s *Service) Reject(ctx context.Context, holdID, by, reason string) error {
	return s.reject(ctx, holdID, by, reason)
}

// Resend sends the certificate of send q.SendID again to the same holder, as a
// new send record linked to the first send (ResendOf; the send's SupersededBy
// names it) recording who asked and why. It is the only way past duplicate
// suppression, and it is idempotent: a send is resent at most once, so
// concurrent requests make one resend, and a repeat returns the first outcome
// (see ResendRequest).
func (s *Service) Resend(ctx context.Context, q ResendRequest) (Outcome, error) {
	return s.resend(ctx, q)
}

// QuerySends returns send records matching q, newest first.
func (s *Service) QuerySends(ctx context.Context, q SendQuery) (SendPage, error) {
	return s.querySends(ctx, q)
}

// GetSend returns one send record.
func (s *Service) GetSend(ctx context.Context, sendID string) (SendRecord, error) {
	return s.getSend(ctx, sendID)
}
