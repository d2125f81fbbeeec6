package hubspotspec

import (
	"net/http"
	"strings"
	"testing"
)

func load(t *testing.T) *Validator {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	v, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func req(t *testing.T, method, target, body string, auth bool) (*http.Request, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, "http://127.0.0.1:1234"+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if auth {
		r.Header.Set("Authorization", "Bearer pat-test")
	}
	return r, []byte(body)
}

func TestValidatorAcceptsWellFormedRequests(t *testing.T) {
	v := load(t)
	good := []struct{ method, path, body string }{
		{"POST", "/crm/v3/objects/contacts/batch/upsert", `{"inputs":[{"idProperty":"coi_external_id","id":"nowcerts:1","properties":{"email":"a@b.co"}}]}`},
		{"POST", "/crm/v3/objects/companies/batch/upsert", `{"inputs":[{"idProperty":"coi_external_id","id":"cowbell:1","properties":{"name":"Acme"}}]}`},
		{"GET", "/crm/v3/properties/companies", ``},
		{"POST", "/crm/v3/properties/contacts", `{"name":"coi_external_id","label":"x","groupName":"contactinformation","type":"string","fieldType":"text","hasUniqueValue":true}`},
		{"PUT", "/crm/v4/objects/contacts/1/associations/default/companies/2", ``},
		{"POST", "/crm/v3/objects/notes", `{"properties":{"hs_timestamp":"2026-11-21T14:02:00.000Z","hs_note_body":"x"},"associations":[{"to":{"id":"2"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":190}]}]}`},
	}
	for _, g := range good {
		r, b := req(t, g.method, g.path, g.body, true)
		if err := v.ValidateRequest(r, b); err != nil {
			t.Errorf("%s %s rejected: %v", g.method, g.path, err)
		}
	}
}

// The validator must reject what HubSpot would: otherwise the contract tests
// of the adapter prove nothing.
func TestValidatorRejectsWrongRequests(t *testing.T) {
	v := load(t)
	bad := []struct {
		name, method, path, body string
		auth                     bool
	}{
		{"non-string property value", "POST", "/crm/v3/objects/contacts/batch/upsert", `{"inputs":[{"idProperty":"coi_external_id","id":"x","properties":{"age":42}}]}`, true},
		{"missing inputs", "POST", "/crm/v3/objects/contacts/batch/upsert", `{"records":[]}`, true},
		{"input without id", "POST", "/crm/v3/objects/companies/batch/upsert", `{"inputs":[{"properties":{"name":"Acme"}}]}`, true},
		{"unknown path", "POST", "/crm/v3/objects/contacts/upsert", `{"inputs":[]}`, true},
		{"wrong method", "POST", "/crm/v4/objects/contacts/1/associations/default/companies/2", ``, true},
		{"note without associations", "POST", "/crm/v3/objects/notes", `{"properties":{"hs_note_body":"x"}}`, true},
		{"bad association category", "POST", "/crm/v3/objects/notes", `{"properties":{},"associations":[{"to":{"id":"2"},"types":[{"associationCategory":"MINE","associationTypeId":190}]}]}`, true},
		{"property without type", "POST", "/crm/v3/properties/contacts", `{"name":"coi_x","label":"x","groupName":"g","fieldType":"text"}`, true},
		{"no token", "POST", "/crm/v3/objects/contacts/batch/upsert", `{"inputs":[]}`, false},
	}
	for _, b := range bad {
		r, body := req(t, b.method, b.path, b.body, b.auth)
		if err := v.ValidateRequest(r, body); err == nil {
			t.Errorf("%s: accepted %s %s %s", b.name, b.method, b.path, b.body)
		}
	}
}
