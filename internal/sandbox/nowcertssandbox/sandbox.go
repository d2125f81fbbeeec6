// Package nowcertssandbox is a NowCerts API stand-in for `make run` and tests.
// It speaks the endpoints coiflow uses, as ../../shared/reference/nowcerts-api.md
// describes them, and holds the client to that contract (bodies with unknown
// fields or wrong types get 400):
//
//	POST /api/token                                  password and refresh_token grants; each refresh token works once
//	POST /api/SendCertificate/SendCertificate        {"status":1|0,"message"}; a pending-approval certificate answers status 0
//	POST /api/SendCertificate/Approve                {"DataBaseId":[historical holder ids]}
//	GET  /api/CertificateHolderList()                OData: $top $skip $orderby $filter $count, results under "value"
//	GET  /api/HistoricalCertificateHolderList()
//	GET  /api/CertificatesList()
//
// API calls need "Authorization: Bearer <access token>" (401 when unknown or
// expired). Every call is recorded. Faults are injected on demand. The admin API
// (no auth; the sandbox binds loopback only):
//
//	GET    /_sandbox/calls[?path=SendCertificate]   recorded calls (token bodies with secrets redacted)
//	GET    /_sandbox/sends                           successful SendCertificate calls
//	GET    /_sandbox/stats                           counters (token calls by grant, sends, approvals)
//	POST   /_sandbox/faults                          add a Fault (or an array of them)
//	GET    /_sandbox/faults, DELETE /_sandbox/faults
//	POST   /_sandbox/reset                           data back to the seed; calls, sends, faults cleared (tokens stay valid)
//	POST   /_sandbox/certificates                    add SeedData, or one Certificate (pendingApproval allowed)
//	POST   /_sandbox/expire-tokens                   every access token expires now
package nowcertssandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a Sandbox. Zero values take the defaults shown.
type Options struct {
	Username   string        // "sandbox-user"
	Password   string        // "sandbox-password"
	ClientID   string        // "ngAuthApp"
	AgencyID   string        // a fixed GUID
	AgencyName string        // "Sandbox Insurance Agency"
	AccessTTL  time.Duration // access token lifetime (24h)
	// Now is the sandbox's clock (token expiry, send times). Default time.Now.
	Now func() time.Time
	// RandSeed seeds the fault-rate randomness (default 1): runs are repeatable
	// for a given order of calls.
	RandSeed uint64
	// Empty: start (and reset) with no data instead of DefaultSeed().
	Empty bool
	// LenientPaging accepts list calls without $top/$skip (the manual marks them
	// required; by default the sandbox answers 400 without them).
	LenientPaging bool
	// MaxHang bounds how long a timeout fault holds a request whose client has
	// not given up (then 504). Default 2m.
	MaxHang time.Duration
	Logger  *slog.Logger // nil: no logs
}

// Default credentials.
const (
	DefaultUsername = "sandbox-user"
	DefaultPassword = "sandbox-password"
	DefaultAgencyID = "2d6f0e8a-4b1c-4f3e-9a7d-8c5b6e4f3a21"
)

// Call is one recorded request.
type Call struct {
	Seq    int       `json:"seq"`
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"`
	Body   string    `json:"body,omitempty"` // token calls: password and refresh_token redacted
	Auth   string    `json:"auth,omitempty"` // the Authorization header
	Grant  string    `json:"grant,omitempty"`
	Status int       `json:"status"`          // HTTP status answered (0: no answer, the client gave up)
	Fault  string    `json:"fault,omitempty"` // the fault injected, if any
}

// Send is one SendCertificate the sandbox carried out.
type Send struct {
	Seq           int       `json:"seq"`
	Time          time.Time `json:"time"`
	CertificateID string    `json:"certificateId"`
	HolderIDs     []string  `json:"holderIds"`
	Emails        []string  `json:"emails"`
	Fax           string    `json:"fax,omitempty"`
	EmailSubject  string    `json:"emailSubject,omitempty"`
	EmailBody     string    `json:"emailBody,omitempty"`
	Description   string    `json:"description,omitempty"`
	Auth          string    `json:"auth"`
	// Answered is false when a timeout fault swallowed the answer ("sent, but
	// the answer never came back").
	Answered bool `json:"answered"`
}

