package nowcerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/coiflow/coiflow/internal/obs"
)

// Lease is a named lock shared by every container (the DynamoDB lease in
// internal/store implements it). AcquireLease reports false, without error, when
// someone else holds an unexpired lease; an expired one can be taken over.
//
// The lease also carries a version note: ReleaseLeaseWithVersion records, as
// it releases, the secret version the holder wrote and that token's expiry
// (an empty version releases without touching the note); LeaseVersion reads
// the last note ("" when there is none). The note outlives later
// acquisitions and plain releases.
type Lease interface {
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	ReleaseLeaseWithVersion(ctx context.Context, name, owner, version string, expiresAt time.Time) error
	LeaseVersion(ctx context.Context, name string) (version string, expiresAt time.Time, err error)
}

// TokenConfig says where the NowCerts token lives and how refreshes are
// serialised.
type TokenConfig struct {
	Secrets  Secrets
	SecretID string // the secret's ARN or name
	// Lease serialises refreshes across containers. Nil: only within this
	// process (local tools and unit tests).
	Lease     Lease
	LeaseName string        // default "nowcerts-token"
	LeaseTTL  time.Duration // how long a refresher holds the lease (default 30s)
	LeaseWait time.Duration // how long others wait for a refresh (default 45s; more than LeaseTTL so a dead refresher's lease is taken over)
	// Skew: a token is refreshed when it has less than this left (default 5m).
	Skew time.Duration
}

func (tc TokenConfig) withDefaults() TokenConfig {
	if tc.LeaseName == "" {
		tc.LeaseName = "nowcerts-token"
	}
	if tc.LeaseTTL <= 0 {
		tc.LeaseTTL = 30 * time.Second
	}
	if tc.LeaseWait <= 0 {
		tc.LeaseWait = tc.LeaseTTL + 15*time.Second
	}
	if tc.Skew <= 0 {
		tc.Skew = 5 * time.Minute
	}
	if tc.Lease == nil {
		tc.Lease = newLocalLease()
	}
	return tc
}

// TokenSource hands out NowCerts access tokens. It caches the secret per
// container, refreshes before expiry and after a 401, and makes sure that one
// refresher at a time (across all containers, through the Lease) spends the
// rotating refresh token and stores the new pair before anyone uses it.
//
// Reads are fenced by version, because a just-written secret may not be what
// the next reader of AWSCURRENT gets: the refresher records the version id
// PutSecretValue returned, and the new token's expiry, in the lease as it
// releases it. A reader whose AWSCURRENT token is not good enough (waiters,
// and a refresher right after acquiring the lease) reads the lease's note;
// when the note names another version whose token expires later than the one
// read, it reads that exact version instead. So a lagging read never makes a
// refresher spend an already-used refresh token.
//
// It implements Tokens and is safe for concurrent use.
type TokenSource struct {
	t     *transport
	tc    TokenConfig
	owner string

	sem chan struct{} // one refresher per container

	mu  sync.Mutex
	cur Credentials
	has bool
}

// NewTokenSource returns a TokenSource. Secrets and SecretID are required.
func NewTokenSource(cfg Config, tc TokenConfig) (*TokenSource, error) {
	if tc.Secrets == nil || tc.SecretID == "" {
		return nil, errors.New("nowcerts: token source needs Secrets and SecretID")
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("nowcerts: lease owner id: %w", err)
	}
	return &TokenSource{
		t:     &transport{cfg: cfg.withDefaults()},
		tc:    tc.withDefaults(),
		owner: hex.EncodeToString(b[:]),
		sem:   make(chan struct{}, 1),
	}, nil
}

// Token returns an access token with at least Skew left, refreshing if needed.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	now := s.t.cfg.Now
	if c, ok := s.cached(); ok && c.validFor(now(), s.tc.Skew) {
		return c.AccessToken, nil
	}
	c, _, err := s.obtain(ctx, func(c Credentials) bool { return c.validFor(now(), s.tc.Skew) })
	if err != nil {
		return "", err
	}
	return c.AccessToken, nil
}

// Refresh is called after NowCerts refused the token refused (HTTP 401). If the
// current token is already another one it is returned; otherwise the token is
// refreshed once — whoever in any container gets there first.
func (s *TokenSource) Refresh(ctx context.Context, refused string) (string, error) {
	now := s.t.cfg.Now
	c, _, err := s.obtain(ctx, func(c Credentials) bool { return c.AccessToken != refused && c.validFor(now(), 0) })
	if err != nil {
		return "", err
	}
	return c.AccessToken, nil
}

// RefreshSummary says what RefreshIfExpiring did. It never carries a token.
type RefreshSummary struct {
	Refreshed bool      `json:"refreshed"`
	Grant     string    `json:"grant,omitempty"` // password | refresh_token, when refreshed here
	Reason    string    `json:"reason"`          // fresh | refreshed | refreshed-elsewhere
	ExpiresAt time.Time `json:"expiresAt"`       // of the stored token
	ExpiresIn string    `json:"expiresIn"`       // from now, rounded to seconds
	CheckedAt time.Time `json:"checkedAt"`
}

