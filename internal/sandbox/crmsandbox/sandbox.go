// Package crmsandbox is a HubSpot-compatible CRM for `make run` and tests: the
// endpoints coiflow's HubSpot adapter uses, objects kept in memory, every
// request recorded, faults injectable.
//
// HubSpot API (bearer token required, answers shaped per HubSpot's OpenAPI
// documents, X-HubSpot-RateLimit-* headers on every answer):
//
//	GET  /crm/v3/properties/{objectType}                 list properties
//	GET  /crm/v3/properties/{objectType}/{name}          read a property
//	POST /crm/v3/properties/{objectType}                 create a property (409 when it exists)
//	POST /crm/v3/objects/{objectType}/batch/upsert       upsert by a unique property: 200, or 207 with per-item errors
//	POST /crm/v3/objects/{objectType}                    create (notes: with associations)
//	POST /crm/v3/objects/{objectType}/search             EQ filters on properties and associations.{type}
//	PUT  /crm/v4/objects/{from}/{fromId}/associations/default/{to}/{toId}
//
// Admin API (no token; loopback only):
//
//	GET    /_sandbox/requests[?since=N]   recorded requests (token never recorded)
//	GET    /_sandbox/objects/{objectType} objects with their properties and associations
//	POST   /_sandbox/faults               {"status":429|500|..., "count":N, "method":"POST", "path":"/crm/v3/objects", "retryAfter":1}
//	DELETE /_sandbox/faults               clear faults
//	POST   /_sandbox/reset                forget objects, custom properties, requests and faults
package crmsandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultToken is the bearer token Start's sandbox accepts; the local stack puts
// it in the CRM secret as {"hubspotToken": DefaultToken}.
const DefaultToken = "coiflow-crm-sandbox-token"

// Options configure a Sandbox.
type Options struct {
	// Token is the accepted bearer token (DefaultToken when empty).
	Token string
	// RateMax is reported in X-HubSpot-RateLimit-Max and counts down
	// X-HubSpot-RateLimit-Remaining over a rolling 10 s window (default 100).
	// The sandbox never refuses for rate on its own: inject 429s with faults.
	RateMax int
	// MaxRecorded bounds the request log (default 10000, oldest dropped).
	MaxRecorded int
	Now         func() time.Time
}

// Sandbox is an in-memory HubSpot CRM. It is an http.Handler.
type Sandbox struct {
	token       string
	rateMax     int
	maxRecorded int
	now         func() time.Time

	mu       sync.Mutex
	nextID   int64
	seq      int64
	props    map[string]map[string]*property
	objects  map[string]map[string]*object
	assocs   map[assocKey]int
	requests []Request
	faults   []*Fault
	window   []time.Time
}

type property struct {
	Name           string `json:"name"`
	Label          string `json:"label"`
	Description    string `json:"description"`
	GroupName      string `json:"groupName"`
	Type           string `json:"type"`
	FieldType      string `json:"fieldType"`
	HasUniqueValue bool   `json:"hasUniqueValue"`
	HubspotDefined bool   `json:"hubspotDefined"`
	FormField      bool   `json:"formField"`
	Options        []any  `json:"options"`
	CreatedAt      string `json:"createdAt,omitempty"`
	UpdatedAt      string `json:"updatedAt,omitempty"`
}

