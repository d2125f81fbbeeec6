package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestCountPendingHolds: the backlog counts pending and approving holds, not
// decided ones, and dates the oldest; it pages through the index.
func TestCountPendingHolds(t *testing.T) {
	st, clk := newSendsStore(t)
	st = st.WithCountPage(7)
	ctx := context.Background()
	if b, err := st.CountPendingHolds(ctx); err != nil || b.Pending != 0 || !b.Oldest.IsZero() {
		t.Fatalf("empty table: %+v %v", b, err)
	}
	start := clk.now()
	const n = 40
	for i := range n {
		id := fmt.Sprintf("h%02d", i)
		if err := st.PutHold(ctx, sampleHold(id), holdSend(sampleHold(id))); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Minute)
	}
	if b, err := st.CountPendingHolds(ctx); err != nil || b.Pending != n || !b.Oldest.Equal(start) {
		t.Fatalf("after %d holds: %+v %v, want oldest %s", n, b, err, start)
	}

	// h00 is being approved: still waiting. h01 is rejected, h02 approved.
	if _, err := st.BeginApproval(ctx, "h00", "jane", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RejectHold(ctx, "h01", "jane", "wrong holder"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.BeginApproval(ctx, "h02", "jane", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EndApproval(ctx, "h02", "jane", true, []string{"snd_h02"}, ""); err != nil {
		t.Fatal(err)
	}
	if b, err := st.CountPendingHolds(ctx); err != nil || b.Pending != n-2 || !b.Oldest.Equal(start) {
		t.Fatalf("after decisions: %+v %v", b, err)
	}
	// Rejecting h00 is refused while its approval holds the lease, then
	// allowed once the lease ran out: the backlog follows.
	if _, err := st.RejectHold(ctx, "h00", "jane", "duplicate"); err == nil {
		t.Fatal("rejected a hold under approval")
	}
	clk.add(2 * time.Minute)
	if _, err := st.RejectHold(ctx, "h00", "jane", "duplicate"); err != nil {
		t.Fatal(err)
	}
	if b, err := st.CountPendingHolds(ctx); err != nil || b.Pending != n-3 || !b.Oldest.Equal(start.Add(3*time.Minute)) {
		t.Fatalf("after h00 is rejected: %+v %v, want %d pending since %s", b, err, n-3, start.Add(3*time.Minute))
	}
}
