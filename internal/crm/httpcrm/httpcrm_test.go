package httpcrm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/crm"
)

type receiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	status int
	answer string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	rc.mu.Lock()
	rc.bodies = append(rc.bodies, m)
	st, ans := rc.status, rc.answer
	rc.mu.Unlock()
	if st == 0 {
		st = 200
	}
	w.WriteHeader(st)
	_, _ = io.WriteString(w, ans)
}

func newClient(t *testing.T, rc *receiver, token string) *Client {
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL + "/crm/upsert", Credentials: crm.StaticCredentials(crm.Credentials{HTTPToken: token})})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContactUpsertUsesTheSeedShape(t *testing.T) {
	rc := &receiver{answer: `{"id":42}`}
	c := newClient(t, rc, "tok")
	res, err := c.Upsert(context.Background(), crm.Contact, []crm.Record{{ExternalID: "nowcerts:h1", Fields: map[string]string{
		crm.FieldFirstName: "Jane", crm.FieldLastName: "Doe", crm.FieldEmail: "jane@gc.test", crm.FieldPhone: "555", crm.FieldSource: "nowcerts", crm.FieldRole: "holder",
	}}})
	if err != nil || res[0].Err != nil || res[0].ID != "42" {
		t.Fatalf("%+v %v", res, err)
	}
	b := rc.bodies[0]
	for k, want := range map[string]string{"email": "jane@gc.test", "name": "Jane Doe", "phone": "555", "externalId": "nowcerts:h1", "source": "nowcerts", "type": "contact"} {
		if b[k] != want {
			t.Errorf("%s = %v, want %q", k, b[k], want)
		}
	}
	if b["fields"].(map[string]any)["role"] != "holder" {
		t.Errorf("fields %v", b["fields"])
	}
}

func TestCompanyAssociationAndNote(t *testing.T) {
	rc := &receiver{}
	c := newClient(t, rc, "tok")
	ctx := context.Background()
	res, err := c.Upsert(ctx, crm.Company, []crm.Record{{ExternalID: "cowbell:a1", Fields: map[string]string{crm.FieldName: "Acme", crm.FieldSource: "cowbell"}}})
	if err != nil || res[0].ID != "cowbell:a1" {
		t.Fatalf("%+v %v", res, err)
	}
	co := crm.Ref{Type: crm.Company, ExternalID: "cowbell:a1", ID: res[0].ID}
	ct := crm.Ref{Type: crm.Contact, ExternalID: "cowbell:a1:customer"}
	if err := c.Associate(ctx, ct, co); err != nil {
		t.Fatal(err)
	}
	n := crm.Note{Key: "tl:1", Subject: "COI sent", Body: "COI for Acme sent by email", At: time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC), Attach: []crm.Ref{co}}
	if _, err := c.AddNote(ctx, n); err != nil {
		t.Fatal(err)
	}
	if _, found, err := c.FindNote(ctx, n); found || err != nil {
		t.Fatal("a generic endpoint cannot find notes")
	}
	if rc.bodies[0]["type"] != "company" || rc.bodies[0]["name"] != "Acme" {
		t.Errorf("company %v", rc.bodies[0])
	}
	if rc.bodies[1]["type"] != "association" || rc.bodies[1]["companyExternalId"] != "cowbell:a1" || rc.bodies[1]["externalId"] != "cowbell:a1:customer" {
		t.Errorf("association %v", rc.bodies[1])
	}
	if rc.bodies[2]["type"] != "note" || rc.bodies[2]["externalId"] != "note:tl:1" || rc.bodies[2]["at"] != "2026-11-21T14:02:00Z" {
		t.Errorf("note %v", rc.bodies[2])
	}
}

func TestErrorsAreClassified(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{{400, true}, {422, true}, {401, false}, {429, false}, {500, false}, {503, false}} {
		rc := &receiver{status: tc.status, answer: `{"error":"x"}`}
		c := newClient(t, rc, "tok")
		res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{{ExternalID: "cowbell:a1", Fields: map[string]string{crm.FieldName: "Acme"}}})
		switch {
		case tc.permanent && (err != nil || !crm.IsPermanent(res[0].Err)):
			t.Errorf("%d: want a permanent item error, got %v %+v", tc.status, err, res)
		case !tc.permanent && (err == nil || crm.IsPermanent(err)):
			t.Errorf("%d: want a retryable call error, got %v", tc.status, err)
		}
	}
}

func TestMissingTokenIsAnError(t *testing.T) {
	rc := &receiver{}
	c := newClient(t, rc, "")
	if _, err := c.Upsert(context.Background(), crm.Company, []crm.Record{{ExternalID: "x"}}); err == nil {
		t.Fatal("want an error")
	}
	if len(rc.bodies) != 0 {
		t.Fatal("nothing must be sent without a token")
	}
}

func TestUnauthorizedRereadsRotatedTokenOnce(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	var reads, refreshes int
	creds := func(_ context.Context, refresh bool) (crm.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		reads++
		if refresh {
			refreshes++
			return crm.Credentials{HTTPToken: "tok"}, nil // the rotated token, read past the cache
		}
		return crm.Credentials{HTTPToken: "old"}, nil // the cached, rotated-away token
	}
	c, err := New(Config{URL: srv.URL + "/crm/upsert", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{{ExternalID: "cowbell:a1", Fields: map[string]string{crm.FieldName: "Acme"}}})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("upsert after a 401 with a rotated token: %v %+v", err, res)
	}
	if reads != 2 || refreshes != 1 {
		t.Fatalf("credential reads = %d (refreshes %d), want 2 (1)", reads, refreshes)
	}
}
