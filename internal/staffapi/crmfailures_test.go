package staffapi

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/store"
)

// fakeCRMFailures is an in-memory CRMFailureLister holding a few failures,
// listed newest first as the store does.
type fakeCRMFailures struct {
	items     []store.CRMFailure
	err       error
	calls     int
	lastLimit int32
}

func newFakeCRMFailures() *fakeCRMFailures {
	return &fakeCRMFailures{items: []store.CRMFailure{
		{JobID: "job_7c1e", EventID: "evt-21", ExternalID: "nowcerts:holder-77", Op: "hubspot: upsert contacts",
			Status: 400, Code: "VALIDATION_ERROR", Message: `hubspot: upsert contacts: HTTP 400 VALIDATION_ERROR: Property "coi_status" does not exist`,
			At: t0.Add(-time.Hour)},
		{JobID: "job_2b9a", EventID: "evt-12", ExternalID: "cowbell:acc-5", Op: "salesforce: upsert Account",
			Status: 403, Code: "INSUFFICIENT_ACCESS", Message: "salesforce: upsert Account: HTTP 403 INSUFFICIENT_ACCESS: no access",
			At: t0.Add(-26 * time.Hour)},
		{JobID: "job_0f3d", Message: "timeline note: timeline entry names no insured", At: t0.Add(-72 * time.Hour)},
	}}
}

func (f *fakeCRMFailures) ListCRMFailures(_ context.Context, limit int32) ([]store.CRMFailure, error) {
	f.calls++
	f.lastLimit = limit
	if f.err != nil {
		return nil, f.err
	}
	out := slices.Clone(f.items)
	slices.SortFunc(out, func(a, b store.CRMFailure) int { return b.At.Compare(a.At) })
	return out[:min(int(limit), len(out))], nil
}

func TestCRMFailuresList(t *testing.T) {
	h := jwtHarness(t)
	resp, body := h.do(t, event("GET", "/api/crm/failures?limit=2", ""))
	if resp.StatusCode != 200 || h.crm.lastLimit != 2 {
		t.Fatalf("%d %s (limit %d)", resp.StatusCode, resp.Body, h.crm.lastLimit)
	}
	fs := body["failures"].([]any)
	if len(body) != 1 || len(fs) != 2 {
		t.Fatalf("failures: %s", resp.Body)
	}
	first := fs[0].(map[string]any)
	want := map[string]any{
		"jobId": "job_7c1e", "eventId": "evt-21", "externalId": "nowcerts:holder-77", "op": "hubspot: upsert contacts",
		"status": float64(400), "code": "VALIDATION_ERROR", "at": "2026-11-21T13:30:00Z",
		"message": `hubspot: upsert contacts: HTTP 400 VALIDATION_ERROR: Property "coi_status" does not exist`,
	}
	if len(first) != len(want) {
		t.Fatalf("first: %v", first)
	}
	for k, v := range want {
		if first[k] != v {
			t.Fatalf("first[%s] = %v, want %v", k, first[k], v)
		}
	}
	if fs[1].(map[string]any)["jobId"] != "job_2b9a" {
		t.Fatalf("not newest first: %s", resp.Body)
	}
	// Optional fields are omitted when unset; the message and job id never are.
	resp, body = h.do(t, event("GET", "/api/crm/failures", ""))
	fs = body["failures"].([]any)
	if resp.StatusCode != 200 || h.crm.lastLimit != 50 || len(fs) != 3 {
		t.Fatalf("default limit: %d %d %s", resp.StatusCode, h.crm.lastLimit, resp.Body)
	}
	if last := fs[2].(map[string]any); len(last) != 3 || last["jobId"] != "job_0f3d" || last["message"] != "timeline note: timeline entry names no insured" {
		t.Fatalf("sparse failure: %v", last)
	}
	resp, _ = h.do(t, event("GET", "/api/crm/failures?limit=500", ""))
	if resp.StatusCode != 200 || h.crm.lastLimit != 500 {
		t.Fatalf("limit 500: %d %d", resp.StatusCode, h.crm.lastLimit)
	}

	// Nothing recorded: an empty list, not null.
	empty := jwtHarness(t)
	empty.crm.items = nil
	resp, _ = empty.do(t, event("GET", "/api/crm/failures", ""))
	if resp.StatusCode != 200 || resp.Body != `{"failures":[]}`+"\n" {
		t.Fatalf("empty: %d %q", resp.StatusCode, resp.Body)
	}
}

func TestCRMFailuresParameters(t *testing.T) {
	for _, c := range []struct {
		name, target string
		status       int
		parts        []string
	}{
		{"zero", "/api/crm/failures?limit=0", 400, []string{"invalid limit", "1 to 500"}},
		{"too big", "/api/crm/failures?limit=501", 400, []string{"invalid limit"}},
		{"not a number", "/api/crm/failures?limit=ten", 400, []string{"invalid limit"}},
		{"twice", "/api/crm/failures?limit=1&limit=2", 400, []string{"invalid limit", "more than once"}},
		{"unknown", "/api/crm/failures?status=pending", 400, []string{"invalid status", "unknown parameter", "limit"}},
		{"unknown and limit", "/api/crm/failures?limit=5&jobId=x", 400, []string{"invalid jobId"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := jwtHarness(t)
			resp, body := h.do(t, event("GET", c.target, ""))
			wantError(t, resp, body, c.status, c.parts...)
			if h.crm.calls != 0 {
				t.Fatalf("the store was asked despite a bad request")
			}
		})
	}
}

func TestCRMFailuresErrors(t *testing.T) {
	// Authentication first.
	h := jwtHarness(t)
	ev := event("GET", "/api/crm/failures", "")
	ev.RequestContext.Authorizer = nil
	resp, body := h.do(t, ev)
	wantError(t, resp, body, 401, "authentication required")
	if h.crm.calls != 0 {
		t.Fatalf("the store was asked without authentication")
	}
	// Another method.
	resp, body = h.do(t, event("POST", "/api/crm/failures", ""))
	wantError(t, resp, body, 405, "GET")
	if resp.Headers["Allow"] != "GET" {
		t.Fatalf("Allow = %q", resp.Headers["Allow"])
	}
	// A store failure is a 500 without its details.
	h.crm.err = errors.New("dynamodb: ProvisionedThroughputExceededException on table coiflow-secret-name")
	resp, body = h.do(t, event("GET", "/api/crm/failures", ""))
	wantError(t, resp, body, 500, "internal error")
	if msg := body["error"].(string); msg != "internal error" {
		t.Fatalf("500 shows %q", msg)
	}
	// No lister configured.
	h.srv.crmFailures = nil
	resp, body = h.do(t, event("GET", "/api/crm/failures", ""))
	wantError(t, resp, body, 501, "not available")
}
