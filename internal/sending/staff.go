package sending

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the staff request being served,
// recorded on the sends, approvals and rejections it causes.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestIDFrom(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		return id
	}
	return "req_" + newToken()
}

// mapStoreErr turns store sentinels into the service's.
func mapStoreErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, store.ErrBadCursor):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}

func (s *Service) listHolds(ctx context.Context, q HoldQuery) ([]Hold, error) {
	st := strings.ToLower(strings.TrimSpace(q.Status))
	if st == "" {
		st = HoldPending
	}
	if st != HoldPending && st != HoldApproved && st != HoldRejected {
		return nil, fmt.Errorf("%w: hold status %q: want pending, approved or rejected", ErrInvalid, q.Status)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	hs, _, err := s.st.ListHolds(ctx, st, limit, "")
	if err != nil {
		return nil, mapStoreErr(err)
	}
	out := make([]Hold, 0, len(hs))
	for _, h := range hs {
		out = append(out, holdView(h))
	}
	return out, nil
}

func holdView(h store.Hold) Hold {
	return Hold{
		ID: h.ID, CertificateID: h.CertificateID, Revision: h.Revision, HolderID: h.HolderID, HolderName: h.HolderName,
		HolderEmail: h.HolderEmail, HolderEmailMasked: obs.MaskEmail(h.HolderEmail), Fax: h.Fax, AgencyID: h.AgencyID,
		InsuredID: h.InsuredID, InsuredName: h.InsuredName, PolicyNumber: h.PolicyNumber, Source: h.Source,
		Reasons: h.Reasons, Status: h.Status, EventID: h.EventID, RequestID: h.RequestID, CreatedAt: h.CreatedAt,
		DecidedBy: h.DecidedBy, DecidedAt: h.DecidedAt, Reason: h.Reason, LastError: h.LastError, SendIDs: h.SendIDs,
	}
}

// recipientOf rebuilds the recipient of a hold or send record.
func recipientOf(holderID, name, emails, fax string, historical []string) recipient {
	r := recipient{Name: name, Emails: splitEmails(emails), Fax: fax, HistoricalIDs: historical}
	if isSyntheticKey(holderID) {
		r.Key = holderID
	} else if holderID != "" {
		r.Key = strings.ToLower(holderID)
		if nowcerts.ValidGUID(holderID) {
			r.NowCertsID = holderID
		}
	}
	return r
}

func (s *Service) approve(ctx context.Context, holdID, approver string) (Outcome, error) {
	if strings.TrimSpace(approver) == "" {
		return Outcome{}, fmt.Errorf("%w: approver is required", ErrInvalid)
	}
	h, err := s.st.GetHold(ctx, holdID)
	if err != nil {
		return Outcome{}, mapStoreErr(err)
	}
	if h.Status != store.HoldPending && h.Status != store.HoldApproving {
		return Outcome{}, fmt.Errorf("%w: hold %s is %s", ErrConflict, holdID, h.Status)
	}
	r := recipientOf(h.HolderID, h.HolderName, h.HolderEmail, h.Fax, h.HistoricalIDs)
	if !r.hasRecipient() {
		return Outcome{}, fmt.Errorf("%w: hold %s has no email or fax to send to: fix the holder in NowCerts (a new event follows) and reject this hold", ErrInvalid, holdID)
	}
	reqID := requestIDFrom(ctx)
	log := s.log.With("requestId", reqID, "holdId", holdID, "certificateId", h.CertificateID, "holderId", h.HolderID, "approver", approver)
	// A hold of a revision that was replaced would send the newer content:
	// it is held again at the newer revision instead (before NowCerts
	// Approve touches anything).
	latest := revisionKeyOf(h.CertificateID)
	if newer, ok, err := s.newerRevision(ctx, latest, h.Revision); err != nil {
		return Outcome{}, err
	} else if ok {
		return Outcome{}, s.outOfDate(ctx, h, latest, newer.Revision, log)
	}
	// The approval lease covers NowCerts Approve and SendCertificate.
	h, err = s.st.BeginApproval(ctx, holdID, approver, 2*s.lease)
	if err != nil {
		return Outcome{}, mapStoreErr(err)
	}
	fail := func(msg string, cause error) (Outcome, error) {
		if _, err := s.st.EndApproval(ctx, holdID, approver, false, nil, msg); err != nil {
			log.Error("hold not returned to pending", errAttr(err))
		}
		return Outcome{Status: StatusFailed, Message: msg}, cause
	}

	ids := h.HistoricalIDs
	if len(ids) == 0 {
		rows, err := s.nc.HistoricalHolders(ctx, h.CertificateID)
		switch {
		case err == nil:
			mine := rows[:0:0]
			for _, row := range rows {
				if row.CertificateID == "" || strings.EqualFold(row.CertificateID, h.CertificateID) {
					mine = append(mine, row)
				}
			}
			ids = matchHistorical(mine, h.HolderID, r.Emails, r.Fax)
		case slices.Contains(h.Reasons, ReasonPendingApproval):
			return fail("historical holders lookup failed: "+err.Error(), fmt.Errorf("approve hold %s: historical holders: %w", holdID, err))
		default:
			log.Warn("historical holders lookup failed: approving without NowCerts Approve", errAttr(err))
		}
	}
	if len(ids) > 0 {
		_, err := s.nc.Approve(ctx, ids)
		if err != nil {
			msg := "NowCerts Approve failed: " + rejectionMessage(err)
			log.Error("NowCerts Approve failed", errAttr(err))
			return fail(msg, fmt.Errorf("approve hold %s: %w", holdID, err))
		}
		log.Info("NowCerts Approve done", "historicalHolders", len(ids))
	} else {
		log.Info("no historical holder ids known: skipping NowCerts Approve")
	}

	set, err := s.settingsFor(ctx, h.AgencyID)
	if err != nil {
		return fail(err.Error(), err)
	}
	now := s.now().UTC()
	rec := store.Send{
		ID: h.SendID, CertificateID: h.CertificateID, Revision: h.Revision, HolderID: h.HolderID, HolderName: h.HolderName,
		HolderEmail: h.HolderEmail, Fax: h.Fax, Channel: channelOf(r.Emails, r.Fax), AgencyID: h.AgencyID,
		InsuredID: h.InsuredID, InsuredName: h.InsuredName, PolicyNumber: h.PolicyNumber, Source: h.Source,
		RequestID: reqID, EventID: h.EventID, ReceivedAt: h.ReceivedAt,
		ApprovedBy: approver, ApprovedAt: now, HoldID: h.ID,
	}
	res := s.send(ctx, sendSpec{rec: rec, req: s.requestFor(set, rec, r), reclaimUnknown: set.ResendUnknown, staff: true, latest: latest})
	out := Outcome{SendIDs: []string{res.ID}, Status: res.Status, Message: res.Message}
	if res.Status == OutcomeSuperseded {
		// A newer revision arrived during the approval.
		if h, err = s.st.EndApproval(ctx, holdID, approver, false, nil, res.Message); err != nil {
			log.Error("hold not returned to pending", errAttr(err))
			return Outcome{}, fmt.Errorf("%w: hold %s: %s", ErrConflict, holdID, res.Message)
		}
		return Outcome{}, s.outOfDate(ctx, h, latest, res.Newer.Revision, log)
	}
	if res.Status == StatusFailed {
		if _, err := s.st.EndApproval(ctx, holdID, approver, false, out.SendIDs, "send failed: "+res.Message); err != nil {
			log.Error("hold not returned to pending", errAttr(err))
		}
		log.Warn("approval not completed: the send failed; the hold is pending again", "sendId", res.ID, errAttr(res.failure()))
		return out, fmt.Errorf("approve hold %s: %w", holdID, res.failure())
	}
	if _, err := s.st.EndApproval(ctx, holdID, approver, true, out.SendIDs, ""); err != nil {
		log.Error("hold not marked approved", errAttr(err))
	}
	s.metrics.Count(obs.MetricApproved, 1, nil)
	log.Info("hold approved", "sendId", res.ID, "status", res.Status)
	s.enqueueEntry(ctx, jobs.TimelineEntry{
		Outcome: "approved", CertificateID: h.CertificateID, HolderID: h.HolderID, HolderName: h.HolderName,
		Channel: rec.Channel, InsuredID: h.InsuredID, InsuredName: h.InsuredName, Source: h.Source,
		Detail: "approved by " + approver, At: now, SendID: res.ID,
	}, reqID)
	return out, nil
}

// outOfDate holds hold h again at revision newer (see supersede) and returns
// the ErrConflict that tells staff why nothing was sent.
func (s *Service) outOfDate(ctx context.Context, h store.Hold, key *store.RevisionKey, newer string, log *slog.Logger) error {
	what, err := s.supersede(ctx, h, key, newer, log)
	if err != nil {
		return fmt.Errorf("hold %s is for an older revision of certificate %s: %w", h.ID, h.CertificateID, err)
	}
	return fmt.Errorf("%w: hold %s is for revision %s of certificate %s, and NowCerts would send the newer content: %s",
		ErrConflict, h.ID, h.Revision, h.CertificateID, what)
}

func (s *Service) reject(ctx context.Context, holdID, by, reason string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: who rejects is required", ErrInvalid)
	}
	h, err := s.st.RejectHold(ctx, holdID, by, reason)
	if err != nil {
		return mapStoreErr(err)
	}
	reqID := requestIDFrom(ctx)
	s.metrics.Count(obs.MetricRejected, 1, nil)
	s.log.Info("hold rejected", "requestId", reqID, "holdId", holdID, "certificateId", h.CertificateID, "holderId", h.HolderID, "by", by, "reason", obs.MaskEmails(reason))
	detail := "rejected by " + by
	if reason != "" {
		detail += ": " + reason
	}
	s.enqueueEntry(ctx, jobs.TimelineEntry{
		Outcome: "rejected", CertificateID: h.CertificateID, HolderID: h.HolderID, HolderName: h.HolderName,
		Channel: channelOf(splitEmails(h.HolderEmail), h.Fax), InsuredID: h.InsuredID, InsuredName: h.InsuredName,
		Source: h.Source, Detail: detail, At: h.DecidedAt, SendID: h.SendID,
	}, reqID)
	return nil
}

