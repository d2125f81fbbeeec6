package sending

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// sentOnce sends ready(rev) to the email holder through the pipeline and
// returns its send id (one SendCertificate in the sandbox).
func sentOnce(t *testing.T, h *harness, rev string) string {
	t.Helper()
	if err := h.svc.Handle(context.Background(), sendJob(holderEvent(ready(rev), seedHolders[holderEmail]))); err != nil {
		t.Fatal(err)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends before the resend, want 1", n)
	}
	return SendID(certReady, strings.ToLower(holderEmail), rev)
}

// resendAll runs the requests at once and returns their outcomes and errors.
func resendAll(h *harness, reqs []ResendRequest) ([]Outcome, []error) {
	outs, errs := make([]Outcome, len(reqs)), make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, q := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = h.svc.Resend(context.Background(), q)
		}()
	}
	wg.Wait()
	return outs, errs
}

// TestConcurrentResendsSendOnce: two staff members (or a double click, or an
// HTTP retry racing the first request) resend one send at the same time, with
// or without idempotency keys: exactly one SendCertificate, one resend record
// linked to the original, and every other request is told so.
func TestConcurrentResendsSendOnce(t *testing.T) {
	for _, keys := range []string{"none", "distinct", "same"} {
		t.Run(keys, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			ctx := context.Background()
			id := sentOnce(t, h, "r-resend-race-"+keys)
			var reqs []ResendRequest
			for i := range 12 {
				q := ResendRequest{SendID: id, By: "jane", Reason: "holder says it never arrived"}
				switch keys {
				case "distinct":
					q.IdempotencyKey = fmt.Sprintf("click-%d", i)
				case "same":
					q.IdempotencyKey = "one-click"
				}
				reqs = append(reqs, q)
			}
			outs, errs := resendAll(h, reqs)
			if n := len(h.sends()); n != 2 {
				t.Fatalf("%d concurrent resends made %d SendCertificates, want 1 more than the original's", len(reqs), n-1)
			}
			orig, err := h.svc.GetSend(ctx, id)
			if err != nil || orig.SupersededBy == "" {
				t.Fatalf("original = %+v, %v", orig, err)
			}
			resent, err := h.svc.GetSend(ctx, orig.SupersededBy)
			if err != nil || resent.Status != StatusSent || resent.ResendOf != id || resent.ResendBy != "jane" || resent.Attempts != 1 {
				t.Fatalf("resend record = %+v, %v", resent, err)
			}
			sent := 0
			for i := range reqs {
				switch {
				case errs[i] == nil && !outs[i].Repeat:
					sent++
					fallthrough
				case errs[i] == nil:
					if outs[i].Status != StatusSent || !slices.Equal(outs[i].SendIDs, []string{resent.ID}) {
						t.Fatalf("request %d: %+v", i, outs[i])
					}
				case !errors.Is(errs[i], ErrConflict):
					t.Fatalf("request %d: %v, want an outcome or ErrConflict", i, errs[i])
				}
			}
			if sent != 1 {
				t.Fatalf("%d requests report a new send, want 1 (outcomes %+v, errors %v)", sent, outs, errs)
			}
			page, _ := h.svc.QuerySends(ctx, SendQuery{CertificateID: certReady})
			if len(page.Sends) != 2 {
				t.Fatalf("%d send records, want the original and one resend", len(page.Sends))
			}
		})
	}
}

