// Package crmsync is the CRM worker's logic: it maps event jobs onto CRM
// upserts and timeline jobs onto notes, through the crm port, keeping its
// bookkeeping in the store so that duplicates, reordering and crashes cause no
// lost or stale CRM data.
//
// Ordering and idempotency (see store.CRMState for the write protocol): each
// field of a record carries the stamp of the event that set it (event time,
// then event id); an event changes only fields whose stamp it beats, so an
// older event never overwrites newer data, whatever the delivery order. The
// record's merged snapshot is claimed in the store (conditional on the version
// read) before it is written to the CRM and marked synced after; a snapshot
// whose hash is unchanged and already synced is not written again.
//
// Timeline notes: the note of a timeline job is claimed in the store
// (conditional put, lease until the invocation's deadline) before the CRM call
// and completed after it. A crash in between leaves a claim that a later
// delivery takes over once the lease ran out; it then asks the CRM whether the
// note exists (FindNote, by the reference the note carries) before creating
// it. A failed CRM call releases the claim as FREE (the CRM answered 4xx: not
// created) or UNCERTAIN (5xx or no answer: look first next time).
package crmsync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// Store is the bookkeeping the worker needs (implemented by *store.Store).
type Store interface {
	GetCRMState(ctx context.Context, externalID string) (store.CRMState, error)
	PutCRMState(ctx context.Context, st store.CRMState, prevVersion int64) error
	MarkCRMSynced(ctx context.Context, externalID string, version int64, crmKind, crmID string) error
	GetCRMLink(ctx context.Context, contact, company string) (store.CRMLink, error)
	PutCRMLink(ctx context.Context, contact, company string, l store.CRMLink) error
	ClaimCRMNote(ctx context.Context, jobID, owner string, leaseUntil time.Time) (store.NoteClaim, error)
	CompleteCRMNote(ctx context.Context, jobID, owner, crmID string) error
	ReleaseCRMNote(ctx context.Context, jobID, owner string, uncertain bool) error
	RecordCRMFailure(ctx context.Context, f store.CRMFailure) error
}

// Config configures a Worker.
type Config struct {
	CRM crm.CRM
	// Kind names the CRM (hubspot, salesforce, http): CRM ids are only reused
	// while it stays the same.
	Kind    string
	Store   Store
	Logger  *slog.Logger
	Metrics *obs.Metrics
	Now     func() time.Time
	// NoteLease is how long a note claim lasts when the context has no
	// deadline (default 5 minutes); with a deadline it lasts until 30 s after it.
	NoteLease time.Duration
}

// Worker processes CRM jobs.
type Worker struct {
	crm   crm.CRM
	kind  string
	st    Store
	log   *slog.Logger
	m     *obs.Metrics
	now   func() time.Time
	lease time.Duration
}

// New returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.CRM == nil || cfg.Store == nil || cfg.Kind == "" {
		return nil, errors.New("crmsync: CRM, Kind and Store are required")
	}
	w := &Worker{crm: cfg.CRM, kind: cfg.Kind, st: cfg.Store, log: cfg.Logger, m: cfg.Metrics, now: cfg.Now, lease: cfg.NoteLease}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.lease <= 0 {
		w.lease = 5 * time.Minute
	}
	return w, nil
}

// Handle is the Lambda handler for an SQS batch: each message is processed in
// turn; those that failed retryably are reported as batch item failures (SQS
// redelivers them, then moves them to the DLQ). A permanent failure is recorded
// and the message acknowledged; a message that is not a job is reported as a
// failure so that it ends in the DLQ with its body.
func (w *Worker) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, msg := range ev.Records {
		if err := w.handleMessage(ctx, msg); err != nil {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
		}
	}
	return resp, nil
}

func (w *Worker) handleMessage(ctx context.Context, msg events.SQSMessage) error {
	j, err := jobs.Unmarshal(msg.Body)
	if err != nil {
		w.log.ErrorContext(ctx, "crm job unreadable; leaving it to the DLQ", "messageId", msg.MessageId, "error", err.Error())
		w.count(obs.MetricCRMFailed)
		return err
	}
	if err := w.process(ctx, j, w.log.With("messageId", msg.MessageId)); err != nil {
		return err
	}
	return nil
}

