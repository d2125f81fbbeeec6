package sending

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/store"
)

// mustHandle runs one send job for ev through the worker.
func mustHandle(t *testing.T, h *harness, ev event.Event) {
	t.Helper()
	if err := h.svc.Handle(context.Background(), sendJob(ev)); err != nil {
		t.Fatal(err)
	}
}

// revisionEvent is a holder event for revision rev of certReady to the
// email holder, at a given event time.
func revisionEvent(rev string, at time.Time, ai bool) event.Event {
	c := ready(rev)
	c.AdditionalInsured = ai
	ev := holderEvent(c, seedHolders[holderEmail])
	ev.OccurredAt = at
	return ev
}

// TestNewerRevisionRetiresTheOlderHold: revision 1 is held; revision 2 of
// the same certificate for the same holder needs no approval and is sent.
// NowCerts sends the current content, so approving revision 1 now would send
// revision 2 again under revision 1's record: the hold is retired when
// revision 2 arrives, and an approval of it is refused.
func TestNewerRevisionRetiresTheOlderHold(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	mustHandle(t, h, revisionEvent("rev-1", t0, true))
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || holds[0].Revision != "rev-1" {
		t.Fatalf("holds = %+v", holds)
	}
	mustHandle(t, h, revisionEvent("rev-2", t0.Add(time.Minute), false))
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want revision 2's", n)
	}
	if pending, _ := h.svc.ListHolds(ctx, HoldQuery{}); len(pending) != 0 {
		t.Fatalf("pending holds = %+v, want none", pending)
	}
	retired, _ := h.svc.ListHolds(ctx, HoldQuery{Status: HoldRejected})
	if len(retired) != 1 || retired[0].DecidedBy != SystemActor || !strings.Contains(retired[0].Reason, "rev-2") {
		t.Fatalf("retired = %+v", retired)
	}
	if _, err := h.svc.Approve(ctx, holds[0].ID, "jane"); !errors.Is(err, ErrConflict) {
		t.Fatalf("approval of the retired hold: %v, want ErrConflict", err)
	}
	if n := len(h.sends()); n != 1 || len(h.sb.Approvals()) != 0 {
		t.Fatalf("%d sends, %d NowCerts approvals after approving a retired hold", n, len(h.sb.Approvals()))
	}
}

// TestOutOfDateHoldIsNotApproved: a hold left pending (it was being approved
// when the newer revision arrived) is refused at approval and retired then,
// before NowCerts Approve is called.
func TestOutOfDateHoldIsNotApproved(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	mustHandle(t, h, revisionEvent("rev-1", t0, true))
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if _, err := h.st.BeginApproval(ctx, holds[0].ID, "bob", time.Minute); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, h, revisionEvent("rev-2", t0.Add(time.Minute), true))
	// bob's approval died; its lease runs out.
	h.clk.Add(3 * time.Minute)
	_, err := h.svc.Approve(ctx, holds[0].ID, "jane")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "rev-2") {
		t.Fatalf("approval of the out-of-date hold: %v", err)
	}
	if n := len(h.sends()); n != 0 || len(h.sb.Approvals()) != 0 {
		t.Fatalf("%d sends, %d NowCerts approvals", n, len(h.sb.Approvals()))
	}
	pending, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(pending) != 1 || pending[0].Revision != "rev-2" {
		t.Fatalf("pending holds = %+v, want revision 2's only", pending)
	}
	if out, err := h.svc.Approve(ctx, pending[0].ID, "jane"); err != nil || out.Status != StatusSent {
		t.Fatalf("approval of revision 2: %+v %v", out, err)
	}
}

// TestRetryOfAnOlderRevisionDoesNotReleaseAHeldOne: revision 1's send failed
// (NowCerts unavailable) and will be redelivered; revision 2 adds an
// additional insured and is held. The redelivery of revision 1 would send the
// held content: it is dropped.
func TestRetryOfAnOlderRevisionDoesNotReleaseAHeldOne(t *testing.T) {
	h := newHarness(t, harnessOptions{attempts: 1})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 503, Count: 1}); err != nil {
		t.Fatal(err)
	}
	first := sendJob(revisionEvent("rev-1", t0, false))
	if err := h.svc.Handle(ctx, first); err == nil {
		t.Fatal("the failed send did not ask for a retry")
	}
	mustHandle(t, h, revisionEvent("rev-2", t0.Add(time.Minute), true))
	if err := h.svc.Handle(ctx, first); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if n := len(h.sends()); n != 0 {
		t.Fatalf("%d sends: the held revision went out through the older one's retry", n)
	}
	if !strings.Contains(h.metrics.String(), `"SendSuperseded":1`) {
		t.Fatalf("superseded send not counted: %s", h.metrics.String())
	}
	rec, _ := h.st.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "rev-1"))
	if rec.Status != store.SendFailed {
		t.Fatalf("revision 1's record = %+v", rec)
	}
}

