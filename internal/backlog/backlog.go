// Package backlog measures the approval backlog on a schedule: how many
// certificates wait for staff approval and how long the oldest has waited.
// Counters of holds made and decided cannot say this (a lost decision or a
// dashboard range that starts mid-backlog skews any running sum), so the
// backlog is counted where it lives and emitted as gauges.
package backlog

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// Counter counts the holds waiting for a decision.
type Counter interface {
	CountPendingHolds(ctx context.Context) (store.HoldBacklog, error)
}

// Reporter emits the backlog gauges (obs.MetricHoldsPending and
// obs.MetricOldestHoldAge) each time it is invoked.
type Reporter struct {
	Holds   Counter
	Metrics *obs.Metrics
	Logger  *slog.Logger
	Now     func() time.Time // nil: time.Now
}

// Report is one measurement.
type Report struct {
	HoldsPending int `json:"holdsPending"`
	// OldestHoldAgeSeconds is how long the oldest pending hold has waited (0
	// when none waits).
	OldestHoldAgeSeconds int64 `json:"oldestHoldAgeSeconds"`
}

// Handle measures and emits the backlog. Its input (an EventBridge Scheduler
// event) is ignored. A failed count emits nothing, so a gap in the metric
// shows the measurement failed rather than an empty backlog.
func (r Reporter) Handle(ctx context.Context, _ any) (Report, error) {
	b, err := r.Holds.CountPendingHolds(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("backlog: %w", err)
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	rep := Report{HoldsPending: b.Pending}
	if b.Pending > 0 && !b.Oldest.IsZero() {
		rep.OldestHoldAgeSeconds = max(0, int64(now().Sub(b.Oldest)/time.Second))
	}
	r.Metrics.Count(obs.MetricHoldsPending, float64(rep.HoldsPending), nil)
	r.Metrics.Emit(obs.MetricOldestHoldAge, float64(rep.OldestHoldAgeSeconds), obs.Seconds, nil)
	if r.Logger != nil {
		r.Logger.InfoContext(ctx, "approval backlog measured", "holdsPending", rep.HoldsPending, "oldestHoldAgeSeconds", rep.OldestHoldAgeSeconds)
	}
	return rep, nil
}
