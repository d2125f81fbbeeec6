package crmsandbox_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coiflow/coiflow/internal/crm/hubspot/hubspotspec"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
)

func do(t *testing.T, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func start(t *testing.T) string {
	t.Helper()
	base, stop, err := crmsandbox.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return base
}

func TestStartBindsLoopbackOnly(t *testing.T) {
	base := start(t)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base %s", base)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if addr == ":0" {
			b, stop, err := crmsandbox.Start(addr)
			if err != nil || !strings.HasPrefix(b, "http://127.0.0.1:") {
				t.Fatalf("%q: %s %v", addr, b, err)
			}
			_ = stop()
			continue
		}
		if _, _, err := crmsandbox.Start(addr); err == nil {
			t.Fatalf("%q: want a refusal", addr)
		}
	}
}

func TestTokenIsChecked(t *testing.T) {
	base := start(t)
	for _, tok := range []string{"", "wrong"} {
		if st, _, _ := do(t, "GET", base+"/crm/v3/properties/companies", tok, ""); st != http.StatusUnauthorized {
			t.Fatalf("token %q: %d", tok, st)
		}
	}
	if st, _, _ := do(t, "GET", base+"/crm/v3/properties/companies", crmsandbox.DefaultToken, ""); st != http.StatusOK {
		t.Fatalf("good token: %d", st)
	}
	_, _, body := do(t, "GET", base+"/_sandbox/requests", "", "")
	var reqs []crmsandbox.Request
	if err := json.Unmarshal([]byte(body), &reqs); err != nil || len(reqs) != 3 || reqs[0].Authed || !reqs[2].Authed {
		t.Fatalf("requests %s", body)
	}
	if strings.Contains(body, crmsandbox.DefaultToken) {
		t.Fatal("the token was recorded")
	}
	_, _, body = do(t, "GET", base+"/_sandbox/requests?since=2", "", "")
	if err := json.Unmarshal([]byte(body), &reqs); err != nil || len(reqs) != 1 || reqs[0].Seq != 3 {
		t.Fatalf("since=2: %s", body)
	}
}

func TestAdminFaultsObjectsReset(t *testing.T) {
	base := start(t)
	tok := crmsandbox.DefaultToken
	if st, _, _ := do(t, "POST", base+"/_sandbox/faults", "", `{"status":429,"count":1,"path":"/crm/v3/objects","retryAfter":2}`); st != http.StatusCreated {
		t.Fatalf("fault: %d", st)
	}
	// Not matching the fault's path: served.
	if st, _, _ := do(t, "POST", base+"/crm/v3/properties/companies", tok, `{"name":"coi_external_id","label":"x","groupName":"companyinformation","type":"string","fieldType":"text","hasUniqueValue":true}`); st != http.StatusCreated {
		t.Fatalf("create property: %d", st)
	}
	up := `{"inputs":[{"idProperty":"coi_external_id","id":"cowbell:1","properties":{"name":"Acme"}}]}`
	st, h, body := do(t, "POST", base+"/crm/v3/objects/companies/batch/upsert", tok, up)
	if st != http.StatusTooManyRequests || h.Get("Retry-After") != "2" || h.Get("X-HubSpot-RateLimit-Remaining") != "0" || !strings.Contains(body, "RATE_LIMITS") {
		t.Fatalf("fault answer %d %v %s", st, h, body)
	}
	st, h, _ = do(t, "POST", base+"/crm/v3/objects/companies/batch/upsert", tok, up)
	if st != http.StatusOK || h.Get("X-HubSpot-RateLimit-Max") != "100" || h.Get("X-HubSpot-RateLimit-Interval-Milliseconds") != "10000" {
		t.Fatalf("after the fault: %d %v", st, h)
	}
	_, _, body = do(t, "GET", base+"/_sandbox/objects/companies", "", "")
	var objs []crmsandbox.Object
	if err := json.Unmarshal([]byte(body), &objs); err != nil || len(objs) != 1 || objs[0].Properties["name"] != "Acme" {
		t.Fatalf("objects %s", body)
	}
	if st, _, _ := do(t, "POST", base+"/_sandbox/faults", "", `{"status":200}`); st != http.StatusBadRequest {
		t.Fatalf("a non-error fault: %d", st)
	}
	if st, _, _ := do(t, "POST", base+"/_sandbox/reset", "", ""); st != http.StatusNoContent {
		t.Fatal(st)
	}
	_, _, body = do(t, "GET", base+"/_sandbox/objects/companies", "", "")
	if strings.TrimSpace(body) != "[]" {
		t.Fatalf("after reset %s", body)
	}
}

// The sandbox's answers follow HubSpot's documents, errors included.
func TestAnswersFollowTheSpec(t *testing.T) {
	dir, err := hubspotspec.Dir()
	if err != nil {
		t.Fatal(err)
	}
	v, err := hubspotspec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := v.Wrap(crmsandbox.New(crmsandbox.Options{Token: "t"}), true)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	steps := []struct {
		method, path, body string
		want               int
		contains           string
	}{
		{"GET", "/crm/v3/properties/contacts", "", 200, `"name":"email"`},
		{"POST", "/crm/v3/properties/contacts", `{"name":"coi_external_id","label":"x","groupName":"contactinformation","type":"string","fieldType":"text","hasUniqueValue":true}`, 201, `"hasUniqueValue":true`},
		{"POST", "/crm/v3/properties/contacts", `{"name":"coi_external_id","label":"x","groupName":"contactinformation","type":"string","fieldType":"text","hasUniqueValue":true}`, 409, `OBJECT_ALREADY_EXISTS`},
		{"POST", "/crm/v3/objects/contacts/batch/upsert", `{"inputs":[{"idProperty":"coi_external_id","id":"a","properties":{"email":"a@x.example"}},{"idProperty":"coi_external_id","id":"b","properties":{"nope":"1"}}]}`, 207, `"numErrors":1`},
		{"POST", "/crm/v3/objects/companies/batch/upsert", `{"inputs":[{"idProperty":"name","id":"a","properties":{}}]}`, 207, `not a unique identifier property`},
		{"PUT", "/crm/v4/objects/contacts/1001/associations/default/companies/999", "", 404, `OBJECT_NOT_FOUND`},
		{"POST", "/crm/v3/objects/notes", `{"properties":{"hs_timestamp":"2026-11-21T14:02:00.000Z","hs_note_body":"x"},"associations":[{"to":{"id":"1001"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":202}]}]}`, 201, `"hs_note_body":"x"`},
		{"POST", "/crm/v3/objects/notes/search", `{"filterGroups":[{"filters":[{"propertyName":"associations.contact","operator":"EQ","value":"1001"},{"propertyName":"hs_timestamp","operator":"EQ","value":"1795269720000"}]}],"properties":["hs_note_body"],"sorts":[],"limit":10,"after":"0"}`, 200, `"total":1`},
		{"POST", "/crm/v3/objects/notes/search", `{"filterGroups":[{"filters":[{"propertyName":"associations.contact","operator":"EQ","value":"1"}]}],"properties":[],"sorts":[],"limit":10,"after":"0"}`, 200, `"total":0`},
	}
	for _, s := range steps {
		st, _, body := do(t, s.method, srv.URL+s.path, "t", s.body)
		if st != s.want || !strings.Contains(body, s.contains) {
			t.Errorf("%s %s: %d, want %d with %s: %s", s.method, s.path, st, s.want, s.contains, body)
		}
	}
	if rec.Requests() != len(steps) {
		t.Fatalf("%d requests validated", rec.Requests())
	}
	for _, err := range rec.Errors() {
		t.Errorf("spec: %v", err)
	}
}
