package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// sendSpec is one send to make through the exactly-once claim.
type sendSpec struct {
	rec store.Send
	req nowcerts.SendRequest
	// policyGuard: claim only if this policy is not reported cancelled.
	policyGuard    string
	reclaimUnknown bool
	// automatic: straight from a webhook (end-to-end latency is measured).
	automatic bool
	// holdOnPending: a "pending approval" refusal becomes a hold (the agency
	// holds pending certificates) instead of a permanent failure.
	holdOnPending bool
	// staff: an approval. It may take over a HELD or any FAILED record, and
	// its own failures stay claimable (staff may approve again).
	staff bool
	// resend: an explicit resend (its own record). Like any send it only
	// re-claims a retryable FAILED record, but it may be a hold's.
	resend bool
	// latest, when set, refuses the claim unless rec.Revision is the newest
	// revision recorded for the certificate and holder.
	latest *store.RevisionKey
}

// sendResult is what one send did.
type sendResult struct {
	ID     string
	Status string // SENT, FAILED, UNKNOWN, DUPLICATE
	// Existing is the status of the record a DUPLICATE found.
	Existing string
	Message  string
	// PolicyCancelled: the claim was refused because the policy is cancelled.
	PolicyCancelled bool
	// PendingApproval: NowCerts refused the send as pending approval (and
	// holdOnPending was set): the caller holds it.
	PendingApproval bool
	// Newer is the revision that superseded this one (Status SUPERSEDED).
	Newer store.RevisionMark
	// Retry is set when the job should be retried (NowCerts unavailable, store
	// errors; the claim has been released), and when the outcome could not be
	// recorded (the claim stays SENDING: the redelivery after its lease marks
	// it UNKNOWN and never sends again).
	Retry error
	// Err is why the send did not happen or its outcome is unknown (NowCerts'
	// refusal, ErrOutcomeUnknown, ...), whether or not the job is retried.
	Err error
}

// failure is the error to report for a send that did not complete.
func (r sendResult) failure() error {
	switch {
	case r.Retry != nil:
		return r.Retry
	case r.Err != nil:
		return r.Err
	}
	return errors.New(r.Message)
}

// completionTries bounds the retries of the completion write.
const completionTries = 4

