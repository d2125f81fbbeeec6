package sending

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/store"
)

// sqsEvent wraps jobs as one SQS batch.
func sqsEvent(t testing.TB, js ...jobs.Job) events.SQSEvent {
	t.Helper()
	var ev events.SQSEvent
	for i, j := range js {
		body, err := jobs.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: j.ID + "#" + string(rune('a'+i)), Body: body})
	}
	return ev
}

func TestSameEventTwentyTimesConcurrently(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ev := holderEvent(ready("2026-11-21T10:00:00-05:00"), seedHolders[holderEmail])
	msg := sqsEvent(t, sendJob(ev))
	var wg sync.WaitGroup
	failures := make(chan int, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.svc.HandleSQS(context.Background(), msg)
			if err != nil {
				t.Error(err)
			}
			failures <- len(resp.BatchItemFailures)
		}()
	}
	wg.Wait()
	close(failures)
	for n := range failures {
		if n != 0 {
			t.Fatalf("a delivery failed: %d failures", n)
		}
	}
	sends := h.sends()
	if len(sends) != 1 {
		t.Fatalf("SendCertificate carried out %d times, want 1", len(sends))
	}
	s := sends[0]
	if !strings.EqualFold(s.CertificateID, certReady) || len(s.HolderIDs) != 1 || !strings.EqualFold(s.HolderIDs[0], holderEmail) ||
		len(s.Emails) != 1 || s.Emails[0] != "coi@northwind-pm.example" {
		t.Fatalf("send = %+v", s)
	}
	if !strings.Contains(s.EmailSubject, "Acme Builders LLC") {
		t.Fatalf("subject %q", s.EmailSubject)
	}
	if got := h.metrics.metric("DuplicateSuppressed"); got != 19 {
		t.Fatalf("DuplicateSuppressed = %v, want 19", got)
	}
	if got := h.metrics.metric("CertificatesSent"); got != 1 {
		t.Fatalf("CertificatesSent = %v", got)
	}
	page, err := h.svc.QuerySends(context.Background(), SendQuery{CertificateID: strings.ToUpper(certReady)})
	if err != nil || len(page.Sends) != 1 {
		t.Fatalf("query = %+v, %v", page, err)
	}
	r := page.Sends[0]
	if r.Status != StatusSent || r.HolderEmail != "coi@northwind-pm.example" || r.Channel != "email" || r.EventID != ev.ID ||
		r.RequestID == "" || r.NowCertsAnswer == "" || r.SentAt.IsZero() || r.CreatedAt.IsZero() || r.Attempts != 1 || r.HolderID != holderEmail {
		t.Fatalf("audit record = %+v", r)
	}
	if got := h.timeline.outcomes(); !slices.Equal(got, []string{"sent"}) {
		t.Fatalf("timeline = %v", got)
	}
	if strings.Contains(h.logs.String(), "coi@northwind-pm.example") {
		t.Fatal("a holder email was logged in clear")
	}
	if !strings.Contains(h.logs.String(), `"certificateId":"`+certReady) {
		t.Fatal("logs do not name the certificate")
	}
}

