package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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

// advanced is how an event's certificate revision stands against the
// recorded newest one.
type advanced struct {
	key      *store.RevisionKey // nil: no certificate id, no guard
	revision string             // the event's revision
	current  bool               // the event's revision is the newest
	newest   store.RevisionMark // the newest revision when it is not
	// untimed: the event has no time of its own and changed the revision;
	// only its arrival says it is newer.
	untimed bool
}

// advance records the event's certificate revision as the newest, unless a
// newer one is recorded. When it replaces another revision, every pending hold
// of an older revision is held again at this one — but for the event's own
// recipients (rcpts), whose old holds are only rejected: the event decides
// for them.
func (s *Service) advance(ctx context.Context, ev event.Event, rcpts []recipient, log *slog.Logger) (advanced, error) {
	cert := *ev.Certificate
	adv := advanced{key: revisionKeyOf(cert.ID), revision: revisionOf(cert), current: true}
	if adv.key == nil {
		return adv, nil
	}
	at, weak := eventTime(ev)
	first := SendID(cert.ID, rcpts[0].sendKey(), adv.revision)
	prev, current, err := s.st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: *adv.key, Revision: adv.revision, EventAt: at, Weak: weak, SendID: first})
	if err != nil {
		return advanced{}, err
	}
	if !current {
		adv.current, adv.newest = false, prev
		return adv, nil
	}
	// An untimed revision change is held for review at every handling of
	// that revision (a redelivery, another event of it), not only the first.
	adv.untimed = prev.UntimedChange && prev.Revision == adv.revision
	if prev.Revision != "" && prev.Revision != adv.revision {
		adv.untimed = weak
		log.Info("certificate revised", "revision", adv.revision, "previousRevision", prev.Revision, "untimed", weak)
		s.reholdOlder(ctx, adv, rcpts, log)
	}
	return adv, nil
}

// reread is adv after a newer revision was recorded meanwhile.
func (s *Service) reread(ctx context.Context, adv advanced) (advanced, error) {
	m, err := s.st.GetRevision(ctx, *adv.key)
	if err != nil {
		return advanced{}, err
	}
	adv.current, adv.newest, adv.untimed = m.Revision == adv.revision, m, m.UntimedChange && m.Revision == adv.revision
	return adv, nil
}

// ownedBy reports whether hold h is for one of rcpts: the same send key, or
// a shared email address or fax number (a master-certificate reissue keys its
// recipients by address, a holder event by NowCerts holder id).
func ownedBy(h store.Hold, rcpts []recipient) bool {
	hr := recipientOf(h.HolderID, h.HolderName, h.HolderEmail, h.Fax, nil)
	fd := faxDigits(h.Fax)
	for _, r := range rcpts {
		if r.Key != "" && idKey(r.sendKey()) == idKey(hr.sendKey()) {
			return true
		}
		for _, e := range r.Emails {
			if slices.ContainsFunc(hr.Emails, func(x string) bool { return strings.EqualFold(x, e) }) {
				return true
			}
		}
		if fd != "" && faxDigits(r.Fax) == fd {
			return true
		}
	}
	return false
}

// reholdOlder holds again, at adv's revision, every pending hold of another
// revision of the certificate, but rejects those of rcpts (after a timed
// change: the event decides for them). Best effort: a hold
// left behind cannot be approved (its claim is refused), and its approval
// re-holds it then.
func (s *Service) reholdOlder(ctx context.Context, adv advanced, rcpts []recipient, log *slog.Logger) {
	cursor := ""
	for range 20 { // 20 pages of 500: far beyond one certificate's holders
		page, next, err := s.st.QuerySends(ctx, store.SendFilter{CertificateID: adv.key.Certificate, Limit: 500, Cursor: cursor})
		if err != nil {
			log.Warn("older holds of the certificate not checked", errAttr(err))
			return
		}
		for _, old := range page {
			if old.HoldID == "" || old.Revision == adv.revision || (old.Status != store.SendHeld && old.Status != store.SendFailed) {
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
			// After an untimed change the old hold's reasons are kept: which
			// content is current is not known.
			if ownedBy(h, rcpts) && !adv.untimed {
				what := fmt.Sprintf("superseded: revision %s of the certificate arrived for this holder (event decides again)", adv.revision)
				if err := s.reject(ctx, h.ID, SystemActor, what); err != nil && !errors.Is(err, ErrConflict) {
					log.Warn("older hold not rejected", "holdId", h.ID, errAttr(err))
				} else if err == nil {
					s.metrics.Count(obs.MetricSendSuperseded, 1, nil)
				}
				continue
			}
			if _, err := s.supersede(ctx, h, adv.key, adv.revision, log); err != nil {
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
	what := fmt.Sprintf("superseded: revision %s of the certificate arrived; the holder is decided again at that revision (hold %s)", rev, newHold)
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
	case ex.Status == store.SendFailed && ex.HoldID == "" && (ex.Retryable || mentionsPendingApproval(ex.Answer)):
		// Never sent: a retry, or NowCerts' "pending approval" whose hold
		// lost the race with the newer revision.
	default:
		log.Info("older revision already handled; a newer one exists", "revision", rec.Revision, "status", ex.Status, "newerRevision", newest.Revision)
		return nil
	}
	// The holder may have the newest revision under its other key (a
	// master-certificate reissue keys recipients by address).
	if alt := syntheticKey(r.Emails, r.Fax); alt != "" && alt != r.sendKey() {
		if ax, err := s.st.GetSend(ctx, SendID(rec.CertificateID, alt, newest.Revision)); err == nil && ax.Status != store.SendFailed {
			log.Info("older revision's holder already has the newest", "revision", rec.Revision, "newerRevision", newest.Revision, "status", ax.Status)
			return nil
		}
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
