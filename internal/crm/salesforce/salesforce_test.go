package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/testsupport"
)

// fakeSF is a scripted Salesforce: a token endpoint and REST answers chosen
// per test. It records every request.
type fakeSF struct {
	t        *testing.T
	mu       sync.Mutex
	srv      *httptest.Server
	tokens   int    // token requests served
	valid    string // the access token the API accepts
	answer   func(r *http.Request, body []byte) (int, http.Header, string)
	requests []string
	bodies   []string
}

func newFake(t *testing.T) *fakeSF {
	f := &fakeSF{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSF) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.bodies = append(f.bodies, string(body))
	f.mu.Unlock()
	if r.URL.Path == "/services/oauth2/token" {
		form, _ := url.ParseQuery(string(body))
		if r.Method != http.MethodPost || form.Get("grant_type") != "client_credentials" || form.Get("client_id") != "cid" || form.Get("client_secret") != "csecret" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"bad client"}`)
			return
		}
		f.mu.Lock()
		f.tokens++
		tok := "tok" + string(rune('0'+f.tokens))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "instance_url": f.srv.URL, "token_type": "Bearer"})
		return
	}
	f.mu.Lock()
	valid := f.valid
	f.mu.Unlock()
	if valid != "" && r.Header.Get("Authorization") != "Bearer "+valid {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`)
		return
	}
	status, h, out := f.answer(r, body)
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, out)
}

func (f *fakeSF) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func newClient(t *testing.T, f *fakeSF, clk *testsupport.Clock) *Client {
	t.Helper()
	creds := crm.StaticCredentials(crm.Credentials{SalesforceClientID: "cid", SalesforceClientSecret: "csecret", SalesforceTokenURL: f.srv.URL + "/services/oauth2/token"})
	cfg := Config{Credentials: creds}
	if clk != nil {
		cfg.Now = clk.Now
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func account(ext, name string) crm.Record {
	return crm.Record{Type: crm.Company, ExternalID: ext, Fields: map[string]string{crm.FieldName: name, crm.FieldQuoteNumber: "QCB-1", crm.FieldStatus: "active"}}
}

const upsertPath = "/services/data/v62.0/sobjects/Account/COI_External_Id__c/cowbell:a1"

func TestUpsertCreated201(t *testing.T) {
	f := newFake(t)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		if r.Method != http.MethodPatch || r.URL.Path != upsertPath {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		if got["Name"] != "Acme" || got["COI_Quote_Number__c"] != "QCB-1" || got["COI_Status__c"] != "active" || got["COI_External_Id__c"] != nil {
			t.Errorf("fields %v", got)
		}
		return 201, http.Header{"Sforce-Limit-Info": {"api-usage=18/5000"}}, `{"id":"001A","success":true,"errors":[],"created":true}`
	}
	c := newClient(t, f, nil)
	res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err != nil || res[0].Err != nil || res[0].ID != "001A" || !res[0].Created {
		t.Fatalf("%+v %v", res, err)
	}
	if u, l := c.Usage(); u != 18 || l != 5000 {
		t.Fatalf("usage %d/%d", u, l)
	}
}

func TestUpsertUpdated200And204(t *testing.T) {
	f := newFake(t)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 200, nil, `{"id":"001A","success":true,"errors":[],"created":false}`
	}
	c := newClient(t, f, nil)
	res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err != nil || res[0].Err != nil || res[0].ID != "001A" || res[0].Created {
		t.Fatalf("200: %+v %v", res, err)
	}

	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		if r.Method == http.MethodGet && r.URL.Path == upsertPath && r.URL.Query().Get("fields") == "Id" {
			return 200, nil, `{"attributes":{"type":"Account"},"Id":"001B"}`
		}
		return 204, nil, ``
	}
	res, err = c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err != nil || res[0].Err != nil || res[0].ID != "001B" || res[0].Created {
		t.Fatalf("204: %+v %v", res, err)
	}
}

func TestUpsertMultipleMatches300IsPermanent(t *testing.T) {
	f := newFake(t)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 300, nil, `["/services/data/v62.0/sobjects/Account/001A","/services/data/v62.0/sobjects/Account/001B"]`
	}
	c := newClient(t, f, nil)
	res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err != nil {
		t.Fatal(err)
	}
	if !crm.IsPermanent(res[0].Err) || !errors.Is(res[0].Err, crm.ErrMultipleMatches) {
		t.Fatalf("got %v", res[0].Err)
	}
}

