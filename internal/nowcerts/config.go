package nowcerts

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/obs"
)

// DefaultBaseURL is NowCerts' API host; every path is under /api/.
const DefaultBaseURL = "https://api.nowcerts.com"

// HTTPDoer sends one HTTP request (*http.Client implements it).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// Retry bounds the retries of 429, 5xx and timeouts. Delays are exponential with
// full jitter (a random delay in [0, min(MaxDelay, BaseDelay·2^n)]); a
// Retry-After answer sets the delay instead when it is longer.
type Retry struct {
	MaxAttempts int           // attempts per call, first included (default 6)
	BaseDelay   time.Duration // default 200ms
	MaxDelay    time.Duration // cap of one delay (default 5s)
	MaxElapsed  time.Duration // no new attempt starts after this much time (default 30s)
}

// RateLimit is a token bucket on API calls (the token endpoint is not limited).
// A Client speaks for one agency (one credential), so this is the per-agency
// limit of one container.
type RateLimit struct {
	PerSecond float64 // default 5
	Burst     int     // default 5
}

// Config is what the Client and the TokenSource share: where NowCerts is, how to
// reach it, and how patiently.
type Config struct {
	BaseURL    string        // default DefaultBaseURL
	HTTPClient HTTPDoer      // default a new http.Client
	Timeout    time.Duration // per attempt (default 20s)
	Retry      Retry
	RateLimit  RateLimit
	PageSize   int // $top of list calls (default 200)

	Now   func() time.Time                                 // default time.Now
	Sleep func(ctx context.Context, d time.Duration) error // default a timer honouring ctx
	Rand  func() float64                                   // jitter in [0,1) (default math/rand/v2)

	Metrics *obs.Metrics // nil: no metrics
	Logger  *slog.Logger // nil: no logs
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Timeout <= 0 {
		c.Timeout = 20 * time.Second
	}
	if c.Retry.MaxAttempts <= 0 {
		c.Retry.MaxAttempts = 6
	}
	if c.Retry.BaseDelay <= 0 {
		c.Retry.BaseDelay = 200 * time.Millisecond
	}
	if c.Retry.MaxDelay <= 0 {
		c.Retry.MaxDelay = 5 * time.Second
	}
	if c.Retry.MaxElapsed <= 0 {
		c.Retry.MaxElapsed = 30 * time.Second
	}
	if c.RateLimit.PerSecond <= 0 {
		c.RateLimit.PerSecond = 5
	}
	if c.RateLimit.Burst <= 0 {
		c.RateLimit.Burst = 5
	}
	if c.PageSize <= 0 {
		c.PageSize = 200
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = SleepContext
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	return c
}

// SleepContext waits for d or until ctx is done (then it returns ctx's error).
func SleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