func TestHeldCertificateNeverSentBeforeApproval(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	cert := event.Certificate{ID: certPending, Revision: "2026-02-02T11:05:00-05:00", InsuredID: insuredAcme,
		AdditionalInsured: true, SpecialWording: true, PendingApproval: true}
	ev := holderEvent(cert, seedHolders[holderBoth])
	for range 3 { // redeliveries hold once
		if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.sb.CallsTo("SendCertificate")); n != 0 {
		t.Fatalf("%d SendCertificate calls before approval", n)
	}
	holds, err := h.svc.ListHolds(ctx, HoldQuery{})
	if err != nil || len(holds) != 1 {
		t.Fatalf("holds = %+v, %v", holds, err)
	}
	hd := holds[0]
	wantReasons := []string{ReasonAdditionalInsured, ReasonSpecialWording, ReasonPendingApproval}
	if !slices.Equal(hd.Reasons, wantReasons) || hd.Status != HoldPending || hd.HolderEmail != "risk@springfield.example" ||
		hd.HolderEmailMasked != "r***@s***.example" || hd.EventID != ev.ID || hd.CertificateID != certPending {
		t.Fatalf("hold = %+v", hd)
	}
	if h.metrics.metric("Held") != 1 || h.metrics.metric("DuplicateSuppressed") != 2 {
		t.Fatalf("Held %v Duplicates %v", h.metrics.metric("Held"), h.metrics.metric("DuplicateSuppressed"))
	}
	// The held record is in the audit log, and a resend cannot bypass the hold.
	heldRec, err := h.svc.GetSend(ctx, SendID(certPending, strings.ToLower(holderBoth), cert.Revision))
	if err != nil || heldRec.Status != StatusHeld || heldRec.HoldID != hd.ID || heldRec.Attempts != 0 {
		t.Fatalf("held record = %+v, %v", heldRec, err)
	}
	if _, err := h.svc.Resend(ctx, ResendRequest{SendID: heldRec.ID, By: "mallory", Reason: ""}); !errors.Is(err, ErrConflict) {
		t.Fatalf("resend of a held certificate: %v", err)
	}

	out, err := h.svc.Approve(WithRequestID(ctx, "staff-req-1"), hd.ID, "jane@agency.example")
	if err != nil {
		t.Fatalf("approve: %v (%+v)", err, out)
	}
	if out.Status != StatusSent || len(out.SendIDs) != 1 {
		t.Fatalf("outcome = %+v", out)
	}
	calls := slices.DeleteFunc(h.sandboxCalls(), func(c string) bool { return c != "Approve" && c != "SendCertificate" })
	if !slices.Equal(calls, []string{"Approve", "SendCertificate"}) {
		t.Fatalf("NowCerts calls = %v, want Approve then SendCertificate", calls)
	}
	apps := h.sb.Approvals()
	if len(apps) != 1 || !slices.Equal(apps[0].IDs, []string{nowcertssandbox.SeedHistoricalPending}) {
		t.Fatalf("approvals = %+v", apps)
	}
	s := h.sends()[0]
	if !strings.EqualFold(s.CertificateID, certPending) || s.Fax != "(217) 555-0101" || s.Emails[0] != "risk@springfield.example" {
		t.Fatalf("send = %+v", s)
	}
	rec, err := h.svc.GetSend(ctx, out.SendIDs[0])
	if err != nil || rec.ApprovedBy != "jane@agency.example" || rec.ApprovedAt.IsZero() || rec.HoldID != hd.ID ||
		rec.Channel != "email+fax" || rec.RequestID != "staff-req-1" || rec.Status != StatusSent {
		t.Fatalf("send record = %+v, %v", rec, err)
	}
	approved, _ := h.svc.ListHolds(ctx, HoldQuery{Status: "approved"})
	if len(approved) != 1 || approved[0].DecidedBy != "jane@agency.example" || approved[0].SendIDs[0] != rec.ID {
		t.Fatalf("approved holds = %+v", approved)
	}
	if _, err := h.svc.Approve(ctx, hd.ID, "bob"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second approval: %v, want ErrConflict", err)
	}
	if err := h.svc.Reject(ctx, hd.ID, "bob", "late"); !errors.Is(err, ErrConflict) {
		t.Fatalf("reject after approval: %v, want ErrConflict", err)
	}
	// The event again: nothing new.
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if len(h.sends()) != 1 {
		t.Fatalf("sent %d times", len(h.sends()))
	}
	if h.metrics.metric("Approved") != 1 {
		t.Fatal("Approved not counted")
	}
	if got := h.timeline.outcomes(); !slices.Equal(got, []string{"held", "sent", "approved"}) {
		t.Fatalf("timeline = %v", got)
	}
	if _, err := h.svc.Approve(ctx, "hld_nope", "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approve unknown: %v", err)
	}
}