type object struct {
	ID         string
	Type       string
	Properties map[string]string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

type assocKey struct{ fromType, fromID, toType, toID string }

// Request is one recorded request.
type Request struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Method  string          `json:"method"`
	Path    string          `json:"path"`
	Query   string          `json:"query,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
	Status  int             `json:"status"`
	Fault   bool            `json:"fault,omitempty"`
	Authed  bool            `json:"authorized"`
	Summary string          `json:"summary,omitempty"`
}

// Fault makes the next Count matching requests fail with Status.
type Fault struct {
	Status     int    `json:"status"`
	Count      int    `json:"count"`
	Method     string `json:"method,omitempty"`
	Path       string `json:"path,omitempty"` // prefix
	RetryAfter int    `json:"retryAfter,omitempty"`
	Policy     string `json:"policyName,omitempty"`
}

// New returns a Sandbox with HubSpot's standard properties for companies,
// contacts and notes.
func New(opts Options) *Sandbox {
	s := &Sandbox{token: opts.Token, rateMax: opts.RateMax, maxRecorded: opts.MaxRecorded, now: opts.Now}
	if s.token == "" {
		s.token = DefaultToken
	}
	if s.rateMax <= 0 {
		s.rateMax = 100
	}
	if s.maxRecorded <= 0 {
		s.maxRecorded = 10000
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.reset()
	return s
}

func (s *Sandbox) reset() {
	s.nextID = 1000
	s.props = map[string]map[string]*property{}
	s.objects = map[string]map[string]*object{}
	s.assocs = map[assocKey]int{}
	s.requests = nil
	s.faults = nil
	std := map[string][]string{
		"companies": {"name", "domain", "phone", "address", "city", "state", "zip", "country", "industry", "description", "hs_object_id"},
		"contacts":  {"email", "firstname", "lastname", "phone", "fax", "address", "city", "state", "zip", "company", "jobtitle", "hs_object_id"},
		"notes":     {"hs_timestamp", "hs_note_body", "hubspot_owner_id", "hs_attachment_ids", "hs_object_id"},
	}
	for ot, names := range std {
		s.props[ot] = map[string]*property{}
		s.objects[ot] = map[string]*object{}
		for _, n := range names {
			s.props[ot][n] = &property{Name: n, Label: n, Description: "", GroupName: ot + "information", Type: "string", FieldType: "text", HubspotDefined: true, Options: []any{}}
		}
	}
}

// Start serves a sandbox with DefaultToken on addr (host defaults to
// 127.0.0.1; ":0" or "" picks a free port) and returns its base URL and a stop
// function.
func Start(addr string) (baseURL string, stop func() error, err error) {
	return StartSandbox(addr, New(Options{}))
}

// StartSandbox serves s on addr (loopback only) like Start.
func StartSandbox(addr string, s *Sandbox) (string, func() error, error) {
	host, port, err := net.SplitHostPort(addr)
	if addr == "" || err != nil {
		host, port = "127.0.0.1", "0"
		if addr != "" {
			port = strings.TrimPrefix(addr, ":")
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", nil, fmt.Errorf("crm sandbox: refusing to listen on non-loopback address %q", addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", nil, fmt.Errorf("crm sandbox: listen: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// ServeHTTP implements http.Handler.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
		s.admin(w, r)
		return
	}
	body, err := readBody(r)
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	if len(body) > 0 {
		if json.Valid(body) {
			rec.Body = json.RawMessage(body)
		} else {
			rec.Body, _ = json.Marshal(string(body))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateHeaders(w)
	status, answer := s.serveAPI(r, body, err, &rec)
	rec.Status = status
	s.record(rec)
	writeJSON(w, status, answer)
}

func (s *Sandbox) serveAPI(r *http.Request, body []byte, readErr error, rec *Request) (int, any) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	rec.Authed = ok && tok == s.token
	if !rec.Authed {
		return http.StatusUnauthorized, apiErr("INVALID_AUTHENTICATION", "Authentication credentials not found or invalid.", nil)
	}
	if f := s.takeFault(r); f != nil {
		rec.Fault = true
		return s.faultAnswer(f)
	}
	if readErr != nil {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "could not read the request body", nil)
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "properties":
		switch r.Method {
		case http.MethodGet:
			return s.listProperties(parts[3])
		case http.MethodPost:
			return s.createProperty(parts[3], body)
		}
	case len(parts) == 5 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "properties" && r.Method == http.MethodGet:
		return s.getProperty(parts[3], parts[4])
	case len(parts) == 6 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "objects" && parts[4] == "batch" && parts[5] == "upsert" && r.Method == http.MethodPost:
		return s.batchUpsert(parts[3], body, rec)
	case len(parts) == 4 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "objects" && r.Method == http.MethodPost:
		return s.create(parts[3], body, rec)
	case len(parts) == 5 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "objects" && parts[4] == "search" && r.Method == http.MethodPost:
		return s.search(parts[3], body)
	case len(parts) == 9 && parts[0] == "crm" && parts[1] == "v4" && parts[2] == "objects" && parts[5] == "associations" && parts[6] == "default" && r.Method == http.MethodPut:
		return s.associateDefault(parts[3], parts[4], parts[7], parts[8], rec)
	}
	return http.StatusNotFound, apiErr("OBJECT_NOT_FOUND", fmt.Sprintf("no route for %s %s in the sandbox", r.Method, r.URL.Path), nil)
}

// ---------------------------------------------------------------- properties

func (s *Sandbox) knownType(ot string) bool { _, ok := s.props[ot]; return ok }

func (s *Sandbox) listProperties(ot string) (int, any) {
	if !s.knownType(ot) {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Unable to infer object type from: "+ot, nil)
	}
	names := make([]string, 0, len(s.props[ot]))
	for n := range s.props[ot] {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*property, 0, len(names))
	for _, n := range names {
		out = append(out, s.props[ot][n])
	}
	return http.StatusOK, map[string]any{"results": out}
}

func (s *Sandbox) getProperty(ot, name string) (int, any) {
	if !s.knownType(ot) {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Unable to infer object type from: "+ot, nil)
	}
	p, ok := s.props[ot][name]
	if !ok {
		return http.StatusNotFound, apiErr("OBJECT_NOT_FOUND", fmt.Sprintf("Property %s does not exist", name), nil)
	}
	return http.StatusOK, p
}

func (s *Sandbox) createProperty(ot string, body []byte) (int, any) {
	if !s.knownType(ot) {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Unable to infer object type from: "+ot, nil)
	}
	var p property
	if err := json.Unmarshal(body, &p); err != nil {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Invalid input JSON: "+err.Error(), nil)
	}
	if p.Name == "" || p.Label == "" || p.GroupName == "" || p.Type == "" || p.FieldType == "" {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "name, label, groupName, type and fieldType are required", nil)
	}
	if _, ok := s.props[ot][p.Name]; ok {
		return http.StatusConflict, apiErr("OBJECT_ALREADY_EXISTS", fmt.Sprintf("A property named '%s' already exists.", p.Name), nil)
	}
	if p.HasUniqueValue && p.Type != "string" && p.Type != "number" {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "only string and number properties can have unique values", nil)
	}
	ts := s.now().UTC().Format(time.RFC3339Nano)
	p.CreatedAt, p.UpdatedAt, p.Options = ts, ts, []any{}
	s.props[ot][p.Name] = &p
	return http.StatusCreated, &p
}

// ---------------------------------------------------------------- objects

type upsertInput struct {
	IDProperty string            `json:"idProperty"`
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
}

func (s *Sandbox) batchUpsert(ot string, body []byte, rec *Request) (int, any) {
	if !s.knownType(ot) {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Unable to infer object type from: "+ot, nil)
	}
	var in struct {
		Inputs []upsertInput `json:"inputs"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Inputs == nil {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Invalid input JSON: inputs required", nil)
	}
	if len(in.Inputs) > 100 {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Batch size must be at most 100", nil)
	}
	// Like HubSpot, a value of the wrong format refuses the whole batch.
	if ot == "contacts" {
		for _, inp := range in.Inputs {
			if e := inp.Properties["email"]; e != "" && !validEmail(e) {
				return http.StatusBadRequest, apiErr("VALIDATION_ERROR",
					fmt.Sprintf("Property values were not valid: [{\"isValid\":false,\"message\":\"Email address %s is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]", e),
					map[string][]string{"ids": {inp.ID}})
			}
		}
	}
	started := s.now().UTC()
	var results []any
	var errs []any
	for _, inp := range in.Inputs {
		obj, created, e := s.upsertOne(ot, inp)
		if e != nil {
			errs = append(errs, e)
			continue
		}
		results = append(results, upsertResult(obj, created))
	}
	rec.Summary = fmt.Sprintf("upsert %s: %d ok, %d failed", ot, len(results), len(errs))
	ans := map[string]any{
		"status": "COMPLETE", "results": nonNil(results),
		"startedAt": started.Format(time.RFC3339Nano), "completedAt": s.now().UTC().Format(time.RFC3339Nano),
	}
	if len(errs) > 0 {
		ans["errors"] = errs
		ans["numErrors"] = len(errs)
		return http.StatusMultiStatus, ans
	}
	return http.StatusOK, ans
}

