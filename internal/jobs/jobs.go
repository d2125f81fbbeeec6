// Package jobs defines the messages that travel on coiflow's SQS queues and how
// an event is routed to them.
package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coiflow/coiflow/internal/event"
)

// Queue names a logical work queue. Its URL comes from configuration
// (CRM_QUEUE_URL, SEND_QUEUE_URL).
type Queue string

// The work queues.
const (
	QueueCRM  Queue = "crm-jobs"
	QueueSend Queue = "send-jobs"
)

// Version is the current job message format.
const Version = 1

// Kind says what a job carries.
type Kind string

// Job kinds.
const (
	// KindEvent carries a webhook event (the default; "" reads as KindEvent).
	KindEvent Kind = "event"
	// KindTimeline carries a send-pipeline outcome to mirror onto the CRM timeline.
	KindTimeline Kind = "timeline"
)

// TimelineEntry is one send-pipeline outcome (sent, held, approved, rejected,
// failed, unknown) that the CRM worker turns into a note on the insured.
type TimelineEntry struct {
	Outcome       string    `json:"outcome"` // sent | held | approved | rejected | failed | unknown
	CertificateID string    `json:"certificateId"`
	HolderID      string    `json:"holderId,omitempty"`
	HolderName    string    `json:"holderName,omitempty"`
	Channel       string    `json:"channel,omitempty"` // email | fax
	InsuredID     string    `json:"insuredId,omitempty"`
	InsuredName   string    `json:"insuredName,omitempty"`
	Source        string    `json:"source,omitempty"` // nowcerts | cowbell: which external id space InsuredID is in
	Detail        string    `json:"detail,omitempty"` // hold reasons, error message, approver
	At            time.Time `json:"at"`
	SendID        string    `json:"sendId,omitempty"`
}

// Job is one unit of work for a worker: the normalised event plus bookkeeping.
type Job struct {
	Version int   `json:"v"`
	Kind    Kind  `json:"kind,omitempty"`
	Queue   Queue `json:"queue"`
	// ID is unique per (event, queue): "<eventID>:<queue>".
	ID         string      `json:"id"`
	Event      event.Event `json:"event"`
	EnqueuedAt time.Time   `json:"enqueuedAt"`
	// RequestID is the API Gateway request that accepted the webhook.
	RequestID string `json:"requestId,omitempty"`
	// Timeline is set on KindTimeline jobs (Event is then zero).
	Timeline *TimelineEntry `json:"timeline,omitempty"`
}

// NewTimeline builds a timeline job for the CRM queue; its ID is stable per
// (send id or certificate+holder, outcome, time) so a redelivery is one note.
func NewTimeline(e TimelineEntry, requestID string, now time.Time) Job {
	id := "tl:" + e.SendID + ":" + e.CertificateID + ":" + e.HolderID + ":" + e.Outcome + ":" + e.At.UTC().Format(time.RFC3339Nano)
	return Job{Version: Version, Kind: KindTimeline, Queue: QueueCRM, ID: id, Timeline: &e, EnqueuedAt: now.UTC(), RequestID: requestID}
}

// New builds the job for ev on q.
func New(q Queue, ev event.Event, requestID string, now time.Time) Job {
	return Job{Version: Version, Kind: KindEvent, Queue: q, ID: ev.ID + ":" + string(q), Event: ev, EnqueuedAt: now.UTC(), RequestID: requestID}
}

// Marshal encodes a job as the SQS message body.
func Marshal(j Job) (string, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	return string(b), nil
}

// ErrBadJob marks a message body that is not a job this version understands; such
// a message is a permanent failure (it goes to the DLQ, never retried forever).
var ErrBadJob = errors.New("bad job message")

// Unmarshal decodes an SQS message body.
func Unmarshal(body string) (Job, error) {
	var j Job
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		return Job{}, fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	if j.Version != Version {
		return Job{}, fmt.Errorf("%w: version %d, want %d", ErrBadJob, j.Version, Version)
	}
	switch j.Kind {
	case "", KindEvent:
		j.Kind = KindEvent
		if j.Event.ID == "" {
			return Job{}, fmt.Errorf("%w: no event id", ErrBadJob)
		}
	case KindTimeline:
		if j.Timeline == nil || j.Timeline.CertificateID == "" {
			return Job{}, fmt.Errorf("%w: timeline job without entry", ErrBadJob)
		}
	default:
		return Job{}, fmt.Errorf("%w: unknown kind %q", ErrBadJob, j.Kind)
	}
	return j, nil
}

// Route returns the queues an event's jobs go to: holder, insured, account,
// policy and quote events to the CRM queue; certificate events (NowCerts
// certificate-holder insert/update, master-certificate update, Cowbell
// policy.certificate) to the send queue. An event may go to both.
func Route(ev event.Event) []Queue {
	var qs []Queue
	crm, send := false, false
	switch ev.EntityKind {
	case event.KindCertificateHolder:
		crm = true
		send = ev.Action == event.ActionInsert || ev.Action == event.ActionUpdate
	case event.KindMasterCertificate:
		crm = ev.Insured != nil
		send = ev.Action == event.ActionUpdate
	case event.KindCertificate:
		crm = ev.Insured != nil
		send = true
	case event.KindInsured, event.KindAccount, event.KindPolicy, event.KindQuote:
		crm = true
		// A policy status change matters to sending too (cancellation holds).
		send = ev.EntityKind == event.KindPolicy && ev.Action == event.ActionStatus
	case event.KindDocument:
		crm = ev.Insured != nil
	}
	if crm {
		qs = append(qs, QueueCRM)
	}
	if send {
		qs = append(qs, QueueSend)
	}
	return qs
}
