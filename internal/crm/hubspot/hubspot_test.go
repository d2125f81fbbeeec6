package hubspot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/crm/hubspot/hubspotspec"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
	"github.com/coiflow/coiflow/internal/testsupport"
)

type env struct {
	sb    *crmsandbox.Sandbox
	rec   *hubspotspec.Recorder
	c     *Client
	clock *testsupport.Clock
	url   string
}

var (
	specOnce sync.Once
	spec     *hubspotspec.Validator
	specErr  error
)

func validator(t *testing.T) *hubspotspec.Validator {
	t.Helper()
	specOnce.Do(func() {
		dir, err := hubspotspec.Dir()
		if err != nil {
			specErr = err
			return
		}
		spec, specErr = hubspotspec.Load(dir)
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	return spec
}

// newEnv starts the CRM sandbox behind the spec validator (requests and
// answers) and a client pointed at it; at the end every exchange must have
// passed validation.
func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	clock := testsupport.NewClock(time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC))
	sb := crmsandbox.New(crmsandbox.Options{Token: "pat-test", RateMax: 10000})
	rec := validator(t).Wrap(sb, true)
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg := Config{
		BaseURL:     srv.URL,
		Credentials: crm.StaticCredentials(crm.Credentials{HubSpotToken: "pat-test"}),
		RateMax:     1000,
		Now:         clock.Now,
		Sleep:       clock.Sleep,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if rec.Requests() == 0 {
			t.Errorf("no request reached the validator")
		}
		for _, err := range rec.Errors() {
			t.Errorf("spec violation: %v", err)
		}
	})
	return &env{sb: sb, rec: rec, c: c, clock: clock, url: srv.URL}
}

func company(ext, name string) crm.Record {
	return crm.Record{Type: crm.Company, ExternalID: ext, Fields: map[string]string{
		crm.FieldName: name, crm.FieldStatus: crm.StatusActive, crm.FieldQuoteNumber: "QCB-1", crm.FieldSource: "cowbell",
	}}
}

func contact(ext, first, last, email string) crm.Record {
	return crm.Record{Type: crm.Contact, ExternalID: ext, Fields: map[string]string{
		crm.FieldFirstName: first, crm.FieldLastName: last, crm.FieldEmail: email, crm.FieldRole: crm.RoleCustomer,
		crm.FieldStatus: crm.StatusActive,
	}}
}

