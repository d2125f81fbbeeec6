package staffapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/staffapi"
	"github.com/coiflow/coiflow/internal/store"
)

// TestCRMFailuresThroughAPI: permanent CRM failures recorded with the store's
// own method (as the CRM worker records them) in DynamoDB Local come back from
// GET /api/crm/failures newest first, with every field, bounded by limit; a
// redelivery's record replaces the first rather than adding a row.
func TestCRMFailuresThroughAPI(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	bearer := "Bearer " + s.token
	now := time.Now().UTC().Truncate(time.Millisecond)

	var empty staffapi.CRMFailureList
	if resp, _ := s.call(t, bearer, "GET", "/api/crm/failures", "", &empty); resp.StatusCode != 200 ||
		empty.Failures == nil || len(empty.Failures) != 0 {
		t.Fatalf("empty table: %d %s", resp.StatusCode, resp.Body)
	}

	recs := []store.CRMFailure{
		{JobID: "job-it-old", EventID: "evt-it-1", ExternalID: "nowcerts:holder-1", Op: "hubspot: upsert contacts",
			Status: 400, Code: "VALIDATION_ERROR", Message: "hubspot: upsert contacts: HTTP 400 VALIDATION_ERROR: bad email",
			At: now.Add(-3 * time.Hour)},
		// Two records of one job (a batch): two items.
		{JobID: "job-it-batch", EventID: "evt-it-2", ExternalID: "cowbell:acc-9", Op: "salesforce: upsert Account",
			Status: 403, Code: "INSUFFICIENT_ACCESS", Message: "salesforce: upsert Account: HTTP 403 INSUFFICIENT_ACCESS",
			At: now.Add(-2 * time.Hour)},
		{JobID: "job-it-batch", EventID: "evt-it-2", ExternalID: "cowbell:acc-9:customer", Op: "salesforce: upsert Contact",
			Status: 400, Code: "REQUIRED_FIELD_MISSING", Message: "salesforce: upsert Contact: HTTP 400 REQUIRED_FIELD_MISSING: LastName",
			At: now.Add(-2*time.Hour + time.Second)},
		// No external id, no CRM status (a timeline job the worker could not use).
		{JobID: "job-it-note", EventID: "evt-it-3", Op: "timeline note", Message: "timeline note: timeline entry names no insured",
			At: now.Add(-time.Hour)},
	}
	for _, f := range recs {
		if err := s.store.RecordCRMFailure(ctx, f); err != nil {
			t.Fatalf("record %s: %v", f.JobID, err)
		}
	}
	// The first job redelivered and refused again, later: it replaces its record.
	again := recs[0]
	again.At = now.Add(-30 * time.Minute)
	if err := s.store.RecordCRMFailure(ctx, again); err != nil {
		t.Fatal(err)
	}

	var all staffapi.CRMFailureList
	if resp, _ := s.call(t, bearer, "GET", "/api/crm/failures", "", &all); resp.StatusCode != 200 {
		t.Fatalf("list: %d %s", resp.StatusCode, resp.Body)
	}
	wantOrder := []store.CRMFailure{again, recs[3], recs[2], recs[1]}
	if len(all.Failures) != len(wantOrder) {
		t.Fatalf("%d failures, want %d: %+v", len(all.Failures), len(wantOrder), all.Failures)
	}
	for i, w := range wantOrder {
		if got, want := all.Failures[i], staffapi.NewCRMFailureView(w); got != want {
			t.Fatalf("failure %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if all.Failures[1].ExternalID != "" || all.Failures[1].Status != 0 {
		t.Fatalf("failure without an external id: %+v", all.Failures[1])
	}

	var two staffapi.CRMFailureList
	if resp, _ := s.call(t, bearer, "GET", "/api/crm/failures?limit=2", "", &two); resp.StatusCode != 200 ||
		len(two.Failures) != 2 || two.Failures[0].JobID != "job-it-old" || two.Failures[1].JobID != "job-it-note" {
		t.Fatalf("limit=2: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, bearer, "GET", "/api/crm/failures?limit=nope", "", nil); resp.StatusCode != 400 {
		t.Fatalf("bad limit: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, "Bearer wrong", "GET", "/api/crm/failures", "", nil); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, resp.Body)
	}
}