func TestUpsert400And404ArePermanent(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		code   string
	}{
		{400, `[{"message":"No such column 'COI_Quote_Number__c' on sobject of type Account","errorCode":"INVALID_FIELD","fields":[]}]`, "INVALID_FIELD"},
		{400, `[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]`, "REQUIRED_FIELD_MISSING"},
		{404, `[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]`, "NOT_FOUND"},
	} {
		f := newFake(t)
		f.answer = func(r *http.Request, body []byte) (int, http.Header, string) { return tc.status, nil, tc.body }
		c := newClient(t, f, nil)
		res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
		if err != nil {
			t.Fatal(err)
		}
		var ce *crm.Error
		if !errors.As(res[0].Err, &ce) || !ce.Permanent || ce.Code != tc.code || ce.Status != tc.status {
			t.Errorf("%d %s: got %v", tc.status, tc.code, res[0].Err)
		}
	}
}

func TestUnauthorizedRequestsANewTokenOnce(t *testing.T) {
	f := newFake(t)
	f.valid = "tok2" // the first token is "expired"
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 201, nil, `{"id":"001A","success":true,"errors":[],"created":true}`
	}
	c := newClient(t, f, nil)
	res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("%+v %v", res, err)
	}
	if f.tokens != 2 {
		t.Fatalf("%d token requests, want 2", f.tokens)
	}

	// A token that keeps failing: one re-request, then a retryable error.
	f2 := newFake(t)
	f2.valid = "never"
	f2.answer = f.answer
	c2 := newClient(t, f2, nil)
	_, err = c2.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	var ce *crm.Error
	if !errors.As(err, &ce) || ce.Status != 401 || crm.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
	if f2.tokens != 2 {
		t.Fatalf("%d token requests, want 2 (no storm)", f2.tokens)
	}
}

func TestBadClientCredentialsAreRetryable(t *testing.T) {
	f := newFake(t)
	c, _ := New(Config{Credentials: crm.StaticCredentials(crm.Credentials{SalesforceClientID: "cid", SalesforceClientSecret: "wrong", SalesforceTokenURL: f.srv.URL + "/services/oauth2/token"})})
	_, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	var ce *crm.Error
	if !errors.As(err, &ce) || ce.Code != "invalid_client" || crm.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
}

func TestRequestLimitExceededBacksOff(t *testing.T) {
	f := newFake(t)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 403, http.Header{"Sforce-Limit-Info": {"api-usage=5001/5000"}}, `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`
	}
	clk := testsupport.NewClock(time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC))
	c := newClient(t, f, clk)
	_, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err == nil || crm.IsPermanent(err) || !errors.Is(err, crm.ErrRateLimited) {
		t.Fatalf("got %v", err)
	}
	n := len(f.log())
	// While backing off, calls fail fast without spending API requests.
	_, err = c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if !errors.Is(err, crm.ErrRateLimited) || len(f.log()) != n {
		t.Fatalf("during back-off: %v, %d new requests", err, len(f.log())-n)
	}
	clk.Add(6 * time.Minute)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 200, http.Header{"Sforce-Limit-Info": {"api-usage=10/5000"}}, `{"id":"001A","success":true,"errors":[],"created":false}`
	}
	if res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")}); err != nil || res[0].Err != nil {
		t.Fatalf("after back-off: %+v %v", res, err)
	}
}

func TestUsageAtLimitBacksOff(t *testing.T) {
	f := newFake(t)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 200, http.Header{"Sforce-Limit-Info": {"api-usage=5000/5000"}}, `{"id":"001A","success":true,"errors":[],"created":false}`
	}
	clk := testsupport.NewClock(time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC))
	c := newClient(t, f, clk)
	if _, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")}); !errors.Is(err, crm.ErrRateLimited) {
		t.Fatalf("got %v, want a back-off at 100%% usage", err)
	}
}

func TestServerErrorIsRetryable(t *testing.T) {
	f := newFake(t)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 503, nil, `[{"message":"down","errorCode":"SERVER_UNAVAILABLE"}]`
	}
	c := newClient(t, f, nil)
	_, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err == nil || crm.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
}