// TestResendRepeatReturnsFirstOutcome: a repeat with the same Idempotency-Key
// (an HTTP retry, a double click), or without a key, returns the first
// outcome and sends nothing; another key is another request, refused; to send
// again, staff resend the resend.
func TestResendRepeatReturnsFirstOutcome(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	id := sentOnce(t, h, "r-resend-repeat")

	q := ResendRequest{SendID: id, By: "jane", Reason: "lost", IdempotencyKey: "5b0d8f1c-7a43-4e59-9d2e-1c3f6a8b9e70"}
	first, err := h.svc.Resend(ctx, q)
	if err != nil || first.Status != StatusSent || first.Repeat || len(first.SendIDs) != 1 {
		t.Fatalf("first = %+v, %v", first, err)
	}
	for range 3 {
		again, err := h.svc.Resend(ctx, q)
		if err != nil || !again.Repeat || again.Status != StatusSent || !slices.Equal(again.SendIDs, first.SendIDs) {
			t.Fatalf("repeat = %+v, %v; want the first outcome %+v", again, err, first)
		}
	}
	// Without a key a repeat cannot be told from a new request: the send was
	// resent already, so it is taken as a retry.
	noKey, err := h.svc.Resend(ctx, ResendRequest{SendID: id, By: "jane", Reason: "lost"})
	if err != nil || !noKey.Repeat || noKey.Status != StatusSent || !slices.Equal(noKey.SendIDs, first.SendIDs) {
		t.Fatalf("repeat without key = %+v, %v", noKey, err)
	}
	// Another key (or the same key by someone else) is another request.
	for _, other := range []ResendRequest{
		{SendID: id, By: "bob", Reason: "still lost", IdempotencyKey: "another-click"},
		{SendID: id, By: "bob", Reason: "still lost", IdempotencyKey: q.IdempotencyKey},
	} {
		if out, err := h.svc.Resend(ctx, other); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), first.SendIDs[0]) {
			t.Fatalf("another request for a send resent already = %+v, %v; want ErrConflict naming %s", out, err, first.SendIDs[0])
		}
	}
	if n := len(h.sends()); n != 2 {
		t.Fatalf("repeats sent again: %d sends, want 2", n)
	}
	orig, _ := h.svc.GetSend(ctx, id)
	rec, _ := h.svc.GetSend(ctx, first.SendIDs[0])
	if orig.SupersededBy != rec.ID || rec.ResendOf != id || rec.ResendBy != "jane" || rec.ResendReason != "lost" || rec.ID != ResendID(id) {
		t.Fatalf("links: original %+v, resend %+v", orig, rec)
	}
	// Sending again is resending the resend: linked to the first send.
	second, err := h.svc.Resend(ctx, ResendRequest{SendID: rec.ID, By: "bob", Reason: "still lost", IdempotencyKey: "another-click"})
	if err != nil || second.Repeat || second.Status != StatusSent || slices.Equal(second.SendIDs, first.SendIDs) {
		t.Fatalf("resend of the resend = %+v, %v", second, err)
	}
	if rec, _ := h.svc.GetSend(ctx, second.SendIDs[0]); rec.ResendOf != id || rec.ResendBy != "bob" {
		t.Fatalf("resend of a resend = %+v, want linked to %s", rec, id)
	}
	if n := len(h.sends()); n != 3 {
		t.Fatalf("%d sends, want 3", n)
	}
	if _, err := h.svc.Resend(ctx, ResendRequest{SendID: id, By: "jane", Reason: "x", IdempotencyKey: strings.Repeat("k", MaxIdempotencyKey+1)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an oversized key: %v, want ErrInvalid", err)
	}
}

// TestResendRepeatFinishesARetryableFailure: the first request failed because
// NowCerts was unavailable (the API answered 503: retry); its retry, with the
// same key, finishes that same resend instead of starting another.
func TestResendRepeatFinishesARetryableFailure(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	id := sentOnce(t, h, "r-resend-retry")
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 503, Count: 2}); err != nil {
		t.Fatal(err)
	}
	q := ResendRequest{SendID: id, By: "jane", Reason: "lost", IdempotencyKey: "k-retry"}
	first, err := h.svc.Resend(ctx, q)
	if err == nil || first.Status != StatusFailed || len(first.SendIDs) != 1 {
		t.Fatalf("first = %+v, %v; want a retryable failure", first, err)
	}
	again, err := h.svc.Resend(ctx, q)
	if err != nil || again.Status != StatusSent || !slices.Equal(again.SendIDs, first.SendIDs) {
		t.Fatalf("retry = %+v, %v", again, err)
	}
	if n := len(h.sends()); n != 2 {
		t.Fatalf("%d sends, want 2", n)
	}
	rec, _ := h.svc.GetSend(ctx, first.SendIDs[0])
	if rec.Attempts != 2 || len(rec.History) != 2 || rec.History[0].Status != StatusFailed || rec.History[1].Status != StatusSent {
		t.Fatalf("resend record = %+v", rec)
	}
}