func TestPendingApprovalFoundAtSendIsHeld(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	// The event does not say the certificate is pending; NowCerts does.
	ev := holderEvent(event.Certificate{ID: certPending, Revision: "r1", InsuredID: insuredAcme}, seedHolders[holderBoth])
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if len(h.sends()) != 0 {
		t.Fatal("a pending certificate was sent")
	}
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{Status: HoldPending})
	if len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonPendingApproval}) {
		t.Fatalf("holds = %+v", holds)
	}
	if h.metrics.metric("SendFailed") != 0 || h.metrics.metric("Held") != 1 {
		t.Fatalf("SendFailed %v Held %v", h.metrics.metric("SendFailed"), h.metrics.metric("Held"))
	}
	// Redelivered: the record is HELD, NowCerts is not called again.
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.sb.CallsTo("SendCertificate")); n != 1 {
		t.Fatalf("SendCertificate called %d times before approval", n)
	}
	held, _ := h.svc.QuerySends(ctx, SendQuery{CertificateID: certPending, Status: "held"})
	if len(held.Sends) != 1 || held.Sends[0].HoldID != holds[0].ID {
		t.Fatalf("held records = %+v", held.Sends)
	}
	out, err := h.svc.Approve(ctx, holds[0].ID, "jane")
	if err != nil || out.Status != StatusSent {
		t.Fatalf("approve = %+v, %v", out, err)
	}
	if len(h.sends()) != 1 || len(h.sb.Approvals()) != 1 {
		t.Fatalf("sends %d approvals %d", len(h.sends()), len(h.sb.Approvals()))
	}
	rec, _ := h.svc.GetSend(ctx, out.SendIDs[0])
	if rec.Status != StatusSent || len(rec.History) != 2 || rec.History[0].Status != StatusFailed || rec.History[1].Status != StatusSent {
		t.Fatalf("record = %+v", rec)
	}
}

func TestStatusZeroIsFailedWithNowCertsMessage(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status0: true, Message: "Email server rejected the recipient", Count: 1}); err != nil {
		t.Fatal(err)
	}
	ev := holderEvent(ready("r-status0"), seedHolders[holderEmail])
	resp, err := h.svc.HandleSQS(ctx, sqsEvent(t, sendJob(ev)))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a rejection must not be retried: %+v %v", resp, err)
	}
	page, _ := h.svc.QuerySends(ctx, SendQuery{CertificateID: certReady, Status: "failed"})
	if len(page.Sends) != 1 {
		t.Fatalf("failed sends = %+v", page.Sends)
	}
	r := page.Sends[0]
	if r.NowCertsAnswer != "Email server rejected the recipient" || !strings.Contains(r.Error, "Email server rejected the recipient") {
		t.Fatalf("record = %+v", r)
	}
	// Redelivery: not sent again (permanent).
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.sb.CallsTo("SendCertificate")); n != 1 {
		t.Fatalf("SendCertificate called %d times", n)
	}
	if h.metrics.metric("SendFailed") != 1 {
		t.Fatal("SendFailed not counted")
	}
	if got := h.timeline.outcomes(); !slices.Equal(got, []string{"failed"}) {
		t.Fatalf("timeline = %v", got)
	}
}