// TestLateOlderRevisionIsDropped: events arrive out of order; revision 1's
// event (older) after revision 2's is neither held nor sent.
func TestLateOlderRevisionIsDropped(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	mustHandle(t, h, revisionEvent("rev-2", t0.Add(time.Minute), false))
	for _, ai := range []bool{false, true} {
		mustHandle(t, h, revisionEvent("rev-1", t0, ai))
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want revision 2's only", n)
	}
	if holds, _ := h.svc.ListHolds(ctx, HoldQuery{}); len(holds) != 0 {
		t.Fatalf("holds = %+v", holds)
	}
	if _, err := h.st.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "rev-1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revision 1 left a record: %v", err)
	}
}

// TestResendOfAnOlderRevisionIsRefused: once revision 2 was handled, a resend
// of revision 1's send is refused (it would send revision 2's content); the
// resend of revision 2's send goes out.
func TestResendOfAnOlderRevisionIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	for i, rev := range []string{"rev-1", "rev-2"} {
		mustHandle(t, h, revisionEvent(rev, t0.Add(time.Duration(i)*time.Minute), false))
	}
	old := SendID(certReady, strings.ToLower(holderEmail), "rev-1")
	_, err := h.svc.Resend(ctx, ResendRequest{SendID: old, By: "bob", Reason: "holder asked"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "rev-2") {
		t.Fatalf("resend of revision 1: %v", err)
	}
	if rec, _ := h.st.GetSend(ctx, old); rec.SupersededBy != "" {
		t.Fatalf("the refused resend marked the send resent: %+v", rec)
	}
	cur := SendID(certReady, strings.ToLower(holderEmail), "rev-2")
	if out, err := h.svc.Resend(ctx, ResendRequest{SendID: cur, By: "bob", Reason: "holder asked"}); err != nil || out.Status != StatusSent {
		t.Fatalf("resend of revision 2: %+v %v", out, err)
	}
	if n := len(h.sends()); n != 3 {
		t.Fatalf("%d sends, want 3 (two revisions, one resend)", n)
	}
}

// TestNewerRevisionReholdsOtherHolders: SendCertificate sends a certificate's
// current content to whoever it goes to, so the revision mark is per
// certificate. Holder A's revision 1 is held; revision 2 reaches holder B
// and is sent. A's hold cannot release revision 1 any more: it is held again
// at revision 2 (its reasons plus "changed since"), and only that hold's
// approval sends A the certificate, once.
func TestNewerRevisionReholdsOtherHolders(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	mustHandle(t, h, revisionEvent("rev-1", t0, true))
	old, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(old) != 1 {
		t.Fatalf("holds = %+v", old)
	}
	toB := holderEvent(ready("rev-2"), seedHolders[holderFax])
	toB.OccurredAt = t0.Add(time.Minute)
	mustHandle(t, h, toB)
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want holder B's", n)
	}
	pending, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(pending) != 1 || pending[0].Revision != "rev-2" || pending[0].HolderID != old[0].HolderID ||
		!slices.Equal(pending[0].Reasons, []string{ReasonAdditionalInsured, ReasonNewerRevision}) {
		t.Fatalf("pending holds = %+v", pending)
	}
	if _, err := h.svc.Approve(ctx, old[0].ID, "jane"); !errors.Is(err, ErrConflict) {
		t.Fatalf("approval of the revision 1 hold: %v", err)
	}
	if out, err := h.svc.Approve(ctx, pending[0].ID, "jane"); err != nil || out.Status != StatusSent {
		t.Fatalf("approval at revision 2: %+v %v", out, err)
	}
	if n := len(h.sends()); n != 2 {
		t.Fatalf("%d sends, want 2", n)
	}
}