// send claims rec, calls SendCertificate and records the outcome. Happy path:
// one conditional write (claim), the call, one conditional write (completion).
func (s *Service) send(ctx context.Context, spec sendSpec) sendResult {
	log := s.log.With("sendId", spec.rec.ID, "certificateId", spec.rec.CertificateID, "holderId", spec.rec.HolderID,
		"eventId", spec.rec.EventID, "requestId", spec.rec.RequestID)
	reclaim := spec.reclaimUnknown
	lease := s.leaseFor(ctx)
	var rec store.Send
	for try := 0; ; try++ {
		owner := newToken()
		var err error
		rec, err = s.st.ClaimSend(ctx, store.Claim{Send: spec.rec, Owner: owner, Lease: lease, ReclaimUnknown: reclaim, ReclaimFailed: spec.staff, ReclaimHeld: spec.staff, Staff: spec.staff || spec.resend, PolicyNumber: spec.policyGuard, Latest: spec.latest})
		if err == nil {
			break
		}
		var ce *store.ClaimConflictError
		if !errors.As(err, &ce) {
			return sendResult{ID: spec.rec.ID, Status: StatusFailed, Message: err.Error(), Retry: err}
		}
		if ce.PolicyCancelled {
			return sendResult{ID: spec.rec.ID, PolicyCancelled: true}
		}
		if ce.Superseded {
			s.metrics.Count(obs.MetricSendSuperseded, 1, nil)
			log.Info("not sent: superseded by a newer revision of the certificate", "revision", spec.rec.Revision,
				"newerRevision", ce.Newer.Revision, "newerSendId", ce.Newer.SendID)
			return sendResult{ID: spec.rec.ID, Status: OutcomeSuperseded, Newer: ce.Newer,
				Message: "superseded by revision " + ce.Newer.Revision + " (send " + ce.Newer.SendID + ")"}
		}
		if !ce.Found {
			// The record vanished between the failed write and the read: try again.
			if try < 2 {
				continue
			}
			return sendResult{ID: spec.rec.ID, Status: StatusFailed, Message: err.Error(), Retry: err}
		}
		ex := ce.Existing
		if ex.Status == store.SendSending && ex.LeaseUntil < s.now().UnixMilli() {
			// The attempt that claimed it is presumed dead between SendCertificate
			// and completion: its outcome is unknown.
			switch merr := s.st.MarkSendUnknown(ctx, ex.ID, ex.Owner, "claim lease expired before the send was completed"); {
			case merr == nil:
				s.metrics.Count(obs.MetricSendUnknown, 1, nil)
				log.Warn("send outcome unknown: claim lease expired", "previousRequestId", ex.RequestID, "attempts", ex.Attempts)
				ex.Status = store.SendUnknown
				s.enqueueTimeline(ctx, ex, "unknown", "the attempt stopped before its outcome was recorded; review before resending", s.now())
			case errors.Is(merr, store.ErrConflict):
				// Completed or taken over meanwhile: look again.
				if try < 2 {
					continue
				}
			default:
				return sendResult{ID: ex.ID, Status: StatusFailed, Message: merr.Error(), Retry: merr}
			}
			if spec.reclaimUnknown && try < 2 {
				reclaim = true
				continue
			}
		}
		s.metrics.Count(obs.MetricDuplicateSuppressed, 1, nil)
		log.Info("duplicate send suppressed", "existingStatus", ex.Status, "attempts", ex.Attempts)
		msg := "already " + strings.ToLower(ex.Status)
		if ex.Status == store.SendSent && !ex.SentAt.IsZero() {
			msg += " at " + ex.SentAt.UTC().Format(time.RFC3339)
		}
		return sendResult{ID: ex.ID, Status: OutcomeDuplicate, Existing: ex.Status, Message: msg}
	}

	var ans nowcerts.Answer
	var err error
	if !nowcerts.ValidGUID(spec.req.CertificateID) {
		// NowCerts only sends its own certificates: retrying cannot help.
		err = fmt.Errorf("%w: certificate id %q is not a NowCerts certificate id (a GUID)", nowcerts.ErrRejected, spec.req.CertificateID)
	} else {
		ans, err = s.nc.SendCertificate(ctx, spec.req)
	}

	var comp store.Completion
	res := sendResult{ID: rec.ID, Err: err}
	switch {
	case err == nil:
		comp = store.Completion{Status: store.SendSent, Answer: answerText(ans)}
		res.Status, res.Message = StatusSent, answerText(ans)
	case errors.Is(err, nowcerts.ErrOutcomeUnknown):
		comp = store.Completion{Status: store.SendUnknown, Error: err.Error()}
		res.Status, res.Message = StatusUnknown, err.Error()
	case errors.Is(err, nowcerts.ErrRejected) && spec.holdOnPending && mentionsPendingApproval(rejectionMessage(err)):
		// NowCerts refuses a certificate pending approval (no documented field
		// tells beforehand): the caller holds it (the record becomes HELD).
		msg := rejectionMessage(err)
		comp = store.Completion{Status: store.SendFailed, Answer: msg, Error: err.Error()}
		res.Status, res.Message, res.PendingApproval = StatusFailed, msg, true
	case errors.Is(err, nowcerts.ErrRejected):
		msg := rejectionMessage(err)
		comp = store.Completion{Status: store.SendFailed, Answer: msg, Error: err.Error()}
		res.Status, res.Message = StatusFailed, msg
	default:
		comp = store.Completion{Status: store.SendFailed, Error: err.Error(), Retryable: true}
		res.Status, res.Message, res.Retry = StatusFailed, err.Error(), fmt.Errorf("send certificate %s: %w", rec.CertificateID, err)
	}
	comp.RequestID = rec.RequestID
	if spec.staff && comp.Status == store.SendFailed {
		comp.Retryable = true
	}
	switch done, cerr := s.complete(ctx, rec.ID, rec.Owner, comp); {
	case cerr == nil:
		rec.Attempts = done.Attempts
	case errors.Is(cerr, store.ErrConflict):
		// Another attempt owns the record now (it expired and was taken
		// over): that attempt records its own outcome.
		log.Error("send completion not recorded: the claim was taken over", "status", comp.Status, errAttr(cerr))
	case spec.automatic:
		// The record stays SENDING. Acknowledging the job would leave it so
		// for good, unseen: the job fails, and its redelivery (after the
		// visibility timeout, longer than the lease) finds the lease expired,
		// marks the record UNKNOWN with SendUnknown, and never sends again.
		log.Error("send completion not recorded: failing the job so that its redelivery marks the send unknown",
			"status", comp.Status, errAttr(cerr))
		res.Retry = errors.Join(res.Retry, fmt.Errorf("record the outcome (%s) of send %s: %w", comp.Status, rec.ID, cerr))
	default:
		// A staff request: no redelivery will come to mark it. The record
		// reads UNKNOWN once its lease runs out; count it now for the alarm.
		if comp.Status != store.SendUnknown { // counted below
			s.metrics.Count(obs.MetricSendUnknown, 1, nil)
		}
		log.Error("send completion not recorded: the send reads UNKNOWN once its claim expires", "status", comp.Status, errAttr(cerr))
	}
	now := s.now()
	rec.Status, rec.Answer, rec.Error, rec.UpdatedAt = comp.Status, comp.Answer, comp.Error, now
	switch res.Status {
	case StatusSent:
		rec.SentAt = now
		s.metrics.Count(obs.MetricCertificatesSent, 1, nil)
		if spec.automatic && !rec.ReceivedAt.IsZero() {
			s.metrics.Duration(obs.MetricEndToEndLatency, now.Sub(rec.ReceivedAt), nil)
		}
		log.Info("certificate sent", "channel", rec.Channel, "holderEmail", obs.MaskEmail(rec.HolderEmail),
			"approvedBy", rec.ApprovedBy, "resendOf", rec.ResendOf, "answer", obs.MaskEmails(res.Message))
		s.enqueueTimeline(ctx, rec, "sent", sentDetail(rec), now)
	case StatusUnknown:
		s.metrics.Count(obs.MetricSendUnknown, 1, nil)
		log.Warn("send outcome unknown", errAttr(err))
		s.enqueueTimeline(ctx, rec, "unknown", "NowCerts did not answer; review before resending", now)
	case StatusFailed:
		if res.PendingApproval {
			log.Info("NowCerts says the certificate is pending approval: holding it", "answer", obs.MaskEmails(res.Message))
			break
		}
		s.metrics.Count(obs.MetricSendFailed, 1, nil)
		lvl := slog.LevelError
		if comp.Retryable {
			lvl = slog.LevelWarn
		}
		log.Log(ctx, lvl, "send failed", "retryable", comp.Retryable, "attempts", rec.Attempts, errAttr(err))
		// A note per permanent failure, and one for the first of a run of retries.
		if !comp.Retryable || rec.Attempts <= 1 {
			s.enqueueTimeline(ctx, rec, "failed", res.Message, now)
		}
	}
	return res
}

