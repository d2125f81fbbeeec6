package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

type crmClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *crmClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *crmClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCRMStore(t *testing.T) (*store.Store, *crmClock) {
	t.Helper()
	env := testenv.Get(t)
	clk := &crmClock{t: time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC)}
	return store.New(env.DynamoDB(), env.NewTable(t)).WithClock(clk.now), clk
}

func TestCRMStateVersionsAreOptimisticLocks(t *testing.T) {
	st, _ := newCRMStore(t)
	ctx := context.Background()
	ext := "cowbell:877e9ee2"
	if _, err := st.GetCRMState(ctx, ext); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get before put: %v", err)
	}
	v1 := store.CRMState{ExternalID: ext, ObjectType: "company", Fields: map[string]string{"name": "Red Rock"},
		Stamps: map[string]string{"name": "2021-05-13T06:07:54.407000000Z#evt_1"}, Hash: "h1", Version: 1}
	if err := st.PutCRMState(ctx, v1, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.PutCRMState(ctx, v1, 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	v2 := v1
	v2.Fields = map[string]string{"name": "Red Rock Co"}
	v2.Version = 2
	if err := st.PutCRMState(ctx, v2, 1); err != nil {
		t.Fatal(err)
	}
	stale := v1
	stale.Version = 2
	if err := st.PutCRMState(ctx, stale, 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write from version 1 after 2: %v, want ErrConflict", err)
	}
	if err := st.MarkCRMSynced(ctx, ext, 1, "hubspot", "1001"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("marking an old version synced: %v, want ErrConflict", err)
	}
	if err := st.MarkCRMSynced(ctx, ext, 2, "hubspot", "1001"); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetCRMState(ctx, ext)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Synced != 2 || got.CRMID != "1001" || got.CRMKind != "hubspot" || got.Fields["name"] != "Red Rock Co" || got.Stamps["name"] == "" || got.ObjectType != "company" {
		t.Fatalf("state %+v", got)
	}
	if got.LastStamp() != "2021-05-13T06:07:54.407000000Z#evt_1" {
		t.Fatalf("last stamp %q", got.LastStamp())
	}
}

func TestCRMLinks(t *testing.T) {
	st, _ := newCRMStore(t)
	ctx := context.Background()
	if _, err := st.GetCRMLink(ctx, "nowcerts:h1", "nowcerts:i1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%v", err)
	}
	if err := st.PutCRMLink(ctx, "nowcerts:h1", "nowcerts:i1", store.CRMLink{CRMKind: "hubspot", ContactCRMID: "7", CompanyCRMID: "8"}); err != nil {
		t.Fatal(err)
	}
	l, err := st.GetCRMLink(ctx, "nowcerts:h1", "nowcerts:i1")
	if err != nil || l.ContactCRMID != "7" || l.CompanyCRMID != "8" || l.CRMKind != "hubspot" {
		t.Fatalf("%+v %v", l, err)
	}
}

func TestCRMNoteClaims(t *testing.T) {
	st, clk := newCRMStore(t)
	ctx := context.Background()
	lease := func() time.Time { return clk.now().Add(2 * time.Minute) }

	c, err := st.ClaimCRMNote(ctx, "tl:1", "a", lease())
	if err != nil || c.Done || c.Recover {
		t.Fatalf("first claim %+v %v", c, err)
	}
	if _, err := st.ClaimCRMNote(ctx, "tl:1", "b", lease()); !errors.Is(err, store.ErrNoteBusy) {
		t.Fatalf("claim while held: %v, want ErrNoteBusy", err)
	}
	if err := st.CompleteCRMNote(ctx, "tl:1", "b", "x"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("complete by another owner: %v", err)
	}
	// a fails without knowing: the next attempt must look before creating.
	if err := st.ReleaseCRMNote(ctx, "tl:1", "a", true); err != nil {
		t.Fatal(err)
	}
	c, err = st.ClaimCRMNote(ctx, "tl:1", "b", lease())
	if err != nil || !c.Recover {
		t.Fatalf("claim after uncertain: %+v %v", c, err)
	}
	if err := st.CompleteCRMNote(ctx, "tl:1", "b", "note-9"); err != nil {
		t.Fatal(err)
	}
	c, err = st.ClaimCRMNote(ctx, "tl:1", "c", lease())
	if err != nil || !c.Done || c.CRMID != "note-9" {
		t.Fatalf("claim after done: %+v %v", c, err)
	}

	// A FREE note (the CRM certainly refused) is claimed without recovery.
	if _, err := st.ClaimCRMNote(ctx, "tl:2", "a", lease()); err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseCRMNote(ctx, "tl:2", "a", false); err != nil {
		t.Fatal(err)
	}
	if c, err := st.ClaimCRMNote(ctx, "tl:2", "b", lease()); err != nil || c.Recover || c.Done {
		t.Fatalf("claim after free: %+v %v", c, err)
	}

	// A claim whose holder died is taken over once its lease ran out.
	if _, err := st.ClaimCRMNote(ctx, "tl:3", "a", lease()); err != nil {
		t.Fatal(err)
	}
	clk.add(3 * time.Minute)
	c, err = st.ClaimCRMNote(ctx, "tl:3", "b", lease())
	if err != nil || !c.Recover {
		t.Fatalf("take-over after lease: %+v %v", c, err)
	}
	if err := st.CompleteCRMNote(ctx, "tl:3", "a", "late"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the dead holder completing: %v, want ErrConflict", err)
	}
	n, err := st.GetCRMNote(ctx, "tl:3")
	if err != nil || n.Owner != "b" || n.Attempts != 2 || n.State != store.NoteClaimed {
		t.Fatalf("note %+v %v", n, err)
	}
}

func TestCRMFailures(t *testing.T) {
	st, clk := newCRMStore(t)
	ctx := context.Background()
	for _, id := range []string{"j1", "j2"} {
		if err := st.RecordCRMFailure(ctx, store.CRMFailure{JobID: id, ExternalID: "nowcerts:h1", Op: "hubspot: upsert contacts", Status: 400, Code: "VALIDATION_ERROR", Message: "bad email"}); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Second)
	}
	fs, err := st.ListCRMFailures(ctx, 10)
	if err != nil || len(fs) != 2 || fs[0].JobID != "j2" || fs[1].Code != "VALIDATION_ERROR" || fs[1].Status != 400 {
		t.Fatalf("%+v %v", fs, err)
	}
}