// Approval is one successful Approve call.
type Approval struct {
	Seq  int       `json:"seq"`
	Time time.Time `json:"time"`
	IDs  []string  `json:"ids"`
}

// Stats are the sandbox's counters.
type Stats struct {
	TokenCalls map[string]int `json:"tokenCalls"` // by grant_type, every call
	Grants     map[string]int `json:"grants"`     // by grant_type, successful ones
	Sends      int            `json:"sends"`
	Approvals  int            `json:"approvals"`
	Calls      int            `json:"calls"`
}

type accessToken struct {
	expires time.Time
}

// Sandbox is the NowCerts stand-in; it is an http.Handler.
type Sandbox struct {
	opts Options
	log  *slog.Logger
	done chan struct{} // closed by Close: hanging requests return
	once sync.Once

	mu         sync.Mutex
	rnd        *rand.Rand
	access     map[string]accessToken
	refresh    map[string]bool // unused refresh tokens
	certs      []Certificate
	holders    []Holder
	historical []HistoricalHolder
	calls      []Call
	sends      []Send
	approvals  []Approval
	faults     []*Fault
	tokenCalls map[string]int
	grants     map[string]int
}

// New returns a sandbox holding DefaultSeed() (unless opts.Empty).
func New(opts Options) *Sandbox {
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.ClientID == "" {
		opts.ClientID = "ngAuthApp"
	}
	if opts.AgencyID == "" {
		opts.AgencyID = DefaultAgencyID
	}
	if opts.AgencyName == "" {
		opts.AgencyName = "Sandbox Insurance Agency"
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RandSeed == 0 {
		opts.RandSeed = 1
	}
	if opts.MaxHang <= 0 {
		opts.MaxHang = 2 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	s := &Sandbox{
		opts:    opts,
		log:     log,
		done:    make(chan struct{}),
		rnd:     rand.New(rand.NewPCG(opts.RandSeed, opts.RandSeed^0x9e3779b97f4a7c15)),
		access:  map[string]accessToken{},
		refresh: map[string]bool{},
	}
	s.Reset()
	return s
}

// Credentials returns the username and password the token endpoint accepts.
func (s *Sandbox) Credentials() (username, password string) { return s.opts.Username, s.opts.Password }

// Start serves the sandbox on addr ("" or ":0" for a free port), which must be
// a loopback address; it returns the base URL (what NOWCERTS_BASE_URL takes)
// and a stop function.
func (s *Sandbox) Start(addr string) (baseURL string, stop func() error, err error) {
	host, port, err := net.SplitHostPort(addrOrDefault(addr))
	if err != nil {
		return "", nil, fmt.Errorf("nowcerts sandbox: address %q: %w", addr, err)
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", nil, fmt.Errorf("nowcerts sandbox: %q is not a loopback address", host)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", nil, fmt.Errorf("nowcerts sandbox: listen: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop = func() error {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			return fmt.Errorf("nowcerts sandbox: shutdown: %w", err)
		}
		return nil
	}
	return "http://" + ln.Addr().String(), stop, nil
}

func addrOrDefault(a string) string {
	if a == "" {
		return "127.0.0.1:0"
	}
	return a
}

// Close releases requests held by timeout faults. The handler keeps working.
func (s *Sandbox) Close() { s.once.Do(func() { close(s.done) }) }

// Reset puts the data back to the seed and clears calls, sends, approvals,
// faults and counters. Issued tokens stay valid.
func (s *Sandbox) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs, s.holders, s.historical = nil, nil, nil
	if !s.opts.Empty {
		s.seedLocked(DefaultSeed())
	}
	s.calls, s.sends, s.approvals, s.faults = nil, nil, nil, nil
	s.tokenCalls, s.grants = map[string]int{}, map[string]int{}
}

// Seed adds (or replaces, by databaseId) certificates, holders and historical
// holders. Rows without a databaseId get a new one; the ids are returned in d.
func (s *Sandbox) Seed(d SeedData) (SeedData, error) {
	for _, c := range d.Certificates {
		if c.DatabaseID != "" && !guidLit.MatchString(c.DatabaseID) {
			return d, fmt.Errorf("certificate databaseId %q is not a GUID", c.DatabaseID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seedLocked(d), nil
}

func (s *Sandbox) seedLocked(d SeedData) SeedData {
	now := s.opts.Now().In(zone)
	for i := range d.Certificates {
		c := &d.Certificates[i]
		if c.DatabaseID == "" {
			c.DatabaseID = newGUID()
		}
		if c.CreateDate.IsZero() {
			c.CreateDate = now
		}
		s.certs = upsert(s.certs, *c, func(x Certificate) string { return x.DatabaseID })
	}
	for i := range d.Holders {
		h := &d.Holders[i]
		if h.DatabaseID == "" {
			h.DatabaseID = newGUID()
		}
		if h.CreateDate.IsZero() {
			h.CreateDate, h.ChangeDate = now, now
		}
		s.holders = upsert(s.holders, *h, func(x Holder) string { return x.DatabaseID })
	}
	for i := range d.HistoricalHolders {
		h := &d.HistoricalHolders[i]
		if h.DatabaseID == "" {
			h.DatabaseID = newGUID()
		}
		if h.CreateDate.IsZero() {
			h.CreateDate, h.ChangeDate = now, now
		}
		s.historical = upsert(s.historical, *h, func(x HistoricalHolder) string { return x.DatabaseID })
	}
	return d
}

func upsert[T any](rows []T, v T, id func(T) string) []T {
	for i := range rows {
		if sameID(id(rows[i]), id(v)) {
			rows[i] = v
			return rows
		}
	}
	return append(rows, v)
}

// IssueTokens mints a valid access/refresh token pair without recording a call
// (tests use it to put a known pair in the secret).
func (s *Sandbox) IssueTokens() (access, refresh string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked()
}

func (s *Sandbox) issueLocked() (string, string, time.Time) {
	access, refresh := randomHex(48), randomHex(16)
	exp := s.opts.Now().Add(s.opts.AccessTTL)
	s.access[access] = accessToken{expires: exp}
	s.refresh[refresh] = true
	return access, refresh, exp
}

// ExpireTokens makes every access token issued so far expire now; the next API
// call with one of them is answered 401.
func (s *Sandbox) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for k := range s.access {
		s.access[k] = accessToken{expires: now}
	}
}

// Calls returns every recorded call, oldest first.
func (s *Sandbox) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the recorded calls whose endpoint matches path (see
// Fault.Path for how paths match).
func (s *Sandbox) CallsTo(path string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if pathMatches(path, c.Path) {
			out = append(out, c)
		}
	}
	return out
}

// TokenCalls returns how many token calls used grant ("password",
// "refresh_token"), successful or not.
func (s *Sandbox) TokenCalls(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls[grant]
}

// Sends returns the SendCertificate calls carried out, oldest first.
func (s *Sandbox) Sends() []Send {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Send, len(s.sends))
	copy(out, s.sends)
	return out
}

// Approvals returns the successful Approve calls, oldest first.
func (s *Sandbox) Approvals() []Approval {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Approval(nil), s.approvals...)
}

// Stats returns the counters.
func (s *Sandbox) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{TokenCalls: map[string]int{}, Grants: map[string]int{}, Sends: len(s.sends), Approvals: len(s.approvals), Calls: len(s.calls)}
	for k, v := range s.tokenCalls {
		st.TokenCalls[k] = v
	}
	for k, v := range s.grants {
		st.Grants[k] = v
	}
	return st
}

