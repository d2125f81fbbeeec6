package crmhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coiflow/coiflow/internal/crm"
)

// server answers with the statuses in order (the last one repeats) and records
// each request's method, path, headers and body.
type server struct {
	mu       sync.Mutex
	statuses []int
	body     string
	got      []*http.Request
	bodies   []string
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, r)
	s.bodies = append(s.bodies, string(b))
	st := s.statuses[0]
	if len(s.statuses) > 1 {
		s.statuses = s.statuses[1:]
	}
	s.mu.Unlock()
	w.Header().Set("X-Seen", "yes")
	w.WriteHeader(st)
	_, _ = io.WriteString(w, s.body)
}

// tokens is an Auth that hands out "old" until refreshed, "new" after, and
// records the refresh flags it was called with.
type tokens struct {
	base  string
	calls []bool
}

func (tk *tokens) auth(_ context.Context, _ string, refresh bool) (string, string, error) {
	tk.calls = append(tk.calls, refresh)
	if refresh {
		return "new", tk.base, nil
	}
	return "old", tk.base, nil
}

func start(t *testing.T, s *server) (*tokens, *Client) {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	tk := &tokens{base: srv.URL}
	return tk, &Client{HTTP: srv.Client(), MaxRead: 1 << 10, Auth: tk.auth}
}

func TestJSONInBearerAndDecodedAnswer(t *testing.T) {
	s := &server{statuses: []int{200}, body: `{"id":"7"}`}
	_, c := start(t, s)
	var seen http.Header
	c.Observe = func(h http.Header) { seen = h }
	var out struct{ ID string }
	a, err := c.Do(context.Background(), Request{Op: "t: post", Method: http.MethodPost, Path: "/x", In: map[string]int{"n": 1}, Out: &out})
	if err != nil || a.Status != 200 || out.ID != "7" {
		t.Fatalf("answer %+v out %+v err %v", a, out, err)
	}
	r := s.got[0]
	if r.URL.Path != "/x" || r.Header.Get("Authorization") != "Bearer old" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept") != "application/json" {
		t.Errorf("request %s %v", r.URL.Path, r.Header)
	}
	if s.bodies[0] != `{"n":1}` {
		t.Errorf("body %q", s.bodies[0])
	}
	if seen.Get("X-Seen") != "yes" {
		t.Error("Observe did not see the answer's header")
	}
}

func TestNoBodyNoContentType(t *testing.T) {
	s := &server{statuses: []int{204}}
	_, c := start(t, s)
	if _, err := c.Do(context.Background(), Request{Op: "t: get", Method: http.MethodGet, Path: "/y"}); err != nil {
		t.Fatal(err)
	}
	if ct := s.got[0].Header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type %q without a body", ct)
	}
}

func TestA401IsRetriedOnceWithFreshCredentials(t *testing.T) {
	s := &server{statuses: []int{401, 401}}
	tk, c := start(t, s)
	var warned []string
	c.OnUnauthorized = func(_ context.Context, op string) { warned = append(warned, op) }
	a, err := c.Do(context.Background(), Request{Op: "t: get", Method: http.MethodGet})
	var ce *crm.Error
	if !errors.As(err, &ce) || ce.Status != 401 || ce.Permanent || a.Status != 401 {
		t.Fatalf("want a retryable 401 error, got %v (answer %d)", err, a.Status)
	}
	if len(s.got) != 2 || s.got[1].Header.Get("Authorization") != "Bearer new" {
		t.Fatalf("want one retry with the new token, got %d requests", len(s.got))
	}
	if len(tk.calls) != 2 || tk.calls[0] || !tk.calls[1] || len(warned) != 1 || warned[0] != "t: get" {
		t.Errorf("auth calls %v, warnings %v", tk.calls, warned)
	}
}

func TestA401IsAnAnswerWithoutOnUnauthorized(t *testing.T) {
	s := &server{statuses: []int{401, 200}}
	_, c := start(t, s)
	if _, err := c.Do(context.Background(), Request{Op: "t: get", Method: http.MethodGet}); err == nil {
		t.Fatal("want the 401 as an error")
	}
	if len(s.got) != 1 {
		t.Fatalf("%d requests, want 1", len(s.got))
	}
}