func nonNil(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func upsertResult(o *object, created bool) map[string]any {
	return map[string]any{
		"id": o.ID, "new": created, "properties": o.Properties, "archived": false,
		"createdAt": o.CreatedAt.Format(time.RFC3339Nano), "updatedAt": o.UpdatedAt.Format(time.RFC3339Nano),
	}
}

func simpleObject(o *object) map[string]any {
	return map[string]any{
		"id": o.ID, "properties": o.Properties, "archived": false,
		"createdAt": o.CreatedAt.Format(time.RFC3339Nano), "updatedAt": o.UpdatedAt.Format(time.RFC3339Nano),
	}
}

// upsertOne applies one input, or returns a StandardError-shaped item error.
func (s *Sandbox) upsertOne(ot string, in upsertInput) (*object, bool, map[string]any) {
	ctx := map[string][]string{"ids": {in.ID}}
	idp := in.IDProperty
	if idp == "" {
		idp = "hs_object_id"
	}
	p, ok := s.props[ot][idp]
	if !ok {
		return nil, false, itemErr("400", "VALIDATION_ERROR", fmt.Sprintf("Property %s does not exist", idp), ctx)
	}
	if !p.HasUniqueValue && !(ot == "contacts" && idp == "email") && idp != "hs_object_id" {
		return nil, false, itemErr("400", "VALIDATION_ERROR", fmt.Sprintf("Property %s is not a unique identifier property", idp), ctx)
	}
	if strings.TrimSpace(in.ID) == "" {
		return nil, false, itemErr("400", "VALIDATION_ERROR", "id must not be empty", ctx)
	}
	for k := range in.Properties {
		if _, ok := s.props[ot][k]; !ok {
			return nil, false, itemErr("400", "VALIDATION_ERROR", fmt.Sprintf("Property values were not valid: Property \"%s\" does not exist", k), ctx)
		}
	}
	var found *object
	for _, o := range s.objects[ot] {
		if (idp == "hs_object_id" && o.ID == in.ID) || o.Properties[idp] == in.ID {
			found = o
			break
		}
	}
	if ot == "contacts" {
		if email := strings.ToLower(in.Properties["email"]); email != "" {
			for _, o := range s.objects[ot] {
				if o != found && strings.ToLower(o.Properties["email"]) == email {
					return nil, false, itemErr("409", "CONFLICT", "Contact already exists. Existing ID: "+o.ID, ctx)
				}
			}
		}
	}
	now := s.now().UTC()
	created := false
	if found == nil {
		if idp == "hs_object_id" {
			return nil, false, itemErr("404", "OBJECT_NOT_FOUND", "no object with id "+in.ID, ctx)
		}
		found = s.newObject(ot, now)
		found.Properties[idp] = in.ID
		created = true
	}
	for k, v := range in.Properties {
		found.Properties[k] = v
	}
	found.UpdatedAt = now
	return found, created, nil
}

func (s *Sandbox) newObject(ot string, now time.Time) *object {
	s.nextID++
	id := strconv.FormatInt(s.nextID, 10)
	o := &object{ID: id, Type: ot, Properties: map[string]string{"hs_object_id": id}, CreatedAt: now, UpdatedAt: now}
	s.objects[ot][id] = o
	return o
}

// association type ids the sandbox understands (HUBSPOT_DEFINED).
var assocTypes = map[int][2]string{
	190: {"notes", "companies"},
	202: {"notes", "contacts"},
	279: {"contacts", "companies"},
	280: {"companies", "contacts"},
}

func (s *Sandbox) create(ot string, body []byte, rec *Request) (int, any) {
	if !s.knownType(ot) {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Unable to infer object type from: "+ot, nil)
	}
	var in struct {
		Properties   map[string]string `json:"properties"`
		Associations []struct {
			To struct {
				ID string `json:"id"`
			} `json:"to"`
			Types []struct {
				Category string `json:"associationCategory"`
				TypeID   int    `json:"associationTypeId"`
			} `json:"types"`
		} `json:"associations"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Properties == nil {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Invalid input JSON: properties required", nil)
	}
	for k := range in.Properties {
		if _, ok := s.props[ot][k]; !ok {
			return http.StatusBadRequest, apiErr("VALIDATION_ERROR", fmt.Sprintf("Property values were not valid: Property \"%s\" does not exist", k), nil)
		}
	}
	if ot == "notes" {
		if _, err := parseTimestamp(in.Properties["hs_timestamp"]); err != nil {
			return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "hs_timestamp is required (ISO 8601 or epoch milliseconds)", nil)
		}
	}
	var links []assocKey
	for _, a := range in.Associations {
		for _, t := range a.Types {
			pair, ok := assocTypes[t.TypeID]
			if !ok || t.Category != "HUBSPOT_DEFINED" || pair[0] != ot {
				return http.StatusBadRequest, apiErr("VALIDATION_ERROR", fmt.Sprintf("association type %s/%d is not valid from %s", t.Category, t.TypeID, ot), nil)
			}
			if _, ok := s.objects[pair[1]][a.To.ID]; !ok {
				return http.StatusBadRequest, apiErr("VALIDATION_ERROR", fmt.Sprintf("%s %s does not exist", pair[1], a.To.ID), nil)
			}
			links = append(links, assocKey{ot, "", pair[1], a.To.ID})
		}
	}
	o := s.newObject(ot, s.now().UTC())
	for k, v := range in.Properties {
		o.Properties[k] = v
	}
	for _, l := range links {
		s.link(ot, o.ID, l.toType, l.toID)
	}
	rec.Summary = fmt.Sprintf("create %s %s with %d associations", ot, o.ID, len(links))
	return http.StatusCreated, simpleObject(o)
}

// link records an association in both directions.
func (s *Sandbox) link(fromType, fromID, toType, toID string) {
	s.assocs[assocKey{fromType, fromID, toType, toID}]++
	s.assocs[assocKey{toType, toID, fromType, fromID}]++
}

func (s *Sandbox) associateDefault(fromType, fromID, toType, toID string, rec *Request) (int, any) {
	if !s.knownType(fromType) || !s.knownType(toType) {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "unknown object type", nil)
	}
	if _, ok := s.objects[fromType][fromID]; !ok {
		return http.StatusNotFound, apiErr("OBJECT_NOT_FOUND", fmt.Sprintf("%s %s does not exist", fromType, fromID), nil)
	}
	if _, ok := s.objects[toType][toID]; !ok {
		return http.StatusNotFound, apiErr("OBJECT_NOT_FOUND", fmt.Sprintf("%s %s does not exist", toType, toID), nil)
	}
	typeID := 0
	for id, pair := range assocTypes {
		if pair[0] == fromType && pair[1] == toType {
			typeID = id
		}
	}
	if typeID == 0 {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", fmt.Sprintf("no default association from %s to %s", fromType, toType), nil)
	}
	if s.assocs[assocKey{fromType, fromID, toType, toID}] == 0 {
		s.link(fromType, fromID, toType, toID)
	}
	rec.Summary = fmt.Sprintf("associate %s %s with %s %s", fromType, fromID, toType, toID)
	now := s.now().UTC().Format(time.RFC3339Nano)
	return http.StatusOK, map[string]any{
		"status": "COMPLETE", "startedAt": now, "completedAt": now,
		"results": []any{map[string]any{
			"from": map[string]string{"id": fromID}, "to": map[string]string{"id": toID},
			"associationSpec": map[string]any{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": typeID},
		}},
	}
}

func (s *Sandbox) search(ot string, body []byte) (int, any) {
	if !s.knownType(ot) {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Unable to infer object type from: "+ot, nil)
	}
	var in struct {
		FilterGroups []struct {
			Filters []struct {
				PropertyName string `json:"propertyName"`
				Operator     string `json:"operator"`
				Value        string `json:"value"`
			} `json:"filters"`
		} `json:"filterGroups"`
		Properties []string `json:"properties"`
		Limit      int      `json:"limit"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "Invalid input JSON", nil)
	}
	ids := make([]string, 0, len(s.objects[ot]))
	for id := range s.objects[ot] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var results []any
	for _, id := range ids {
		o := s.objects[ot][id]
		match := len(in.FilterGroups) == 0
		for _, g := range in.FilterGroups {
			all := true
			for _, f := range g.Filters {
				if f.Operator != "EQ" {
					return http.StatusBadRequest, apiErr("VALIDATION_ERROR", "the sandbox supports only EQ filters", nil)
				}
				if !s.filterMatches(ot, o, f.PropertyName, f.Value) {
					all = false
					break
				}
			}
			if all {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		props := map[string]string{"hs_object_id": o.ID}
		for _, p := range in.Properties {
			if v, ok := o.Properties[p]; ok {
				props[p] = v
			}
		}
		results = append(results, map[string]any{
			"id": o.ID, "properties": props, "archived": false,
			"createdAt": o.CreatedAt.Format(time.RFC3339Nano), "updatedAt": o.UpdatedAt.Format(time.RFC3339Nano),
		})
		if in.Limit > 0 && len(results) >= in.Limit {
			break
		}
	}
	return http.StatusOK, map[string]any{"total": len(results), "results": nonNil(results)}
}

func (s *Sandbox) filterMatches(ot string, o *object, prop, value string) bool {
	if toType, ok := strings.CutPrefix(prop, "associations."); ok {
		plural := map[string]string{"company": "companies", "contact": "contacts", "note": "notes"}[toType]
		return s.assocs[assocKey{ot, o.ID, plural, value}] > 0
	}
	if prop == "hs_timestamp" {
		a, err1 := parseTimestamp(o.Properties[prop])
		b, err2 := parseTimestamp(value)
		return err1 == nil && err2 == nil && a.Equal(b)
	}
	return o.Properties[prop] == value
}

// validEmail is HubSpot's rough check: something@domain.tld, no spaces.
func validEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	return at > 0 && strings.Contains(e[at+1:], ".") && !strings.ContainsAny(e, " \t,;<>") && !strings.HasSuffix(e, ".")
}

func parseTimestamp(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

// ---------------------------------------------------------------- faults, rate headers

func (s *Sandbox) takeFault(r *http.Request) *Fault {
	for i, f := range s.faults {
		if (f.Method == "" || strings.EqualFold(f.Method, r.Method)) && strings.HasPrefix(r.URL.Path, f.Path) {
			f.Count--
			if f.Count <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

func (s *Sandbox) faultAnswer(f *Fault) (int, any) {
	if f.Status == http.StatusTooManyRequests {
		policy := f.Policy
		if policy == "" {
			policy = "TEN_SECONDLY_ROLLING"
		}
		e := apiErr("RATE_LIMITS", "You have reached your secondly limit.", nil)
		e["errorType"] = "RATE_LIMIT"
		e["policyName"] = policy
		return f.Status, e
	}
	return f.Status, apiErr("INTERNAL_ERROR", fmt.Sprintf("injected fault %d", f.Status), nil)
}

// rateHeaders writes X-HubSpot-RateLimit-* for a rolling 10 s window, and the
// Retry-After of a pending 429 fault if any.
func (s *Sandbox) rateHeaders(w http.ResponseWriter) {
	now := s.now()
	cut := 0
	for cut < len(s.window) && now.Sub(s.window[cut]) >= 10*time.Second {
		cut++
	}
	s.window = append(s.window[cut:], now)
	remaining := max(s.rateMax-len(s.window), 0)
	h := w.Header()
	h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(s.rateMax))
	h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
	for _, f := range s.faults {
		if f.Status == http.StatusTooManyRequests && f.RetryAfter > 0 {
			h.Set("Retry-After", strconv.Itoa(f.RetryAfter))
			h.Set("X-HubSpot-RateLimit-Remaining", "0")
		}
	}
}

func (s *Sandbox) record(r Request) {
	s.seq++
	r.Seq = s.seq
	r.At = s.now().UTC()
	s.requests = append(s.requests, r)
	if over := len(s.requests) - s.maxRecorded; over > 0 {
		s.requests = append([]Request(nil), s.requests[over:]...)
	}
}

// ---------------------------------------------------------------- admin

func (s *Sandbox) admin(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/_sandbox/")
	switch {
	case p == "requests" && r.Method == http.MethodGet:
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		out := []Request{}
		for _, rq := range s.requests {
			if rq.Seq > since {
				out = append(out, rq)
			}
		}
		writeJSON(w, http.StatusOK, out)
	case strings.HasPrefix(p, "objects/") && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.dump(strings.TrimPrefix(p, "objects/")))
	case p == "faults" && r.Method == http.MethodPost:
		var f Fault
		body, err := readBody(r)
		if err == nil {
			err = json.Unmarshal(body, &f)
		}
		if err != nil || f.Status < 400 || f.Status > 599 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"status\": 4xx|5xx, \"count\": n, \"method\"?, \"path\"?, \"retryAfter\"?}"})
			return
		}
		if f.Count <= 0 {
			f.Count = 1
		}
		s.faults = append(s.faults, &f)
		writeJSON(w, http.StatusCreated, f)
	case p == "faults" && r.Method == http.MethodDelete:
		s.faults = nil
		w.WriteHeader(http.StatusNoContent)
	case p == "faults" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.faults)
	case p == "reset" && r.Method == http.MethodPost:
		s.reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown sandbox admin route"})
	}
}