// PendingApproval reports whether the certificate is pending approval.
func (s *Sandbox) PendingApproval(certificateID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.certLocked(certificateID); c != nil {
		return c.PendingApproval
	}
	return false
}

func (s *Sandbox) certLocked(id string) *Certificate {
	for i := range s.certs {
		if sameID(s.certs[i].DatabaseID, id) {
			return &s.certs[i]
		}
	}
	return nil
}

func (s *Sandbox) holderLocked(id string) *Holder {
	for i := range s.holders {
		if sameID(s.holders[i].DatabaseID, id) {
			return &s.holders[i]
		}
	}
	return nil
}

// ---------------------------------------------------------------- HTTP

// response is an answer prepared before it is (or is not) written.
type response struct {
	status int
	header http.Header
	body   any
}

func answer(status int, body any) response { return response{status: status, body: body} }

func statusAnswer(ok bool, msg string) response {
	st := 0
	if ok {
		st = 1
	}
	return answer(http.StatusOK, map[string]any{"status": st, "message": msg})
}

func invalid(msg string, field string) response {
	return answer(http.StatusBadRequest, map[string]any{
		"Message":    "The request is invalid.",
		"ModelState": map[string][]string{"request." + field: {msg}},
	})
}

// ServeHTTP routes one request.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
		s.admin(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	seq := s.record(r, body)
	status, fault := s.serveAPI(w, r, body)
	if fault != "" {
		s.log.InfoContext(r.Context(), "nowcerts sandbox: fault injected", "method", r.Method, "path", r.URL.Path, "fault", fault, "status", status)
	}
	s.mu.Lock()
	if seq < len(s.calls) {
		s.calls[seq].Status, s.calls[seq].Fault = status, fault
	}
	s.mu.Unlock()
}

