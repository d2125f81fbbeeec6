package staffapi

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/store"
)

func TestPageShell(t *testing.T) {
	h := jwtHarness(t)
	get := func() (int, map[string]string, string) {
		ev := event("GET", "/app", "")
		ev.RequestContext.Authorizer = nil // a browser navigating: no token
		delete(ev.Headers, "authorization")
		resp, err := h.srv.Handle(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Headers, resp.Body
	}
	status, hdr, body := get()
	if status != 200 || hdr["Content-Type"] != "text/html; charset=utf-8" {
		t.Fatalf("GET /app: %d %q", status, hdr["Content-Type"])
	}
	csp := hdr["Content-Security-Policy"]
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]{24})'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
	nonce := m[1]
	// Exactly one script and one style, both carrying the nonce; no inline handlers.
	if strings.Count(body, "<script") != 1 || !strings.Contains(body, `<script nonce="`+nonce+`">`) ||
		strings.Count(body, "<style") != 1 || !strings.Contains(body, `<style nonce="`+nonce+`">`) {
		t.Fatalf("script/style without the nonce:\n%s", body)
	}
	if regexp.MustCompile(`(?i)\son[a-z]+\s*=`).MatchString(body) {
		t.Fatalf("inline event handler in the page")
	}
	if strings.Contains(body, ".innerHTML") || strings.Contains(body, "insertAdjacentHTML") || strings.Contains(body, "document.write") {
		t.Fatalf("the script writes HTML from strings")
	}
	for _, want := range []string{"Holds pending", "Unknown and failed sends", "Quarantined events", "CRM sync failures", "coiflow redrive",
		"Search sends", "sessionStorage", "#token=", "Authorization"} {
		if !strings.Contains(body, want) {
			t.Fatalf("page lacks %q", want)
		}
	}
	// The shell carries no data: nothing of the fake's holds or sends.
	for _, leak := range []string{"coi@acme-pm.example", "hld_5f0c2a9e7b3d41c8a6e2", "cert-1001", "Acme Property"} {
		if strings.Contains(body, leak) {
			t.Fatalf("page leaks %q without authentication", leak)
		}
	}
	if hdr["X-Frame-Options"] != "DENY" || hdr["Referrer-Policy"] != "no-referrer" || hdr["Cache-Control"] != "no-store" ||
		hdr["X-Content-Type-Options"] != "nosniff" {
		t.Fatalf("headers %v", hdr)
	}
	if h.fake.sendQuerys != 0 || h.fake.lastHolds.Status != "" {
		t.Fatalf("serving the shell called the pipeline")
	}
	// A fresh nonce per response.
	_, hdr2, _ := get()
	if hdr2["Content-Security-Policy"] == csp {
		t.Fatalf("nonce reused")
	}
	// The trailing slash and a named stage reach the page too.
	for _, p := range []string{"/app/", "/dev/app"} {
		ev := event("GET", p, "")
		ev.RequestContext.Authorizer = nil
		if p == "/dev/app" {
			ev.RequestContext.Stage = "dev"
		}
		if resp, _ := h.srv.Handle(context.Background(), ev); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
	}
}

func TestPageIsTheOnlyPublicRoute(t *testing.T) {
	h := jwtHarness(t)
	for _, c := range []struct{ method, target string }{
		{"GET", "/api/holds"}, {"GET", "/api/quarantine"}, {"GET", "/api/crm/failures"}, {"GET", "/api/sends/export"}, {"POST", "/app"},
		{"GET", "/app/other"}, {"GET", "/nothing"},
	} {
		ev := event(c.method, c.target, "")
		ev.RequestContext.Authorizer = nil
		resp, body := h.do(t, ev)
		wantError(t, resp, body, 401, "authentication required")
	}
	// A token in the query string is refused rather than served (it would sit in logs).
	ev := event("GET", "/app?token=abc", "")
	ev.RequestContext.Authorizer = nil
	resp, body := h.do(t, ev)
	wantError(t, resp, body, 400, "#token=")
	public := 0
	for _, rt := range h.srv.routes {
		if rt.public {
			public++
			if rt.method != "GET" || rt.pattern != "/app" {
				t.Fatalf("public route %s", rt.name())
			}
		}
	}
	if public != 1 {
		t.Fatalf("%d public routes", public)
	}
}

