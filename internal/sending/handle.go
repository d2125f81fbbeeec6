package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// ErrNotSendJob marks a job the send worker cannot act on (a timeline job, or a
// job for another queue). It is permanent: the worker reports it as a failure so
// that it ends in the DLQ for inspection, never silently dropped.
var ErrNotSendJob = errors.New("not a send job")

// Handle processes one send job: it records a Cowbell policy status, or applies
// the rules to a certificate's recipients and holds or sends each. It returns an
// error only when retrying the job can help (NowCerts unavailable, store
// errors) or for ErrNotSendJob; a duplicate, a hold, a rejection by NowCerts
// and an unknown outcome are all successes of the job.
func (s *Service) Handle(ctx context.Context, j jobs.Job) error {
	if j.Kind != jobs.KindEvent && j.Kind != "" {
		return fmt.Errorf("job %s: %w: kind %q", j.ID, ErrNotSendJob, j.Kind)
	}
	if j.Queue != "" && j.Queue != jobs.QueueSend {
		return fmt.Errorf("job %s: %w: queue %q", j.ID, ErrNotSendJob, j.Queue)
	}
	ev := j.Event
	log := s.log.With("requestId", j.RequestID, "eventId", ev.ID, "eventType", ev.Type, "source", string(ev.Source))
	switch {
	case ev.EntityKind == event.KindPolicy && ev.Action == event.ActionStatus:
		return s.recordPolicyStatus(ctx, j)
	case ev.EntityKind == event.KindCertificateHolder && (ev.Action == event.ActionInsert || ev.Action == event.ActionUpdate),
		ev.EntityKind == event.KindCertificate:
		if ev.Certificate == nil || strings.TrimSpace(ev.Certificate.ID) == "" {
			log.Info("no certificate in the event: nothing to send")
			return nil
		}
		return s.handleCertificate(ctx, j, recipientsFromEvent(ev.Holders), false)
	case ev.EntityKind == event.KindMasterCertificate && ev.Action == event.ActionUpdate:
		if ev.Certificate == nil || strings.TrimSpace(ev.Certificate.ID) == "" {
			log.Warn("master certificate update without certificate id: nothing to reissue")
			return nil
		}
		return s.reissue(ctx, j)
	default:
		log.Info("event needs no send", "entityKind", string(ev.EntityKind), "action", string(ev.Action))
		return nil
	}
}

// recordPolicyStatus stores a carrier-reported policy status unless a newer one
// is stored (events arrive out of order).
func (s *Service) recordPolicyStatus(ctx context.Context, j jobs.Job) error {
	ev := j.Event
	log := s.log.With("requestId", j.RequestID, "eventId", ev.ID)
	if ev.Policy == nil || store.NormalisePolicyNumber(ev.Policy.Number) == "" {
		log.Warn("policy status event without policy number: not recorded")
		return nil
	}
	at := ev.OccurredAt
	if at.IsZero() {
		at = ev.ReceivedAt
	}
	err := s.st.PutPolicyStatus(ctx, store.PolicyStatus{Number: ev.Policy.Number, Status: ev.Policy.Status, OccurredAt: at, EventID: ev.ID})
	switch {
	case err == nil:
		log.Info("policy status recorded", "policyNumber", store.NormalisePolicyNumber(ev.Policy.Number), "status", store.NormalisePolicyStatus(ev.Policy.Status))
		return nil
	case errors.Is(err, store.ErrConflict):
		log.Info("policy status older than the stored one: ignored", "policyNumber", store.NormalisePolicyNumber(ev.Policy.Number))
		return nil
	default:
		return err
	}
}