// RefreshIfExpiring refreshes the stored token when it is missing or has less
// than window left (or always when force), under the same lease as every
// other refresh. It is what the scheduled token-refresher runs.
func (s *TokenSource) RefreshIfExpiring(ctx context.Context, window time.Duration, force bool) (RefreshSummary, error) {
	now := s.t.cfg.Now
	cur, err := s.load(ctx, func(c Credentials) bool { return !force && c.validFor(now(), window) })
	if err != nil {
		return RefreshSummary{}, err
	}
	sum := func(c Credentials, grant, reason string) RefreshSummary {
		n := now()
		return RefreshSummary{Refreshed: grant != "", Grant: grant, Reason: reason, ExpiresAt: c.ExpiresAt.UTC(),
			ExpiresIn: c.ExpiresAt.Sub(n).Round(time.Second).String(), CheckedAt: n.UTC()}
	}
	if !force && cur.validFor(now(), window) {
		return sum(cur, "", "fresh"), nil
	}
	stale := cur.AccessToken
	c, grant, err := s.obtain(ctx, func(c Credentials) bool {
		return c.validFor(now(), window) && (!force || c.AccessToken != stale)
	})
	if err != nil {
		return RefreshSummary{}, err
	}
	if grant == "" {
		return sum(c, "", "refreshed-elsewhere"), nil
	}
	return sum(c, grant, "refreshed"), nil
}

func (s *TokenSource) cached() (Credentials, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.has
}

func (s *TokenSource) remember(c Credentials) {
	s.mu.Lock()
	s.cur, s.has = c, true
	s.mu.Unlock()
}

// load reads the secret's current version and caches what it settles on.
// When that does not satisfy good, it checks the lease's version note: a
// note naming another version whose token expires later means the current
// read lagged behind the last refresh, and that version is read instead
// (if it cannot be, the current read stands: at worst a needless grant).
func (s *TokenSource) load(ctx context.Context, good func(Credentials) bool) (Credentials, error) {
	v, err := s.tc.Secrets.GetSecret(ctx, s.tc.SecretID, "")
	if err != nil {
		return Credentials{}, fmt.Errorf("nowcerts token: read secret: %w", err)
	}
	c, err := ParseCredentials(v.Value)
	if err != nil {
		return Credentials{}, err
	}
	if good(c) {
		s.remember(c)
		return c, nil
	}
	ver, exp, err := s.tc.Lease.LeaseVersion(ctx, s.tc.LeaseName)
	if err != nil {
		return Credentials{}, fmt.Errorf("nowcerts token: read lease version: %w", err)
	}
	if ver == "" || ver == v.VersionID || !exp.After(c.ExpiresAt) {
		s.remember(c)
		return c, nil
	}
	log := s.t.cfg.Logger
	nv, err := s.tc.Secrets.GetSecret(ctx, s.tc.SecretID, ver)
	if err == nil {
		var nc Credentials
		if nc, err = ParseCredentials(nv.Value); err == nil {
			log.InfoContext(ctx, "nowcerts token: current secret read lagged behind the last refresh; using the refreshed version",
				"readVersion", v.VersionID, "leaseVersion", ver)
			s.remember(nc)
			return nc, nil
		}
	}
	log.WarnContext(ctx, "nowcerts token: cannot read the version the lease names; using the current read",
		"readVersion", v.VersionID, "leaseVersion", ver, "error", err.Error())
	s.remember(c)
	return c, nil
}

// obtain returns credentials satisfying good: from the cache, from the secret
// (someone may just have refreshed), or by refreshing under the lease. The
// grant is non-empty when this call refreshed.
func (s *TokenSource) obtain(ctx context.Context, good func(Credentials) bool) (Credentials, string, error) {
	select { // one goroutine per container goes to the lease; the others wait here
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return Credentials{}, "", fmt.Errorf("nowcerts token: %w", ctx.Err())
	}
	if c, ok := s.cached(); ok && good(c) {
		return c, "", nil
	}
	c, err := s.load(ctx, good)
	if err != nil {
		return Credentials{}, "", err
	}
	if good(c) {
		return c, "", nil
	}

	cfg := s.t.cfg
	deadline := cfg.Now().Add(s.tc.LeaseWait)
	delay := 50 * time.Millisecond
	for {
		got, err := s.tc.Lease.AcquireLease(ctx, s.tc.LeaseName, s.owner, s.tc.LeaseTTL)
		if err != nil {
			return Credentials{}, "", fmt.Errorf("nowcerts token: acquire lease: %w", err)
		}
		if got {
			return s.refreshHeld(ctx, good)
		}
		if !cfg.Now().Before(deadline) {
			return Credentials{}, "", fmt.Errorf("%w: token refresh by another worker did not finish within %s", ErrUnavailable, s.tc.LeaseWait)
		}
		d := delay/2 + time.Duration(cfg.Rand()*float64(delay/2))
		if err := cfg.Sleep(ctx, d); err != nil {
			return Credentials{}, "", fmt.Errorf("nowcerts token: waiting for refresh: %w", err)
		}
		if delay < time.Second {
			delay *= 2
		}
		if c, err = s.load(ctx, good); err != nil {
			return Credentials{}, "", err
		}
		if good(c) {
			return c, "", nil
		}
	}
}

