package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

func sampleHold(id string) store.Hold {
	return store.Hold{
		ID: id, SendID: "snd_" + id, CertificateID: "cert-1", Revision: "r1", HolderID: "h-1", HolderName: "Acme GC",
		HolderEmail: "coi@acme.example", HistoricalIDs: []string{"HIST-1"}, AgencyID: "ag-1", PolicyNumber: "CB-1",
		Reasons: []string{"additional insured requested", "waiver of subrogation requested"}, EventID: "evt_1", RequestID: "req-1",
	}
}

// holdSend is the send record a hold marks HELD.
func holdSend(h store.Hold) store.Send {
	rec := sampleSend(h.SendID)
	rec.CertificateID, rec.Revision, rec.HolderID = h.CertificateID, h.Revision, h.HolderID
	return rec
}

func TestHoldLifecycle(t *testing.T) {
	st, clk := newSendsStore(t)
	ctx := context.Background()
	for _, id := range []string{"h1", "h2", "h3"} {
		if err := st.PutHold(ctx, sampleHold(id), holdSend(sampleHold(id))); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Minute)
	}
	if err := st.PutHold(ctx, sampleHold("h1"), holdSend(sampleHold("h1"))); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second put: %v, want ErrConflict", err)
	}
	pending, next, err := st.ListHolds(ctx, store.HoldPending, 2, "")
	if err != nil || len(pending) != 2 || next == "" || pending[0].ID != "h3" || pending[1].ID != "h2" {
		t.Fatalf("pending page 1 = %+v next %q err %v", pending, next, err)
	}
	rest, next, err := st.ListHolds(ctx, store.HoldPending, 2, next)
	if err != nil || len(rest) != 1 || rest[0].ID != "h1" || next != "" {
		t.Fatalf("pending page 2 = %+v next %q err %v", rest, next, err)
	}
	got := rest[0]
	if len(got.Reasons) != 2 || got.Status != store.HoldPending || got.HolderEmail != "coi@acme.example" || got.HistoricalIDs[0] != "HIST-1" {
		t.Fatalf("hold = %+v", got)
	}

	// Approve h1: approving, then a second approval conflicts, rejection too.
	h, err := st.BeginApproval(ctx, "h1", "jane", time.Minute)
	if err != nil || h.Status != store.HoldApproving || h.CertificateID != "cert-1" {
		t.Fatalf("begin approval = %+v, %v", h, err)
	}
	var hc *store.HoldConflictError
	if _, err := st.BeginApproval(ctx, "h1", "bob", time.Minute); !errors.As(err, &hc) || hc.Hold.Status != store.HoldApproving {
		t.Fatalf("second approval: %v", err)
	}
	if _, err := st.RejectHold(ctx, "h1", "bob", "no"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reject while approving: %v", err)
	}
	// Approving holds stay listed as pending.
	pending, _, _ = st.ListHolds(ctx, store.HoldPending, 10, "")
	if len(pending) != 3 {
		t.Fatalf("pending while approving: %d", len(pending))
	}
	// A failed approval returns it to pending with the error.
	h, err = st.EndApproval(ctx, "h1", "jane", false, nil, "NowCerts unavailable")
	if err != nil || h.Status != store.HoldPending || h.LastError != "NowCerts unavailable" {
		t.Fatalf("failed approval = %+v, %v", h, err)
	}
	if _, err := st.BeginApproval(ctx, "h1", "jane", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EndApproval(ctx, "h1", "bob", true, []string{"snd_h1"}, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("end approval by someone else: %v", err)
	}
	h, err = st.EndApproval(ctx, "h1", "jane", true, []string{"snd_h1"}, "")
	if err != nil || h.Status != store.HoldApproved || h.DecidedBy != "jane" || h.LastError != "" || len(h.SendIDs) != 1 || h.DecidedAt.IsZero() {
		t.Fatalf("approved = %+v, %v", h, err)
	}
	if _, err := st.BeginApproval(ctx, "h1", "jane", time.Minute); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approve approved: %v", err)
	}

	// A stale approval (its approver died) can be taken over.
	if _, err := st.BeginApproval(ctx, "h2", "ghost", time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Minute)
	if _, err := st.BeginApproval(ctx, "h2", "jane", time.Minute); err != nil {
		t.Fatalf("take over stale approval: %v", err)
	}

	h, err = st.RejectHold(ctx, "h3", "bob", "wrong holder")
	if err != nil || h.Status != store.HoldRejected || h.DecidedBy != "bob" || h.Reason != "wrong holder" {
		t.Fatalf("reject = %+v, %v", h, err)
	}
	if rec, err := st.GetSend(ctx, "snd_h3"); err != nil || rec.Status != store.SendRejected || rec.HoldID != "h3" {
		t.Fatalf("send of the rejected hold = %+v, %v", rec, err)
	}
	if _, err := st.RejectHold(ctx, "nope", "bob", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reject missing: %v", err)
	}
	if _, err := st.BeginApproval(ctx, "nope", "bob", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("approve missing: %v", err)
	}
	for status, want := range map[string]string{store.HoldApproved: "h1", store.HoldRejected: "h3", store.HoldPending: "h2"} {
		hs, _, err := st.ListHolds(ctx, status, 10, "")
		if err != nil || len(hs) != 1 || hs[0].ID != want {
			t.Fatalf("%s holds = %+v, %v", status, hs, err)
		}
	}
}

