package hubspot

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// limiter spaces requests on the client side: a token bucket of max requests
// per interval, plus a pause that HubSpot's own answers can impose (429, or
// X-HubSpot-RateLimit-Remaining reaching 0).
type limiter struct {
	mu          sync.Mutex
	max         float64
	interval    time.Duration
	tokens      float64
	last        time.Time
	pausedUntil time.Time
	now         func() time.Time
	sleep       func(ctx context.Context, d time.Duration) error
}

func newLimiter(max int, interval time.Duration, now func() time.Time, sleep func(context.Context, time.Duration) error) *limiter {
	return &limiter{max: float64(max), interval: interval, tokens: float64(max), now: now, sleep: sleep}
}

// wait blocks until a request may go out, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	for {
		d := l.reserve()
		if d <= 0 {
			return nil
		}
		if err := l.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// reserve takes a token and returns 0, or returns how long to wait first.
func (l *limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.pausedUntil) {
		return l.pausedUntil.Sub(now)
	}
	if !l.last.IsZero() {
		elapsed := now.Sub(l.last)
		if elapsed > 0 {
			l.tokens += l.max * float64(elapsed) / float64(l.interval)
			if l.tokens > l.max {
				l.tokens = l.max
			}
		}
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0
	}
	need := (1 - l.tokens) * float64(l.interval) / l.max
	return time.Duration(need) + time.Millisecond
}

// pause stops requests for d (from now).
func (l *limiter) pause(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	until := l.now().Add(d)
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
}

// Rate-limit headers HubSpot sends on every answer.
const (
	headerRemaining = "X-HubSpot-RateLimit-Remaining"
	headerInterval  = "X-HubSpot-RateLimit-Interval-Milliseconds"
	headerMax       = "X-HubSpot-RateLimit-Max"
)

// rateInfo is what the rate-limit headers say (zero fields when absent).
type rateInfo struct {
	Remaining  int
	HasRemain  bool
	Interval   time.Duration
	Max        int
	RetryAfter time.Duration
}

func readRateInfo(h http.Header) rateInfo {
	var ri rateInfo
	if v, err := strconv.Atoi(h.Get(headerRemaining)); err == nil {
		ri.Remaining, ri.HasRemain = v, true
	}
	if v, err := strconv.Atoi(h.Get(headerInterval)); err == nil && v > 0 {
		ri.Interval = time.Duration(v) * time.Millisecond
	}
	if v, err := strconv.Atoi(h.Get(headerMax)); err == nil {
		ri.Max = v
	}
	if v, err := strconv.Atoi(h.Get("Retry-After")); err == nil && v >= 0 {
		ri.RetryAfter = time.Duration(v) * time.Second
	}
	return ri
}

// observe applies an answer's headers: when the window is used up, pause for
// one interval (HubSpot's windows are rolling, so a full interval is safe).
func (l *limiter) observe(ri rateInfo) {
	if ri.HasRemain && ri.Remaining <= 0 {
		d := ri.Interval
		if d <= 0 {
			d = l.interval
		}
		l.pause(d)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
