package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

// sendsClock is a settable clock for store tests.
type sendsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sendsClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *sendsClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newSendsStore(t *testing.T) (*store.Store, *sendsClock) {
	t.Helper()
	env := testenv.Get(t)
	clk := &sendsClock{t: time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC)}
	return store.New(env.DynamoDB(), env.NewTable(t)).WithClock(clk.now), clk
}

func sampleSend(id string) store.Send {
	return store.Send{
		ID: id, CertificateID: "95C5A0F2-0000-4000-8000-000000000001", Revision: "2026-11-21T14:00:00Z",
		HolderID: "h-1", HolderName: "Acme GC", HolderEmail: "coi@acme.example, ops@acme.example",
		Channel: "email", AgencyID: "ag-1", EventID: "evt_1", RequestID: "req-1", Source: "nowcerts",
	}
}

func TestClaimSendExactlyOnceConcurrent(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	var won atomic.Int32
	var wg sync.WaitGroup
	conflicts := make(chan *store.ClaimConflictError, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_a"), Owner: "owner-" + string(rune('a'+i)), Lease: time.Minute})
			var ce *store.ClaimConflictError
			switch {
			case err == nil:
				won.Add(1)
			case errors.As(err, &ce):
				conflicts <- ce
			default:
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	close(conflicts)
	if won.Load() != 1 {
		t.Fatalf("claims won = %d, want 1", won.Load())
	}
	n := 0
	for ce := range conflicts {
		n++
		if !ce.Found || ce.Existing.Status != store.SendSending || ce.Existing.ID != "snd_a" {
			t.Errorf("conflict = %+v, want the SENDING record", ce)
		}
		if !errors.Is(ce, store.ErrConflict) {
			t.Errorf("conflict does not wrap ErrConflict")
		}
	}
	if n != 19 {
		t.Fatalf("conflicts = %d, want 19", n)
	}
}

func TestSendLifecycle(t *testing.T) {
	st, clk := newSendsStore(t)
	ctx := context.Background()
	rec, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_b"), Owner: "o1", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != store.SendSending || rec.Attempts != 1 {
		t.Fatalf("claimed = %+v", rec)
	}
	// A retryable failure releases the claim.
	if err := st.CompleteSend(ctx, "snd_b", "o1", store.Completion{Status: store.SendFailed, Error: "nowcerts unavailable: 503", Retryable: true, RequestID: "req-1"}); err != nil {
		t.Fatal(err)
	}
	// Completing again with the old owner fails.
	if err := st.CompleteSend(ctx, "snd_b", "o1", store.Completion{Status: store.SendSent}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second completion: %v, want ErrConflict", err)
	}
	clk.add(time.Second)
	if rec, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_b"), Owner: "o2", Lease: time.Minute}); err != nil || rec.Attempts != 2 {
		t.Fatalf("re-claim of retryable FAILED: %+v, %v", rec, err)
	}
	// A stranger cannot complete.
	if err := st.CompleteSend(ctx, "snd_b", "o1", store.Completion{Status: store.SendSent}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stranger completion: %v, want ErrConflict", err)
	}
	clk.add(time.Second)
	if err := st.CompleteSend(ctx, "snd_b", "o2", store.Completion{Status: store.SendSent, Answer: "Certificate sent", RequestID: "req-2"}); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetSend(ctx, "snd_b")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.SendSent || got.Attempts != 2 || got.Answer != "Certificate sent" || got.Error != "" {
		t.Fatalf("record = %+v", got)
	}
	if got.SentAt.IsZero() || !got.CreatedAt.Equal(time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC)) {
		t.Fatalf("times: created %v sent %v", got.CreatedAt, got.SentAt)
	}
	if len(got.History) != 2 || got.History[0].Status != store.SendFailed || got.History[1].Status != store.SendSent || got.History[1].RequestID != "req-2" {
		t.Fatalf("history = %+v", got.History)
	}
	if got.HolderEmail != "coi@acme.example, ops@acme.example" {
		t.Fatalf("holder email %q", got.HolderEmail)
	}
	// SENT is never claimed again.
	_, err = st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_b"), Owner: "o3", Lease: time.Minute, ReclaimUnknown: true})
	var ce *store.ClaimConflictError
	if !errors.As(err, &ce) || ce.Existing.Status != store.SendSent {
		t.Fatalf("claim of SENT: %v", err)
	}
}