func paths(rs []crmsandbox.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

func TestUpsertCreatesMissingPropertiesThenUpserts(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	res, err := e.c.Upsert(ctx, crm.Company, []crm.Record{company("cowbell:a1", "Acme Builders"), company("cowbell:a2", "Red Rock")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Err != nil || res[1].Err != nil || res[0].ID == "" || res[0].ID == res[1].ID || !res[0].Created {
		t.Fatalf("results: %+v", res)
	}
	reqs := e.sb.Requests()
	if reqs[0].Method != "GET" || reqs[0].Path != "/crm/v3/properties/companies" {
		t.Fatalf("first request %s %s, want the property list", reqs[0].Method, reqs[0].Path)
	}
	created := map[string]bool{}
	for _, r := range reqs {
		if r.Method == "POST" && r.Path == "/crm/v3/properties/companies" {
			s := string(r.Body)
			switch {
			case strings.Contains(s, `"name":"coi_external_id"`):
				if !strings.Contains(s, `"hasUniqueValue":true`) {
					t.Errorf("id property created without hasUniqueValue: %s", s)
				}
				created["coi_external_id"] = true
			case strings.Contains(s, `"name":"coi_status"`):
				created["coi_status"] = true
			}
		}
	}
	if !created["coi_external_id"] || !created["coi_status"] {
		t.Fatalf("properties created: %v (requests %v)", created, paths(reqs))
	}
	last := reqs[len(reqs)-1]
	if last.Path != "/crm/v3/objects/companies/batch/upsert" {
		t.Fatalf("last request %s", last.Path)
	}

	// A second write of the same type reads no properties again, and updates.
	n := len(reqs)
	upd := company("cowbell:a1", "Acme Builders LLC")
	res2, err := e.c.Upsert(ctx, crm.Company, []crm.Record{upd})
	if err != nil || res2[0].Err != nil || res2[0].ID != res[0].ID || res2[0].Created {
		t.Fatalf("second upsert: %+v %v", res2, err)
	}
	if got := len(e.sb.Requests()) - n; got != 1 {
		t.Fatalf("second upsert made %d requests, want 1", got)
	}
	objs := e.sb.Objects("companies")
	if len(objs) != 2 || objs[0].Properties["name"] != "Acme Builders LLC" || objs[0].Properties["coi_external_id"] != "cowbell:a1" || objs[0].Properties["coi_quote_number"] != "QCB-1" {
		t.Fatalf("objects: %+v", objs)
	}
}

func TestUpsert207IsReadPerItem(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.c.Upsert(ctx, crm.Contact, []crm.Record{contact("cowbell:c1:customer", "Jane", "Doe", "jane@acme.test")}); err != nil {
		t.Fatal(err)
	}
	// Same email under another external id: HubSpot refuses that item only.
	res, err := e.c.Upsert(ctx, crm.Contact, []crm.Record{
		contact("cowbell:agent:x", "Jane", "Doe", "jane@acme.test"),
		contact("nowcerts:h1", "", "Holder Inc", "holder@gc.test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || !crm.IsPermanent(res[0].Err) {
		t.Fatalf("duplicate email: want a permanent item error, got %+v", res[0])
	}
	if res[1].Err != nil || res[1].ID == "" {
		t.Fatalf("second item: %+v", res[1])
	}
	var saw207 bool
	for _, r := range e.sb.Requests() {
		saw207 = saw207 || r.Status == http.StatusMultiStatus
	}
	if !saw207 {
		t.Fatal("the sandbox never answered 207")
	}
}

func TestContactNameFallsBackToLastName(t *testing.T) {
	p := Properties(crm.Contact, map[string]string{crm.FieldName: "ABC Contractors", crm.FieldRole: crm.RoleHolder})
	if p["lastname"] != "ABC Contractors" || p["coi_role"] != "holder" || p["coi_name"] != "" {
		t.Fatalf("%v", p)
	}
	p = Properties(crm.Company, map[string]string{crm.FieldName: "Acme", crm.FieldEmail: "a@b.co", crm.FieldPolicyStatus: ""})
	if p["name"] != "Acme" || p["coi_email"] != "a@b.co" {
		t.Fatalf("%v", p)
	}
	if _, ok := p["coi_policy_status"]; ok {
		t.Fatal("empty fields must not be sent")
	}
}

func TestAssociateAndNotes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	co, err := e.c.Upsert(ctx, crm.Company, []crm.Record{company("nowcerts:ins1", "Acme Builders")})
	if err != nil || co[0].Err != nil {
		t.Fatal(err, co)
	}
	ct, err := e.c.Upsert(ctx, crm.Contact, []crm.Record{contact("nowcerts:h1", "", "GC Holder", "gc@holder.test")})
	if err != nil || ct[0].Err != nil {
		t.Fatal(err, ct)
	}
	coRef := crm.Ref{Type: crm.Company, ExternalID: "nowcerts:ins1", ID: co[0].ID}
	ctRef := crm.Ref{Type: crm.Contact, ExternalID: "nowcerts:h1", ID: ct[0].ID}
	if err := e.c.Associate(ctx, ctRef, coRef); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Associate(ctx, ctRef, coRef); err != nil {
		t.Fatalf("associating twice: %v", err)
	}
	objs := e.sb.Objects("contacts")
	if got := objs[0].Associations["companies"]; len(got) != 1 || got[0] != co[0].ID {
		t.Fatalf("contact associations: %v", objs[0].Associations)
	}

	at := time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC)
	note := crm.Note{Key: "tl:s1:sent", Subject: "COI sent", Body: "COI for Acme Builders sent by email, certificate 1f3c…, 2026-11-21 14:02 UTC", At: at, Attach: []crm.Ref{coRef, ctRef}}
	if _, found, err := e.c.FindNote(ctx, note); err != nil || found {
		t.Fatalf("find before create: %v %v", found, err)
	}
	id, err := e.c.AddNote(ctx, note)
	if err != nil || id == "" {
		t.Fatal(err)
	}
	got, found, err := e.c.FindNote(ctx, note)
	if err != nil || !found || got != id {
		t.Fatalf("find after create: %q %v %v (want %q)", got, found, err, id)
	}
	other := note
	other.Key = "tl:s2:sent"
	if _, found, _ := e.c.FindNote(ctx, other); found {
		t.Fatal("another key must not match")
	}
	notes := e.sb.Objects("notes")
	if len(notes) != 1 || !strings.Contains(notes[0].Properties["hs_note_body"], "Acme Builders sent by email") || notes[0].Properties["hs_timestamp"] != "2026-11-21T14:02:00.000Z" {
		t.Fatalf("notes: %+v", notes)
	}
	if len(notes[0].Associations["companies"]) != 1 || len(notes[0].Associations["contacts"]) != 1 {
		t.Fatalf("note associations: %v", notes[0].Associations)
	}
}

func TestRateLimit429IsWaitedOutThenRetried(t *testing.T) {
	e := newEnv(t, nil)
	e.sb.AddFault(crmsandbox.Fault{Status: 429, Count: 2, Path: "/crm/v3/objects/companies/batch/upsert", RetryAfter: 2})
	res, err := e.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("%v %+v", err, res)
	}
	var waited time.Duration
	for _, d := range e.clock.Slept() {
		waited += d
	}
	if waited < 4*time.Second {
		t.Fatalf("waited %v in total, want at least two Retry-After of 2s (sleeps %v)", waited, e.clock.Slept())
	}
}

func TestRateLimitExhaustedIsRetryable(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxRetries429 = 1 })
	e.sb.AddFault(crmsandbox.Fault{Status: 429, Count: 5, Path: "/crm/v3/properties"})
	_, err := e.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")})
	if err == nil || crm.IsPermanent(err) || !errors.Is(err, crm.ErrRateLimited) {
		t.Fatalf("want a retryable rate-limit error, got %v", err)
	}
	if n := len(e.sb.Requests()); n != 2 {
		t.Fatalf("%d requests, want 2 (one retry)", n)
	}
}

