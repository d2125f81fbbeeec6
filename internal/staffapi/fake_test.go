package staffapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coiflow/coiflow/internal/sending"
)

// fakeSending is an in-memory Sending for unit tests: a few holds and sends,
// the pipeline's state rules for decisions, and a record of what was asked.
type fakeSending struct {
	mu    sync.Mutex
	holds map[string]*sending.Hold
	sends []sending.SendRecord
	// fail, when set, is returned by every method (error mapping tests), with
	// failOutcome from Approve and Resend.
	fail        error
	failOutcome sending.Outcome

	approvals  []call
	rejections []call
	resends    []call
	lastHolds  sending.HoldQuery
	lastSends  sending.SendQuery
	sendQuerys int
}

type call struct{ ID, By, Reason, Key string }

// t0 is the fixture clock.
var t0 = time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC)

func newFake() *fakeSending {
	f := &fakeSending{holds: map[string]*sending.Hold{}}
	for _, h := range []sending.Hold{
		{
			ID: "hld_5f0c2a9e7b3d41c8a6e2", CertificateID: "cert-1001", Revision: "20261121T142500Z", HolderID: "holder-77",
			HolderName: "Acme Property Management", HolderEmail: "coi@acme-pm.example", AgencyID: "agency-1",
			InsuredID: "ins-5", InsuredName: "Bright Plumbing LLC", PolicyNumber: "GL-2026-0042", Source: "nowcerts",
			Reasons: []string{sending.ReasonAdditionalInsured, sending.ReasonWaiver}, Status: sending.HoldPending,
			EventID: "evt-9", RequestID: "req-sqs-1", CreatedAt: t0,
		},
		{
			ID: "hld_0b7e4d2c9a1f38e6b5d4", CertificateID: "cert-1002", HolderID: "holder-78", HolderName: "Old Landlord",
			Reasons: []string{sending.ReasonPolicyCancelled}, Status: sending.HoldRejected, CreatedAt: t0.Add(-48 * time.Hour),
			DecidedBy: "ops@agency.example", DecidedAt: t0.Add(-24 * time.Hour), Reason: "policy cancelled",
		},
	} {
		f.holds[h.ID] = &h
	}
	f.sends = []sending.SendRecord{
		{
			ID: "snd_3c8e1a7f9d2b46e0c5a1", CertificateID: "cert-1001", Revision: "20261120T090000Z", HolderID: "holder-77",
			HolderName: "Acme Property Management", HolderEmail: "coi@acme-pm.example", Channel: "email",
			Status: sending.StatusSent, NowCertsAnswer: `{"status":1,"message":"Sent"}`, EventID: "evt-8",
			RequestID: "req-sqs-0", Attempts: 1, CreatedAt: t0.Add(-29 * time.Hour), SentAt: t0.Add(-29*time.Hour + 2*time.Second),
			UpdatedAt: t0.Add(-29*time.Hour + 2*time.Second), AgencyID: "agency-1", InsuredID: "ins-5",
			InsuredName: "Bright Plumbing LLC", PolicyNumber: "GL-2026-0042", Source: "nowcerts",
			History: []sending.Attempt{{RequestID: "req-sqs-0", Status: sending.StatusSent, Answer: "Sent", At: t0.Add(-29*time.Hour + 2*time.Second)}},
		},
		{
			ID: "snd_9e2d4b6a8c0f13e5a7d9", CertificateID: "cert-1003", HolderID: "holder-80", HolderName: "City of Springfield",
			Fax: "+15551234567", Channel: "fax", Status: sending.StatusUnknown, EventID: "evt-11", RequestID: "req-sqs-4",
			Attempts: 1, CreatedAt: t0.Add(-2 * time.Hour), UpdatedAt: t0.Add(-time.Hour),
		},
	}
	return f
}