func TestWorkerStoppedBetweenSendAndCompletion(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	ev := holderEvent(ready("r-crash"), seedHolders[holderEmail])
	// The worker "dies" after SendCertificate: its completion never lands (a
	// worker that lives to see it fails the job: SQS delivers it again).
	stop := isCompletion(store.SendSent)
	h.db.failUpdate.Store(&stop)
	if err := h.svc.Handle(ctx, sendJob(ev)); err == nil {
		t.Fatal("the job succeeded though its completion was not recorded")
	}
	h.db.failUpdate.Store(nil)
	if len(h.sends()) != 1 {
		t.Fatalf("sends = %d", len(h.sends()))
	}
	// Redelivered while the claim is live: suppressed.
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	// Redelivered after the lease ran out: UNKNOWN, surfaced, not sent again.
	h.clk.Add(2 * time.Minute)
	page, _ := h.svc.QuerySends(ctx, SendQuery{Status: StatusUnknown})
	if len(page.Sends) != 1 {
		t.Fatalf("expired claim not surfaced as UNKNOWN before redelivery: %+v", page.Sends)
	}
	for range 3 {
		if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.sends()) != 1 {
		t.Fatalf("sent again after an unknown outcome: %d sends", len(h.sends()))
	}
	id := SendID(certReady, strings.ToLower(holderEmail), "r-crash")
	rec, err := h.svc.GetSend(ctx, id)
	if err != nil || rec.Status != StatusUnknown || len(rec.History) != 1 || rec.History[0].Status != StatusUnknown {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	if h.metrics.metric("SendUnknown") != 1 {
		t.Fatalf("SendUnknown = %v", h.metrics.metric("SendUnknown"))
	}
	page, _ = h.svc.QuerySends(ctx, SendQuery{Status: "UNKNOWN"})
	if len(page.Sends) != 1 || page.Sends[0].ID != id {
		t.Fatalf("unknown sends = %+v", page.Sends)
	}
	// Staff review: an explicit resend is the way to send it again.
	out, err := h.svc.Resend(ctx, ResendRequest{SendID: id, By: "jane", Reason: "holder says it never arrived"})
	if err != nil || out.Status != StatusSent {
		t.Fatalf("resend = %+v, %v", out, err)
	}
	if len(h.sends()) != 2 {
		t.Fatalf("sends after resend = %d", len(h.sends()))
	}
	orig, _ := h.svc.GetSend(ctx, id)
	again, _ := h.svc.GetSend(ctx, out.SendIDs[0])
	if orig.SupersededBy != again.ID || again.ResendOf != id || again.ResendBy != "jane" || again.ResendReason != "holder says it never arrived" {
		t.Fatalf("resend link: orig %+v new %+v", orig, again)
	}
	// Still: the event itself never sends again.
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if len(h.sends()) != 2 {
		t.Fatalf("sends = %d", len(h.sends()))
	}
}

func TestOutcomeUnknownFromNowCerts(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	// Carried out, but the answer never comes back: the client gives up.
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Timeout: true, Sent: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	// Load the token first: the 500 ms bound is for SendCertificate's answer,
	// not for a slow first read of the secret on a loaded machine.
	if _, err := h.nc.Certificate(ctx, certReady); err != nil {
		t.Fatal(err)
	}
	h.svc.nc = timeoutClient{h.nc, 500 * time.Millisecond}
	ev := holderEvent(ready("r-timeout"), seedHolders[holderEmail])
	resp, err := h.svc.HandleSQS(ctx, sqsEvent(t, sendJob(ev)))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("unknown outcome must not be retried: %+v %v", resp, err)
	}
	id := SendID(certReady, strings.ToLower(holderEmail), "r-timeout")
	rec, _ := h.svc.GetSend(ctx, id)
	if rec.Status != StatusUnknown {
		t.Fatalf("record = %+v", rec)
	}
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.sb.CallsTo("SendCertificate")); n != 1 {
		t.Fatalf("SendCertificate called %d times", n)
	}
	if got := h.timeline.outcomes(); !slices.Equal(got, []string{"unknown"}) {
		t.Fatalf("timeline = %v", got)
	}
}

// timeoutClient bounds each NowCerts call (the Lambda deadline in production).
type timeoutClient struct {
	NowCerts
	d time.Duration
}

func (c timeoutClient) SendCertificate(ctx context.Context, r nowcerts.SendRequest) (nowcerts.Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.d)
	defer cancel()
	return c.NowCerts.SendCertificate(ctx, r)
}

func TestResendUnknownSetting(t *testing.T) {
	set := store.DefaultSettings(store.DefaultAgency)
	set.ResendUnknown = true
	h := newHarness(t, harnessOptions{settings: &set})
	ctx := context.Background()
	ev := holderEvent(ready("r-resend-unknown"), seedHolders[holderEmail])
	stop := isCompletion(store.SendSent)
	h.db.failUpdate.Store(&stop)
	if err := h.svc.Handle(ctx, sendJob(ev)); err == nil {
		t.Fatal("the job succeeded though its completion was not recorded")
	}
	h.db.failUpdate.Store(nil)
	h.clk.Add(2 * time.Minute)
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if len(h.sends()) != 2 {
		t.Fatalf("with resendUnknown the unknown send goes once more: %d sends", len(h.sends()))
	}
	rec, _ := h.svc.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-resend-unknown"))
	if rec.Status != StatusSent || rec.Attempts != 2 {
		t.Fatalf("record = %+v", rec)
	}
}

