package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/store"
)

// TestAdvanceRevision: the newest event's revision of a certificate wins
// whatever the order of arrival; a redelivery of the current revision is
// current; an older one is not, and reports the newer mark.
func TestAdvanceRevision(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	k := store.RevisionKey{Certificate: "cert-1"}
	t0 := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	mark := func(rev string, at time.Time) store.RevisionMark {
		return store.RevisionMark{RevisionKey: k, Revision: rev, EventAt: at, SendID: "snd_" + rev}
	}
	if _, err := st.GetRevision(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("before any: %v", err)
	}
	prev, cur, err := st.AdvanceRevision(ctx, mark("r1", t0))
	if err != nil || !cur || prev.Revision != "" {
		t.Fatalf("first: %+v %v %v", prev, cur, err)
	}
	// A redelivery of r1 (same or earlier event time) is current, unchanged.
	for _, at := range []time.Time{t0, t0.Add(-time.Minute)} {
		if prev, cur, err := st.AdvanceRevision(ctx, mark("r1", at)); err != nil || !cur || prev.Revision != "r1" {
			t.Fatalf("redelivery at %s: %+v %v %v", at, prev, cur, err)
		}
	}
	// r2 is newer: recorded; prev is r1 (what it supersedes).
	prev, cur, err = st.AdvanceRevision(ctx, mark("r2", t0.Add(time.Hour)))
	if err != nil || !cur || prev.Revision != "r1" || prev.SendID != "snd_r1" || !prev.EventAt.Equal(t0) {
		t.Fatalf("newer: %+v %v %v", prev, cur, err)
	}
	// r1 again, late: stale, and the newer mark is reported.
	prev, cur, err = st.AdvanceRevision(ctx, mark("r1", t0.Add(time.Minute)))
	if err != nil || cur || prev.Revision != "r2" || prev.SendID != "snd_r2" {
		t.Fatalf("late older: %+v %v %v", prev, cur, err)
	}
	// Same instant, different revision: the one that sorts last wins, either order.
	if _, cur, _ := st.AdvanceRevision(ctx, mark("r0", t0.Add(time.Hour))); cur {
		t.Fatal("r0 at r2's instant replaced r2")
	}
	if _, cur, _ := st.AdvanceRevision(ctx, mark("r3", t0.Add(time.Hour))); !cur {
		t.Fatal("r3 at r2's instant did not replace r2")
	}
	got, err := st.GetRevision(ctx, k)
	if err != nil || got.Revision != "r3" || got.SendID != "snd_r3" {
		t.Fatalf("stored: %+v %v", got, err)
	}
	if _, _, err := st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: k}); err == nil {
		t.Fatal("a mark without revision was accepted")
	}

	// An event without a time of its own is ordered by its arrival (an upper
	// bound of when it happened) and says so; a timed event must be later
	// than that arrival to replace it.
	k2 := store.RevisionKey{Certificate: "cert-weak"}
	w := store.RevisionMark{RevisionKey: k2, Revision: "w1", EventAt: t0.Add(time.Hour), Weak: true, SendID: "snd_w1"}
	if _, cur, err := st.AdvanceRevision(ctx, w); err != nil || !cur {
		t.Fatalf("weak first mark: %v %v", cur, err)
	}
	if prev, cur, err := st.AdvanceRevision(ctx, w); err != nil || !cur || !prev.Weak {
		t.Fatalf("weak redelivery: %+v %v %v", prev, cur, err)
	}
	if prev, cur, err := st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: k2, Revision: "w0", EventAt: t0, SendID: "snd_w0"}); err != nil || cur || prev.Revision != "w1" {
		t.Fatalf("timed before the weak arrival: %+v %v %v", prev, cur, err)
	}
	if prev, cur, err := st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: k2, Revision: "w2", EventAt: t0.Add(2 * time.Hour), SendID: "snd_w2"}); err != nil || !cur || prev.Revision != "w1" {
		t.Fatalf("timed after the weak arrival: %+v %v %v", prev, cur, err)
	}
	if w, err := st.GetRevision(ctx, k2); err != nil || w.UntimedChange {
		t.Fatalf("a timed change or a first untimed mark is no untimed change: %+v %v", w, err)
	}
	w3 := store.RevisionMark{RevisionKey: k2, Revision: "w3", EventAt: t0.Add(3 * time.Hour), Weak: true, SendID: "snd_w3"}
	if prev, cur, err := st.AdvanceRevision(ctx, w3); err != nil || !cur || prev.Revision != "w2" || prev.UntimedChange {
		t.Fatalf("weak arriving later: %+v %v %v", prev, cur, err)
	}
	// The untimed change is remembered for every later handling of w3: a
	// redelivery, or a timed event of the same revision.
	if prev, cur, err := st.AdvanceRevision(ctx, w3); err != nil || !cur || !prev.UntimedChange {
		t.Fatalf("redelivery of the untimed change: %+v %v %v", prev, cur, err)
	}
	if prev, cur, err := st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: k2, Revision: "w3", EventAt: t0.Add(4 * time.Hour), SendID: "snd_w3"}); err != nil || !cur || !prev.UntimedChange {
		t.Fatalf("timed event of the untimed revision: %+v %v %v", prev, cur, err)
	}
	// A timed change to another revision clears it.
	if _, cur, err := st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: k2, Revision: "w4", EventAt: t0.Add(5 * time.Hour), SendID: "snd_w4"}); err != nil || !cur {
		t.Fatalf("timed change: %v %v", cur, err)
	}
	if w, err := st.GetRevision(ctx, k2); err != nil || w.UntimedChange || w.Revision != "w4" {
		t.Fatalf("after a timed change: %+v %v", w, err)
	}
}