// Object is an object as the admin API shows it.
type Object struct {
	ID           string              `json:"id"`
	Properties   map[string]string   `json:"properties"`
	Associations map[string][]string `json:"associations"`
	CreatedAt    time.Time           `json:"createdAt"`
	UpdatedAt    time.Time           `json:"updatedAt"`
}

// Objects returns the objects of a type (companies, contacts, notes) sorted by id.
func (s *Sandbox) Objects(ot string) []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dump(ot)
}

// Requests returns the recorded requests.
func (s *Sandbox) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// AddFault injects a fault (like POST /_sandbox/faults).
func (s *Sandbox) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Count <= 0 {
		f.Count = 1
	}
	s.faults = append(s.faults, &f)
}

func (s *Sandbox) dump(ot string) []Object {
	out := []Object{}
	for _, o := range s.objects[ot] {
		props := make(map[string]string, len(o.Properties))
		for k, v := range o.Properties {
			props[k] = v
		}
		as := map[string][]string{}
		for k, n := range s.assocs {
			if n > 0 && k.fromType == ot && k.fromID == o.ID {
				as[k.toType] = append(as[k.toType], k.toID)
			}
		}
		for _, v := range as {
			sort.Strings(v)
		}
		out = append(out, Object{ID: o.ID, Properties: props, Associations: as, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt})
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].ID)
		b, _ := strconv.Atoi(out[j].ID)
		return a < b
	})
	return out
}

// ---------------------------------------------------------------- helpers

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 8<<20 {
		return nil, errors.New("body too large")
	}
	return b, nil
}

func apiErr(category, msg string, ctx map[string][]string) map[string]any {
	e := map[string]any{"status": "error", "category": category, "message": msg, "correlationId": uuid()}
	if ctx != nil {
		e["context"] = ctx
	}
	return e
}

func itemErr(status, category, msg string, ctx map[string][]string) map[string]any {
	return map[string]any{
		"status": status, "category": category, "message": msg, "context": ctx,
		"errors": []any{}, "links": map[string]string{},
	}
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