// Process runs one job. It returns an error only for retryable failures;
// permanent ones are recorded (store, log, CrmFailed) and return nil.
func (w *Worker) Process(ctx context.Context, j jobs.Job) error { return w.process(ctx, j, w.log) }

func (w *Worker) process(ctx context.Context, j jobs.Job, log *slog.Logger) error {
	log = log.With("jobId", j.ID, "kind", string(j.Kind))
	if j.Kind == jobs.KindEvent {
		log = log.With("eventId", j.Event.ID, "eventType", j.Event.Type, "source", string(j.Event.Source))
	}
	ctx = obs.WithLogger(ctx, log)
	err := w.run(ctx, j)
	if err != nil {
		log.WarnContext(ctx, "crm job failed; will be retried", "error", err.Error())
	}
	return err
}

func (w *Worker) run(ctx context.Context, j jobs.Job) error {
	switch j.Kind {
	case jobs.KindTimeline:
		return w.processTimeline(ctx, j)
	default:
		return w.processEvent(ctx, j)
	}
}

func (w *Worker) logger(ctx context.Context) *slog.Logger { return obs.Logger(ctx) }

func (w *Worker) count(name string) { w.m.Count(name, 1, nil) }

// ---------------------------------------------------------------- events

func (w *Worker) processEvent(ctx context.Context, j jobs.Job) error {
	plan := MapEvent(j.Event)
	if plan.Empty() {
		w.logger(ctx).InfoContext(ctx, "event names nothing for the CRM")
		return nil
	}
	var retry []error
	ids := map[string]string{}
	run := func(typ crm.ObjectType, ups []Update) {
		for ext, o := range w.syncAll(ctx, j, plan.Stamp, typ, ups) {
			if o.id != "" {
				ids[ext] = o.id
			}
			if o.err != nil {
				retry = append(retry, o.err)
			}
		}
	}
	run(crm.Company, plan.Companies)
	run(crm.Contact, plan.Contacts)
	for _, l := range plan.Links {
		if err := w.link(ctx, j, l, ids[l.Contact], ids[l.Company]); err != nil {
			retry = append(retry, err)
		}
	}
	return errors.Join(retry...)
}

// outcome of one record in a job: its CRM id when known, and a retryable error.
type outcome struct {
	id  string
	err error
}

// prepared is a record after the store step: the state to write, or none.
type prepared struct {
	st   store.CRMState
	sync bool
}

// syncAll brings the records of one type in line with what the job says:
// merge and claim each in the store, write the claimed snapshots to the CRM in
// one call, mark them synced.
func (w *Worker) syncAll(ctx context.Context, j jobs.Job, stamp string, typ crm.ObjectType, ups []Update) map[string]outcome {
	out := map[string]outcome{}
	var pending []store.CRMState
	for _, u := range ups {
		p, err := w.prepare(ctx, u, stamp)
		if err != nil {
			out[u.ExternalID] = outcome{err: err}
			continue
		}
		if !p.sync {
			out[u.ExternalID] = outcome{id: p.st.CRMID}
			continue
		}
		pending = append(pending, p.st)
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		recs := make([]crm.Record, len(pending))
		for i, st := range pending {
			recs[i] = crm.Record{Type: typ, ExternalID: st.ExternalID, Fields: st.Fields}
		}
		results, err := w.crm.Upsert(ctx, typ, recs)
		if err == nil && len(results) != len(recs) {
			err = fmt.Errorf("crm upsert: %d results for %d records", len(results), len(recs))
		}
		if err != nil {
			for _, st := range pending {
				out[st.ExternalID] = w.failed(ctx, j, st.ExternalID, err)
			}
			return out
		}
		var again []store.CRMState
		for i, st := range pending {
			r := results[i]
			if r.Err != nil {
				out[st.ExternalID] = w.failed(ctx, j, st.ExternalID, r.Err)
				continue
			}
			err := w.st.MarkCRMSynced(ctx, st.ExternalID, st.Version, w.kind, r.ID)
			switch {
			case err == nil:
				out[st.ExternalID] = outcome{id: r.ID}
				w.count(obs.MetricCRMUpserts)
				w.logger(ctx).InfoContext(ctx, "crm record written", "externalId", st.ExternalID, "objectType", string(typ),
					"crmId", r.ID, "created", r.Created, "version", st.Version)
			case errors.Is(err, store.ErrConflict) && attempt < 3:
				// A newer snapshot was claimed while this one was written: its
				// writer may have finished before us, so write it again ourselves.
				cur, gerr := w.st.GetCRMState(ctx, st.ExternalID)
				if gerr != nil {
					out[st.ExternalID] = outcome{err: gerr}
					continue
				}
				w.logger(ctx).InfoContext(ctx, "crm record superseded while writing; writing the newer snapshot", "externalId", st.ExternalID,
					"version", st.Version, "current", cur.Version)
				again = append(again, cur)
			default:
				out[st.ExternalID] = outcome{err: fmt.Errorf("crm record %s written, state not recorded: %w", st.ExternalID, err)}
			}
		}
		pending = again
	}
	return out
}

