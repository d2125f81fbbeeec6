package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// NowCerts' SendCertificate takes a certificate id and sends the certificate
// as it is now, whoever it goes to. So only a certificate's newest revision
// may go out: sending, approving or resending an older revision would deliver
// the newer content under the older record — content that may itself be held
// for approval. The newest revision of each certificate is recorded as events
// are handled (AdvanceRevision, ordered by the events' own times), and every
// hold and claim is conditional on its revision being the newest. Nothing
// decided on an older revision is lost:
//
//   - when a newer revision arrives, each pending hold of an older one is held
//     again at the newer revision (its reasons plus ReasonNewerRevision) and
//     the old hold is rejected by SystemActor, saying so;
//   - an older revision's event that was never acted on (or whose send failed
//     and would be retried) becomes a hold at the newest revision, for review;
//   - one already acted on (sent, held, refused, unknown) is left as it is.

// errSuperseded: a newer revision was recorded while a recipient was being
// decided; the decision is made again against it.
var errSuperseded = errors.New("superseded by a newer revision")

// revisionKeyOf is the revision mark of a certificate (nil without an id:
// nothing can be sent then anyway).
func revisionKeyOf(certificateID string) *store.RevisionKey {
	if certificateID == "" {
		return nil
	}
	return &store.RevisionKey{Certificate: idKey(certificateID)}
}

// eventTime orders events: when the event happened; weak when it carried no
// time and this is when it arrived.
func eventTime(ev event.Event) (at time.Time, weak bool) {
	if ev.OccurredAt.IsZero() {
		return ev.ReceivedAt, true
	}
	return ev.OccurredAt, false
}

// advance records rec's revision as the newest of its certificate and, when
// it replaces another, holds again every pending hold of an older revision.
// current is false when a newer revision was recorded already; newest is the
// newest revision then.
func (s *Service) advance(ctx context.Context, ev event.Event, rec store.Send, key *store.RevisionKey, log *slog.Logger) (newest store.RevisionMark, current bool, err error) {
	if key == nil {
		return store.RevisionMark{}, true, nil
	}
	at, weak := eventTime(ev)
	prev, current, err := s.st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: *key, Revision: rec.Revision, EventAt: at, Weak: weak, SendID: rec.ID})
	if err != nil {
		return store.RevisionMark{}, false, err
	}
	if !current {
		return prev, false, nil
	}
	if prev.Revision != "" && prev.Revision != rec.Revision {
		log.Info("certificate revised", "revision", rec.Revision, "previousRevision", prev.Revision)
		s.reholdOlder(ctx, key, rec, log)
	}
	return store.RevisionMark{RevisionKey: *key, Revision: rec.Revision, SendID: rec.ID}, true, nil
}

// reholdOlder holds again, at rec's revision, every pending hold of another
// revision of rec's certificate — but for rec's own recipient, whose hold is
// only rejected: the event being handled decides for that recipient. Best
// effort: a hold left behind cannot be approved (its claim is refused), and
// its approval re-holds it then.
func (s *Service) reholdOlder(ctx context.Context, key *store.RevisionKey, rec store.Send, log *slog.Logger) {
	cursor := ""
	for range 20 { // 20 pages of 500: far beyond one certificate's holders
		page, next, err := s.st.QuerySends(ctx, store.SendFilter{CertificateID: rec.CertificateID, Limit: 500, Cursor: cursor})
		if err != nil {
			log.Warn("older holds of the certificate not checked", errAttr(err))
			return
		}
		for _, old := range page {
			if old.HoldID == "" || old.Revision == rec.Revision || (old.Status != store.SendHeld && old.Status != store.SendFailed) {
				continue
			}
			h, err := s.st.GetHold(ctx, old.HoldID)
			if err != nil {
				log.Warn("older hold not read", "holdId", old.HoldID, errAttr(err))
				continue
			}
			if h.Status != store.HoldPending {
				continue
			}
			r := recipientOf(h.HolderID, h.HolderName, h.HolderEmail, h.Fax, nil)
			if SendID(h.CertificateID, r.sendKey(), rec.Revision) == rec.ID {
				what := fmt.Sprintf("superseded: revision %s of the certificate arrived for this holder (send %s)", rec.Revision, rec.ID)
				if err := s.reject(ctx, h.ID, SystemActor, what); err != nil && !errors.Is(err, ErrConflict) {
					log.Warn("older hold not rejected", "holdId", h.ID, errAttr(err))
				} else if err == nil {
					s.metrics.Count(obs.MetricSendSuperseded, 1, nil)
				}
				continue
			}
			if _, err := s.supersede(ctx, h, key, rec.Revision, log); err != nil {
				log.Warn("older hold not held again", "holdId", h.ID, errAttr(err))
			}
		}
		if next == "" {
			return
		}
		cursor = next
	}
}