// record appends the call and returns its index.
func (s *Sandbox) record(r *http.Request, body []byte) int {
	c := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")}
	if pathMatches("token", r.URL.Path) {
		form, _ := parseFormBody(body)
		c.Grant = form.Get("grant_type")
		for _, k := range []string{"password", "refresh_token"} {
			if form.Has(k) {
				form.Set(k, "[redacted]")
			}
		}
		c.Body = form.Encode()
	} else {
		c.Body = string(body)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Time = s.opts.Now()
	c.Seq = len(s.calls) + 1
	s.calls = append(s.calls, c)
	return len(s.calls) - 1
}

// serveAPI answers an API call, applying a fault if one fires. It returns the
// HTTP status written (0 when none was) and the fault's description.
func (s *Sandbox) serveAPI(w http.ResponseWriter, r *http.Request, body []byte) (int, string) {
	f := s.pickFault(r.Method, r.URL.Path)
	desc := ""
	if f != nil {
		desc = f.String()
		if f.Latency.D > 0 {
			select {
			case <-time.After(f.Latency.D):
			case <-r.Context().Done():
				return 0, desc
			case <-s.done:
			}
		}
		switch {
		case f.Status != 0:
			h := http.Header{}
			if f.Status == http.StatusTooManyRequests {
				h.Set("Retry-After", f.RetryAfter)
			}
			msg := f.Message
			if msg == "" {
				msg = http.StatusText(f.Status)
			}
			return s.write(w, response{status: f.Status, header: h, body: map[string]any{"Message": msg}}), desc
		case f.Timeout && !f.Sent:
			return s.hang(w, r), desc
		case f.Status0:
			msg := f.Message
			if msg == "" {
				msg = "Simulated failure"
			}
			return s.write(w, statusAnswer(false, msg)), desc
		}
	}

	resp, sendSeq := s.dispatch(r, body)
	if f != nil && f.Timeout && f.Sent {
		if sendSeq > 0 {
			s.mu.Lock()
			for i := range s.sends {
				if s.sends[i].Seq == sendSeq {
					s.sends[i].Answered = false
				}
			}
			s.mu.Unlock()
		}
		return s.hang(w, r), desc
	}
	return s.write(w, resp), desc
}

// hang holds the request until the client gives up, the sandbox closes or
// MaxHang passes (then 504).
func (s *Sandbox) hang(w http.ResponseWriter, r *http.Request) int {
	t := time.NewTimer(s.opts.MaxHang)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return 0
	case <-s.done:
		return 0
	case <-t.C:
		return s.write(w, answer(http.StatusGatewayTimeout, map[string]any{"Message": "Gateway Timeout"}))
	}
}