// fakeQuarantine is an in-memory QuarantineLister.
type fakeQuarantine struct {
	items     []store.Quarantined
	err       error
	lastLimit int
}

func (f *fakeQuarantine) ListQuarantine(_ context.Context, limit int) ([]store.Quarantined, error) {
	f.lastLimit = limit
	if f.err != nil {
		return nil, f.err
	}
	return f.items[:min(limit, len(f.items))], nil
}

func TestQuarantineList(t *testing.T) {
	big := strings.Repeat("é", maxPreview) // 2 bytes a rune: cut mid-rune at maxPreview
	fq := &fakeQuarantine{items: []store.Quarantined{
		{ID: "q-2", Source: "cowbell", Reason: "unknown event type \"policy.renamed\"", RequestID: "req-w2",
			ContentType: "application/json", ReceivedAt: t0, Body: []byte(`{"type":"policy.renamed","email":"x@y.example"}`)},
		{ID: "q-1", Source: "nowcerts", Reason: "no entity", ReceivedAt: t0.Add(-time.Hour), Body: []byte(big)},
		{ID: "q-0", Source: "nowcerts", Reason: "binary", ReceivedAt: t0.Add(-2 * time.Hour), Body: []byte{0xff, 0xfe, 'a'}},
	}}
	h := jwtHarness(t)
	h.srv.quarantine = fq
	resp, body := h.do(t, event("GET", "/api/quarantine?limit=3", ""))
	if resp.StatusCode != 200 || fq.lastLimit != 3 {
		t.Fatalf("%d %s (limit %d)", resp.StatusCode, resp.Body, fq.lastLimit)
	}
	evs := body["events"].([]any)
	if len(evs) != 3 {
		t.Fatalf("events: %s", resp.Body)
	}
	first := evs[0].(map[string]any)
	if first["id"] != "q-2" || first["source"] != "cowbell" || first["receivedAt"] != "2026-11-21T14:30:00Z" ||
		first["preview"] != `{"type":"policy.renamed","email":"x@y.example"}` || first["truncated"] != false || first["size"] != float64(47) {
		t.Fatalf("first: %v", first)
	}
	second := evs[1].(map[string]any)
	if p := second["preview"].(string); second["truncated"] != true || len(p) != maxPreview || strings.ContainsRune(p, '\uFFFD') ||
		second["size"] != float64(2*maxPreview) {
		t.Fatalf("truncated preview: %d bytes, %v", len(p), second["truncated"])
	}
	if p := evs[2].(map[string]any)["preview"]; p != "\uFFFDa" { // a run of bad bytes: one U+FFFD
		t.Fatalf("binary preview %q", p)
	}
	// Default limit, bad limits, failures, and no lister.
	if resp, _ := h.do(t, event("GET", "/api/quarantine", "")); resp.StatusCode != 200 || fq.lastLimit != 50 {
		t.Fatalf("default limit: %d %d", resp.StatusCode, fq.lastLimit)
	}
	resp, body = h.do(t, event("GET", "/api/quarantine?limit=0", ""))
	wantError(t, resp, body, 400, "limit")
	resp, body = h.do(t, event("GET", "/api/quarantine?status=x", ""))
	wantError(t, resp, body, 400, "status")
	fq.err = errors.New("dynamodb down")
	resp, body = h.do(t, event("GET", "/api/quarantine", ""))
	wantError(t, resp, body, 500, "internal error")
	h.srv.quarantine = nil
	resp, body = h.do(t, event("GET", "/api/quarantine", ""))
	wantError(t, resp, body, 501, "not available")
}