func TestRejectHold(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	ev := holderEvent(event.Certificate{ID: certReady, Revision: "r-waiver", WaiverOfSubrogation: true}, seedHolders[holderEmail])
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonWaiver}) {
		t.Fatalf("holds = %+v", holds)
	}
	if err := h.svc.Reject(ctx, holds[0].ID, "", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reject without name: %v", err)
	}
	if err := h.svc.Reject(ctx, holds[0].ID, "bob", "waiver not in the policy"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Approve(ctx, holds[0].ID, "jane"); !errors.Is(err, ErrConflict) {
		t.Fatalf("approve rejected: %v", err)
	}
	if err := h.svc.Reject(ctx, "hld_missing", "bob", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reject missing: %v", err)
	}
	rejected, _ := h.svc.ListHolds(ctx, HoldQuery{Status: "rejected"})
	if len(rejected) != 1 || rejected[0].DecidedBy != "bob" || rejected[0].Reason != "waiver not in the policy" {
		t.Fatalf("rejected = %+v", rejected)
	}
	rec, err := h.svc.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-waiver"))
	if err != nil || rec.Status != StatusRejected || rec.HoldID != holds[0].ID {
		t.Fatalf("send record of a rejected hold = %+v, %v", rec, err)
	}
	if _, err := h.svc.Resend(ctx, ResendRequest{SendID: rec.ID, By: "mallory", Reason: "sneak it out"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("resend of a rejected certificate: %v", err)
	}
	// Even if the rules change, the rejected revision is never sent by the event.
	set := store.DefaultSettings(store.DefaultAgency)
	set.Rules.HoldWaiverOfSubrogation = false
	if err := h.st.PutSettings(ctx, set); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(2 * time.Minute) // past the settings cache
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	if len(h.sb.CallsTo("SendCertificate")) != 0 {
		t.Fatal("a rejected certificate was sent")
	}
	if _, err := h.svc.ListHolds(ctx, HoldQuery{Status: "maybe"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad status: %v", err)
	}
	if h.metrics.metric("Rejected") != 1 {
		t.Fatal("Rejected not counted")
	}
	if got := h.timeline.outcomes(); !slices.Equal(got, []string{"held", "rejected"}) {
		t.Fatalf("timeline = %v", got)
	}
}

func policyEvent(number, status string, at time.Time) event.Event {
	key := event.Key("cowbell", "policy.status", number, at.Format(time.RFC3339Nano))
	return event.Event{
		ID: event.IDFor(key), IdempotencyKey: key, Source: event.SourceCowbell, Type: "policy.status",
		Action: event.ActionStatus, EntityKind: event.KindPolicy, EntityID: number, OccurredAt: at, ReceivedAt: at,
		Policy: &event.Policy{Number: number, Status: status},
	}
}

func TestCancelledPolicyHoldsLaterCertificates(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour)
	certOn := func(rev string) event.Event {
		c := ready(rev)
		c.PolicyNo = "CBC-100-200"
		return holderEvent(c, seedHolders[holderEmail])
	}
	// Before any status: sent.
	if err := h.svc.Handle(ctx, sendJob(certOn("r1"))); err != nil {
		t.Fatal(err)
	}
	// Cancelled (policy status jobs run first in a batch), then a certificate.
	resp, _ := h.svc.HandleSQS(ctx, sqsEvent(t, sendJob(certOn("r2")), sendJob(policyEvent("cbc-100-200", "CANCELLED", t0))))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v", resp)
	}
	if len(h.sends()) != 1 {
		t.Fatalf("sends = %d: a certificate on a cancelled policy went out", len(h.sends()))
	}
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonPolicyCancelled}) || holds[0].PolicyNumber != "CBC-100-200" {
		t.Fatalf("holds = %+v", holds)
	}
	// An older status does not overwrite the cancellation.
	if err := h.svc.Handle(ctx, sendJob(policyEvent("CBC-100-200", "ISSUED", t0.Add(-time.Minute)))); err != nil {
		t.Fatal(err)
	}
	// Held with every reason: special wording + cancelled.
	c := ready("r3")
	c.PolicyNo, c.SpecialWording = "CBC-100-200", true
	if err := h.svc.Handle(ctx, sendJob(holderEvent(c, seedHolders[holderEmail]))); err != nil {
		t.Fatal(err)
	}
	// r3 replaces r2 for this holder: r2's hold is retired, r3 is held.
	holds, _ = h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || holds[0].Revision != "r3" || !slices.Equal(holds[0].Reasons, []string{ReasonSpecialWording, ReasonPolicyCancelled}) {
		t.Fatalf("holds = %+v", holds)
	}
	retired, _ := h.svc.ListHolds(ctx, HoldQuery{Status: HoldRejected})
	if len(retired) != 1 || retired[0].Revision != "r2" || retired[0].DecidedBy != SystemActor || !strings.Contains(retired[0].Reason, "revision r3") {
		t.Fatalf("retired holds = %+v", retired)
	}
	// Approving the cancelled-policy hold is an explicit decision: it sends.
	if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err != nil || out.Status != StatusSent {
		t.Fatalf("approve = %+v, %v", out, err)
	}
	// Reinstated by a newer event: sent again.
	if err := h.svc.Handle(ctx, sendJob(policyEvent("CBC-100-200", "ISSUED", t0.Add(time.Minute)))); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Handle(ctx, sendJob(certOn("r4"))); err != nil {
		t.Fatal(err)
	}
	if len(h.sends()) != 3 {
		t.Fatalf("sends after reinstatement = %d", len(h.sends()))
	}
}