// failed classifies a CRM error for one record: permanent ones are recorded
// and swallowed, retryable ones returned.
func (w *Worker) failed(ctx context.Context, j jobs.Job, ext string, err error) outcome {
	if !crm.IsPermanent(err) {
		return outcome{err: fmt.Errorf("crm record %s: %w", ext, err)}
	}
	w.recordPermanent(ctx, j, ext, err)
	return outcome{}
}

func (w *Worker) recordPermanent(ctx context.Context, j jobs.Job, ext string, err error) {
	f := store.CRMFailure{JobID: j.ID, EventID: j.Event.ID, ExternalID: ext, Message: err.Error(), At: w.now().UTC()}
	var ce *crm.Error
	if errors.As(err, &ce) {
		f.Op, f.Status, f.Code = ce.Op, ce.Status, ce.Code
	}
	w.count(obs.MetricCRMFailed)
	w.logger(ctx).ErrorContext(ctx, "crm write failed permanently; recorded, not retried", "externalId", ext,
		"status", f.Status, "code", f.Code, "error", err.Error())
	if rerr := w.st.RecordCRMFailure(ctx, f); rerr != nil {
		w.logger(ctx).ErrorContext(ctx, "recording a crm failure failed", "externalId", ext, "error", rerr.Error())
	}
}

// prepare merges an update into the record's state and claims the result.
func (w *Worker) prepare(ctx context.Context, u Update, stamp string) (prepared, error) {
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := w.st.GetCRMState(ctx, u.ExternalID)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return prepared{}, err
		}
		if !exists {
			cur = store.CRMState{ExternalID: u.ExternalID, ObjectType: string(u.Type)}
		}
		m := merge(cur, u, stamp)
		needSync := !exists || cur.Synced < cur.Version || cur.CRMKind != w.kind || (u.Ensure && cur.CRMID == "")
		next := cur
		next.Fields, next.Stamps, next.Hash = m.fields, m.stamps, hashFields(m.fields)
		switch {
		case !m.changed && !m.newer && exists:
			if needSync {
				return prepared{st: cur, sync: true}, nil // resume an unfinished write
			}
			if m.stale {
				w.count(obs.MetricCRMStale)
				w.logger(ctx).InfoContext(ctx, "crm update older than the record's state; ignored", "externalId", u.ExternalID,
					"stamp", stamp, "last", cur.LastStamp())
			} else {
				w.count(obs.MetricCRMSkipped)
				w.logger(ctx).InfoContext(ctx, "crm record unchanged; not written", "externalId", u.ExternalID)
			}
			return prepared{st: cur}, nil
		case !m.changed && exists && next.Hash == cur.Hash && !needSync:
			// Newer stamps, same values: record the stamps, write nothing.
			next.Version, next.Synced = cur.Version+1, cur.Version+1
			if err := w.st.PutCRMState(ctx, next, cur.Version); err != nil {
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				return prepared{}, err
			}
			w.count(obs.MetricCRMSkipped)
			w.logger(ctx).InfoContext(ctx, "crm record unchanged; not written", "externalId", u.ExternalID)
			return prepared{st: next}, nil
		}
		next.Version = cur.Version + 1
		if err := w.st.PutCRMState(ctx, next, cur.Version); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			return prepared{}, err
		}
		return prepared{st: next, sync: true}, nil
	}
	return prepared{}, fmt.Errorf("crm state %s: too much contention", u.ExternalID)
}

