package nowcerts

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket by reservation: every caller takes a token at once
// (the level may go negative) and waits until the bucket would have refilled to
// it, so waiters are served in arrival order without polling.
type bucket struct {
	mu    sync.Mutex
	rate  float64 // tokens per second
	burst float64
	level float64
	last  time.Time
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

func newBucket(rl RateLimit, now func() time.Time, sleep func(context.Context, time.Duration) error) *bucket {
	return &bucket{rate: rl.PerSecond, burst: float64(rl.Burst), level: float64(rl.Burst), last: now(), now: now, sleep: sleep}
}

// wait takes one token, waiting as long as needed or until ctx is done.
func (b *bucket) wait(ctx context.Context) error {
	b.mu.Lock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.level += el.Seconds() * b.rate
		if b.level > b.burst {
			b.level = b.burst
		}
	}
	b.last = now
	b.level--
	var d time.Duration
	if b.level < 0 {
		d = time.Duration(-b.level / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if d <= 0 {
		return nil
	}
	if err := b.sleep(ctx, d); err != nil {
		b.mu.Lock()
		b.level++ // give the reservation back
		b.mu.Unlock()
		return err
	}
	return nil
}