// reissue handles a master-certificate update: the new revision goes to the
// certificate's historical holders per the agency's reissueOnMasterUpdate.
func (s *Service) reissue(ctx context.Context, j jobs.Job) error {
	ev := j.Event
	set, err := s.settingsFor(ctx, ev.AgencyID)
	if err != nil {
		return err
	}
	log := s.log.With("requestId", j.RequestID, "eventId", ev.ID, "certificateId", ev.Certificate.ID)
	if set.ReissueOnMasterUpdate == store.ReissueOff {
		log.Info("master certificate updated: reissue is off for the agency")
		return nil
	}
	rows, err := s.nc.HistoricalHolders(ctx, ev.Certificate.ID)
	if err != nil {
		return fmt.Errorf("historical holders of certificate %s: %w", ev.Certificate.ID, err)
	}
	var mine = rows[:0:0]
	for _, r := range rows {
		if r.CertificateID == "" || strings.EqualFold(r.CertificateID, ev.Certificate.ID) {
			mine = append(mine, r)
		}
	}
	rcpts := recipientsFromHistory(mine)
	if len(rcpts) == 0 {
		log.Info("master certificate updated: no historical holders to reissue to")
		return nil
	}
	log.Info("master certificate updated: reissuing", "holders", len(rcpts), "mode", set.ReissueOnMasterUpdate)
	return s.handleCertificate(ctx, j, rcpts, set.ReissueOnMasterUpdate == store.ReissueHold)
}

