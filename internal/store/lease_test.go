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

// TestLeaseVersionNote runs against DynamoDB Local: the version note is
// written by the owner's release only, and survives later acquisitions and
// plain releases until the next note replaces it.
func TestLeaseVersionNote(t *testing.T) {
	env := testenv.Get(t)
	base := store.New(env.DynamoDB(), env.NewTable(t))
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *store.Store { return base.WithClock(func() time.Time { return t0.Add(d) }) }
	exp1 := t0.Add(24 * time.Hour)
	exp2 := t0.Add(48 * time.Hour)

	note := func(wantVer string, wantExp time.Time) {
		t.Helper()
		v, e, err := base.LeaseVersion(ctx, "tok")
		if err != nil || v != wantVer || !e.Equal(wantExp) {
			t.Fatalf("LeaseVersion = %q, %s, %v; want %q, %s", v, e, err, wantVer, wantExp)
		}
	}
	note("", time.Time{}) // never taken: no note, no error

	if got, err := at(0).AcquireLease(ctx, "tok", "a", 30*time.Second); err != nil || !got {
		t.Fatalf("acquire a: %v, %v", got, err)
	}
	note("", time.Time{})
	// A non-owner cannot write a note.
	if err := at(time.Second).ReleaseLeaseWithVersion(ctx, "tok", "b", "v-b", exp2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("note by a non-owner: %v, want ErrConflict", err)
	}
	note("", time.Time{})
	if err := at(time.Second).ReleaseLeaseWithVersion(ctx, "tok", "a", "v1", exp1); err != nil {
		t.Fatal(err)
	}
	note("v1", exp1)
	l, err := base.GetLease(ctx, "tok")
	if err != nil || l.Owner != "a" || !l.ExpiresAt.Equal(time.UnixMilli(0)) || l.Version != "v1" || !l.VersionExpiresAt.Equal(exp1) {
		t.Fatalf("GetLease = %+v, %v", l, err)
	}

	// Released with a note: free at once; acquiring keeps the note, and so
	// does a plain release.
	if got, err := at(2*time.Second).AcquireLease(ctx, "tok", "b", 30*time.Second); err != nil || !got {
		t.Fatalf("acquire b after the release: %v, %v", got, err)
	}
	note("v1", exp1)
	if got, err := at(3*time.Second).AcquireLease(ctx, "tok", "c", 30*time.Second); err != nil || got {
		t.Fatalf("acquire c while b holds: %v, %v", got, err)
	}
	if err := at(3*time.Second).ReleaseLease(ctx, "tok", "b"); err != nil {
		t.Fatal(err)
	}
	note("v1", exp1)

	// The next note replaces it; a late release by an owner whose lease was
	// taken over writes nothing.
	if got, err := at(4*time.Second).AcquireLease(ctx, "tok", "c", 30*time.Second); err != nil || !got {
		t.Fatalf("acquire c: %v, %v", got, err)
	}
	if got, err := at(40*time.Second).AcquireLease(ctx, "tok", "d", 30*time.Second); err != nil || !got {
		t.Fatalf("take over c's expired lease: %v, %v", got, err)
	}
	if err := at(41*time.Second).ReleaseLeaseWithVersion(ctx, "tok", "c", "v-late", exp2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("late note: %v, want ErrConflict", err)
	}
	note("v1", exp1)
	if err := at(42*time.Second).ReleaseLeaseWithVersion(ctx, "tok", "d", "v2", exp2); err != nil {
		t.Fatal(err)
	}
	note("v2", exp2)
}