// refreshHeld runs with the lease held: re-read the secret (another worker may
// have refreshed between our read and our lease; load follows the lease's
// version note if the read lags), refresh if still needed, store the new
// pair, release the lease recording the stored version.
func (s *TokenSource) refreshHeld(ctx context.Context, good func(Credentials) bool) (Credentials, string, error) {
	log := s.t.cfg.Logger
	var wrote string // version stored under this lease, if any
	var wroteExp time.Time
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.tc.Lease.ReleaseLeaseWithVersion(rctx, s.tc.LeaseName, s.owner, wrote, wroteExp); err != nil {
			log.WarnContext(ctx, "nowcerts token: release lease", "error", err.Error())
		}
	}()
	c, err := s.load(ctx, good)
	if err != nil {
		return Credentials{}, "", err
	}
	if good(c) {
		return c, "", nil
	}
	// Bound the NowCerts calls so they end while the lease is ours.
	gctx, cancel := context.WithTimeout(ctx, s.tc.LeaseTTL*2/3)
	defer cancel()
	g, grant, err := s.grant(gctx, c)
	if err != nil {
		return Credentials{}, "", err
	}
	next := c
	next.AccessToken, next.RefreshToken, next.ExpiresAt = g.AccessToken, g.RefreshToken, g.ExpiresAt
	// Store the new pair at once: the old refresh token is spent. Even if our
	// caller gives up now, the write must happen.
	ver, err := s.store(context.WithoutCancel(ctx), next)
	if err != nil {
		return Credentials{}, "", err
	}
	wrote, wroteExp = ver, next.ExpiresAt
	s.remember(next)
	s.t.cfg.Metrics.Count(obs.MetricTokenRefreshed, 1, obs.Dims{"Grant": grant})
	log.InfoContext(ctx, "nowcerts token refreshed", "grant", grant, "agencyId", g.AgencyID,
		"expiresAt", g.ExpiresAt.UTC().Format(time.RFC3339))
	return next, grant, nil
}

// grant tries the refresh grant, then falls back to the password grant.
func (s *TokenSource) grant(ctx context.Context, c Credentials) (grantResult, string, error) {
	log := s.t.cfg.Logger
	if c.RefreshToken != "" {
		g, err := s.t.grant(ctx, url.Values{
			"grant_type":    {GrantRefreshToken},
			"refresh_token": {c.RefreshToken},
			"client_id":     {c.ClientID},
		})
		if err == nil {
			return g, GrantRefreshToken, nil
		}
		if ctx.Err() != nil {
			return grantResult{}, "", fmt.Errorf("nowcerts token: refresh grant: %w", err)
		}
		log.WarnContext(ctx, "nowcerts refresh grant failed; falling back to the password grant", "error", err.Error())
	}
	if c.Username == "" || c.Password == "" {
		return grantResult{}, "", fmt.Errorf("%w: %w", ErrAuth, errNoCredentials)
	}
	g, err := s.t.grant(ctx, url.Values{
		"grant_type": {GrantPassword},
		"username":   {c.Username},
		"password":   {c.Password},
		"client_id":  {c.ClientID},
	})
	if err != nil {
		return grantResult{}, "", fmt.Errorf("nowcerts token: password grant: %w", err)
	}
	return g, GrantPassword, nil
}

// store writes the secret and returns the new version's id, retrying a few
// times: losing a rotated refresh token costs a password login later, but
// losing the write silently is worse.
func (s *TokenSource) store(ctx context.Context, c Credentials) (string, error) {
	v, err := c.Marshal()
	if err != nil {
		return "", err
	}
	var last error
	for i := range 3 {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var ver string
		ver, last = s.tc.Secrets.PutSecret(pctx, s.tc.SecretID, v)
		cancel()
		if last == nil {
			return ver, nil
		}
		if i == 2 {
			break
		}
		if err := s.t.cfg.Sleep(ctx, time.Duration(i+1)*200*time.Millisecond); err != nil {
			break
		}
	}
	return "", fmt.Errorf("nowcerts token: store refreshed token: %w", last)
}

// localLease serialises within one process (used when no Lease is configured).
type localLease struct {
	mu     sync.Mutex
	owner  string
	expiry time.Time
	ver    string // version note
	verExp time.Time
}

func newLocalLease() *localLease { return &localLease{} }

func (l *localLease) AcquireLease(_ context.Context, _ string, owner string, ttl time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.owner != "" && l.owner != owner && now.Before(l.expiry) {
		return false, nil
	}
	l.owner, l.expiry = owner, now.Add(ttl)
	return true, nil
}

func (l *localLease) ReleaseLeaseWithVersion(_ context.Context, _ string, owner, version string, expiresAt time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owner != owner {
		return nil
	}
	l.owner = ""
	if version != "" {
		l.ver, l.verExp = version, expiresAt
	}
	return nil
}

func (l *localLease) LeaseVersion(_ context.Context, _ string) (string, time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ver, l.verExp, nil
}