func masterEvent(certID, rev string) event.Event {
	key := event.Key("nowcerts", "MasterCertificate.Update", certID, rev)
	return event.Event{
		ID: event.IDFor(key), IdempotencyKey: key, Source: event.SourceNowCerts, Type: "MasterCertificate.Update",
		Action: event.ActionUpdate, EntityKind: event.KindMasterCertificate, EntityID: certID,
		OccurredAt: time.Now().UTC(), ReceivedAt: time.Now().UTC(),
		Certificate: &event.Certificate{ID: certID, Revision: rev, InsuredID: insuredAcme},
	}
}

func TestMasterCertificateReissue(t *testing.T) {
	for _, mode := range []string{store.ReissueAuto, store.ReissueHold, store.ReissueOff} {
		t.Run(mode, func(t *testing.T) {
			set := store.DefaultSettings(store.DefaultAgency)
			set.ReissueOnMasterUpdate = mode
			h := newHarness(t, harnessOptions{settings: &set})
			ctx := context.Background()
			// Two historical rows for the same holder (two past sends): one reissue.
			if _, err := h.sb.Seed(nowcertssandbox.SeedData{HistoricalHolders: []nowcertssandbox.HistoricalHolder{{
				Name: "Northwind Property Management", EMail: "COI@northwind-pm.example", CertificateID: certReady,
			}, {
				Name: "Harbor Street Lender Corp", Fax: "(309) 555-0198", CertificateID: certReady,
			}}}); err != nil {
				t.Fatal(err)
			}
			ev := masterEvent(certReady, "2026-12-01T09:00:00-05:00")
			for range 2 {
				if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
					t.Fatal(err)
				}
			}
			holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
			switch mode {
			case store.ReissueAuto:
				if len(h.sends()) != 2 || len(holds) != 0 {
					t.Fatalf("sends %d holds %d", len(h.sends()), len(holds))
				}
				var got []string
				for _, s := range h.sends() {
					got = append(got, strings.ToLower(strings.Join(s.Emails, ","))+"|"+s.Fax)
				}
				slices.Sort(got)
				if !slices.Equal(got, []string{"coi@northwind-pm.example|", "|(309) 555-0198"}) {
					t.Fatalf("recipients = %v", got)
				}
			case store.ReissueHold:
				if len(h.sends()) != 0 || len(holds) != 2 {
					t.Fatalf("sends %d holds %d", len(h.sends()), len(holds))
				}
				var email Hold
				for _, hd := range holds {
					if !slices.Equal(hd.Reasons, []string{ReasonReissue}) {
						t.Fatalf("reasons = %v", hd.Reasons)
					}
					if hd.HolderEmail != "" {
						email = hd
					}
				}
				out, err := h.svc.Approve(ctx, email.ID, "jane")
				if err != nil || out.Status != StatusSent {
					t.Fatalf("approve = %+v, %v", out, err)
				}
				apps := h.sb.Approvals()
				if len(apps) != 1 || len(apps[0].IDs) != 2 || !slices.Contains(apps[0].IDs, nowcertssandbox.SeedHistoricalReady) {
					t.Fatalf("approve ids = %+v", apps)
				}
				calls := slices.DeleteFunc(h.sandboxCalls(), func(c string) bool { return c != "Approve" && c != "SendCertificate" })
				if !slices.Equal(calls, []string{"Approve", "SendCertificate"}) {
					t.Fatalf("calls = %v", calls)
				}
			case store.ReissueOff:
				if len(h.sends()) != 0 || len(holds) != 0 || len(h.sb.CallsTo("HistoricalCertificateHolderList")) != 0 {
					t.Fatalf("reissue off did something")
				}
			}
		})
	}
}