func TestHeldSendRecord(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	h := sampleHold("hx")
	if err := st.PutHold(ctx, h, holdSend(h)); err != nil {
		t.Fatal(err)
	}
	rec, err := st.GetSend(ctx, "snd_hx")
	if err != nil || rec.Status != store.SendHeld || rec.HoldID != "hx" || rec.Attempts != 0 || rec.CreatedAt.IsZero() {
		t.Fatalf("held record = %+v, %v", rec, err)
	}
	// Only an approval claims a HELD record.
	var ce *store.ClaimConflictError
	if _, err := st.ClaimSend(ctx, store.Claim{Send: holdSend(h), Owner: "o1", Lease: time.Minute, ReclaimUnknown: true}); !errors.As(err, &ce) || ce.Existing.Status != store.SendHeld {
		t.Fatalf("claim of HELD: %v", err)
	}
	if _, err := st.ClaimSend(ctx, store.Claim{Send: holdSend(h), Owner: "o1", Lease: time.Minute, ReclaimHeld: true, ReclaimFailed: true}); err != nil {
		t.Fatalf("approval claim: %v", err)
	}
	// A record that was sent cannot be held; nothing is written.
	if err := st.CompleteSend(ctx, "snd_hx", "o1", store.Completion{Status: store.SendSent}); err != nil {
		t.Fatal(err)
	}
	h2 := sampleHold("hy")
	h2.SendID = "snd_hx"
	if err := st.PutHold(ctx, h2, holdSend(h2)); !errors.As(err, &ce) || ce.Existing.Status != store.SendSent {
		t.Fatalf("hold of a sent record: %v", err)
	}
	if _, err := st.GetHold(ctx, "hy"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("hold written anyway: %v", err)
	}
	// A FAILED record can be held.
	h3 := sampleHold("hz")
	if _, err := st.ClaimSend(ctx, store.Claim{Send: holdSend(h3), Owner: "o1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteSend(ctx, h3.SendID, "o1", store.Completion{Status: store.SendFailed, Answer: "Certificate is pending approval"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutHold(ctx, h3, holdSend(h3)); err != nil {
		t.Fatalf("hold of a failed record: %v", err)
	}
	// Rejecting a hold whose send went out meanwhile is refused.
	if _, err := st.ClaimSend(ctx, store.Claim{Send: holdSend(h3), Owner: "o2", Lease: time.Minute, ReclaimHeld: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RejectHold(ctx, "hz", "bob", "x"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reject while its send is SENDING: %v", err)
	}
}

func TestSettingsDefaultsAndRoundTrip(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	got, err := st.GetSettings(ctx, "ag-9")
	if err != nil {
		t.Fatal(err)
	}
	want := store.DefaultSettings("ag-9")
	if got.Rules != want.Rules || got.ReissueOnMasterUpdate != store.ReissueHold || got.ResendUnknown || got.EmailSubject == "" {
		t.Fatalf("defaults = %+v", got)
	}
	set := want
	set.Rules.ApproveAll = true
	set.Rules.HoldSpecialWording = false
	set.ReissueOnMasterUpdate = store.ReissueAuto
	set.ResendUnknown = true
	set.EmailSubject = "COI {insured}"
	if err := st.PutSettings(ctx, set); err != nil {
		t.Fatal(err)
	}
	got, err = st.GetSettings(ctx, "ag-9")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Rules.ApproveAll || got.Rules.HoldSpecialWording || !got.Rules.HoldAdditionalInsured || got.ReissueOnMasterUpdate != store.ReissueAuto || !got.ResendUnknown || got.EmailSubject != "COI {insured}" {
		t.Fatalf("stored = %+v", got)
	}
	bad := set
	bad.ReissueOnMasterUpdate = "sometimes"
	if err := st.PutSettings(ctx, bad); err == nil {
		t.Fatal("invalid reissue setting stored")
	}
	// Empty agency reads the default agency's settings.
	if d, err := st.GetSettings(ctx, ""); err != nil || d.AgencyID != store.DefaultAgency {
		t.Fatalf("default agency = %+v, %v", d, err)
	}
}

func TestSettingsPartialItemKeepsDefaults(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	db := testenv.Get(t).DynamoDB()
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(st.Table()), Item: map[string]types.AttributeValue{
		"PK":            &types.AttributeValueMemberS{Value: "AGENCY#ag-p"},
		"SK":            &types.AttributeValueMemberS{Value: "SETTINGS"},
		"resendUnknown": &types.AttributeValueMemberBOOL{Value: true},
		"rules": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"approveAll": &types.AttributeValueMemberBOOL{Value: true},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.GetSettings(ctx, "ag-p")
	if err != nil {
		t.Fatal(err)
	}
	want := store.DefaultSettings("ag-p")
	want.ResendUnknown = true
	want.Rules.ApproveAll = true
	if got.Rules != want.Rules || got.ResendUnknown != true || got.ReissueOnMasterUpdate != want.ReissueOnMasterUpdate || got.EmailBody != want.EmailBody {
		t.Fatalf("partial settings = %+v, want %+v", got, want)
	}
}