func (s *Sandbox) write(w http.ResponseWriter, resp response) int {
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(resp.status)
	_ = json.NewEncoder(w).Encode(resp.body)
	return resp.status
}

// dispatch answers a call with no fault. sendSeq is the Send's Seq when a
// certificate was sent.
func (s *Sandbox) dispatch(r *http.Request, body []byte) (response, int) {
	p := strings.TrimSuffix(strings.ToLower(r.URL.Path), "/")
	if p == "/api/token" {
		if r.Method != http.MethodPost {
			return answer(http.StatusMethodNotAllowed, map[string]any{"Message": "The requested resource does not support http method '" + r.Method + "'."}), 0
		}
		return s.token(r, body), 0
	}
	if !strings.HasPrefix(p, "/api/") {
		return notFound(r), 0
	}
	if resp, ok := s.authorize(r); !ok {
		return resp, 0
	}
	switch p {
	case "/api/sendcertificate/sendcertificate":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r), 0
		}
		return s.sendCertificate(r, body)
	case "/api/sendcertificate/approve":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r), 0
		}
		return s.approve(r, body), 0
	}
	ep := strings.TrimSuffix(strings.TrimPrefix(p, "/api/"), "()")
	switch ep {
	case "certificateholderlist", "historicalcertificateholderlist", "certificateslist":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r), 0
		}
		return s.list(ep, r), 0
	}
	return notFound(r), 0
}

func notFound(r *http.Request) response {
	return answer(http.StatusNotFound, map[string]any{"Message": "No HTTP resource was found that matches the request URI '" + r.URL.Path + "'."})
}

func methodNotAllowed(r *http.Request) response {
	return answer(http.StatusMethodNotAllowed, map[string]any{"Message": "The requested resource does not support http method '" + r.Method + "'."})
}

// authorize checks the bearer token.
func (s *Sandbox) authorize(r *http.Request) (response, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	denied := response{status: http.StatusUnauthorized, header: http.Header{"Www-Authenticate": {"Bearer"}},
		body: map[string]any{"Message": "Authorization has been denied for this request."}}
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return denied, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, known := s.access[strings.TrimSpace(tok)]
	if !known || !s.opts.Now().Before(a.expires) {
		return denied, false
	}
	return response{}, true
}

// ---------------------------------------------------------------- token

func (s *Sandbox) token(r *http.Request, body []byte) response {
	oauth := func(code, desc string) response {
		return answer(http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return oauth("unsupported_grant_type", "the body must be application/x-www-form-urlencoded")
	}
	form, err := parseFormBody(body)
	if err != nil {
		return oauth("invalid_request", "cannot read the form body")
	}
	grant := form.Get("grant_type")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenCalls[grant]++
	if form.Get("client_id") != s.opts.ClientID {
		return oauth("invalid_clientId", "client_id is not set or unknown")
	}
	switch grant {
	case "password":
		if form.Get("username") != s.opts.Username || form.Get("password") != s.opts.Password {
			return oauth("invalid_grant", "The user name or password is incorrect.")
		}
	case "refresh_token":
		rt := form.Get("refresh_token")
		if !s.refresh[rt] {
			return oauth("invalid_grant", "The refresh token is invalid or was already used.")
		}
		delete(s.refresh, rt) // rotation: a refresh token works once
	default:
		return oauth("unsupported_grant_type", "grant_type must be password or refresh_token")
	}
	s.grants[grant]++
	access, refresh, exp := s.issueLocked()
	issued := s.opts.Now().UTC()
	return answer(http.StatusOK, map[string]any{
		"access_token":  access,
		"token_type":    "bearer",
		"expires_in":    int(s.opts.AccessTTL / time.Second),
		"refresh_token": refresh,
		"userName":      s.opts.Username,
		"agencyId":      s.opts.AgencyID,
		"agencyName":    s.opts.AgencyName,
		".issued":       issued.Format(http.TimeFormat),
		".expires":      exp.UTC().Format(http.TimeFormat),
	})
}

// ---------------------------------------------------------------- errors

var errBadBody = errors.New("bad body")