func TestRefusedClassifiesAndRetries(t *testing.T) {
	s := &server{statuses: []int{429, 429, 400}, body: `{"message":"bad"}`}
	_, c := start(t, s)
	var attempts []int
	c.Refused = func(_ context.Context, op string, attempt int, a Answer) (bool, error) {
		attempts = append(attempts, attempt)
		e := crm.StatusError(op, a.Status, "", strings.TrimSpace(string(a.Body)))
		return a.Status == http.StatusTooManyRequests, e
	}
	before := 0
	c.Before = func(context.Context) error { before++; return nil }
	_, err := c.Do(context.Background(), Request{Op: "t: post", Method: http.MethodPost, In: 1})
	if !crm.IsPermanent(err) || !strings.Contains(err.Error(), `{"message":"bad"}`) {
		t.Fatalf("want the permanent 400 from Refused, got %v", err)
	}
	if len(attempts) != 3 || attempts[2] != 2 || before != 3 || len(s.got) != 3 {
		t.Errorf("attempts %v, before %d, requests %d", attempts, before, len(s.got))
	}
}

func TestDefaultRefusalIsTheStatus(t *testing.T) {
	for status, permanent := range map[int]bool{400: true, 404: true, 500: false, 503: false} {
		_, c := start(t, &server{statuses: []int{status}})
		_, err := c.Do(context.Background(), Request{Op: "t", Method: http.MethodGet})
		var ce *crm.Error
		if !errors.As(err, &ce) || ce.Status != status || ce.Permanent != permanent {
			t.Errorf("%d: got %v", status, err)
		}
	}
}

func TestFailuresBeforeAnAnswer(t *testing.T) {
	s := &server{statuses: []int{200}}
	_, c := start(t, s)
	stop := errors.New("limiter: context done")
	c.Before = func(context.Context) error { return stop }
	_, err := c.Do(context.Background(), Request{Op: "t", Method: http.MethodGet})
	var ce *crm.Error
	if !errors.Is(err, stop) || !errors.As(err, &ce) || ce.Op != "t" {
		t.Errorf("Before's error: got %v", err)
	}
	c.Before = nil
	if _, err := c.Do(context.Background(), Request{Op: "t", Method: http.MethodPost, In: make(chan int)}); !crm.IsPermanent(err) {
		t.Errorf("an unencodable body: want a permanent error, got %v", err)
	}
	authErr := &crm.Error{Op: "t", Message: "no token"}
	c.Auth = func(context.Context, string, bool) (string, string, error) { return "", "", authErr }
	if _, err := c.Do(context.Background(), Request{Op: "t", Method: http.MethodGet}); err != authErr {
		t.Errorf("Auth's error must come back as it is, got %v", err)
	}
	if len(s.got) != 0 {
		t.Errorf("%d requests sent", len(s.got))
	}
}

func TestAnswersAreReadUpToMaxRead(t *testing.T) {
	s := &server{statuses: []int{500}, body: strings.Repeat("x", 5000)}
	_, c := start(t, s)
	a, _ := c.Do(context.Background(), Request{Op: "t", Method: http.MethodGet})
	if len(a.Body) != 1<<10 {
		t.Errorf("read %d bytes, want %d", len(a.Body), 1<<10)
	}
	s2 := &server{statuses: []int{200}, body: `not json`}
	_, c2 := start(t, s2)
	var out map[string]any
	_, err := c2.Do(context.Background(), Request{Op: "t", Method: http.MethodGet, Out: &out})
	if err == nil || crm.IsPermanent(err) || !strings.Contains(err.Error(), "decode answer") {
		t.Errorf("an undecodable 2xx answer: got %v", err)
	}
	if a, err := c2.Do(context.Background(), Request{Op: "t", Method: http.MethodGet}); err != nil || string(a.Body) != "not json" {
		t.Errorf("without Out the body is returned undecoded: %q %v", a.Body, err)
	}
}
