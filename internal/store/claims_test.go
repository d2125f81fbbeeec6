package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/store"
)

// TestGettersReportNotFound: the getters built on getItem say ErrNotFound,
// naming what they looked for, when there is no item (GetSettings returns the
// defaults instead: TestSettingsDefaultsAndRoundTrip).
func TestGettersReportNotFound(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	for name, get := range map[string]func() error{
		"send snd_none":         func() error { _, err := st.GetSend(ctx, "snd_none"); return err },
		"hold hld_none":         func() error { _, err := st.GetHold(ctx, "hld_none"); return err },
		"policy CB-NONE status": func() error { _, err := st.GetPolicyStatus(ctx, "CB-NONE"); return err },
		"quarantine evt_none":   func() error { _, err := st.GetQuarantine(ctx, "evt_none"); return err },
	} {
		if err := get(); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "get "+name) {
			t.Errorf("%s: %v, want ErrNotFound naming it", name, err)
		}
	}
	// And they read what was written.
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_get"), Owner: "o", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if rec, err := st.GetSend(ctx, "snd_get"); err != nil || rec.ID != "snd_get" || rec.Status != store.SendSending || rec.HolderEmail != sampleSend("x").HolderEmail {
		t.Fatalf("GetSend = %+v, %v", rec, err)
	}
}