func TestCollectionsUpsertPerRecord(t *testing.T) {
	f := newFake(t)
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		if r.Method != http.MethodPatch || r.URL.Path != "/services/data/v62.0/composite/sobjects/Contact/COI_External_Id__c" {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		var in struct {
			AllOrNone bool             `json:"allOrNone"`
			Records   []map[string]any `json:"records"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.AllOrNone || len(in.Records) != 3 {
			t.Errorf("body %s", body)
		}
		if in.Records[0]["COI_External_Id__c"] != "cowbell:a1:customer" || in.Records[0]["attributes"].(map[string]any)["type"] != "Contact" || in.Records[0]["LastName"] != "Doe" {
			t.Errorf("record %v", in.Records[0])
		}
		if in.Records[2]["LastName"] != "GC Holder" {
			t.Errorf("name fallback: %v", in.Records[2])
		}
		return 200, nil, `[
			{"id":"003A","success":true,"errors":[],"created":true},
			{"success":false,"errors":[{"statusCode":"DUPLICATE_EXTERNAL_ID","message":"more than one record found for external id field","fields":[]}]},
			{"success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]}]`
	}
	c := newClient(t, f, nil)
	recs := []crm.Record{
		{Type: crm.Contact, ExternalID: "cowbell:a1:customer", Fields: map[string]string{crm.FieldFirstName: "Jane", crm.FieldLastName: "Doe", crm.FieldEmail: "jane@acme.test"}},
		{Type: crm.Contact, ExternalID: "cowbell:agent:x", Fields: map[string]string{crm.FieldLastName: "Agent"}},
		{Type: crm.Contact, ExternalID: "nowcerts:h1", Fields: map[string]string{crm.FieldName: "GC Holder"}},
	}
	res, err := c.Upsert(context.Background(), crm.Contact, recs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].ID != "003A" || !res[0].Created {
		t.Errorf("first %+v", res[0])
	}
	if !crm.IsPermanent(res[1].Err) || !errors.Is(res[1].Err, crm.ErrMultipleMatches) {
		t.Errorf("second %+v", res[1])
	}
	if res[2].Err == nil || crm.IsPermanent(res[2].Err) {
		t.Errorf("third %+v", res[2])
	}
}

func TestAssociateAndTaskNotes(t *testing.T) {
	f := newFake(t)
	var task map[string]any
	f.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		switch {
		case r.Method == http.MethodPatch && r.URL.Path == "/services/data/v62.0/sobjects/Contact/003A":
			if string(body) != `{"AccountId":"001A"}` {
				t.Errorf("associate body %s", body)
			}
			return 204, nil, ""
		case r.Method == http.MethodPost && r.URL.Path == "/services/data/v62.0/sobjects/Task":
			_ = json.Unmarshal(body, &task)
			return 201, nil, `{"id":"00T1","success":true,"errors":[]}`
		case r.Method == http.MethodGet && r.URL.Path == "/services/data/v62.0/query":
			q := r.URL.Query().Get("q")
			if task != nil && strings.Contains(q, "WhatId = '001A'") && strings.Contains(q, "Subject LIKE '%[coiflow ") {
				return 200, nil, `{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Task"},"Id":"00T1"}]}`
			}
			return 200, nil, `{"totalSize":0,"done":true,"records":[]}`
		}
		t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		return 404, nil, `[{"errorCode":"NOT_FOUND","message":"no"}]`
	}
	c := newClient(t, f, nil)
	ctx := context.Background()
	co := crm.Ref{Type: crm.Company, ExternalID: "nowcerts:i1", ID: "001A"}
	ct := crm.Ref{Type: crm.Contact, ExternalID: "nowcerts:h1", ID: "003A"}
	if err := c.Associate(ctx, ct, co); err != nil {
		t.Fatal(err)
	}
	n := crm.Note{Key: "tl:1", Subject: "COI sent to GC Holder", Body: "COI for Acme Builders sent by email", At: time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC), Attach: []crm.Ref{co, ct}}
	if _, found, err := c.FindNote(ctx, n); err != nil || found {
		t.Fatalf("before: %v %v", found, err)
	}
	id, err := c.AddNote(ctx, n)
	if err != nil || id != "00T1" {
		t.Fatal(id, err)
	}
	if task["WhatId"] != "001A" || task["WhoId"] != "003A" || task["Status"] != "Completed" || task["ActivityDate"] != "2026-11-21" || !strings.HasSuffix(task["Subject"].(string), n.Ref()) {
		t.Fatalf("task %v", task)
	}
	if got, found, err := c.FindNote(ctx, n); err != nil || !found || got != "00T1" {
		t.Fatalf("after: %q %v %v", got, found, err)
	}
}

func TestTaskSubjectFits(t *testing.T) {
	n := crm.Note{Key: "k", Subject: strings.Repeat("é", 300)}
	s := TaskSubject(n)
	if len([]rune(s)) > 255 || !strings.HasSuffix(s, n.Ref()) {
		t.Fatalf("%d runes: %q", len([]rune(s)), s)
	}
}

func TestBaseURLOverridesInstanceURL(t *testing.T) {
	f := newFake(t)
	other := newFake(t)
	other.answer = func(r *http.Request, body []byte) (int, http.Header, string) {
		return 201, nil, `{"id":"001Z","success":true,"errors":[],"created":true}`
	}
	c, _ := New(Config{BaseURL: other.srv.URL, Credentials: crm.StaticCredentials(crm.Credentials{SalesforceClientID: "cid", SalesforceClientSecret: "csecret", SalesforceTokenURL: f.srv.URL + "/services/oauth2/token"})})
	res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{account("cowbell:a1", "Acme")})
	if err != nil || res[0].ID != "001Z" {
		t.Fatalf("%+v %v", res, err)
	}
	if len(other.log()) != 1 {
		t.Fatalf("requests at the override: %v", other.log())
	}
}