func TestHoldRulesOverTheWire(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	// No email nor fax.
	if err := h.svc.Handle(ctx, sendJob(holderEvent(ready("r-none"), seedHolders[holderNone]))); err != nil {
		t.Fatal(err)
	}
	// A Cowbell certificate without holders.
	key := "cowbell|policy.certificate|P-1|2026-11-21"
	cb := event.Event{ID: event.IDFor(key), IdempotencyKey: key, Source: event.SourceCowbell, Type: "policy.certificate",
		Action: event.ActionDocument, EntityKind: event.KindCertificate, EntityID: "P-1",
		Certificate: &event.Certificate{ID: certReady2, PolicyNo: "P-1"}, Policy: &event.Policy{Number: "P-1"},
		Insured: &event.Party{ID: "cowbell-acct-1", Name: "Brightline Logistics Inc"}}
	if err := h.svc.Handle(ctx, sendJob(cb)); err != nil {
		t.Fatal(err)
	}
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	reasons := map[string][]string{}
	for _, hd := range holds {
		reasons[hd.CertificateID] = hd.Reasons
	}
	if !slices.Equal(reasons[certReady], []string{ReasonNoRecipient}) || !slices.Equal(reasons[certReady2], []string{ReasonNoHolder}) {
		t.Fatalf("reasons = %v", reasons)
	}
	for _, hd := range holds {
		if _, err := h.svc.Approve(ctx, hd.ID, "jane"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("approving a hold without recipient: %v", err)
		}
	}
	// The same Cowbell certificate with a holder (no NowCerts holder id) is sent.
	cb.Holders = []event.Holder{{Name: "Dock 9 Warehousing", Email: "certs@dock9.example; ap@dock9.example"}}
	cb.ID = event.IDFor(key + "|h")
	if err := h.svc.Handle(ctx, sendJob(cb)); err != nil {
		t.Fatal(err)
	}
	s := h.sends()
	if len(s) != 1 || len(s[0].HolderIDs) != 0 || !slices.Equal(s[0].Emails, []string{"certs@dock9.example", "ap@dock9.example"}) {
		t.Fatalf("cowbell send = %+v", s)
	}
	page, _ := h.svc.QuerySends(ctx, SendQuery{Holder: "AP@dock9.example"})
	if len(page.Sends) != 1 || page.Sends[0].HolderID != syntheticKey([]string{"Certs@dock9.example"}, "") || page.Sends[0].Source != "cowbell" {
		t.Fatalf("by holder = %+v", page.Sends)
	}
	// Fax-only holder: fax channel.
	if err := h.svc.Handle(ctx, sendJob(holderEvent(ready("r-fax"), seedHolders[holderFax]))); err != nil {
		t.Fatal(err)
	}
	page, _ = h.svc.QuerySends(ctx, SendQuery{Holder: holderFax})
	if len(page.Sends) != 1 || page.Sends[0].Channel != "fax" || page.Sends[0].Fax != "(309) 555-0198" {
		t.Fatalf("fax send = %+v", page.Sends)
	}
}