// TestAutomaticClaimSkipsAHoldsRecord: a FAILED (retryable) or UNKNOWN record
// that belongs to a hold is claimed by staff (approval, resend) only, never by
// an automatic delivery.
func TestAutomaticClaimSkipsAHoldsRecord(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	h := sampleHold("h-auto")
	rec := holdSend(h)
	if err := st.PutHold(ctx, h, rec); err != nil {
		t.Fatal(err)
	}
	approval := store.Claim{Send: rec, Owner: "approval-1", Lease: time.Minute, ReclaimFailed: true, ReclaimHeld: true, Staff: true}
	if _, err := st.ClaimSend(ctx, approval); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteSend(ctx, rec.ID, "approval-1", store.Completion{Status: store.SendFailed, Error: "HTTP 503", Retryable: true}); err != nil {
		t.Fatal(err)
	}
	auto := rec
	auto.HoldID = "" // an automatic delivery does not know the hold
	var ce *store.ClaimConflictError
	for _, c := range []store.Claim{
		{Send: auto, Owner: "auto-1", Lease: time.Minute},
		{Send: auto, Owner: "auto-2", Lease: time.Minute, ReclaimUnknown: true, PolicyNumber: "CB-9"},
	} {
		if _, err := st.ClaimSend(ctx, c); !errors.As(err, &ce) || ce.Existing.Status != store.SendFailed || ce.Existing.HoldID != h.ID {
			t.Fatalf("automatic claim of a hold's FAILED record: %v", err)
		}
	}
	// A record without a hold stays claimable after a retryable failure.
	free := sampleSend("snd_free")
	if _, err := st.ClaimSend(ctx, store.Claim{Send: free, Owner: "o1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteSend(ctx, free.ID, "o1", store.Completion{Status: store.SendFailed, Retryable: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimSend(ctx, store.Claim{Send: free, Owner: "o2", Lease: time.Minute}); err != nil {
		t.Fatalf("retryable FAILED record without a hold: %v", err)
	}
	// Staff may: the next approval.
	approval.Owner = "approval-2"
	if got, err := st.ClaimSend(ctx, approval); err != nil || got.Attempts != 2 {
		t.Fatalf("approval claim = %+v, %v", got, err)
	}
	// An UNKNOWN record of a hold: not even with resendUnknown.
	if err := st.CompleteSend(ctx, rec.ID, "approval-2", store.Completion{Status: store.SendUnknown, Error: "timeout"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimSend(ctx, store.Claim{Send: auto, Owner: "auto-3", Lease: time.Minute, ReclaimUnknown: true}); !errors.As(err, &ce) || ce.Existing.Status != store.SendUnknown {
		t.Fatalf("automatic claim of a hold's UNKNOWN record: %v", err)
	}
}

// TestCompletionReturnsAttempts: a claim made in a transaction (policy guard)
// cannot return the attempt count; the completion does.
func TestCompletionReturnsAttempts(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	rec := sampleSend("snd_txn")
	for i := 1; i <= 3; i++ {
		owner := fmt.Sprintf("o%d", i)
		claimed, err := st.ClaimSend(ctx, store.Claim{Send: rec, Owner: owner, Lease: time.Minute, PolicyNumber: "CB-TXN"})
		if err != nil {
			t.Fatal(err)
		}
		if claimed.Attempts != 0 {
			t.Fatalf("a transactional claim reports %d attempts: the doc says 0", claimed.Attempts)
		}
		c := store.Completion{Status: store.SendFailed, Error: "HTTP 500", Retryable: true, RequestID: "req-" + owner}
		if i == 3 {
			c = store.Completion{Status: store.SendSent, Answer: "sent", RequestID: "req-" + owner}
		}
		done, err := st.CompleteSendRecord(ctx, rec.ID, owner, c)
		if err != nil || done.Attempts != i || len(done.History) != i || done.Status != c.Status || done.ID != rec.ID {
			t.Fatalf("completion %d = %+v, %v", i, done, err)
		}
	}
	if _, err := st.CompleteSendRecord(ctx, rec.ID, "o1", store.Completion{Status: store.SendSent}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("completion by a former owner: %v", err)
	}
}

// TestClaimResendOnce: concurrent resends of one send: one claim wins; the
// record names it (and the winner's key); a missing record is a conflict, and
// so is a record an attempt is sending right now.
func TestClaimResendOnce(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	rec := sampleSend("snd_resent")
	if _, err := st.ClaimSend(ctx, store.Claim{Send: rec, Owner: "o", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.ClaimResend(ctx, rec.ID, "snd_early", ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("resend during a live claim: %v, want ErrConflict", err)
	}
	if err := st.CompleteSend(ctx, rec.ID, "o", store.Completion{Status: store.SendSent, Answer: "ok"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.ClaimResend(ctx, rec.ID, fmt.Sprintf("snd_r%d", i), fmt.Sprintf("key-%d", i))
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("claims %d and %d both won", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no claim won")
	}
	got, err := st.GetSend(ctx, rec.ID)
	if err != nil || got.SupersededBy != fmt.Sprintf("snd_r%d", won) || got.ResendKey != fmt.Sprintf("key-%d", won) || got.Status != store.SendSent {
		t.Fatalf("record = %+v, %v", got, err)
	}
	if err := st.ClaimResend(ctx, "snd_missing", "snd_rx", ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("resend of a missing record: %v", err)
	}
}

// TestResentRecordIsNeverReclaimed: a FAILED (retryable) or UNKNOWN send that
// staff resent is not claimed again by its own job's redelivery, nor by an
// approval: the resend is the send now.
func TestResentRecordIsNeverReclaimed(t *testing.T) {
	st, clk := newSendsStore(t)
	ctx := context.Background()

	failed := sampleSend("snd_failed_resent")
	if _, err := st.ClaimSend(ctx, store.Claim{Send: failed, Owner: "o1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteSend(ctx, failed.ID, "o1", store.Completion{Status: store.SendFailed, Error: "HTTP 500", Retryable: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.ClaimResend(ctx, failed.ID, "snd_failed_resent_r", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetSend(ctx, failed.ID); err != nil || got.Retryable {
		t.Fatalf("after the resend claim: %+v %v (want retryable cleared)", got, err)
	}
	for _, c := range []store.Claim{
		{Send: failed, Owner: "redelivery", Lease: time.Minute},
		{Send: failed, Owner: "staff", Lease: time.Minute, ReclaimFailed: true, Staff: true},
	} {
		var ce *store.ClaimConflictError
		if _, err := st.ClaimSend(ctx, c); !errors.As(err, &ce) || ce.Existing.Status != store.SendFailed {
			t.Fatalf("claim %s of a resent FAILED send: %v", c.Owner, err)
		}
	}

	unknown := sampleSend("snd_unknown_resent")
	if _, err := st.ClaimSend(ctx, store.Claim{Send: unknown, Owner: "o2", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Minute)
	if err := st.MarkSendUnknown(ctx, unknown.ID, "o2", "lease expired"); err != nil {
		t.Fatal(err)
	}
	if err := st.ClaimResend(ctx, unknown.ID, "snd_unknown_resent_r", ""); err != nil {
		t.Fatal(err)
	}
	var ce *store.ClaimConflictError
	if _, err := st.ClaimSend(ctx, store.Claim{Send: unknown, Owner: "o3", Lease: time.Minute, ReclaimUnknown: true}); !errors.As(err, &ce) || ce.Existing.Status != store.SendUnknown {
		t.Fatalf("reclaim of a resent UNKNOWN send: %v", err)
	}
}