func (s *Service) resend(ctx context.Context, q ResendRequest) (Outcome, error) {
	sendID, by, reason := q.SendID, q.By, q.Reason
	if strings.TrimSpace(by) == "" {
		return Outcome{}, fmt.Errorf("%w: who asks for the resend is required", ErrInvalid)
	}
	if len(q.IdempotencyKey) > MaxIdempotencyKey {
		return Outcome{}, fmt.Errorf("%w: idempotency key longer than %d bytes", ErrInvalid, MaxIdempotencyKey)
	}
	orig, err := s.st.GetSend(ctx, sendID)
	if err != nil {
		return Outcome{}, mapStoreErr(err)
	}
	switch orig.EffectiveStatus(s.now()) {
	case store.SendSending:
		return Outcome{}, fmt.Errorf("%w: send %s is being sent right now", ErrConflict, sendID)
	case store.SendHeld:
		return Outcome{}, fmt.Errorf("%w: send %s is held: approve hold %s instead", ErrConflict, sendID, orig.HoldID)
	case store.SendRejected:
		return Outcome{}, fmt.Errorf("%w: send %s was rejected (hold %s)", ErrConflict, sendID, orig.HoldID)
	}
	if orig.HoldID != "" {
		// A failed approval leaves its hold pending and its send FAILED: a
		// resend would bypass the hold, and approving the hold later would
		// send the certificate a second time.
		h, err := s.st.GetHold(ctx, orig.HoldID)
		switch {
		case err == nil && (h.Status == store.HoldPending || h.Status == store.HoldApproving):
			return Outcome{}, fmt.Errorf("%w: send %s belongs to hold %s, which is %s: approve the hold instead", ErrConflict, sendID, orig.HoldID, h.Status)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return Outcome{}, err
		}
	}
	r := recipientOf(orig.HolderID, orig.HolderName, orig.HolderEmail, orig.Fax, nil)
	if !r.hasRecipient() {
		return Outcome{}, fmt.Errorf("%w: send %s has no email or fax", ErrInvalid, sendID)
	}
	// NowCerts sends the certificate as it is now: resending an older
	// revision would send the newer content under this record.
	latest := revisionKeyOf(orig.CertificateID)
	if newer, ok, err := s.newerRevision(ctx, latest, orig.Revision); err != nil {
		return Outcome{}, err
	} else if ok {
		return Outcome{}, fmt.Errorf("%w: send %s is of revision %s of the certificate, but revision %s has arrived since (send %s): "+
			"resend that one if it went out, or decide its hold", ErrConflict, sendID, orig.Revision, newer.Revision, newer.SendID)
	}
	set, err := s.settingsFor(ctx, orig.AgencyID)
	if err != nil {
		return Outcome{}, err
	}
	key := ""
	if q.IdempotencyKey != "" {
		key = idempotencyHash(by, q.IdempotencyKey)
	}
	reqID := requestIDFrom(ctx)
	log := s.log.With("requestId", reqID, "resendOf", orig.ID, "by", by, "idempotencyKey", q.IdempotencyKey != "")

	// A send is resent at most once (to send again, resend the resend): the
	// claim is one conditional write on the original, so concurrent requests
	// make one resend. A request finding the send resent already is a repeat
	// (same key, or no key to tell) and gets that resend's outcome, or (a
	// different key: another request) a conflict.
	newID, repeat := "", false
	for try := 0; newID == ""; try++ {
		if orig.SupersededBy != "" {
			if key != "" && orig.ResendKey != key {
				log.Info("resend refused: the send was resent by another request", "supersededBy", orig.SupersededBy)
				return Outcome{}, fmt.Errorf("%w: send %s was resent already, as %s: to send it again, resend that send", ErrConflict, sendID, orig.SupersededBy)
			}
			newID, repeat = orig.SupersededBy, true
			break
		}
		err := s.st.ClaimResendOf(ctx, orig.ID, ResendID(orig.ID), key, latest, orig.Revision)
		var ce *store.ClaimConflictError
		if errors.As(err, &ce) && ce.Superseded {
			return Outcome{}, fmt.Errorf("%w: send %s is of revision %s of the certificate, but revision %s has arrived since (send %s): "+
				"resend that one if it went out, or decide its hold", ErrConflict, sendID, orig.Revision, ce.Newer.Revision, ce.Newer.SendID)
		}
		if err == nil {
			newID = ResendID(orig.ID)
			break
		}
		if !errors.Is(err, store.ErrConflict) || try >= 2 {
			return Outcome{}, mapStoreErr(err)
		}
		if orig, err = s.st.GetSend(ctx, sendID); err != nil { // resent meanwhile?
			return Outcome{}, mapStoreErr(err)
		}
	}

	rec := orig
	rec.ID = newID
	rec.Status, rec.Owner, rec.LeaseUntil, rec.Attempts, rec.Answer, rec.Error = "", "", 0, 0, "", ""
	rec.History, rec.SentAt, rec.CreatedAt, rec.UpdatedAt, rec.SupersededBy = nil, time.Time{}, time.Time{}, time.Time{}, ""
	rec.ResendKey = ""
	rec.RequestID, rec.ResendOf, rec.ResendBy, rec.ResendReason = reqID, orig.ID, by, reason
	if orig.ResendOf != "" {
		rec.ResendOf = orig.ResendOf // link every resend to the first send
	}
	// A repeat goes through the same claim: it finds the first request's
	// record (and returns its outcome) or, if that attempt failed and may be
	// retried, or never got as far as its record, carries it out.
	res := s.send(ctx, sendSpec{rec: rec, req: s.requestFor(set, rec, r), resend: true, latest: latest})
	if res.Status == OutcomeSuperseded {
		return Outcome{}, fmt.Errorf("%w: resend of %s not made: revision %s of the certificate arrived meanwhile (send %s)", ErrConflict, sendID, res.Newer.Revision, res.Newer.SendID)
	}
	if res.Status == OutcomeDuplicate {
		if res.Existing == store.SendSending {
			return Outcome{}, fmt.Errorf("%w: resend %s of send %s is being sent right now (an earlier request)", ErrConflict, res.ID, sendID)
		}
		log.Info("resend repeated: the earlier request's outcome", "sendId", res.ID, "status", res.Existing)
		return Outcome{SendIDs: []string{res.ID}, Status: res.Existing, Message: res.Message, Repeat: true}, nil
	}
	log.Info("resend requested", "sendId", res.ID, "status", res.Status, "repeat", repeat)
	out := Outcome{SendIDs: []string{res.ID}, Status: res.Status, Message: res.Message}
	if res.Status == StatusFailed {
		return out, fmt.Errorf("resend of %s: %w", sendID, res.failure())
	}
	return out, nil
}