func TestApproveAllAndTimelineFailure(t *testing.T) {
	set := store.DefaultSettings("agency-7")
	set.Rules.ApproveAll = true
	h := newHarness(t, harnessOptions{settings: &set})
	ctx := context.Background()
	ev := holderEvent(ready("r-all"), seedHolders[holderEmail])
	ev.AgencyID = "agency-7"
	if err := h.svc.Handle(ctx, sendJob(ev)); err != nil {
		t.Fatal(err)
	}
	holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
	if len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonApproveAll}) || holds[0].AgencyID != "agency-7" {
		t.Fatalf("holds = %+v", holds)
	}
	// Another agency (defaults) is not held.
	otherCert := ready("r-other")
	otherCert.ID = certReady2
	other := holderEvent(otherCert, seedHolders[holderEmail])
	if err := h.svc.Handle(ctx, sendJob(other)); err != nil {
		t.Fatal(err)
	}
	if len(h.sends()) != 1 {
		t.Fatalf("sends = %d", len(h.sends()))
	}
	// The CRM queue is down: the approval and its send still happen, once.
	h.timeline.fail = true
	out, err := h.svc.Approve(ctx, holds[0].ID, "jane")
	if err != nil || out.Status != StatusSent {
		t.Fatalf("approve = %+v, %v", out, err)
	}
	if len(h.sends()) != 2 || h.metrics.metric("TimelineEnqueueFailed") != 2 {
		t.Fatalf("sends %d, TimelineEnqueueFailed %v", len(h.sends()), h.metrics.metric("TimelineEnqueueFailed"))
	}
}

func TestBatchFailuresAndBadMessages(t *testing.T) {
	h := newHarness(t, harnessOptions{attempts: 1})
	ctx := context.Background()
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 503}); err != nil {
		t.Fatal(err)
	}
	good := sendJob(holderEvent(ready("r-batch"), seedHolders[holderEmail]))
	timeline := jobs.NewTimeline(jobs.TimelineEntry{Outcome: "sent", CertificateID: "c"}, "r", time.Now())
	batch := sqsEvent(t, good, timeline)
	batch.Records = append(batch.Records, events.SQSMessage{MessageId: "bad-json", Body: `{"v":1,`})
	resp, err := h.svc.HandleSQS(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	slices.Sort(failed)
	want := []string{batch.Records[0].MessageId, batch.Records[1].MessageId, "bad-json"}
	slices.Sort(want)
	if !slices.Equal(failed, want) {
		t.Fatalf("failures = %v, want %v", failed, want)
	}
	rec, _ := h.svc.GetSend(ctx, SendID(certReady, strings.ToLower(holderEmail), "r-batch"))
	if rec.Status != StatusFailed || !strings.Contains(rec.Error, "503") {
		t.Fatalf("record = %+v", rec)
	}
	// NowCerts is back: the redelivery claims the FAILED record and sends.
	h.sb.ClearFaults()
	resp, _ = h.svc.HandleSQS(ctx, sqsEvent(t, good))
	if len(resp.BatchItemFailures) != 0 || len(h.sends()) != 1 {
		t.Fatalf("retry: %+v, sends %d", resp, len(h.sends()))
	}
	rec, _ = h.svc.GetSend(ctx, rec.ID)
	if rec.Status != StatusSent || rec.Attempts != 2 || len(rec.History) != 2 {
		t.Fatalf("record after retry = %+v", rec)
	}
}