func (f *fakeSending) ListHolds(_ context.Context, q sending.HoldQuery) ([]sending.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastHolds = q
	if f.fail != nil {
		return nil, f.fail
	}
	var out []sending.Hold
	for _, h := range f.holds {
		if h.Status == q.Status {
			out = append(out, *h)
		}
	}
	slices.SortFunc(out, func(a, b sending.Hold) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (f *fakeSending) Approve(_ context.Context, holdID, approver string) (sending.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.approvals = append(f.approvals, call{ID: holdID, By: approver})
	if f.fail != nil {
		return f.failOutcome, f.fail
	}
	h, ok := f.holds[holdID]
	if !ok {
		return sending.Outcome{}, fmt.Errorf("hold %s: %w", holdID, sending.ErrNotFound)
	}
	if h.Status != sending.HoldPending {
		return sending.Outcome{}, fmt.Errorf("hold %s is %s: %w", holdID, h.Status, sending.ErrConflict)
	}
	id := "snd_6a1f0e9d8c7b5a4e3d2c"
	h.Status, h.DecidedBy, h.DecidedAt, h.SendIDs = sending.HoldApproved, approver, t0, []string{id}
	f.sends = append(f.sends, sending.SendRecord{ID: id, CertificateID: h.CertificateID, HolderID: h.HolderID,
		Status: sending.StatusSent, ApprovedBy: approver, ApprovedAt: t0, HoldID: h.ID, CreatedAt: t0, SentAt: t0})
	return sending.Outcome{SendIDs: []string{id}, Status: sending.StatusSent, Message: "Sent"}, nil
}

func (f *fakeSending) Reject(_ context.Context, holdID, by, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejections = append(f.rejections, call{ID: holdID, By: by, Reason: reason})
	if f.fail != nil {
		return f.fail
	}
	h, ok := f.holds[holdID]
	if !ok {
		return fmt.Errorf("hold %s: %w", holdID, sending.ErrNotFound)
	}
	if h.Status != sending.HoldPending {
		return fmt.Errorf("hold %s is %s: %w", holdID, h.Status, sending.ErrConflict)
	}
	h.Status, h.DecidedBy, h.DecidedAt, h.Reason = sending.HoldRejected, by, t0, reason
	return nil
}

func (f *fakeSending) Resend(_ context.Context, q sending.ResendRequest) (sending.Outcome, error) {
	sendID, by, reason := q.SendID, q.By, q.Reason
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resends = append(f.resends, call{ID: sendID, By: by, Reason: reason, Key: q.IdempotencyKey})
	if f.fail != nil {
		return f.failOutcome, f.fail
	}
	for _, s := range f.sends {
		if s.ID == sendID {
			if s.Status == sending.StatusSending {
				return sending.Outcome{}, fmt.Errorf("send %s is in flight: %w", sendID, sending.ErrConflict)
			}
			id := "snd_r7d1e0c4b2a9f"
			f.sends = append(f.sends, sending.SendRecord{ID: id, CertificateID: s.CertificateID, HolderID: s.HolderID,
				Status: sending.StatusSent, ResendOf: sendID, ResendBy: by, ResendReason: reason, CreatedAt: t0, SentAt: t0})
			return sending.Outcome{SendIDs: []string{id}, Status: sending.StatusSent, Message: "Sent"}, nil
		}
	}
	return sending.Outcome{}, fmt.Errorf("send %s: %w", sendID, sending.ErrNotFound)
}

func (f *fakeSending) QuerySends(_ context.Context, q sending.SendQuery) (sending.SendPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastSends = q
	f.sendQuerys++
	if f.fail != nil {
		return sending.SendPage{}, f.fail
	}
	// Cursors are "page-N" (N >= 2): the records after (N-1)*Limit.
	pageNo := 1
	if q.Cursor != "" {
		if _, err := fmt.Sscanf(q.Cursor, "page-%d", &pageNo); err != nil || pageNo < 2 || q.Cursor != fmt.Sprintf("page-%d", pageNo) {
			return sending.SendPage{}, fmt.Errorf("cursor: %w", sending.ErrInvalid)
		}
	}
	var out []sending.SendRecord
	for _, s := range f.sends {
		switch {
		case q.CertificateID != "" && s.CertificateID != q.CertificateID,
			q.Holder != "" && s.HolderID != q.Holder && !strings.EqualFold(s.HolderEmail, q.Holder),
			q.Status != "" && s.Status != q.Status,
			!q.From.IsZero() && s.CreatedAt.Before(q.From),
			!q.To.IsZero() && s.CreatedAt.After(q.To):
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b sending.SendRecord) int { return b.CreatedAt.Compare(a.CreatedAt) })
	out = out[min(len(out), (pageNo-1)*q.Limit):]
	page := sending.SendPage{Sends: out}
	if len(out) > q.Limit {
		page.Sends, page.Next = out[:q.Limit], fmt.Sprintf("page-%d", pageNo+1)
	}
	return page, nil
}

func (f *fakeSending) GetSend(_ context.Context, sendID string) (sending.SendRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return sending.SendRecord{}, f.fail
	}
	for _, s := range f.sends {
		if s.ID == sendID {
			return s, nil
		}
	}
	return sending.SendRecord{}, fmt.Errorf("send %s: %w", sendID, sending.ErrNotFound)
}

// fakeSecrets is an in-memory SecretReader holding JSON strings by ARN.
type fakeSecrets struct {
	mu     sync.Mutex
	values map[string]string
	err    error
	reads  int
}

func (s *fakeSecrets) JSON(_ context.Context, arn string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return s.err
	}
	raw, ok := s.values[arn]
	if !ok {
		return errors.New("secret not found")
	}
	return json.Unmarshal([]byte(raw), v)
}
