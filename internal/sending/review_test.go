package sending

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/store"
)

// TestLostCompletionFailsTheJob: SendCertificate succeeded but the completion
// write failed (through its retries). Acknowledging the job would leave the
// record SENDING for good, never counted as unknown: the job fails instead,
// and its redelivery after the visibility timeout (longer than the lease)
// marks the record UNKNOWN with SendUnknown — and never sends again.
func TestLostCompletionFailsTheJob(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	ev := holderEvent(ready("r-lost-completion"), seedHolders[holderEmail])
	msg := sqsEvent(t, sendJob(ev))
	stop := isCompletion(store.SendSent)
	h.db.failUpdate.Store(&stop)
	resp, err := h.svc.HandleSQS(ctx, msg)
	h.db.failUpdate.Store(nil)
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != msg.Records[0].MessageId {
		t.Fatalf("batch response = %+v, %v; want the message reported failed", resp, err)
	}
	id := SendID(certReady, strings.ToLower(holderEmail), "r-lost-completion")
	if rec, _ := h.st.GetSend(ctx, id); rec.Status != store.SendSending {
		t.Fatalf("record = %+v, want SENDING", rec)
	}
	if len(h.sends()) != 1 || h.metrics.metric("SendUnknown") != 0 {
		t.Fatalf("sends %d, SendUnknown %v", len(h.sends()), h.metrics.metric("SendUnknown"))
	}

	// SQS redelivers it once the visibility timeout has passed.
	h.clk.Add(2 * time.Minute)
	for range 2 {
		resp, err = h.svc.HandleSQS(ctx, msg)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("redelivery = %+v, %v", resp, err)
		}
	}
	rec, err := h.svc.GetSend(ctx, id)
	if err != nil || rec.Status != StatusUnknown || len(rec.History) != 1 || rec.History[0].Status != StatusUnknown {
		t.Fatalf("record after the redelivery = %+v, %v", rec, err)
	}
	if got := h.metrics.metric("SendUnknown"); got != 1 {
		t.Fatalf("SendUnknown = %v, want 1", got)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d SendCertificates, want 1", n)
	}
}

// TestLostCompletionOfAnApprovalIsCounted: a staff approval has no
// redelivery to mark its unrecorded send UNKNOWN: SendUnknown is counted at
// once, and the record reads UNKNOWN once its claim expires.
func TestLostCompletionOfAnApprovalIsCounted(t *testing.T) {
	set := store.DefaultSettings(store.DefaultAgency)
	set.Rules.ApproveAll = true
	h := newHarness(t, harnessOptions{settings: &set})
	ctx := context.Background()
	if err := h.svc.Handle(ctx, sendJob(holderEvent(ready("r-lost-approval"), seedHolders[holderEmail]))); err != nil {
		t.Fatal(err)
	}
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 {
		t.Fatalf("holds = %+v", holds)
	}
	stop := isCompletion(store.SendSent)
	h.db.failUpdate.Store(&stop)
	out, err := h.svc.Approve(ctx, holds[0].ID, "jane")
	h.db.failUpdate.Store(nil)
	if err != nil || out.Status != StatusSent {
		t.Fatalf("approval = %+v, %v", out, err)
	}
	if got := h.metrics.metric("SendUnknown"); got != 1 {
		t.Fatalf("SendUnknown = %v, want 1", got)
	}
	h.clk.Add(2 * time.Minute)
	if rec, _ := h.svc.GetSend(ctx, out.SendIDs[0]); rec.Status != StatusUnknown {
		t.Fatalf("record = %+v, want UNKNOWN once the claim expired", rec)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
}

// TestRedeliveryCannotClaimAHoldsFailedSend: an approval whose SendCertificate
// failed retryably leaves the hold pending and its record FAILED (retryable).
// The original event, redelivered after the facts changed (the agency turned
// "approve everything" off), must not send the held certificate: only the
// approval may.
func TestRedeliveryCannotClaimAHoldsFailedSend(t *testing.T) {
	set := store.DefaultSettings(store.DefaultAgency)
	set.Rules.ApproveAll = true
	h := newHarness(t, harnessOptions{settings: &set})
	ctx := context.Background()
	ev := holderEvent(ready("r-hold-claim"), seedHolders[holderEmail])
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	holds, err := h.svc.ListHolds(ctx, HoldQuery{})
	if err != nil || len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonApproveAll}) {
		t.Fatalf("holds = %+v, %v", holds, err)
	}
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 503, Count: 2}); err != nil {
		t.Fatal(err)
	}
	if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err == nil || out.Status != StatusFailed {
		t.Fatalf("approval with NowCerts unavailable = %+v, %v", out, err)
	}
	rec, _ := h.st.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-hold-claim"))
	if rec.Status != store.SendFailed || !rec.Retryable || rec.HoldID != holds[0].ID {
		t.Fatalf("record after the failed approval = %+v", rec)
	}

	set.Rules.ApproveAll = false
	if err := h.st.PutSettings(ctx, set); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(2 * time.Minute) // past the settings cache
	for range 2 {
		if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.sends()); n != 0 {
		t.Fatalf("the redelivery sent a held certificate: %d sends", n)
	}
	if hs, _ := h.svc.ListHolds(ctx, HoldQuery{}); len(hs) != 1 || hs[0].Status != HoldPending {
		t.Fatalf("holds = %+v", hs)
	}
	if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err != nil || out.Status != StatusSent {
		t.Fatalf("approval = %+v, %v", out, err)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
}

