package sending

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// TestResendCannotBypassAPendingHold: an approval whose SendCertificate failed
// returns the hold to pending and leaves its send FAILED. A resend of that
// FAILED send would send the certificate while the hold still waits, and the
// next approval would send it a second time: the resend is refused (approve
// the hold again instead), and the approval then sends it once.
func TestResendCannotBypassAPendingHold(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	cert := event.Certificate{ID: certPending, Revision: "r-hold-resend", InsuredID: insuredAcme, AdditionalInsured: true}
	if err := h.svc.Handle(ctx, sendJob(holderEvent(cert, seedHolders[holderBoth]))); err != nil {
		t.Fatal(err)
	}
	holds, err := h.svc.ListHolds(ctx, HoldQuery{})
	if err != nil || len(holds) != 1 {
		t.Fatalf("holds = %+v, %v", holds, err)
	}
	// The approval's SendCertificate fails through every client attempt.
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 500, Count: 2}); err != nil {
		t.Fatal(err)
	}
	out, err := h.svc.Approve(ctx, holds[0].ID, "jane")
	if err == nil || out.Status != StatusFailed || len(out.SendIDs) != 1 {
		t.Fatalf("approval with NowCerts down = %+v, %v", out, err)
	}
	if hs, _ := h.svc.ListHolds(ctx, HoldQuery{}); len(hs) != 1 || hs[0].Status != HoldPending {
		t.Fatalf("hold after a failed approval = %+v", hs)
	}
	if _, err := h.svc.Resend(ctx, ResendRequest{SendID: out.SendIDs[0], By: "bob", Reason: "try again"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("resend of a pending hold's failed send: %v, want ErrConflict", err)
	}
	if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err != nil || out.Status != StatusSent {
		t.Fatalf("second approval = %+v, %v", out, err)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("SendCertificate carried out %d times, want 1", n)
	}
}

// TestHolderFixedAfterNoRecipientHoldIsSent: a holder with neither email nor
// fax is held; approval refuses it and tells staff to fix the holder in
// NowCerts ("a new event follows") and reject the hold. That new event names
// the same certificate revision and holder: it must send to the fixed
// address, not be suppressed as a duplicate of the unsendable hold.
func TestHolderFixedAfterNoRecipientHoldIsSent(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	cert := ready("r-fix-holder")
	none := seedHolders[holderNone]
	if err := h.svc.Handle(ctx, sendJob(holderEvent(cert, none))); err != nil {
		t.Fatal(err)
	}
	holds, err := h.svc.ListHolds(ctx, HoldQuery{})
	if err != nil || len(holds) != 1 || holds[0].Reasons[0] != ReasonNoRecipient {
		t.Fatalf("holds = %+v, %v", holds, err)
	}
	if _, err := h.svc.Approve(ctx, holds[0].ID, "jane"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("approval of a hold without recipient: %v, want ErrInvalid", err)
	}
	if err := h.svc.Reject(ctx, holds[0].ID, "jane", "holder fixed in NowCerts"); err != nil {
		t.Fatal(err)
	}
	fixed := none
	fixed.Email = "ops@oldmill.example"
	ev := holderEvent(cert, fixed)
	ev.ID, ev.Type, ev.Action = "evt_holder_fixed", "CertificateHolder.Update", event.ActionUpdate
	for range 2 { // and once only
		if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
			t.Fatal(err)
		}
	}
	sends := h.sends()
	if len(sends) != 1 || len(sends[0].Emails) != 1 || sends[0].Emails[0] != "ops@oldmill.example" {
		t.Fatalf("sends after the holder was fixed = %+v", sends)
	}
}