// handleCertificate holds or sends the job's certificate to each recipient (a
// hold with reason "no holder" when there is none). Every recipient is tried;
// the job fails if any needs a retry (the others are then duplicates).
func (s *Service) handleCertificate(ctx context.Context, j jobs.Job, rcpts []recipient, heldReissue bool) error {
	set, err := s.settingsFor(ctx, j.Event.AgencyID)
	if err != nil {
		return err
	}
	if len(rcpts) == 0 {
		rcpts = []recipient{{}}
	}
	// The certificate's revision is recorded once for the event, with every
	// recipient of the event as its own (see advance).
	log := s.log.With("requestId", j.RequestID, "eventId", j.Event.ID, "certificateId", j.Event.Certificate.ID)
	adv, err := s.advance(ctx, j.Event, rcpts, log)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rcpts {
		if err := s.handleRecipient(ctx, j, set, r, heldReissue, adv); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// handleRecipient decides one recipient; when a newer revision of the
// certificate is recorded meanwhile, it decides again against it.
func (s *Service) handleRecipient(ctx context.Context, j jobs.Job, set store.Settings, r recipient, heldReissue bool, adv advanced) error {
	for try := 0; ; try++ {
		err := s.decide(ctx, j, set, r, heldReissue, adv)
		if !errors.Is(err, errSuperseded) {
			return err
		}
		if try >= 2 {
			return fmt.Errorf("certificate %s: %w three times in a row", j.Event.Certificate.ID, err)
		}
		if adv, err = s.reread(ctx, adv); err != nil {
			return err
		}
	}
}

func (s *Service) decide(ctx context.Context, j jobs.Job, set store.Settings, r recipient, heldReissue bool, adv advanced) error {
	ev := j.Event
	cert := *ev.Certificate
	facts := Facts{Certificate: cert, HasHolder: r.Key != "" || r.hasRecipient(), HasRecipient: r.hasRecipient(), HeldReissue: heldReissue}
	rec := s.recordFor(j, cert, r)
	policy := store.NormalisePolicyNumber(cert.PolicyNo)
	if policy == "" && ev.Policy != nil {
		policy = store.NormalisePolicyNumber(ev.Policy.Number)
	}
	rec.PolicyNumber = policy
	latest := adv.key
	at, _ := eventTime(ev)
	log := s.log.With("requestId", rec.RequestID, "eventId", rec.EventID, "certificateId", rec.CertificateID, "holderId", rec.HolderID, "sendId", rec.ID)
	if !adv.current {
		return s.stale(ctx, rec, r, adv.newest, latest, at, log)
	}
	reasons := Evaluate(set.Rules, facts)
	// A revision change known only from arrival order: staff look first.
	if len(reasons) > 0 || adv.untimed {
		// Held anyway: read the policy status so the hold lists every reason.
		if policy != "" && set.Rules.HoldCancelledPolicy {
			p, err := s.st.GetPolicyStatus(ctx, policy)
			switch {
			case err == nil:
				facts.PolicyCancelled = p.Status == store.PolicyCancelled
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
			reasons = Evaluate(set.Rules, facts)
		}
		if adv.untimed {
			reasons = append(reasons, ReasonUntimedRevision)
		}
		return s.hold(ctx, rec, r, reasons, at, latest)
	}
	spec := sendSpec{rec: rec, req: s.requestFor(set, rec, r), reclaimUnknown: set.ResendUnknown, automatic: true,
		holdOnPending: set.Rules.HoldPendingApproval, latest: latest}
	if set.Rules.HoldCancelledPolicy {
		spec.policyGuard = policy
	}
	res := s.send(ctx, spec)
	switch {
	case res.Status == OutcomeSuperseded:
		return errSuperseded
	case res.Status == OutcomeDuplicate && res.Existing == store.SendHeld:
		// Held when NowCerts refused it as pending approval: a later event
		// may carry the holder's corrected address.
		_, err := s.refreshHold(ctx, HoldID(rec.CertificateID, r.sendKey(), rec.Revision), rec, at, log)
		return err
	case res.PolicyCancelled:
		facts.PolicyCancelled = true
		return s.hold(ctx, rec, r, Evaluate(set.Rules, facts), at, latest)
	case res.PendingApproval:
		facts.Certificate.PendingApproval = true
		// res.Retry: the refusal was not recorded; the hold then finds the
		// record SENDING and the job must come back (see send).
		return errors.Join(s.hold(ctx, rec, r, Evaluate(set.Rules, facts), at, latest), res.Retry)
	}
	return res.Retry
}

// recordFor fills a send record's fields for recipient r of the job.
func (s *Service) recordFor(j jobs.Job, cert event.Certificate, r recipient) store.Send {
	ev := j.Event
	rev := revisionOf(cert)
	rec := store.Send{
		ID:            SendID(cert.ID, r.sendKey(), rev),
		CertificateID: cert.ID,
		Revision:      rev,
		HolderID:      r.Key,
		HolderName:    r.Name,
		HolderEmail:   strings.Join(r.Emails, ", "),
		Fax:           r.Fax,
		Channel:       channelOf(r.Emails, r.Fax),
		AgencyID:      ev.AgencyID,
		Source:        string(ev.Source),
		RequestID:     j.RequestID,
		EventID:       ev.ID,
		ReceivedAt:    ev.ReceivedAt,
		InsuredID:     cert.InsuredID,
	}
	if r.NowCertsID != "" {
		rec.HolderID = r.NowCertsID
	}
	if ev.Insured != nil {
		if rec.InsuredID == "" {
			rec.InsuredID = ev.Insured.ID
		}
		rec.InsuredName = ev.Insured.Name
	}
	return rec
}

// requestFor builds the SendCertificate request for a record.
func (s *Service) requestFor(set store.Settings, rec store.Send, r recipient) nowcerts.SendRequest {
	req := nowcerts.SendRequest{
		CertificateID: rec.CertificateID,
		Emails:        r.Emails,
		Fax:           r.Fax,
		InsuredName:   rec.InsuredName,
	}
	if nowcerts.ValidGUID(rec.InsuredID) && rec.Source != "cowbell" {
		req.InsuredID = rec.InsuredID
	}
	if r.NowCertsID != "" {
		req.HolderIDs = []string{r.NowCertsID}
	}
	vars := strings.NewReplacer(
		"{holder}", orDefault(rec.HolderName, "Certificate holder"),
		"{insured}", orDefault(rec.InsuredName, "our insured"),
		"{certificate}", rec.CertificateID,
		"{policy}", rec.PolicyNumber,
	)
	if len(r.Emails) > 0 {
		req.EmailSubject = vars.Replace(set.EmailSubject)
		req.EmailBody = vars.Replace(set.EmailBody)
	}
	return req
}

func orDefault(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return v
}

// hold records a hold for rec with reasons, unless one exists for the same send
// key or the send already happened (a redelivery): then it is a duplicate. A
// pending hold takes the recipients of a later event (the holder's address
// corrected in NowCerts keeps the send key): approval sends to them.
func (s *Service) hold(ctx context.Context, rec store.Send, r recipient, reasons []string, at time.Time, latest *store.RevisionKey) error {
	log := s.log.With("requestId", rec.RequestID, "eventId", rec.EventID, "certificateId", rec.CertificateID, "holderId", rec.HolderID)
	h := store.Hold{
		ID: HoldID(rec.CertificateID, r.sendKey(), rec.Revision), SendID: rec.ID,
		CertificateID: rec.CertificateID, Revision: rec.Revision, HolderID: rec.HolderID, HolderName: rec.HolderName,
		HolderEmail: rec.HolderEmail, Fax: rec.Fax, HistoricalIDs: r.HistoricalIDs,
		AgencyID: rec.AgencyID, InsuredID: rec.InsuredID, InsuredName: rec.InsuredName, PolicyNumber: rec.PolicyNumber,
		Source: rec.Source, Reasons: reasons, EventID: rec.EventID, RequestID: rec.RequestID, ReceivedAt: rec.ReceivedAt,
		RecipientsAt: at.UnixMilli(),
	}
	// One transaction: the hold, and the send record marked HELD (only the
	// approval may claim it); refused if the send already happened.
	err := s.st.PutHoldOf(ctx, h, rec, latest)
	var ce *store.ClaimConflictError
	switch {
	case errors.As(err, &ce) && ce.Superseded:
		return errSuperseded
	case errors.As(err, &ce):
		s.metrics.Count(obs.MetricDuplicateSuppressed, 1, nil)
		log.Info("duplicate suppressed: not held", "sendId", rec.ID, "existingStatus", ce.Existing.Status)
		return nil
	case errors.Is(err, store.ErrConflict):
		if updated, err := s.refreshHold(ctx, h.ID, rec, at, log); err != nil || updated {
			return err
		}
		s.metrics.Count(obs.MetricDuplicateSuppressed, 1, nil)
		log.Info("duplicate suppressed: already held", "holdId", h.ID)
		return nil
	case err != nil:
		return err
	}
	s.metrics.Count(obs.MetricHeld, 1, nil)
	log.Info("certificate held", "holdId", h.ID, "reasons", reasons, "holderEmail", obs.MaskEmail(h.HolderEmail))
	s.enqueueEntry(ctx, jobs.TimelineEntry{
		Outcome: "held", CertificateID: h.CertificateID, HolderID: h.HolderID, HolderName: h.HolderName,
		Channel: channelOf(splitEmails(h.HolderEmail), h.Fax), InsuredID: h.InsuredID, InsuredName: h.InsuredName,
		Source: h.Source, Detail: "held: " + strings.Join(reasons, "; "), At: s.now().UTC(), SendID: h.SendID,
	}, h.RequestID)
	return nil
}

// refreshHold gives pending hold id the recipients of rec when they differ
// and come from a later event (at) than its own: the holder's address
// corrected in NowCerts keeps the send key, and approval sends to the hold's
// recipients.
func (s *Service) refreshHold(ctx context.Context, id string, rec store.Send, at time.Time, log *slog.Logger) (bool, error) {
	cur, err := s.st.GetHold(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	if cur.HolderName == rec.HolderName && strings.EqualFold(cur.HolderEmail, rec.HolderEmail) && cur.Fax == rec.Fax {
		return false, nil
	}
	updated, err := s.st.UpdateHoldRecipients(ctx, id, cur.SendID, store.HoldRecipients{
		Name: rec.HolderName, Email: rec.HolderEmail, Fax: rec.Fax, Channel: rec.Channel, At: at})
	if err != nil || !updated {
		return false, err
	}
	log.Info("held certificate's recipients updated from a later event", "holdId", id,
		"holderEmail", obs.MaskEmail(rec.HolderEmail), "fax", rec.Fax != "")
	return true, nil
}

// settingsFor returns an agency's settings, cached for settingsTTL.
func (s *Service) settingsFor(ctx context.Context, agencyID string) (store.Settings, error) {
	if agencyID == "" {
		agencyID = store.DefaultAgency
	}
	now := s.now()
	s.mu.Lock()
	c, ok := s.settings[agencyID]
	s.mu.Unlock()
	if ok && now.Sub(c.fetched) < s.settingsTTL {
		return c.s, nil
	}
	set, err := s.st.GetSettings(ctx, agencyID)
	if err != nil {
		return store.Settings{}, err
	}
	s.mu.Lock()
	s.settings[agencyID] = cachedSettings{s: set, fetched: now}
	s.mu.Unlock()
	return set, nil
}
