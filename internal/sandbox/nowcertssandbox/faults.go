package nowcertssandbox

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Fault is a failure injected on matching calls. The first fault (in the order
// added) that matches a call and fires (Rate, Count) decides it:
//
//   - Latency: wait this long first (alone: the call then proceeds normally);
//   - Status: answer this HTTP status (429 carries Retry-After: RetryAfter);
//   - Timeout: never answer (hold the request until the client gives up). For
//     SendCertificate and Approve, Sent says whether the call is carried out
//     first: Sent=false is "lost on the way in" (nothing happens); Sent=true is
//     "done, but the answer never came back" (the send is recorded with
//     Answered=false);
//   - Status0: answer HTTP 200 {"status": 0, "message": Message} without doing
//     anything.
//
// JSON: {"path":"SendCertificate","status":500,"rate":0.3,"count":5,
// "latency":"200ms","timeout":true,"sent":true,"status0":true,"message":"...",
// "retryAfter":"1"}
type Fault struct {
	// Path selects the endpoint: its last path segment without "()"
	// ("SendCertificate", "Approve", "token", "CertificatesList"), or a
	// longer suffix ("SendCertificate/Approve"); case-insensitive. "" or "*":
	// every API call (admin calls are never faulted).
	Path   string `json:"path"`
	Method string `json:"method,omitempty"` // "" = any
	// Rate is the probability that the fault fires on a matching call; 0 means 1.
	Rate float64 `json:"rate,omitempty"`
	// Count is how many times it fires before it is spent; 0 = until cleared.
	Count      int      `json:"count,omitempty"`
	Latency    Duration `json:"latency,omitzero"`
	Status     int      `json:"status,omitempty"`
	RetryAfter string   `json:"retryAfter,omitempty"` // for 429; default "1"
	Timeout    bool     `json:"timeout,omitempty"`
	Sent       bool     `json:"sent,omitempty"`
	Status0    bool     `json:"status0,omitempty"`
	Message    string   `json:"message,omitempty"`

	fired int
}

// Duration is a time.Duration written as a Go duration string ("200ms").
type Duration struct{ D time.Duration }

// MarshalJSON writes "200ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.D.String()) }

// UnmarshalJSON reads "200ms" or a number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		d.D = v
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf(`latency: want "200ms" or milliseconds`)
	}
	d.D = time.Duration(ms * float64(time.Millisecond))
	return nil
}

// IsZero lets omitzero drop an unset latency.
func (d Duration) IsZero() bool { return d.D == 0 }

func (f *Fault) String() string {
	var parts []string
	if f.Latency.D > 0 {
		parts = append(parts, "latency "+f.Latency.D.String())
	}
	switch {
	case f.Status != 0:
		parts = append(parts, fmt.Sprintf("status %d", f.Status))
	case f.Timeout && f.Sent:
		parts = append(parts, "timeout after processing")
	case f.Timeout:
		parts = append(parts, "timeout")
	case f.Status0:
		parts = append(parts, "status 0")
	}
	return strings.Join(parts, ", ")
}

func (f *Fault) validate() error {
	if f.Rate < 0 || f.Rate > 1 {
		return fmt.Errorf("rate %v: want 0..1", f.Rate)
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		return fmt.Errorf("status %d: want a 4xx or 5xx", f.Status)
	}
	if f.Status == 0 && !f.Timeout && !f.Status0 && f.Latency.D <= 0 {
		return fmt.Errorf("a fault needs status, timeout, status0 or latency")
	}
	if f.Count < 0 {
		return fmt.Errorf("count %d: want ≥ 0", f.Count)
	}
	return nil
}

// AddFault adds a fault (see Fault).
func (s *Sandbox) AddFault(f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("nowcerts sandbox fault: %w", err)
	}
	if f.Status == 429 && f.RetryAfter == "" {
		f.RetryAfter = "1"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
	return nil
}

// ClearFaults removes every fault.
func (s *Sandbox) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Faults returns the active faults.
func (s *Sandbox) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		c := *f
		if c.Count > 0 {
			c.Count -= c.fired
		}
		out = append(out, c)
	}
	return out
}

// pickFault returns the fault that fires for this call, if any.
func (s *Sandbox) pickFault(method, path string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if !pathMatches(f.Path, path) {
			continue
		}
		if f.Rate > 0 && f.Rate < 1 && s.rnd.Float64() >= f.Rate {
			continue
		}
		f.fired++
		if f.Count > 0 && f.fired >= f.Count {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		c := *f
		return &c
	}
	return nil
}

// pathMatches reports whether a fault or query path selects the request path.
func pathMatches(sel, path string) bool {
	sel = strings.Trim(strings.ToLower(strings.TrimSpace(sel)), "/")
	if sel == "" || sel == "*" {
		return true
	}
	p := strings.TrimSuffix(strings.Trim(strings.ToLower(path), "/"), "()")
	sel = strings.TrimSuffix(sel, "()")
	return p == sel || strings.HasSuffix(p, "/"+sel)
}