// TestHoldAndResendGuardedByLatestRevision: a hold or a resend claim for an
// older revision is refused (nothing written) and names the newer one.
func TestHoldAndResendGuardedByLatestRevision(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	k := store.RevisionKey{Certificate: "cert-1"}
	if _, _, err := st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: k, Revision: "r2", EventAt: time.Now(), SendID: "snd_new"}); err != nil {
		t.Fatal(err)
	}
	h := sampleHold("h-old")
	h.Revision = "r1"
	rec := holdSend(h)
	var ce *store.ClaimConflictError
	if err := st.PutHoldOf(ctx, h, rec, &k); !errors.As(err, &ce) || !ce.Superseded || ce.Newer.Revision != "r2" {
		t.Fatalf("hold of an older revision: %v", err)
	}
	if _, err := st.GetHold(ctx, h.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused hold was written: %v", err)
	}
	h.Revision, rec.Revision = "r2", "r2"
	if err := st.PutHoldOf(ctx, h, rec, &k); err != nil {
		t.Fatalf("hold of the newest revision: %v", err)
	}

	sent := sampleSend("snd_r1")
	sent.Revision = "r1"
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sent, Owner: "o", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteSend(ctx, sent.ID, "o", store.Completion{Status: store.SendSent}); err != nil {
		t.Fatal(err)
	}
	if err := st.ClaimResendOf(ctx, sent.ID, "snd_r1_resend", "", &k, "r1"); !errors.As(err, &ce) || !ce.Superseded {
		t.Fatalf("resend of an older revision: %v", err)
	}
	if got, _ := st.GetSend(ctx, sent.ID); got.SupersededBy != "" {
		t.Fatalf("the refused resend marked the send: %+v", got)
	}
}

// TestClaimGuardedByLatestRevision: a claim for an older revision is refused
// and names the newer one; the current revision's claim (also with the policy
// guard) goes through; a key with no mark does not block.
func TestClaimGuardedByLatestRevision(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	k := store.RevisionKey{Certificate: "cert-2"}
	t0 := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	if _, _, err := st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: k, Revision: "r2", EventAt: t0, SendID: "snd_new"}); err != nil {
		t.Fatal(err)
	}
	old := sampleSend("snd_old")
	old.Revision = "r1"
	for _, policy := range []string{"", "CB-7"} {
		var ce *store.ClaimConflictError
		_, err := st.ClaimSend(ctx, store.Claim{Send: old, Owner: "o", Lease: time.Minute, Latest: &k, PolicyNumber: policy})
		if !errors.As(err, &ce) || !ce.Superseded || ce.Newer.Revision != "r2" || ce.Newer.SendID != "snd_new" || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("older revision (policy %q): %v", policy, err)
		}
	}
	if _, err := st.GetSend(ctx, "snd_old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused claim wrote the record: %v", err)
	}
	cur := sampleSend("snd_new")
	cur.Revision = "r2"
	if _, err := st.ClaimSend(ctx, store.Claim{Send: cur, Owner: "o", Lease: time.Minute, Latest: &k, PolicyNumber: "CB-7"}); err != nil {
		t.Fatalf("current revision: %v", err)
	}
	other := sampleSend("snd_unmarked")
	if _, err := st.ClaimSend(ctx, store.Claim{Send: other, Owner: "o", Lease: time.Minute, Latest: &store.RevisionKey{Certificate: "cert-3"}}); err != nil {
		t.Fatalf("no mark recorded: %v", err)
	}
	// The record guard still applies behind the revision guard.
	var ce *store.ClaimConflictError
	if _, err := st.ClaimSend(ctx, store.Claim{Send: cur, Owner: "o2", Lease: time.Minute, Latest: &k}); !errors.As(err, &ce) || ce.Superseded || ce.Existing.Status != store.SendSending {
		t.Fatalf("second claim of the current revision: %v", err)
	}
}