// TestRefusedApprovalAndResendAreErrors: when NowCerts refuses the send of an
// approval or a resend (status 0), the call fails with NowCerts' refusal (the
// staff API answers 502 with its message), the hold is pending again with the
// reason, and nothing is counted as approved.
func TestRefusedApprovalAndResendAreErrors(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	cert := event.Certificate{ID: certPending, Revision: "r-refused", InsuredID: insuredAcme, AdditionalInsured: true}
	if err := h.svc.Handle(ctx, sendJob(holderEvent(cert, seedHolders[holderBoth]))); err != nil {
		t.Fatal(err)
	}
	holds, err := h.svc.ListHolds(ctx, HoldQuery{})
	if err != nil || len(holds) != 1 {
		t.Fatalf("holds = %+v, %v", holds, err)
	}
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status0: true, Count: 1, Message: "Fax number is invalid"}); err != nil {
		t.Fatal(err)
	}
	out, err := h.svc.Approve(ctx, holds[0].ID, "jane")
	if !errors.Is(err, nowcerts.ErrRejected) || out.Status != StatusFailed || !strings.Contains(err.Error(), "Fax number is invalid") {
		t.Fatalf("refused approval = %+v, %v; want FAILED and NowCerts' refusal", out, err)
	}
	hs, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(hs) != 1 || hs[0].Status != HoldPending || !strings.Contains(hs[0].LastError, "Fax number is invalid") {
		t.Fatalf("hold after the refused approval = %+v", hs)
	}
	if strings.Contains(h.metrics.String(), `"Approved":`) {
		t.Fatalf("a refused approval was counted as approved: %s", h.metrics.String())
	}
	if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err != nil || out.Status != StatusSent {
		t.Fatalf("second approval = %+v, %v", out, err)
	}

	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status0: true, Count: 1, Message: "Mailbox unavailable"}); err != nil {
		t.Fatal(err)
	}
	out, err = h.svc.Resend(ctx, ResendRequest{SendID: out.SendIDs[0], By: "bob", Reason: "holder lost it"})
	if !errors.Is(err, nowcerts.ErrRejected) || out.Status != StatusFailed || len(out.SendIDs) != 1 {
		t.Fatalf("refused resend = %+v, %v; want FAILED and NowCerts' refusal", out, err)
	}
}

// TestHeldCertificateFollowsTheCorrectedAddress: a held certificate's holder
// has a typo in its email; staff correct it in NowCerts, whose update event
// keeps the certificate revision (same send key). The pending hold takes the
// new address (an older event redelivered later does not bring the typo
// back), and approval sends there.
func TestHeldCertificateFollowsTheCorrectedAddress(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	cert := ready("r-typo")
	cert.AdditionalInsured = true
	typo := seedHolders[holderEmail]
	typo.Email = "coi@nortwind-pm.example"
	first := holderEvent(cert, typo)
	first.OccurredAt = t0
	if err := h.svc.Handle(ctx, sendJob(first)); err != nil {
		t.Fatal(err)
	}
	fixed := seedHolders[holderEmail]
	fixed.Email = "coi@northwind-pm.example"
	update := holderEvent(cert, fixed)
	update.ID, update.Type, update.Action, update.OccurredAt = "evt_holder_corrected", "CertificateHolder.Update", event.ActionUpdate, t0.Add(time.Minute)
	for _, ev := range []event.Event{update, first} { // the older one redelivered after
		if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
			t.Fatal(err)
		}
	}
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || holds[0].HolderEmail != "coi@northwind-pm.example" {
		t.Fatalf("holds = %+v", holds)
	}
	if rec, _ := h.svc.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-typo")); rec.HolderEmail != "coi@northwind-pm.example" {
		t.Fatalf("held send record = %+v", rec)
	}
	if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err != nil || out.Status != StatusSent {
		t.Fatalf("approval = %+v %v", out, err)
	}
	sends := h.sends()
	if len(sends) != 1 || !slices.Equal(sends[0].Emails, []string{"coi@northwind-pm.example"}) {
		t.Fatalf("sends = %+v", sends)
	}
	if strings.Contains(h.logs.String(), "northwind-pm.example") {
		t.Fatal("an address was logged in clear")
	}
}
