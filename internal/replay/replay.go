// Package replay re-runs a quarantined webhook body once the parser has
// learned its shape (coiflow quarantine replay).
//
// A replay does what the webhook receiver would do with a fresh delivery of
// the body: event.Parse with the original received-at time (so the event id
// is the one a fresh delivery gets), the source's agency allowlist when the
// webhook credentials are at hand, jobs.Route, and the same queue publisher.
// Only after every job was accepted is the quarantine record marked replayed
// (who, when, event id), conditionally: a record is replayed once unless
// forced. A body that still does not parse is left as it is, and the parser's
// reason is returned.
package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/webhook"
)

// Store reads quarantine records and marks them replayed (*store.Store).
type Store interface {
	GetQuarantine(ctx context.Context, id string) (store.Quarantined, error)
	MarkQuarantineReplayed(ctx context.Context, id string, r store.QuarantineReplay, force bool) (store.Quarantined, error)
}

// Enqueuer puts jobs on their queues (*queue.Publisher, as the webhook uses).
type Enqueuer interface {
	Enqueue(ctx context.Context, js []jobs.Job) error
}

// Errors a replay reports; test with errors.Is.
var (
	// ErrUnreadable: the body still does not parse; the parser's reason follows.
	ErrUnreadable = errors.New("still not readable")
	// ErrAlreadyReplayed: the record was replayed before (force replays again).
	ErrAlreadyReplayed = errors.New("already replayed")
	// ErrAgencyNotAllowed: the event's agency is not in the source's allowlist,
	// so a fresh delivery would be refused (403).
	ErrAgencyNotAllowed = errors.New("agency not allowed")
)

// Config is what a Replayer needs. Store and Queue are required.
type Config struct {
	Store Store
	Queue Enqueuer
	// Credentials, when set, are the webhook credentials whose agency
	// allowlist a replayed event must pass, as a fresh delivery would.
	Credentials webhook.CredentialSource
	// By names who replays (recorded on the record).
	By  string
	Now func() time.Time // default time.Now
}

// Replayer replays quarantined bodies.
type Replayer struct {
	store Store
	queue Enqueuer
	creds webhook.CredentialSource
	by    string
	now   func() time.Time
}

// New returns a Replayer.
func New(c Config) (*Replayer, error) {
	switch {
	case c.Store == nil:
		return nil, errors.New("replay: no store")
	case c.Queue == nil:
		return nil, errors.New("replay: no queue")
	case strings.TrimSpace(c.By) == "":
		return nil, errors.New("replay: no operator name")
	}
	r := &Replayer{store: c.Store, queue: c.Queue, creds: c.Credentials, by: c.By, now: c.Now}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// Options of a replay.
type Options struct {
	// DryRun parses and routes but neither enqueues nor marks the record.
	DryRun bool
	// Force replays a record that was replayed before.
	Force bool
}

// Result is what a replay did (or, with DryRun, would do).
type Result struct {
	// Record is the quarantine record (after the mark, when it was marked).
	Record store.Quarantined
	Event  event.Event
	// Jobs are the jobs enqueued (would be, with DryRun); none when the event
	// routes to no queue.
	Jobs   []jobs.Job
	DryRun bool
}

// Reparse parses q's body as the webhook receiver would have when it arrived.
func Reparse(q store.Quarantined) (event.Event, error) {
	src := event.Source(q.Source)
	if !src.Valid() {
		return event.Event{}, fmt.Errorf("quarantine %s: unknown source %q", q.ID, q.Source)
	}
	ev, err := event.Parse(src, q.Body, q.ReceivedAt)
	if err != nil {
		return event.Event{}, fmt.Errorf("quarantine %s: %w: %w", q.ID, ErrUnreadable, err)
	}
	return ev, nil
}

// Replay replays quarantine record id.
func (r *Replayer) Replay(ctx context.Context, id string, o Options) (Result, error) {
	q, err := r.store.GetQuarantine(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Result{}, fmt.Errorf("no quarantine record %s (coiflow quarantine list shows them): %w", id, store.ErrNotFound)
		}
		return Result{}, fmt.Errorf("replay %s: %w", id, err)
	}
	res := Result{Record: q, DryRun: o.DryRun}
	if q.Replay != nil && !o.Force {
		return res, fmt.Errorf("quarantine %s: %w by %s at %s as event %s; replay again with --force",
			id, ErrAlreadyReplayed, q.Replay.By, q.Replay.At.UTC().Format(time.RFC3339), q.Replay.EventID)
	}
	ev, err := Reparse(q)
	if err != nil {
		return res, err
	}
	res.Event = ev
	if err := r.checkAgency(ctx, ev); err != nil {
		return res, fmt.Errorf("quarantine %s: %w", id, err)
	}

	requestID := q.RequestID
	if requestID == "" {
		requestID = "replay-" + q.ID
	}
	now := r.now()
	queues := jobs.Route(ev)
	names := make([]string, len(queues))
	for i, qu := range queues {
		names[i] = string(qu)
		res.Jobs = append(res.Jobs, jobs.New(qu, ev, requestID, now))
	}
	if o.DryRun {
		return res, nil
	}
	if len(res.Jobs) > 0 {
		if err := r.queue.Enqueue(ctx, res.Jobs); err != nil {
			if errors.Is(err, queue.ErrTooLarge) {
				return res, fmt.Errorf("quarantine %s: event %s can never be enqueued: %w (the record is left unmarked)", id, ev.ID, err)
			}
			return res, fmt.Errorf("quarantine %s: enqueue event %s: %w (the record is left unmarked; replay it again)", id, ev.ID, err)
		}
	}
	marked, err := r.store.MarkQuarantineReplayed(ctx, id, store.QuarantineReplay{At: now, By: r.by, EventID: ev.ID, Queues: names}, o.Force)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Someone replayed it at the same time; the jobs' ids are the same,
			// so the workers do the work once.
			return res, fmt.Errorf("quarantine %s: event %s was enqueued, but the record was marked concurrently: %w: %w", id, ev.ID, ErrAlreadyReplayed, err)
		}
		return res, fmt.Errorf("quarantine %s: event %s was enqueued, but marking the record failed (replay it with --force to mark it): %w", id, ev.ID, err)
	}
	res.Record = marked
	return res, nil
}

// checkAgency refuses an event a fresh delivery would refuse for its agency.
func (r *Replayer) checkAgency(ctx context.Context, ev event.Event) error {
	if r.creds == nil {
		return nil
	}
	c, err := r.creds.Credentials(ctx, ev.Source)
	if err != nil {
		return fmt.Errorf("read webhook credentials for the agency check: %w", err)
	}
	if err := webhook.CheckAgency(ev.Source, ev.AgencyID, c.AgencyIDs); err != nil {
		return fmt.Errorf("%w: %w", ErrAgencyNotAllowed, err)
	}
	return nil
}