// TestHoldWithAFailedApprovalIsHeldAgain: a hold whose approval failed (its
// send record FAILED, the hold pending) is held again too.
func TestHoldWithAFailedApprovalIsHeldAgain(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	mustHandle(t, h, revisionEvent("rev-1", t0, true))
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 503, Count: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err == nil {
		t.Fatal("the approval did not fail")
	}
	toB := holderEvent(ready("rev-2"), seedHolders[holderFax])
	toB.OccurredAt = t0.Add(time.Minute)
	mustHandle(t, h, toB)
	pending, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(pending) != 1 || pending[0].Revision != "rev-2" {
		t.Fatalf("pending holds = %+v", pending)
	}
	if _, err := h.svc.Approve(ctx, holds[0].ID, "jane"); !errors.Is(err, ErrConflict) {
		t.Fatalf("approval of the revision 1 hold: %v", err)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want holder B's only", n)
	}
}

// TestEventWithoutTimeDoesNotOverrideANewerRevision: an event with no time of
// its own is ordered by its arrival, which says little about its revision:
// its revision change is never sent automatically, and the held revision's
// reasons stay with the holder.
func TestEventWithoutTimeDoesNotOverrideANewerRevision(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	mustHandle(t, h, revisionEvent("rev-2", time.Now().UTC().Add(-time.Hour), true))
	late := revisionEvent("rev-1", time.Time{}, false)
	late.ReceivedAt = time.Now().UTC()
	mustHandle(t, h, late)
	if n := len(h.sends()); n != 0 {
		t.Fatalf("%d sends: the untimed older event released the held revision", n)
	}
	pending, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(pending) != 1 || !slices.Contains(pending[0].Reasons, ReasonAdditionalInsured) || !slices.Contains(pending[0].Reasons, ReasonNewerRevision) {
		t.Fatalf("pending holds = %+v", pending)
	}
}

// TestUntimedRevisionsAreHeldNotLost: events without times still move the
// certificate to a later revision (by arrival), but such a change is held
// for review, never sent automatically or dropped.
func TestUntimedRevisionsAreHeldNotLost(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	now := time.Now().UTC()
	for i, rev := range []string{"u-1", "u-2"} {
		ev := revisionEvent(rev, time.Time{}, false)
		ev.ReceivedAt = now.Add(time.Duration(i) * time.Minute)
		mustHandle(t, h, ev)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want the first revision's only", n)
	}
	pending, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(pending) != 1 || pending[0].Revision != "u-2" || !slices.Equal(pending[0].Reasons, []string{ReasonUntimedRevision}) {
		t.Fatalf("pending holds = %+v", pending)
	}
	// An untimed change with a rule's reason keeps both (the policy status is
	// read for held certificates and the reasons recomputed).
	c := ready("u-3")
	c.AdditionalInsured, c.PolicyNo = true, "CBC-7"
	ev := holderEvent(c, seedHolders[holderFax])
	ev.OccurredAt, ev.ReceivedAt = time.Time{}, now.Add(2*time.Minute)
	mustHandle(t, h, ev)
	pending, _ = h.svc.ListHolds(ctx, HoldQuery{})
	found := false
	for _, p := range pending {
		if p.Revision == "u-3" && p.HolderID == holderFax {
			found = slices.Equal(p.Reasons, []string{ReasonAdditionalInsured, ReasonUntimedRevision})
		}
	}
	if !found {
		t.Fatalf("pending holds = %+v", pending)
	}
	// A timed event from before the untimed one's arrival is not newer.
	mustHandle(t, h, revisionEvent("t-0", now.Add(-time.Hour), false))
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends after an older timed event", n)
	}
}

// TestTwoHoldersOfARevisedCertificate: both holders of revision 1 are held
// (additional insured); revision 2 without it reaches both in one event: both
// are sent, neither is left held with the old reason.
func TestTwoHoldersOfARevisedCertificate(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	for i, ai := range []bool{true, false} {
		c := ready(fmt.Sprintf("rev-%d", i+1))
		c.AdditionalInsured = ai
		ev := holderEvent(c, seedHolders[holderEmail], seedHolders[holderFax])
		ev.OccurredAt = t0.Add(time.Duration(i) * time.Minute)
		mustHandle(t, h, ev)
	}
	if n := len(h.sends()); n != 2 {
		t.Fatalf("%d sends, want both holders at revision 2", n)
	}
	if pending, _ := h.svc.ListHolds(ctx, HoldQuery{}); len(pending) != 0 {
		t.Fatalf("pending holds = %+v", pending)
	}
}

