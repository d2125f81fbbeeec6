package staffapi_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/staffapi"
)

// TestResendIdempotencyThroughAPI: POST /api/sends/{id}/resend over the real
// wiring. A repeat with the same Idempotency-Key (an HTTP retry) returns the
// first outcome and sends nothing; another key is another request (409);
// concurrent requests for one send make one SendCertificate.
func TestResendIdempotencyThroughAPI(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	bearer := "Bearer " + s.token
	sent := func(rev string) string {
		t.Helper()
		j := readyJob(time.Now())
		j.Event.ID, j.Event.Certificate.Revision = "evt_staffapi_resend_"+rev, rev
		if err := s.worker.Handle(ctx, j); err != nil {
			t.Fatal(err)
		}
		var page staffapi.SendList
		if resp, _ := s.call(t, bearer, "GET", "/api/sends?certificateId="+j.Event.Certificate.ID, "", &page); resp.StatusCode != 200 {
			t.Fatalf("query: %d %s", resp.StatusCode, resp.Body)
		}
		for _, v := range page.Sends {
			if v.Revision == rev {
				return v.ID
			}
		}
		t.Fatalf("no send of revision %s in %+v", rev, page.Sends)
		return ""
	}

	id := sent("r-api-1")
	key := map[string]string{"idempotency-key": "1d3c5b7a-9e8f-4a6b-8c2d-0e1f2a3b4c5d"}
	var first, again staffapi.ResendResult
	if resp, _ := s.callWith(t, bearer, key, "POST", "/api/sends/"+id+"/resend", `{"reason":"lost"}`, &first); resp.StatusCode != 200 ||
		first.Outcome.Status != sending.StatusSent || first.Outcome.Repeat || len(first.Outcome.SendIDs) != 1 {
		t.Fatalf("resend: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.callWith(t, bearer, key, "POST", "/api/sends/"+id+"/resend", `{"reason":"lost"}`, &again); resp.StatusCode != 200 ||
		again.Outcome.Status != sending.StatusSent || !again.Outcome.Repeat || !slices.Equal(again.Outcome.SendIDs, first.Outcome.SendIDs) {
		t.Fatalf("repeat: %d %s, want the first outcome %+v", resp.StatusCode, resp.Body, first.Outcome)
	}
	other := map[string]string{"idempotency-key": "another-click"}
	if resp, _ := s.callWith(t, bearer, other, "POST", "/api/sends/"+id+"/resend", `{"reason":"lost"}`, nil); resp.StatusCode != 409 ||
		!strings.Contains(resp.Body, first.Outcome.SendIDs[0]) {
		t.Fatalf("another request: %d %s, want 409 naming the resend", resp.StatusCode, resp.Body)
	}
	if n := len(s.sandbox.Sends()); n != 2 {
		t.Fatalf("%d sandbox sends, want 2 (the send and one resend)", n)
	}

	// Concurrent requests (two people, a double click, a retry racing the
	// first request), each with its own key: one SendCertificate.
	id2 := sent("r-api-2")
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := map[string]string{"idempotency-key": fmt.Sprintf("click-%d", i)}
			resp, _ := s.callWith(t, bearer, h, "POST", "/api/sends/"+id2+"/resend", `{"reason":"lost"}`, nil)
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if n := len(s.sandbox.Sends()); n != 4 {
		t.Fatalf("%d sandbox sends after concurrent resends, want 4 (one more send, one resend)", n)
	}
	ok := 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 409:
		default:
			t.Fatalf("status codes %v: want 200 or 409", codes)
		}
	}
	if ok != 1 {
		t.Fatalf("status codes %v: want one 200", codes)
	}
}