type merged struct {
	fields, stamps map[string]string
	changed        bool // a value changed (or a field appeared)
	newer          bool // a stamp advanced
	stale          bool // a field was refused as older
}

// merge applies u (stamped) to st field by field: a field takes the update's
// value when the update's stamp is newer than the field's.
func merge(st store.CRMState, u Update, stamp string) merged {
	m := merged{fields: make(map[string]string, len(st.Fields)+len(u.Fields)), stamps: make(map[string]string, len(st.Stamps)+len(u.Fields))}
	for k, v := range st.Fields {
		m.fields[k] = v
	}
	for k, v := range st.Stamps {
		m.stamps[k] = v
	}
	for k, v := range u.Fields {
		old, had := st.Stamps[k]
		switch {
		case had && stamp < old:
			m.stale = true
		case had && stamp == old:
			// the same event again
		default:
			m.stamps[k] = stamp
			m.newer = true
			if cur, ok := st.Fields[k]; !ok || cur != v {
				m.fields[k] = v
				m.changed = true
			}
		}
	}
	return m
}

// hashFields is the SHA-256 of sorted "key=value" lines.
func hashFields(f map[string]string) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k + "=" + f[k] + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// link associates a contact with a company once per pair of CRM ids.
func (w *Worker) link(ctx context.Context, j jobs.Job, l Link, contactID, companyID string) error {
	if contactID == "" || companyID == "" {
		return nil // one side failed (recorded) or is unknown: nothing to link
	}
	prev, err := w.st.GetCRMLink(ctx, l.Contact, l.Company)
	switch {
	case err == nil && prev.CRMKind == w.kind && prev.ContactCRMID == contactID && prev.CompanyCRMID == companyID:
		return nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	c := crm.Ref{Type: crm.Contact, ExternalID: l.Contact, ID: contactID}
	co := crm.Ref{Type: crm.Company, ExternalID: l.Company, ID: companyID}
	if err := w.crm.Associate(ctx, c, co); err != nil {
		if crm.IsPermanent(err) {
			w.recordPermanent(ctx, j, l.Contact, err)
			return nil
		}
		return fmt.Errorf("associate %s with %s: %w", l.Contact, l.Company, err)
	}
	w.logger(ctx).InfoContext(ctx, "crm contact associated with company", "contact", l.Contact, "company", l.Company)
	return w.st.PutCRMLink(ctx, l.Contact, l.Company, store.CRMLink{CRMKind: w.kind, ContactCRMID: contactID, CompanyCRMID: companyID})
}

// ---------------------------------------------------------------- timeline

func (w *Worker) processTimeline(ctx context.Context, j jobs.Job) error {
	if j.Timeline == nil {
		w.recordPermanent(ctx, j, "", &crm.Error{Op: "timeline note", Permanent: true, Message: "timeline job without entry"})
		return nil
	}
	e := *j.Timeline
	if strings.TrimSpace(e.InsuredID) == "" {
		w.recordPermanent(ctx, j, "", &crm.Error{Op: "timeline note", Permanent: true, Message: "timeline entry names no insured"})
		return nil
	}
	if e.At.IsZero() {
		e.At = j.EnqueuedAt
	}
	src := e.Source
	if src == "" {
		src = "nowcerts"
	}
	company := ExternalID(src, e.InsuredID)
	// The insured must be in the CRM to carry the note. A timeline entry does
	// not change CRM data: when coiflow never wrote the insured, it is created
	// with the name the send pipeline knew; when its last write is unfinished,
	// that write is completed first.
	var o outcome
	st, err := w.st.GetCRMState(ctx, company)
	switch {
	case err == nil && st.CRMID != "" && st.CRMKind == w.kind && st.Synced == st.Version:
		o.id = st.CRMID
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	default:
		f := map[string]string{crm.FieldSource: src}
		if err != nil {
			put(f, crm.FieldName, e.InsuredName)
		}
		o = w.syncAll(ctx, j, Stamp(e.At, j.ID), crm.Company, []Update{{Type: crm.Company, ExternalID: company, Fields: f, Ensure: true}})[company]
	}
	if o.err != nil {
		return o.err
	}
	if o.id == "" {
		// The insured's write failed permanently (recorded above): no record
		// to carry the note.
		w.logger(ctx).WarnContext(ctx, "timeline note dropped: the insured is not in the CRM", "insured", company)
		return nil
	}
	note := NoteFor(j.ID, e)
	note.Attach = []crm.Ref{{Type: crm.Company, ExternalID: company, ID: o.id}}
	if e.HolderID != "" && src == "nowcerts" {
		hx := nowcertsID(e.HolderID)
		if hs, err := w.st.GetCRMState(ctx, hx); err == nil && hs.CRMID != "" && hs.CRMKind == w.kind {
			note.Attach = append(note.Attach, crm.Ref{Type: crm.Contact, ExternalID: hx, ID: hs.CRMID})
		}
	}
	return w.addNote(ctx, j, note)
}

func (w *Worker) leaseUntil(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl.Add(30 * time.Second)
	}
	return w.now().Add(w.lease)
}