// supersede holds hold h's certificate and recipient again at revision rev
// (or the newest one, if an even newer revision arrives meanwhile) and
// rejects h as SystemActor. It returns what staff are told about it.
func (s *Service) supersede(ctx context.Context, h store.Hold, key *store.RevisionKey, rev string, log *slog.Logger) (string, error) {
	r := recipientOf(h.HolderID, h.HolderName, h.HolderEmail, h.Fax, h.HistoricalIDs)
	reasons := slices.DeleteFunc(slices.Clone(h.Reasons), func(x string) bool { return x == ReasonNewerRevision })
	reasons = append(reasons, ReasonNewerRevision)
	var newHold string
	for try := 0; ; try++ {
		rec := recordFromHold(h, rev, r)
		newHold = HoldID(h.CertificateID, r.sendKey(), rev)
		err := s.hold(ctx, rec, r, reasons, time.UnixMilli(h.RecipientsAt), key)
		if err == nil {
			break
		}
		if !errors.Is(err, errSuperseded) || try >= 2 {
			return "", err
		}
		m, gerr := s.st.GetRevision(ctx, *key)
		if gerr != nil {
			return "", gerr
		}
		rev = m.Revision
	}
	what := fmt.Sprintf("superseded: revision %s of the certificate arrived; held again at that revision as hold %s", rev, newHold)
	switch err := s.reject(ctx, h.ID, SystemActor, what); {
	case err == nil, errors.Is(err, ErrConflict):
	default:
		return "", err
	}
	s.metrics.Count(obs.MetricSendSuperseded, 1, nil)
	log.Info("hold of an older revision held again at the newest", "holdId", h.ID, "newHoldId", newHold, "revision", rev)
	return what, nil
}

// recordFromHold is the send record of hold h's recipient r at revision rev.
func recordFromHold(h store.Hold, rev string, r recipient) store.Send {
	return store.Send{
		ID: SendID(h.CertificateID, r.sendKey(), rev), CertificateID: h.CertificateID, Revision: rev,
		HolderID: h.HolderID, HolderName: h.HolderName, HolderEmail: h.HolderEmail, Fax: h.Fax,
		Channel: channelOf(r.Emails, r.Fax), AgencyID: h.AgencyID, InsuredID: h.InsuredID, InsuredName: h.InsuredName,
		PolicyNumber: h.PolicyNumber, Source: h.Source, RequestID: h.RequestID, EventID: h.EventID, ReceivedAt: h.ReceivedAt,
	}
}

// stale decides a recipient of an event for an older revision than newest:
// left alone if its send record shows it was acted on (an attempt that died
// mid-send is marked UNKNOWN first), else held at the newest revision for
// review.
func (s *Service) stale(ctx context.Context, rec store.Send, r recipient, newest store.RevisionMark, key *store.RevisionKey, at time.Time, log *slog.Logger) error {
	s.metrics.Count(obs.MetricSendSuperseded, 1, nil)
	ex, err := s.st.GetSend(ctx, rec.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	case ex.Status == store.SendSending && ex.LeaseUntil < s.now().UnixMilli():
		if merr := s.st.MarkSendUnknown(ctx, ex.ID, ex.Owner, "claim lease expired before the send was completed"); merr == nil {
			s.metrics.Count(obs.MetricSendUnknown, 1, nil)
			log.Warn("send outcome unknown: claim lease expired", "previousRequestId", ex.RequestID)
			s.enqueueTimeline(ctx, ex, "unknown", "the attempt stopped before its outcome was recorded; review before resending", s.now())
		} else if !errors.Is(merr, store.ErrConflict) {
			return merr
		}
		return nil
	case !(ex.Status == store.SendFailed && ex.Retryable && ex.HoldID == ""):
		log.Info("older revision already handled; a newer one exists", "revision", rec.Revision, "status", ex.Status, "newerRevision", newest.Revision)
		return nil
	}
	log.Info("event for an older revision: held at the newest for review", "revision", rec.Revision, "newerRevision", newest.Revision)
	rec.ID, rec.Revision = SendID(rec.CertificateID, r.sendKey(), newest.Revision), newest.Revision
	return s.hold(ctx, rec, r, []string{ReasonNewerRevision}, at, key)
}

// newerRevision returns the newest revision recorded for key when it is not
// revision (ok false when revision is the newest, or none is recorded).
func (s *Service) newerRevision(ctx context.Context, key *store.RevisionKey, revision string) (store.RevisionMark, bool, error) {
	if key == nil {
		return store.RevisionMark{}, false, nil
	}
	m, err := s.st.GetRevision(ctx, *key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.RevisionMark{}, false, nil
	case err != nil:
		return store.RevisionMark{}, false, err
	}
	return m, m.Revision != revision, nil
}