// TestGatewayErrorsAreUnknown: NowCerts behind a gateway that answers 504
// after carrying the send out (or 502): the send is not repeated, it is
// recorded UNKNOWN and counted, and redeliveries leave it for review.
func TestGatewayErrorsAreUnknown(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault nowcertssandbox.Fault
		sent  int // what the sandbox carried out
	}{
		{"504 after the send", nowcertssandbox.Fault{Path: "SendCertificate", Timeout: true, Sent: true, Count: 1}, 1},
		{"502", nowcertssandbox.Fault{Path: "SendCertificate", Status: 502, Count: 1}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{sandbox: nowcertssandbox.Options{MaxHang: 100 * time.Millisecond}})
			ctx := context.Background()
			if err := h.sb.AddFault(c.fault); err != nil {
				t.Fatal(err)
			}
			ev := holderEvent(ready("r-gateway"), seedHolders[holderEmail])
			msg := sqsEvent(t, sendJob(ev))
			for range 2 {
				if resp, err := h.svc.HandleSQS(ctx, msg); err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("an unknown outcome is not retried: %+v %v", resp, err)
				}
			}
			calls := h.sb.CallsTo("SendCertificate")
			if len(calls) != 1 || len(h.sends()) != c.sent {
				t.Fatalf("%d SendCertificate calls (%d carried out), want 1 (%d)", len(calls), len(h.sends()), c.sent)
			}
			rec, _ := h.svc.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-gateway"))
			if rec.Status != StatusUnknown || !strings.Contains(rec.Error, "gateway") {
				t.Fatalf("record = %+v", rec)
			}
			if h.metrics.metric("SendUnknown") != 1 {
				t.Fatalf("SendUnknown = %v", h.metrics.metric("SendUnknown"))
			}
		})
	}
}

// TestPolicyGuardedRetriesNoteOnce: a certificate naming a policy is claimed in
// a transaction (with the "not cancelled" check). A run of retryable failures
// puts one "failed" note on the CRM timeline, not one per attempt.
func TestPolicyGuardedRetriesNoteOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	cert := ready("r-policy-notes")
	cert.PolicyNo = "CB-NOTE-1"
	ev := holderEvent(cert, seedHolders[holderEmail])
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 500, Count: 6}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // two client attempts per delivery
		if err := h.svc.Handle(ctx, sendJob(ev)); err == nil {
			t.Fatalf("delivery %d succeeded with NowCerts failing", i+1)
		}
	}
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if got := h.timeline.outcomes(); !slices.Equal(got, []string{"failed", "sent"}) {
		t.Fatalf("timeline = %v, want one failed note and the sent one", got)
	}
	rec, _ := h.svc.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-policy-notes"))
	if rec.Status != StatusSent || rec.Attempts != 4 || len(rec.History) != 4 {
		t.Fatalf("record = %+v", rec)
	}
	if h.metrics.metric("SendFailed") != 3 {
		t.Fatalf("SendFailed = %v, want 3", h.metrics.metric("SendFailed"))
	}
}

// TestDashlessGUIDsAreSent: NowCerts ids without dashes are NowCerts ids (its
// model binder reads them): the certificate is sent, with the ids in the
// dashed form on the wire, and the same event with dashed ids is the same send.
func TestDashlessGUIDsAreSent(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	undash := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "")) }
	cert := ready("r-dashless")
	cert.ID, cert.InsuredID = undash(certReady), undash(insuredAcme)
	holder := seedHolders[holderEmail]
	holder.ID = undash(holderEmail)
	ev := holderEvent(cert, holder)
	ev.Insured = &event.Party{ID: undash(insuredAcme), Name: "Acme Builders LLC"}
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	sends := h.sends()
	if len(sends) != 1 || !strings.EqualFold(sends[0].CertificateID, certReady) || len(sends[0].HolderIDs) != 1 ||
		!strings.EqualFold(sends[0].HolderIDs[0], holderEmail) {
		t.Fatalf("sandbox sends = %+v", sends)
	}
	if body := h.sb.CallsTo("SendCertificate")[0].Body; !strings.Contains(strings.ToLower(body), strings.ToLower(holderEmail)) {
		t.Fatalf("request body lacks the dashed holder id: %s", body)
	}
	// The same certificate and holder named with dashes: a duplicate.
	if err := h.svc.Handle(ctx, sendJob(holderEvent(ready("r-dashless"), seedHolders[holderEmail]))); err != nil {
		t.Fatal(err)
	}
	if n := len(h.sends()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
	if rec, err := h.svc.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-dashless")); err != nil || rec.Status != StatusSent {
		t.Fatalf("record = %+v, %v", rec, err)
	}
}
