package testsupport

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	c := NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %v, want %v", c.Now(), start)
	}
	c.Add(time.Minute)
	if err := c.Sleep(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	_ = c.Sleep(context.Background(), time.Second)
	if want := start.Add(time.Minute + 3*time.Second); !c.Now().Equal(want) {
		t.Fatalf("Now = %v, want %v", c.Now(), want)
	}
	s := c.Slept()
	if !slices.Equal(s, []time.Duration{2 * time.Second, time.Second}) {
		t.Fatalf("Slept = %v", s)
	}
	s[0] = 0
	if c.Slept()[0] != 2*time.Second {
		t.Fatal("Slept must return a copy")
	}
}
