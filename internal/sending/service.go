package sending

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// NowCerts is the part of the NowCerts client the pipeline uses.
type NowCerts interface {
	SendCertificate(ctx context.Context, r nowcerts.SendRequest) (nowcerts.Answer, error)
	Approve(ctx context.Context, historicalHolderIDs []string) (nowcerts.Answer, error)
	HistoricalHolders(ctx context.Context, certificateID string) ([]nowcerts.HistoricalHolder, error)
}

// Enqueuer puts a job on a queue (the CRM queue, for timeline jobs).
type Enqueuer interface {
	Enqueue(ctx context.Context, j jobs.Job) error
}

// Deps are what a Service needs. Store and NowCerts are required; the rest have
// defaults (no timeline, discarded metrics, slog.Default, time.Now, 2m lease).
type Deps struct {
	Store    *store.Store
	NowCerts NowCerts
	// Timeline receives a jobs.NewTimeline job after each send, hold, approval,
	// rejection, failure and unknown outcome. Nil: no timeline.
	Timeline Enqueuer
	Metrics  *obs.Metrics
	Logger   *slog.Logger
	Now      func() time.Time
	// Lease is how long a SENDING claim is owned before it is presumed dead
	// (becomes UNKNOWN). It must exceed the longest NowCerts call including the
	// client's retries; default 2 minutes.
	Lease time.Duration
	// SettingsTTL is how long agency settings are cached; default 1 minute.
	SettingsTTL time.Duration
}

// Service is the send pipeline.
type Service struct {
	st       *store.Store
	nc       NowCerts
	timeline Enqueuer
	metrics  *obs.Metrics
	log      *slog.Logger
	now      func() time.Time
	lease    time.Duration

	settingsTTL time.Duration
	mu          sync.Mutex
	settings    map[string]cachedSettings
}

type cachedSettings struct {
	s       store.Settings
	fetched time.Time
}

// New returns a Service.
func New(d Deps) *Service {
	s := &Service{
		st: d.Store, nc: d.NowCerts, timeline: d.Timeline, metrics: d.Metrics, log: d.Logger,
		now: d.Now, lease: d.Lease, settingsTTL: d.SettingsTTL, settings: map[string]cachedSettings{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lease <= 0 {
		s.lease = 2 * time.Minute
	}
	if s.settingsTTL <= 0 {
		s.settingsTTL = time.Minute
	}
	return s
}

// newToken returns a fresh random owner token for one claim attempt.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