// MaxIdempotencyKey bounds ResendRequest.IdempotencyKey.
const MaxIdempotencyKey = 255

// idempotencyHash is how a request's idempotency key is kept: hashed, and
// scoped to the principal (another principal's key is another request).
func idempotencyHash(by, key string) string {
	sum := sha256.Sum256([]byte(by + "\x00" + key))
	return hex.EncodeToString(sum[:16])
}

// sendStatuses are the statuses QuerySends filters on.
var sendStatuses = []string{StatusSending, StatusSent, StatusFailed, StatusUnknown, StatusHeld, StatusRejected}

// SendStatuses returns the statuses QuerySends filters on.
func SendStatuses() []string { return slices.Clone(sendStatuses) }

func (s *Service) querySends(ctx context.Context, q SendQuery) (SendPage, error) {
	st := strings.ToUpper(strings.TrimSpace(q.Status))
	if st != "" && !slices.Contains(sendStatuses, st) {
		return SendPage{}, fmt.Errorf("%w: send status %q: want one of %s", ErrInvalid, q.Status, strings.Join(sendStatuses, ", "))
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		return SendPage{}, fmt.Errorf("%w: from is after to", ErrInvalid)
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Sub(q.From) > store.MaxQueryDays*24*time.Hour {
		return SendPage{}, fmt.Errorf("%w: at most %d days at a time", ErrInvalid, store.MaxQueryDays)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	recs, next, err := s.st.QuerySends(ctx, store.SendFilter{
		CertificateID: strings.TrimSpace(q.CertificateID), From: q.From, To: q.To,
		Holder: q.Holder, Status: st, Limit: limit, Cursor: q.Cursor,
	})
	if err != nil {
		return SendPage{}, mapStoreErr(err)
	}
	page := SendPage{Sends: make([]SendRecord, 0, len(recs)), Next: next}
	now := s.now()
	for _, r := range recs {
		page.Sends = append(page.Sends, sendView(r, now))
	}
	return page, nil
}

func (s *Service) getSend(ctx context.Context, sendID string) (SendRecord, error) {
	r, err := s.st.GetSend(ctx, sendID)
	if err != nil {
		return SendRecord{}, mapStoreErr(err)
	}
	return sendView(r, s.now()), nil
}

func sendView(r store.Send, now time.Time) SendRecord {
	v := SendRecord{
		ID: r.ID, CertificateID: r.CertificateID, HolderID: r.HolderID, HolderName: r.HolderName, HolderEmail: r.HolderEmail,
		Fax: r.Fax, Channel: r.Channel, Status: r.EffectiveStatus(now), NowCertsAnswer: r.Answer, Error: r.Error,
		EventID: r.EventID, RequestID: r.RequestID, ApprovedBy: r.ApprovedBy, ResendOf: r.ResendOf,
		ApprovedAt: r.ApprovedAt, CreatedAt: r.CreatedAt, SentAt: r.SentAt, Attempts: r.Attempts,
		Revision: r.Revision, HolderEmailMasked: obs.MaskEmail(r.HolderEmail), AgencyID: r.AgencyID,
		InsuredID: r.InsuredID, InsuredName: r.InsuredName, PolicyNumber: r.PolicyNumber, Source: r.Source,
		HoldID: r.HoldID, ResendBy: r.ResendBy, ResendReason: r.ResendReason, SupersededBy: r.SupersededBy, UpdatedAt: r.UpdatedAt,
	}
	for _, a := range r.History {
		v.History = append(v.History, Attempt{RequestID: a.RequestID, Status: a.Status, Answer: a.Answer, Error: a.Error, At: a.At})
	}
	return v
}