func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (w *Worker) addNote(ctx context.Context, j jobs.Job, note crm.Note) error {
	log := w.logger(ctx)
	owner := newOwner()
	claim, err := w.st.ClaimCRMNote(ctx, j.ID, owner, w.leaseUntil(ctx))
	if err != nil {
		return fmt.Errorf("claim note: %w", err)
	}
	if claim.Done {
		log.InfoContext(ctx, "timeline note exists already; not added again", "noteId", claim.CRMID)
		return nil
	}
	if claim.Recover {
		id, found, err := w.crm.FindNote(ctx, note)
		if err != nil {
			w.release(ctx, j, owner, true)
			return fmt.Errorf("look for the note of an interrupted attempt: %w", err)
		}
		if found {
			log.InfoContext(ctx, "timeline note of an interrupted attempt found; not added again", "noteId", id)
			return w.complete(ctx, j, owner, id)
		}
	}
	id, err := w.crm.AddNote(ctx, note)
	if err != nil {
		w.release(ctx, j, owner, !crm.NotApplied(err))
		if crm.IsPermanent(err) {
			w.recordPermanent(ctx, j, note.Attach[0].ExternalID, err)
			return nil
		}
		return fmt.Errorf("add note: %w", err)
	}
	w.count(obs.MetricCRMNotes)
	log.InfoContext(ctx, "timeline note added", "noteId", id, "insured", note.Attach[0].ExternalID, "outcome", j.Timeline.Outcome)
	return w.complete(ctx, j, owner, id)
}

func (w *Worker) complete(ctx context.Context, j jobs.Job, owner, id string) error {
	if err := w.st.CompleteCRMNote(ctx, j.ID, owner, id); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Our lease ran out and another attempt took over: it will find
			// this note (FindNote) rather than add a second.
			w.logger(ctx).WarnContext(ctx, "note claim taken over before completion", "noteId", id)
			return nil
		}
		return fmt.Errorf("record note %s: %w", id, err)
	}
	return nil
}

func (w *Worker) release(ctx context.Context, j jobs.Job, owner string, uncertain bool) {
	if err := w.st.ReleaseCRMNote(ctx, j.ID, owner, uncertain); err != nil {
		w.logger(ctx).WarnContext(ctx, "releasing a note claim failed; it expires with its lease", "error", err.Error())
	}
}
