package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

// TestLease runs against DynamoDB Local: one owner at a time, re-entrant for
// its owner, released only by its owner, taken over once expired.
func TestLease(t *testing.T) {
	env := testenv.Get(t)
	base := store.New(env.DynamoDB(), env.NewTable(t))
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *store.Store { return base.WithClock(func() time.Time { return t0.Add(d) }) }

	if _, err := at(0).GetLease(ctx, "tok"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetLease before any acquire: %v, want ErrNotFound", err)
	}
	mustAcquire := func(st *store.Store, owner string, want bool) {
		t.Helper()
		got, err := st.AcquireLease(ctx, "tok", owner, 30*time.Second)
		if err != nil {
			t.Fatalf("AcquireLease(%s): %v", owner, err)
		}
		if got != want {
			t.Fatalf("AcquireLease(%s) = %v, want %v", owner, got, want)
		}
	}
	mustAcquire(at(0), "a", true)
	mustAcquire(at(time.Second), "b", false)
	mustAcquire(at(2*time.Second), "a", true) // the owner extends: now until t0+32s
	mustAcquire(at(31*time.Second), "b", false)

	l, err := at(0).GetLease(ctx, "tok")
	if err != nil || l.Owner != "a" || !l.ExpiresAt.Equal(t0.Add(32*time.Second)) {
		t.Fatalf("GetLease = %+v, %v; want owner a until t0+32s", l, err)
	}

	// Only the owner releases.
	if err := at(3*time.Second).ReleaseLease(ctx, "tok", "b"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("release by a non-owner: %v, want ErrConflict", err)
	}
	if err := at(3*time.Second).ReleaseLease(ctx, "tok", "a"); err != nil {
		t.Fatalf("release by the owner: %v", err)
	}
	mustAcquire(at(4*time.Second), "b", true) // released: free at once

	// b's lease expires at t0+34s; c takes it over after that, and b's late
	// release does not free c's lease.
	mustAcquire(at(33*time.Second), "c", false)
	mustAcquire(at(35*time.Second), "c", true)
	if err := at(36*time.Second).ReleaseLease(ctx, "tok", "b"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("late release by the previous owner: %v, want ErrConflict", err)
	}
	mustAcquire(at(37*time.Second), "d", false)

	// Leases are independent by name.
	if got, err := at(37*time.Second).AcquireLease(ctx, "other", "d", time.Second); err != nil || !got {
		t.Fatalf("another lease name: %v, %v", got, err)
	}
}

// TestLeaseContention: many owners race for one free lease; exactly one wins.
func TestLeaseContention(t *testing.T) {
	env := testenv.Get(t)
	st := store.New(env.DynamoDB(), env.NewTable(t))
	ctx := context.Background()
	const n = 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []string
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", i)
			got, err := st.AcquireLease(ctx, "race", owner, time.Minute)
			if err != nil {
				t.Errorf("AcquireLease(%s): %v", owner, err)
				return
			}
			if got {
				mu.Lock()
				wins = append(wins, owner)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d owners acquired the lease (%v), want exactly 1", len(wins), wins)
	}
}

func TestLeaseArguments(t *testing.T) {
	st := store.New(nil, "unused")
	if _, err := st.AcquireLease(context.Background(), "", "a", time.Second); err == nil {
		t.Fatal("empty name accepted")
	}
	if _, err := st.AcquireLease(context.Background(), "x", "a", 0); err == nil {
		t.Fatal("zero ttl accepted")
	}
}
