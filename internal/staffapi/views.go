package staffapi

import (
	"fmt"
	"time"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sending"
)

// The JSON shapes of the API. They are the API's contract (the page and the
// exports read the same shapes), kept apart from the pipeline's Go types so a
// field rename there does not silently change the API. Times are RFC3339 (UTC,
// fractional seconds when present); an unset time is omitted.

// HoldView is a hold as the API shows it.
type HoldView struct {
	ID            string   `json:"id"`
	Status        string   `json:"status"`
	Reasons       []string `json:"reasons"`
	CertificateID string   `json:"certificateId"`
	Revision      string   `json:"revision,omitempty"`
	HolderID      string   `json:"holderId,omitempty"`
	HolderName    string   `json:"holderName,omitempty"`
	HolderEmail   string   `json:"holderEmail,omitempty"`
	Fax           string   `json:"fax,omitempty"`
	AgencyID      string   `json:"agencyId,omitempty"`
	InsuredID     string   `json:"insuredId,omitempty"`
	InsuredName   string   `json:"insuredName,omitempty"`
	PolicyNumber  string   `json:"policyNumber,omitempty"`
	Source        string   `json:"source,omitempty"`
	EventID       string   `json:"eventId,omitempty"`
	RequestID     string   `json:"requestId,omitempty"`
	CreatedAt     string   `json:"createdAt,omitempty"`
	DecidedBy     string   `json:"decidedBy,omitempty"`
	DecidedAt     string   `json:"decidedAt,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	LastError     string   `json:"lastError,omitempty"`
	SendIDs       []string `json:"sendIds"`
}

// SendView is a send record as the API shows it.
type SendView struct {
	ID             string        `json:"id"`
	Status         string        `json:"status"`
	CertificateID  string        `json:"certificateId"`
	Revision       string        `json:"revision,omitempty"`
	HolderID       string        `json:"holderId,omitempty"`
	HolderName     string        `json:"holderName,omitempty"`
	HolderEmail    string        `json:"holderEmail,omitempty"`
	Fax            string        `json:"fax,omitempty"`
	Channel        string        `json:"channel,omitempty"`
	AgencyID       string        `json:"agencyId,omitempty"`
	InsuredID      string        `json:"insuredId,omitempty"`
	InsuredName    string        `json:"insuredName,omitempty"`
	PolicyNumber   string        `json:"policyNumber,omitempty"`
	Source         string        `json:"source,omitempty"`
	NowCertsAnswer string        `json:"nowcertsAnswer,omitempty"`
	Error          string        `json:"error,omitempty"`
	EventID        string        `json:"eventId,omitempty"`
	RequestID      string        `json:"requestId,omitempty"`
	HoldID         string        `json:"holdId,omitempty"`
	ApprovedBy     string        `json:"approvedBy,omitempty"`
	ApprovedAt     string        `json:"approvedAt,omitempty"`
	ResendOf       string        `json:"resendOf,omitempty"`
	ResendBy       string        `json:"resendBy,omitempty"`
	ResendReason   string        `json:"resendReason,omitempty"`
	SupersededBy   string        `json:"supersededBy,omitempty"`
	Attempts       int           `json:"attempts"`
	CreatedAt      string        `json:"createdAt,omitempty"`
	SentAt         string        `json:"sentAt,omitempty"`
	UpdatedAt      string        `json:"updatedAt,omitempty"`
	History        []AttemptView `json:"history"`
}

// AttemptView is one completed attempt of a send.
type AttemptView struct {
	RequestID string `json:"requestId,omitempty"`
	Status    string `json:"status"`
	Answer    string `json:"answer,omitempty"`
	Error     string `json:"error,omitempty"`
	At        string `json:"at,omitempty"`
}

// OutcomeView is what an approval or a resend did.
type OutcomeView struct {
	Status  string   `json:"status"` // SENT, FAILED, UNKNOWN, DUPLICATE
	Message string   `json:"message,omitempty"`
	SendIDs []string `json:"sendIds"`
	// Repeat: the request repeated an earlier one (same Idempotency-Key); the
	// outcome is that request's, nothing new was sent.
	Repeat bool `json:"repeat,omitempty"`
}

// HoldList is GET /api/holds.
type HoldList struct {
	Holds []HoldView `json:"holds"`
}

// SendList is GET /api/sends; Next is the cursor of the next page ("" on the last).
type SendList struct {
	Sends []SendView `json:"sends"`
	Next  string     `json:"next,omitempty"`
}

// ApproveResult is POST /api/holds/{id}/approve.
type ApproveResult struct {
	HoldID     string      `json:"holdId"`
	ApprovedBy string      `json:"approvedBy"`
	Outcome    OutcomeView `json:"outcome"`
}

// RejectResult is POST /api/holds/{id}/reject.
type RejectResult struct {
	HoldID     string `json:"holdId"`
	Status     string `json:"status"`
	RejectedBy string `json:"rejectedBy"`
	Reason     string `json:"reason"`
}

// ResendResult is POST /api/sends/{id}/resend.
type ResendResult struct {
	SendID      string      `json:"sendId"`
	RequestedBy string      `json:"requestedBy"`
	Reason      string      `json:"reason"`
	Outcome     OutcomeView `json:"outcome"`
}

// stamp formats t for the API ("" when unset).
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// NewHoldView is the API's view of h.
func NewHoldView(h sending.Hold) HoldView {
	return HoldView{
		ID: h.ID, Status: h.Status, Reasons: nonNil(h.Reasons), CertificateID: h.CertificateID,
		Revision: h.Revision, HolderID: h.HolderID, HolderName: h.HolderName, HolderEmail: h.HolderEmail,
		Fax: h.Fax, AgencyID: h.AgencyID, InsuredID: h.InsuredID, InsuredName: h.InsuredName,
		PolicyNumber: h.PolicyNumber, Source: h.Source, EventID: h.EventID, RequestID: h.RequestID,
		CreatedAt: stamp(h.CreatedAt), DecidedBy: h.DecidedBy, DecidedAt: stamp(h.DecidedAt),
		Reason: h.Reason, LastError: h.LastError, SendIDs: nonNil(h.SendIDs),
	}
}

// NewSendView is the API's view of r.
func NewSendView(r sending.SendRecord) SendView {
	v := SendView{
		ID: r.ID, Status: r.Status, CertificateID: r.CertificateID, Revision: r.Revision,
		HolderID: r.HolderID, HolderName: r.HolderName, HolderEmail: r.HolderEmail, Fax: r.Fax,
		Channel: r.Channel, AgencyID: r.AgencyID, InsuredID: r.InsuredID, InsuredName: r.InsuredName,
		PolicyNumber: r.PolicyNumber, Source: r.Source, NowCertsAnswer: r.NowCertsAnswer, Error: r.Error,
		EventID: r.EventID, RequestID: r.RequestID, HoldID: r.HoldID, ApprovedBy: r.ApprovedBy,
		ApprovedAt: stamp(r.ApprovedAt), ResendOf: r.ResendOf, ResendBy: r.ResendBy,
		ResendReason: r.ResendReason, SupersededBy: r.SupersededBy, Attempts: r.Attempts, CreatedAt: stamp(r.CreatedAt),
		SentAt: stamp(r.SentAt), UpdatedAt: stamp(r.UpdatedAt), History: make([]AttemptView, 0, len(r.History)),
	}
	for _, a := range r.History {
		v.History = append(v.History, AttemptView{
			RequestID: a.RequestID, Status: a.Status, Answer: a.Answer, Error: a.Error, At: stamp(a.At),
		})
	}
	return v
}

// Record is the send record v shows: the inverse of NewSendView, for clients
// that read the API (`coiflow export` writes files from it with
// internal/sendexport, as GET /api/sends/export does from the pipeline's
// records). HolderEmailMasked, which the view leaves out, is derived again.
// A time that is not RFC3339 is an error naming the field.
func (v SendView) Record() (sending.SendRecord, error) {
	r := sending.SendRecord{
		ID: v.ID, Status: v.Status, CertificateID: v.CertificateID, Revision: v.Revision,
		HolderID: v.HolderID, HolderName: v.HolderName, HolderEmail: v.HolderEmail, Fax: v.Fax,
		Channel: v.Channel, AgencyID: v.AgencyID, InsuredID: v.InsuredID, InsuredName: v.InsuredName,
		PolicyNumber: v.PolicyNumber, Source: v.Source, NowCertsAnswer: v.NowCertsAnswer, Error: v.Error,
		EventID: v.EventID, RequestID: v.RequestID, HoldID: v.HoldID, ApprovedBy: v.ApprovedBy,
		ResendOf: v.ResendOf, ResendBy: v.ResendBy, ResendReason: v.ResendReason, SupersededBy: v.SupersededBy,
		Attempts: v.Attempts, HolderEmailMasked: obs.MaskEmail(v.HolderEmail),
	}
	var err error
	for _, t := range []struct {
		name string
		in   string
		out  *time.Time
	}{
		{"approvedAt", v.ApprovedAt, &r.ApprovedAt}, {"createdAt", v.CreatedAt, &r.CreatedAt},
		{"sentAt", v.SentAt, &r.SentAt}, {"updatedAt", v.UpdatedAt, &r.UpdatedAt},
	} {
		if *t.out, err = unstamp(t.in); err != nil {
			return sending.SendRecord{}, fmt.Errorf("send %s: %s: %w", v.ID, t.name, err)
		}
	}
	for i, a := range v.History {
		at, err := unstamp(a.At)
		if err != nil {
			return sending.SendRecord{}, fmt.Errorf("send %s: history[%d].at: %w", v.ID, i, err)
		}
		r.History = append(r.History, sending.Attempt{RequestID: a.RequestID, Status: a.Status, Answer: a.Answer, Error: a.Error, At: at})
	}
	return r, nil
}

// unstamp parses a time of the API (stamp's inverse; "" is the zero time).
func unstamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC3339 time: %q", s)
	}
	return t.UTC(), nil
}

// NewOutcomeView is the API's view of o.
func NewOutcomeView(o sending.Outcome) OutcomeView {
	return OutcomeView{Status: o.Status, Message: o.Message, SendIDs: nonNil(o.SendIDs), Repeat: o.Repeat}
}