// complete writes the completion, retrying transient store errors on a context
// that outlives a cancelled invocation (the call to NowCerts already happened).
// It returns the record as completed.
func (s *Service) complete(ctx context.Context, id, owner string, c store.Completion) (store.Send, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var err error
	for i := range completionTries {
		var rec store.Send
		if rec, err = s.st.CompleteSendRecord(ctx, id, owner, c); err == nil || errors.Is(err, store.ErrConflict) {
			return rec, err
		}
		select {
		case <-ctx.Done():
			return store.Send{}, err
		case <-time.After(time.Duration(50<<i) * time.Millisecond):
		}
	}
	return store.Send{}, err
}

func answerText(a nowcerts.Answer) string {
	if a.Message != "" {
		return a.Message
	}
	if len(a.Raw) > 0 {
		return string(a.Raw)
	}
	return fmt.Sprintf("status %d", a.Status)
}

// rejectionMessage is NowCerts' own words for a rejection.
func rejectionMessage(err error) string {
	var re *nowcerts.RejectedError
	if errors.As(err, &re) && re.Message != "" {
		return re.Message
	}
	return err.Error()
}

func sentDetail(r store.Send) string {
	d := "sent by " + r.Channel
	if r.ApprovedBy != "" {
		d += ", approved by " + r.ApprovedBy
	}
	if r.ResendOf != "" {
		d += ", resend requested by " + r.ResendBy
	}
	return d
}

// enqueueTimeline puts a timeline job for the CRM worker. A failure is logged and
// counted, never returned: the send (or hold) it describes already happened.
func (s *Service) enqueueTimeline(ctx context.Context, r store.Send, outcome, detail string, at time.Time) {
	s.enqueueEntry(ctx, jobs.TimelineEntry{
		Outcome: outcome, CertificateID: r.CertificateID, HolderID: r.HolderID, HolderName: r.HolderName,
		Channel: r.Channel, InsuredID: r.InsuredID, InsuredName: r.InsuredName, Source: r.Source,
		Detail: detail, At: at.UTC(), SendID: r.ID,
	}, r.RequestID)
}

func (s *Service) enqueueEntry(ctx context.Context, e jobs.TimelineEntry, requestID string) {
	if s.timeline == nil {
		return
	}
	j := jobs.NewTimeline(e, requestID, s.now())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.timeline.Enqueue(ctx, j); err != nil {
		s.metrics.Count(obs.MetricTimelineEnqueueFailed, 1, nil)
		s.log.Error("timeline job not enqueued", "outcome", e.Outcome, "certificateId", e.CertificateID, "sendId", e.SendID, errAttr(err))
	}
}

// leaseFor is the claim lease for an attempt running under ctx: the default,
// or longer when ctx allows more time (a claim must outlive its attempt).
func (s *Service) leaseFor(ctx context.Context) time.Duration {
	lease := s.lease
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl) + 30*time.Second; d > lease {
			lease = d
		}
	}
	return lease
}

func mentionsPendingApproval(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "pending approval")
}

// errAttr is an error as a log attribute, email addresses masked.
func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.String("err", "")
	}
	return slog.String("err", obs.MaskEmails(err.Error()))
}