// TestLateEventMarksADeadSendUnknown: revision 1's attempt died between its
// claim and its completion; revision 2 is sent meanwhile. Revision 1's
// redelivery still marks its record UNKNOWN for review.
func TestLateEventMarksADeadSendUnknown(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	first := revisionEvent("rev-1", t0, false)
	id := SendID(certReady, strings.ToLower(holderEmail), "rev-1")
	if _, _, err := h.st.AdvanceRevision(ctx, store.RevisionMark{RevisionKey: *revisionKeyOf(certReady), Revision: "rev-1", EventAt: t0, SendID: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.ClaimSend(ctx, store.Claim{Send: store.Send{ID: id, CertificateID: certReady, Revision: "rev-1", HolderID: holderEmail}, Owner: "dead", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, h, revisionEvent("rev-2", t0.Add(time.Minute), false))
	h.clk.Add(3 * time.Minute)
	mustHandle(t, h, first)
	if rec, _ := h.st.GetSend(ctx, id); rec.Status != store.SendUnknown {
		t.Fatalf("revision 1's record = %+v, want UNKNOWN", rec)
	}
	if !strings.Contains(h.metrics.String(), `"SendUnknown":1`) || len(h.sends()) != 1 {
		t.Fatalf("sends %d, metrics %s", len(h.sends()), h.metrics.String())
	}
}

// TestPendingApprovalHoldTakesTheCorrectedAddress: a certificate NowCerts
// refuses as pending approval is held from the send path; the holder's
// corrected address (same revision) reaches that hold too.
func TestPendingApprovalHoldTakesTheCorrectedAddress(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	cert := event.Certificate{ID: certPending, Revision: "r-pending", InsuredID: insuredAcme}
	typo := seedHolders[holderBoth]
	typo.Email = "risk@sprngfield.example"
	first := holderEvent(cert, typo)
	first.OccurredAt = t0
	mustHandle(t, h, first)
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || !slices.Contains(holds[0].Reasons, ReasonPendingApproval) {
		t.Fatalf("holds = %+v", holds)
	}
	fixed := seedHolders[holderBoth]
	fixed.Email = "risk@springfield.example"
	update := holderEvent(cert, fixed)
	update.ID, update.Type, update.Action, update.OccurredAt = "evt_pending_fixed", "CertificateHolder.Update", event.ActionUpdate, t0.Add(time.Minute)
	mustHandle(t, h, update)
	holds, _ = h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || holds[0].HolderEmail != "risk@springfield.example" {
		t.Fatalf("holds after the correction = %+v", holds)
	}
}

// TestReissueToAHeldHolder: holder A's revision 1 is held (holder event,
// keyed by NowCerts holder id); a master-certificate update reissues
// revision 2 automatically to the certificate's historical holders (keyed by
// address), A among them. A gets revision 2 once: the old hold is rejected,
// not held again beside the reissue.
func TestReissueToAHeldHolder(t *testing.T) {
	set := store.DefaultSettings(store.DefaultAgency)
	set.ReissueOnMasterUpdate = store.ReissueAuto
	h := newHarness(t, harnessOptions{settings: &set})
	ctx := context.Background()
	if _, err := h.sb.Seed(nowcertssandbox.SeedData{HistoricalHolders: []nowcertssandbox.HistoricalHolder{{
		Name: "Northwind Property Management", EMail: "coi@northwind-pm.example", CertificateID: certReady,
	}}}); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, h, revisionEvent("rev-1", time.Now().UTC().Add(-time.Hour), true))
	mustHandle(t, h, masterEvent(certReady, "rev-2"))
	sends := h.sends()
	if len(sends) != 1 || !slices.Equal(sends[0].Emails, []string{"coi@northwind-pm.example"}) {
		t.Fatalf("sends = %+v", sends)
	}
	if pending, _ := h.svc.ListHolds(ctx, HoldQuery{}); len(pending) != 0 {
		t.Fatalf("pending holds = %+v", pending)
	}
}

// TestUntimedChangeStaysHeldOnRedelivery: the first delivery of an untimed
// revision change stops after recording it (a crash, a timeout); the
// redelivery finds the revision already recorded and must still hold it for
// review, not send it.
func TestUntimedChangeStaysHeldOnRedelivery(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	now := time.Now().UTC()
	first := revisionEvent("u-1", time.Time{}, false)
	first.ReceivedAt = now
	mustHandle(t, h, first)
	second := revisionEvent("u-2", time.Time{}, false)
	second.ReceivedAt = now.Add(time.Minute)
	if _, err := h.svc.advance(ctx, second, recipientsFromEvent(second.Holders), h.svc.log); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, h, second)
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends: the untimed change went out on its redelivery", n)
	}
	pending, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(pending) != 1 || pending[0].Revision != "u-2" || !slices.Contains(pending[0].Reasons, ReasonUntimedRevision) {
		t.Fatalf("pending holds = %+v", pending)
	}
}