func TestDailyLimitIsNotRetriedInProcess(t *testing.T) {
	e := newEnv(t, nil)
	e.sb.AddFault(crmsandbox.Fault{Status: 429, Count: 1, Policy: "DAILY"})
	_, err := e.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")})
	var ce *crm.Error
	if !errors.As(err, &ce) || ce.Code != "DAILY" || crm.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
	if n := len(e.sb.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestHeadersRemainingZeroPausesTheClient(t *testing.T) {
	e := newEnv(t, nil)
	e.sb.AddFault(crmsandbox.Fault{Status: 500, Count: 1, Path: "/nothing"}) // keep a fault pending: none
	l := e.c.lim
	l.observe(rateInfo{HasRemain: true, Remaining: 0, Interval: 10 * time.Second})
	if err := l.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := e.clock.Slept(); len(s) == 0 || s[0] < 10*time.Second {
		t.Fatalf("sleeps %v, want a 10s pause", s)
	}
	if _, err := e.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")}); err != nil {
		t.Fatal(err)
	}
}

func TestClientSideLimiterSpacesRequests(t *testing.T) {
	clock := testsupport.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := newLimiter(2, 10*time.Second, clock.Now, clock.Sleep)
	for range 3 {
		if err := l.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s := clock.Slept()
	if len(s) != 1 || s[0] < 5*time.Second || s[0] > 6*time.Second {
		t.Fatalf("sleeps %v, want one of ~5s (2 per 10s)", s)
	}
}

func TestUnauthorizedRereadsTokenOnce(t *testing.T) {
	var calls []bool
	e := newEnv(t, func(c *Config) {
		c.Credentials = func(_ context.Context, refresh bool) (crm.Credentials, error) {
			calls = append(calls, refresh)
			if refresh {
				return crm.Credentials{HubSpotToken: "pat-test"}, nil
			}
			return crm.Credentials{HubSpotToken: "stale"}, nil
		}
	})
	if _, err := e.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")}); err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 || calls[0] || !calls[1] {
		t.Fatalf("credential reads %v, want a refresh after the 401", calls)
	}

	e2 := newEnv(t, func(c *Config) {
		c.Credentials = crm.StaticCredentials(crm.Credentials{HubSpotToken: "wrong"})
	})
	_, err := e2.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")})
	var ce *crm.Error
	if !errors.As(err, &ce) || ce.Status != 401 || crm.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
	if n := len(e2.sb.Requests()); n != 2 {
		t.Fatalf("%d requests, want 2 (one re-read)", n)
	}
}

func TestServerErrorIsRetryable(t *testing.T) {
	e := newEnv(t, nil)
	e.sb.AddFault(crmsandbox.Fault{Status: 500, Count: 1, Path: "/crm/v3/properties"})
	_, err := e.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")})
	if err == nil || crm.IsPermanent(err) || crm.NotApplied(err) {
		t.Fatalf("got %v", err)
	}
}

func TestIDPropertyWithoutUniqueValueIsPermanent(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequest("POST", e.url+"/crm/v3/properties/companies", strings.NewReader(`{"name":"coi_external_id","label":"x","groupName":"companyinformation","type":"string","fieldType":"text","hasUniqueValue":false}`))
	req.Header.Set("Authorization", "Bearer pat-test")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, err = e.c.Upsert(context.Background(), crm.Company, []crm.Record{company("cowbell:a1", "Acme")})
	if !crm.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
}

// The recorder used above must flag a request the spec forbids, or the tests
// above would pass whatever the client sent.
func TestRecorderFlagsAWrongRequest(t *testing.T) {
	sb := crmsandbox.New(crmsandbox.Options{Token: "pat-test"})
	rec := validator(t).Wrap(sb, false)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/crm/v3/objects/companies/batch/upsert", strings.NewReader(`{"inputs":[{"idProperty":"coi_external_id","id":"x","properties":{"name":7}}]}`))
	req.Header.Set("Authorization", "Bearer pat-test")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(rec.Errors()) != 1 {
		t.Fatalf("errors %v, want one", rec.Errors())
	}
}

// HubSpot may answer without echoing the id property: results are then
// matched by position among the inputs that did not fail.
func TestUpsertResultsWithoutEchoedIDs(t *testing.T) {
	answer := `{"status":"COMPLETE","startedAt":"2026-11-21T14:02:00Z","completedAt":"2026-11-21T14:02:01Z","numErrors":1,
		"errors":[{"status":"400","category":"VALIDATION_ERROR","message":"bad email","context":{"ids":["b"]},"errors":[],"links":{}}],
		"results":[{"id":"11","new":true,"properties":{},"archived":false,"createdAt":"2026-11-21T14:02:00Z","updatedAt":"2026-11-21T14:02:00Z"},
		           {"id":"33","new":false,"properties":{},"archived":false,"createdAt":"2026-11-21T14:02:00Z","updatedAt":"2026-11-21T14:02:00Z"}]}`
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crm/v3/properties/contacts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"results":[{"name":"coi_external_id","hasUniqueValue":true,"label":"x","description":"","groupName":"g","type":"string","fieldType":"text","options":[]},
			{"name":"coi_role","label":"x","description":"","groupName":"g","type":"string","fieldType":"text","options":[]}]}`))
	})
	mux.HandleFunc("POST /crm/v3/objects/contacts/batch/upsert", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMultiStatus)
		_, _ = w.Write([]byte(answer))
	})
	rec := validator(t).Wrap(mux, true)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, Credentials: crm.StaticCredentials(crm.Credentials{HubSpotToken: "x"})})
	if err != nil {
		t.Fatal(err)
	}
	recs := []crm.Record{
		{ExternalID: "a", Fields: map[string]string{crm.FieldRole: "holder"}},
		{ExternalID: "b", Fields: map[string]string{crm.FieldEmail: "nope"}},
		{ExternalID: "c", Fields: map[string]string{crm.FieldRole: "agent"}},
	}
	res, err := c.Upsert(context.Background(), crm.Contact, recs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].ID != "11" || !res[0].Created || res[2].ID != "33" || res[2].Created || !crm.IsPermanent(res[1].Err) {
		t.Fatalf("%+v", res)
	}
	for _, err := range rec.Errors() {
		t.Errorf("spec: %v", err)
	}
}

func TestRefusedBatchIsSplitToIsolateTheBadInput(t *testing.T) {
	e := newEnv(t, nil)
	res, err := e.c.Upsert(context.Background(), crm.Contact, []crm.Record{
		contact("nowcerts:h1", "", "Good Holder", "good@holder.example"),
		contact("nowcerts:h2", "", "Bad Holder", "not-an-email"),
		contact("nowcerts:h3", "", "Other Holder", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].ID == "" || res[2].Err != nil || res[2].ID == "" {
		t.Fatalf("good inputs: %+v", res)
	}
	var ce *crm.Error
	if !errors.As(res[1].Err, &ce) || !ce.Permanent || ce.Status != 400 || ce.Code != "VALIDATION_ERROR" {
		t.Fatalf("bad input: %+v", res[1])
	}
	if n := len(e.sb.Objects("contacts")); n != 2 {
		t.Fatalf("%d contacts", n)
	}
}

// BenchmarkUpsert100 writes a full batch of 100 contacts to the in-process
// sandbox (JSON both ways, HTTP over loopback, no spec validation).
func BenchmarkUpsert100(b *testing.B) {
	sb := crmsandbox.New(crmsandbox.Options{Token: "pat-test", RateMax: 1 << 30})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, Credentials: crm.StaticCredentials(crm.Credentials{HubSpotToken: "pat-test"}), RateMax: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]crm.Record, 100)
	for i := range recs {
		recs[i] = contact(fmt.Sprintf("nowcerts:h%03d", i), "First", "Last", "")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Upsert(context.Background(), crm.Contact, recs); err != nil {
			b.Fatal(err)
		}
	}
}