func TestPermanentFailureIsNotReclaimed(t *testing.T) {
	st, _ := newSendsStore(t)
	ctx := context.Background()
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_c"), Owner: "o1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteSend(ctx, "snd_c", "o1", store.Completion{Status: store.SendFailed, Answer: "Certificate not found"}); err != nil {
		t.Fatal(err)
	}
	_, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_c"), Owner: "o2", Lease: time.Minute})
	var ce *store.ClaimConflictError
	if !errors.As(err, &ce) || ce.Existing.Status != store.SendFailed {
		t.Fatalf("claim of permanent FAILED: %v", err)
	}
}

func TestLeaseExpiryUnknown(t *testing.T) {
	st, clk := newSendsStore(t)
	ctx := context.Background()
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_d"), Owner: "o1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// Not yet expired: cannot be marked.
	if err := st.MarkSendUnknown(ctx, "snd_d", "o1", "lease expired"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("mark before expiry: %v", err)
	}
	got, _ := st.GetSend(ctx, "snd_d")
	if got.EffectiveStatus(clk.now()) != store.SendSending {
		t.Fatalf("effective status before expiry %q", got.EffectiveStatus(clk.now()))
	}
	clk.add(2 * time.Minute)
	if got.EffectiveStatus(clk.now()) != store.SendUnknown {
		t.Fatalf("effective status after expiry %q", got.EffectiveStatus(clk.now()))
	}
	if err := st.MarkSendUnknown(ctx, "snd_d", "o2", "lease expired"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("mark with wrong owner: %v", err)
	}
	if err := st.MarkSendUnknown(ctx, "snd_d", "o1", "lease expired"); err != nil {
		t.Fatal(err)
	}
	// UNKNOWN is not claimable unless asked.
	_, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_d"), Owner: "o3", Lease: time.Minute})
	var ce *store.ClaimConflictError
	if !errors.As(err, &ce) || ce.Existing.Status != store.SendUnknown {
		t.Fatalf("claim of UNKNOWN: %v", err)
	}
	// The late original attempt may still record what really happened.
	if err := st.CompleteSend(ctx, "snd_d", "o1", store.Completion{Status: store.SendSent, Answer: "ok"}); err != nil {
		t.Fatalf("late completion: %v", err)
	}
	got, _ = st.GetSend(ctx, "snd_d")
	if got.Status != store.SendSent || len(got.History) != 2 {
		t.Fatalf("after late completion: %+v", got)
	}
	// ReclaimUnknown takes over an UNKNOWN record.
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_e"), Owner: "o1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteSend(ctx, "snd_e", "o1", store.Completion{Status: store.SendUnknown, Error: "timeout"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_e"), Owner: "o2", Lease: time.Minute, ReclaimUnknown: true}); err != nil {
		t.Fatalf("reclaim UNKNOWN: %v", err)
	}
}

func TestClaimPolicyGuard(t *testing.T) {
	st, clk := newSendsStore(t)
	ctx := context.Background()
	// No status recorded: the guard passes.
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_f"), Owner: "o1", Lease: time.Minute, PolicyNumber: "CB-1"}); err != nil {
		t.Fatalf("claim with unknown policy: %v", err)
	}
	at := clk.now()
	if err := st.PutPolicyStatus(ctx, store.PolicyStatus{Number: " cb-1 ", Status: "Canceled", OccurredAt: at, EventID: "evt_p1"}); err != nil {
		t.Fatal(err)
	}
	_, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_g"), Owner: "o1", Lease: time.Minute, PolicyNumber: "CB-1"})
	var ce *store.ClaimConflictError
	if !errors.As(err, &ce) || !ce.PolicyCancelled {
		t.Fatalf("claim on cancelled policy: %v", err)
	}
	if _, err := st.GetSend(ctx, "snd_g"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused claim left a record: %v", err)
	}
	// The duplicate of an existing record is reported as such through the transaction.
	_, err = st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_f"), Owner: "o2", Lease: time.Minute, PolicyNumber: "CB-2"})
	if !errors.As(err, &ce) || !ce.Found || ce.Existing.Status != store.SendSending {
		t.Fatalf("duplicate through transaction: %v", err)
	}
	// An older event does not overwrite; a newer one does.
	if err := st.PutPolicyStatus(ctx, store.PolicyStatus{Number: "CB-1", Status: "ISSUED", OccurredAt: at.Add(-time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("older status: %v", err)
	}
	if err := st.PutPolicyStatus(ctx, store.PolicyStatus{Number: "CB-1", Status: "CANCELLED", OccurredAt: at}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same-time status: %v", err)
	}
	p, err := st.GetPolicyStatus(ctx, "cb-1")
	if err != nil || p.Status != store.PolicyCancelled || p.RawStatus != "Canceled" {
		t.Fatalf("policy = %+v, %v", p, err)
	}
	if err := st.PutPolicyStatus(ctx, store.PolicyStatus{Number: "CB-1", Status: "ISSUED", OccurredAt: at.Add(time.Hour)}); err != nil {
		t.Fatalf("newer status: %v", err)
	}
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_g"), Owner: "o1", Lease: time.Minute, PolicyNumber: "CB-1"}); err != nil {
		t.Fatalf("claim after reinstatement: %v", err)
	}
}

func TestQuerySends(t *testing.T) {
	st, clk := newSendsStore(t)
	ctx := context.Background()
	// Three days, two certificates, statuses mixed.
	ids := []string{}
	for i := range 9 {
		rec := sampleSend("snd_q" + string(rune('0'+i)))
		if i%3 == 0 {
			rec.CertificateID = "other-cert"
			rec.HolderID = "h-2"
			rec.HolderEmail = "Someone@Else.example"
		}
		if _, err := st.ClaimSend(ctx, store.Claim{Send: rec, Owner: "o", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := st.CompleteSend(ctx, rec.ID, "o", store.Completion{Status: store.SendSent}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, rec.ID)
		clk.add(8 * time.Hour)
	}
	clk.add(time.Hour) // every SENDING lease has run out: they read as UNKNOWN
	all := func(f store.SendFilter) []store.Send {
		var out []store.Send
		for pages := 0; ; pages++ {
			recs, next, err := st.QuerySends(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, recs...)
			if next == "" {
				return out
			}
			if pages > 20 {
				t.Fatal("endless paging")
			}
			f.Cursor = next
		}
	}
	got := all(store.SendFilter{From: clk.now().AddDate(0, 0, -10), To: clk.now(), Limit: 2})
	if len(got) != 9 {
		t.Fatalf("by day: %d records, want 9", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].CreatedAt.After(got[i-1].CreatedAt) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	if got[0].ID != ids[8] || got[8].ID != ids[0] {
		t.Fatalf("order: first %s last %s", got[0].ID, got[8].ID)
	}
	byCert := all(store.SendFilter{CertificateID: "OTHER-CERT", Limit: 1})
	if len(byCert) != 3 {
		t.Fatalf("by certificate: %d, want 3", len(byCert))
	}
	// Date bounds apply to a certificate's sends too (created 11-21, 11-22, 11-23 at 14:02).
	day22 := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	if n := len(all(store.SendFilter{CertificateID: "other-cert", From: day22})); n != 2 {
		t.Fatalf("by certificate from 11-22: %d, want 2", n)
	}
	if n := len(all(store.SendFilter{CertificateID: "other-cert", To: day22.Add(24*time.Hour - time.Nanosecond)})); n != 2 {
		t.Fatalf("by certificate to 11-22: %d, want 2", n)
	}
	if n := len(all(store.SendFilter{CertificateID: "other-cert", From: day22, To: day22.Add(24*time.Hour - time.Nanosecond)})); n != 1 {
		t.Fatalf("by certificate on 11-22: %d, want 1", n)
	}
	byHolder := all(store.SendFilter{From: clk.now().AddDate(0, 0, -10), To: clk.now(), Holder: "someone@else.EXAMPLE"})
	if len(byHolder) != 3 {
		t.Fatalf("by holder email: %d, want 3", len(byHolder))
	}
	unknown := all(store.SendFilter{From: clk.now().AddDate(0, 0, -10), To: clk.now(), Status: "unknown", Limit: 3})
	if len(unknown) != 4 {
		t.Fatalf("UNKNOWN (expired SENDING): %d, want 4", len(unknown))
	}
	// A window inside one day.
	day := all(store.SendFilter{From: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)})
	for _, r := range day {
		if r.CreatedAt.Before(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)) || r.CreatedAt.After(time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)) {
			t.Fatalf("outside window: %v", r.CreatedAt)
		}
	}
	if len(day) != 2 {
		t.Fatalf("window: %d, want 2", len(day))
	}
	if _, _, err := st.QuerySends(ctx, store.SendFilter{Cursor: "!!"}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}
