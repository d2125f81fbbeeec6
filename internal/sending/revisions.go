package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// NowCerts' SendCertificate takes a certificate id and sends the certificate
// as it is now. So for each certificate and holder only the newest revision
// may go out: sending, approving or resending an older revision would deliver
// the newer content under the older record — content that may itself be held
// for approval. Each revision is recorded as it is handled (AdvanceRevision,
// ordered by the event's time), every claim is conditional on its revision
// being the newest, and the pending hold of a revision that was replaced is
// retired (rejected by SystemActor, with the reason).

// eventTime orders events: when the event happened, else when it arrived.
func eventTime(ev event.Event) time.Time {
	if ev.OccurredAt.IsZero() {
		return ev.ReceivedAt
	}
	return ev.OccurredAt
}

// revisionKeyOf is the revision mark of a certificate for a holder key (nil
// when there is no holder: nothing can be sent then anyway).
func revisionKeyOf(certificateID, holderKey string) *store.RevisionKey {
	if certificateID == "" || holderKey == "" {
		return nil
	}
	return &store.RevisionKey{Certificate: idKey(certificateID), Holder: idKey(holderKey)}
}

// advance records rec's revision as the newest of its certificate for the
// holder (key) and retires the hold of the revision it replaces. ok is false
// when a newer revision was handled already: rec must be neither held nor
// sent.
func (s *Service) advance(ctx context.Context, ev event.Event, rec store.Send, key *store.RevisionKey, log *slog.Logger) (ok bool, err error) {
	if key == nil {
		return true, nil
	}
	prev, current, err := s.st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: *key, Revision: rec.Revision, EventAt: eventTime(ev), SendID: rec.ID})
	if err != nil {
		return false, err
	}
	if !current {
		s.metrics.Count(obs.MetricSendSuperseded, 1, nil)
		log.Info("not sent: a newer revision of the certificate was handled for this holder", "revision", rec.Revision,
			"newerRevision", prev.Revision, "newerSendId", prev.SendID)
		return false, nil
	}
	if prev.Revision != "" && prev.Revision != rec.Revision && prev.SendID != "" && prev.SendID != rec.ID {
		s.retire(ctx, prev, rec, log)
	}
	return true, nil
}

// retire rejects the pending hold of the send record of a replaced revision,
// if there is one. Best effort: a hold left pending cannot be approved anyway
// (the approval's claim is conditional on the revision being the newest).
func (s *Service) retire(ctx context.Context, old store.RevisionMark, by store.Send, log *slog.Logger) {
	rec, err := s.st.GetSend(ctx, old.SendID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return
	case err != nil:
		log.Warn("superseded revision not checked for a hold", "supersededSendId", old.SendID, errAttr(err))
		return
	case rec.Status != store.SendHeld || rec.HoldID == "":
		return
	}
	reason := fmt.Sprintf("superseded: revision %s of the certificate arrived (send %s)", by.Revision, by.ID)
	switch err := s.reject(ctx, rec.HoldID, SystemActor, reason); {
	case err == nil:
		s.metrics.Count(obs.MetricSendSuperseded, 1, nil)
		log.Info("hold retired: a newer revision of its certificate arrived", "holdId", rec.HoldID, "supersededRevision", old.Revision)
	case errors.Is(err, ErrConflict):
		// Being approved or decided meanwhile: the approval's claim refuses
		// the older revision.
	default:
		log.Warn("superseded hold not retired", "holdId", rec.HoldID, errAttr(err))
	}
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
