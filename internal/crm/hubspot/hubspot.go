// Package hubspot is the CRM port's HubSpot adapter (CRM v3 objects and
// properties, v4 associations), authenticated with a private-app token.
//
// Records are upserted in batches (POST /crm/v3/objects/{type}/batch/upsert,
// 100 inputs each) by a unique custom property, coi_external_id by default. On
// the first write of an object type the adapter lists the type's properties
// (GET /crm/v3/properties/{type}) and creates the custom ones it is missing
// (POST /crm/v3/properties/{type}): the id property with hasUniqueValue, the
// others as plain text. A 207 answer is read item by item.
//
// Field mapping (crm field → HubSpot property):
//
//	companies: name→name, phone→phone, address→address, every other field→coi_<field>
//	contacts:  first_name→firstname, last_name→lastname (name→lastname when no
//	           first/last name is known), email→email, phone→phone, fax→fax,
//	           address→address, every other field→coi_<field>
//
// Notes (the timeline) are POST /crm/v3/objects/notes with hs_timestamp and
// hs_note_body, associated in the same request to the company (type 190) and
// contacts (type 202). FindNote searches the primary record's notes at the
// note's hs_timestamp for the note's reference text.
//
// Rate limits: a client-side token bucket (default 19 requests per 10 s per
// client; with the crm-worker's reserved concurrency of 5 this stays under the
// 100/10 s of the smallest HubSpot plans) and HubSpot's X-HubSpot-RateLimit-*
// headers: when Remaining reaches 0 the client pauses for the interval. A 429
// is retried after Retry-After / the interval while the context allows (never
// for the DAILY policy), then reported as a retryable error.
package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/crm/crmhttp"
)

// DefaultBaseURL is HubSpot's API host.
const DefaultBaseURL = "https://api.hubapi.com"

// DefaultIDProperty is the unique custom property holding the external id.
const DefaultIDProperty = "coi_external_id"

// Association type ids (HUBSPOT_DEFINED) used when creating notes.
const (
	assocNoteToContact = 202
	assocNoteToCompany = 190
)

const (
	batchSize    = 100
	maxBodyBytes = 4 << 20
)

// Config configures a Client.
type Config struct {
	// BaseURL defaults to DefaultBaseURL (HUBSPOT_BASE_URL / CRM_BASE_URL override it).
	BaseURL string
	// Credentials supplies the private-app token (Credentials.HubSpotToken).
	Credentials crm.CredentialsSource
	HTTPClient  *http.Client
	// IDProperty defaults to DefaultIDProperty.
	IDProperty string
	// RateMax requests per RateInterval on the client side (default 19 per 10 s).
	RateMax      int
	RateInterval time.Duration
	// MaxRetries429 is how many times a 429 is waited out and retried (default 3).
	MaxRetries429 int
	Logger        *slog.Logger
	// Now and Sleep replace the clock in tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client is a HubSpot CRM client implementing crm.CRM. Safe for concurrent use.
type Client struct {
	base    string
	creds   crm.CredentialsSource
	hc      *http.Client
	idProp  string
	retries int
	log     *slog.Logger
	lim     *limiter
	api     *crmhttp.Client
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error

	mu    sync.Mutex
	props map[string]map[string]bool // object type → property names known to exist
}

var _ crm.CRM = (*Client)(nil)

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("hubspot: no credentials source")
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	if _, err := url.Parse(base); err != nil {
		return nil, fmt.Errorf("hubspot: base URL: %w", err)
	}
	c := &Client{
		base: base, creds: cfg.Credentials, hc: cfg.HTTPClient, idProp: cfg.IDProperty,
		retries: cfg.MaxRetries429, log: cfg.Logger, now: cfg.Now, sleep: cfg.Sleep,
		props: map[string]map[string]bool{},
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 20 * time.Second}
	}
	if c.idProp == "" {
		c.idProp = DefaultIDProperty
	}
	if c.retries <= 0 {
		c.retries = 3
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	max, iv := cfg.RateMax, cfg.RateInterval
	if max <= 0 {
		max = 19
	}
	if iv <= 0 {
		iv = 10 * time.Second
	}
	c.lim = newLimiter(max, iv, c.now, c.sleep)
	c.api = &crmhttp.Client{
		HTTP: c.hc, MaxRead: maxBodyBytes, Auth: c.auth, Before: c.lim.wait,
		Observe: func(h http.Header) { c.lim.observe(readRateInfo(h)) },
		OnUnauthorized: func(ctx context.Context, op string) {
			c.log.WarnContext(ctx, "hubspot answered 401; re-reading the token", "op", op)
		},
		Refused: c.refused,
	}
	return c, nil
}

// objectType is HubSpot's name of a crm.ObjectType.
func objectType(t crm.ObjectType) (string, error) {
	switch t {
	case crm.Company:
		return "companies", nil
	case crm.Contact:
		return "contacts", nil
	}
	return "", &crm.Error{Op: "hubspot", Message: fmt.Sprintf("unknown object type %q", t), Permanent: true}
}

// Properties maps a record's fields to HubSpot properties (see the package doc).
func Properties(t crm.ObjectType, fields map[string]string) map[string]string {
	out := make(map[string]string, len(fields))
	for k, v := range fields {
		if v == "" {
			continue
		}
		out[propertyName(t, k)] = v
	}
	if t == crm.Contact {
		delete(out, "coi_"+crm.FieldName)
		if fields[crm.FieldFirstName] == "" && fields[crm.FieldLastName] == "" && fields[crm.FieldName] != "" {
			out["lastname"] = fields[crm.FieldName]
		}
	}
	return out
}

func propertyName(t crm.ObjectType, field string) string {
	switch t {
	case crm.Company:
		switch field {
		case crm.FieldName:
			return "name"
		case crm.FieldPhone:
			return "phone"
		case crm.FieldAddress:
			return "address"
		}
	case crm.Contact:
		switch field {
		case crm.FieldFirstName:
			return "firstname"
		case crm.FieldLastName:
			return "lastname"
		case crm.FieldEmail:
			return "email"
		case crm.FieldPhone:
			return "phone"
		case crm.FieldFax:
			return "fax"
		case crm.FieldAddress:
			return "address"
		}
	}
	return "coi_" + field
}

// ---------------------------------------------------------------- upsert

type upsertInput struct {
	IDProperty string            `json:"idProperty"`
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
}

type upsertObject struct {
	ID         string            `json:"id"`
	New        bool              `json:"new"`
	Properties map[string]string `json:"properties"`
}

type batchError struct {
	Status   string              `json:"status"`
	Category string              `json:"category"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context"`
}

type upsertAnswer struct {
	Status    string         `json:"status"`
	Results   []upsertObject `json:"results"`
	NumErrors int            `json:"numErrors"`
	Errors    []batchError   `json:"errors"`
}

// Upsert implements crm.CRM.
func (c *Client) Upsert(ctx context.Context, typ crm.ObjectType, recs []crm.Record) ([]crm.Result, error) {
	ot, err := objectType(typ)
	if err != nil {
		return nil, err
	}
	inputs := make([]upsertInput, len(recs))
	need := map[string]bool{}
	for i, r := range recs {
		props := Properties(typ, r.Fields)
		for p := range props {
			if strings.HasPrefix(p, "coi_") {
				need[p] = true
			}
		}
		inputs[i] = upsertInput{IDProperty: c.idProp, ID: r.ExternalID, Properties: props}
	}
	need[c.idProp] = true
	if err := c.ensureProperties(ctx, ot, need); err != nil {
		return nil, err
	}
	out := make([]crm.Result, 0, len(recs))
	for start := 0; start < len(inputs); start += batchSize {
		end := min(start+batchSize, len(inputs))
		res, err := c.upsertBatch(ctx, ot, inputs[start:end])
		if err != nil && crm.IsPermanent(err) && end-start > 1 {
			// HubSpot refuses a whole batch for one bad input (e.g. an invalid
			// email): write the inputs one by one so only the bad one fails.
			c.log.WarnContext(ctx, "hubspot refused a batch; writing its inputs one by one", "objectType", ot, "inputs", end-start, "error", err.Error())
			res, err = c.upsertEach(ctx, ot, inputs[start:end])
		}
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

func (c *Client) upsertEach(ctx context.Context, ot string, inputs []upsertInput) ([]crm.Result, error) {
	out := make([]crm.Result, 0, len(inputs))
	for _, in := range inputs {
		res, err := c.upsertBatch(ctx, ot, []upsertInput{in})
		switch {
		case err != nil && crm.IsPermanent(err):
			out = append(out, crm.Result{ExternalID: in.ID, Err: err})
		case err != nil:
			return nil, err
		default:
			out = append(out, res...)
		}
	}
	return out, nil
}

func (c *Client) upsertBatch(ctx context.Context, ot string, inputs []upsertInput) ([]crm.Result, error) {
	op := "hubspot: upsert " + ot
	var ans upsertAnswer
	status, err := c.do(ctx, op, http.MethodPost, "/crm/v3/objects/"+ot+"/batch/upsert", map[string]any{"inputs": inputs}, &ans)
	if err != nil {
		return nil, err
	}
	byExt := make(map[string]upsertObject, len(ans.Results))
	for _, o := range ans.Results {
		if v := o.Properties[c.idProp]; v != "" {
			byExt[v] = o
		}
	}
	// Errors name their inputs in context (e.g. {"ids": ["nowcerts:…"]}) when HubSpot can.
	errFor := map[string]error{}
	var unattributed []string
	for _, be := range ans.Errors {
		e := batchItemError(op, be)
		named := false
		for _, vals := range be.Context {
			for _, v := range vals {
				for _, in := range inputs {
					if in.ID == v {
						errFor[v], named = e, true
					}
				}
			}
		}
		if !named {
			unattributed = append(unattributed, e.Error())
		}
	}
	// Results that do not echo the id property are matched by position among
	// the inputs left once errors and echoed results are accounted for (HubSpot
	// answers in input order), but only when the counts agree exactly.
	var loose []upsertObject
	for _, o := range ans.Results {
		if _, ok := byExt[o.Properties[c.idProp]]; !ok || o.Properties[c.idProp] == "" {
			loose = append(loose, o)
		}
	}
	var open []int
	for i, in := range inputs {
		_, echoed := byExt[in.ID]
		_, failed := errFor[in.ID]
		if !echoed && !failed {
			open = append(open, i)
		}
	}
	positional := map[int]upsertObject{}
	if len(loose) == len(open) && (len(unattributed) == 0 || len(loose) == 0) {
		for k, i := range open {
			positional[i] = loose[k]
		}
	}
	res := make([]crm.Result, len(inputs))
	for i, in := range inputs {
		res[i].ExternalID = in.ID
		if o, ok := byExt[in.ID]; ok {
			res[i].ID, res[i].Created = o.ID, o.New
			continue
		}
		if e, ok := errFor[in.ID]; ok {
			res[i].Err = e
			continue
		}
		if o, ok := positional[i]; ok {
			res[i].ID, res[i].Created = o.ID, o.New
			continue
		}
		msg := "no result for this input"
		if len(unattributed) > 0 {
			msg = strings.Join(unattributed, "; ")
		}
		// An input without a result in a 207 failed for a reason we cannot pin
		// down; retrying is safe (upserts are idempotent) and lets a transient
		// cause pass, while a lasting one ends in the DLQ.
		res[i].Err = &crm.Error{Op: op, Status: status, Message: msg}
	}
	return res, nil
}

func batchItemError(op string, be batchError) *crm.Error {
	st, _ := strconv.Atoi(be.Status)
	e := &crm.Error{Op: op, Status: st, Code: be.Category, Message: be.Message}
	switch {
	case be.Category == "RATE_LIMITS":
		e.Err = crm.ErrRateLimited
	case st != 0:
		e.Permanent = crm.PermanentStatus(st)
	default:
		e.Permanent = be.Category == "VALIDATION_ERROR" || be.Category == "OBJECT_ALREADY_EXISTS" || be.Category == "CONFLICT"
	}
	return e
}

// ---------------------------------------------------------------- properties

type propertyList struct {
	Results []struct {
		Name           string `json:"name"`
		HasUniqueValue bool   `json:"hasUniqueValue"`
	} `json:"results"`
}

type propertyCreate struct {
	Name           string `json:"name"`
	Label          string `json:"label"`
	Description    string `json:"description"`
	GroupName      string `json:"groupName"`
	Type           string `json:"type"`
	FieldType      string `json:"fieldType"`
	HasUniqueValue bool   `json:"hasUniqueValue"`
	FormField      bool   `json:"formField"`
}

// ensureProperties makes sure the named custom properties exist on ot: the
// type's properties are read once per client, missing ones created.
func (c *Client) ensureProperties(ctx context.Context, ot string, need map[string]bool) error {
	c.mu.Lock()
	known := c.props[ot]
	c.mu.Unlock()
	if known == nil {
		var pl propertyList
		if _, err := c.do(ctx, "hubspot: list "+ot+" properties", http.MethodGet, "/crm/v3/properties/"+ot, nil, &pl); err != nil {
			return err
		}
		known = map[string]bool{}
		for _, p := range pl.Results {
			known[p.Name] = true
			if p.Name == c.idProp && !p.HasUniqueValue {
				return &crm.Error{Op: "hubspot: properties", Permanent: true,
					Message: fmt.Sprintf("property %s on %s exists without hasUniqueValue; upserts need a unique property", c.idProp, ot)}
			}
		}
		c.mu.Lock()
		c.props[ot] = known
		c.mu.Unlock()
	}
	for name := range need {
		c.mu.Lock()
		have := c.props[ot][name]
		c.mu.Unlock()
		if have {
			continue
		}
		if err := c.createProperty(ctx, ot, name); err != nil {
			return err
		}
		c.mu.Lock()
		c.props[ot][name] = true
		c.mu.Unlock()
	}
	return nil
}

func (c *Client) createProperty(ctx context.Context, ot, name string) error {
	group := "companyinformation"
	if ot == "contacts" {
		group = "contactinformation"
	}
	label := "COI " + strings.ReplaceAll(strings.TrimPrefix(name, "coi_"), "_", " ")
	pc := propertyCreate{
		Name: name, Label: label, GroupName: group, Type: "string", FieldType: "text",
		Description: "Maintained by coiflow (certificate-of-insurance sync).",
	}
	if name == c.idProp {
		pc.Label = "COI external id"
		pc.HasUniqueValue = true
		pc.Description = "coiflow's stable id of this record (nowcerts:<id>, cowbell:<id>); unique."
	}
	_, err := c.do(ctx, "hubspot: create "+ot+" property "+name, http.MethodPost, "/crm/v3/properties/"+ot, pc, nil)
	var ce *crm.Error
	if errors.As(err, &ce) && ce.Status == http.StatusConflict {
		return nil // created meanwhile by another worker
	}
	if err == nil {
		c.log.InfoContext(ctx, "hubspot property created", "objectType", ot, "property", name, "unique", pc.HasUniqueValue)
	}
	return err
}

// ---------------------------------------------------------------- associations

// Associate implements crm.CRM with the v4 default association.
func (c *Client) Associate(ctx context.Context, contact, company crm.Ref) error {
	if contact.ID == "" || company.ID == "" {
		return &crm.Error{Op: "hubspot: associate", Permanent: true, Message: "record ids unknown"}
	}
	p := "/crm/v4/objects/contacts/" + url.PathEscape(contact.ID) + "/associations/default/companies/" + url.PathEscape(company.ID)
	_, err := c.do(ctx, "hubspot: associate contact with company", http.MethodPut, p, nil, nil)
	return err
}

// ---------------------------------------------------------------- notes

type objectID struct {
	ID string `json:"id"`
}

type assocTo struct {
	To    objectID    `json:"to"`
	Types []assocSpec `json:"types"`
}

type assocSpec struct {
	Category string `json:"associationCategory"`
	TypeID   int    `json:"associationTypeId"`
}

// NoteBody renders a note's hs_note_body (HubSpot shows it as rich text).
func NoteBody(n crm.Note) string {
	var b strings.Builder
	if n.Subject != "" {
		b.WriteString("<p><strong>" + html.EscapeString(n.Subject) + "</strong></p>")
	}
	for _, line := range strings.Split(strings.TrimSpace(n.Body), "\n") {
		if line != "" {
			b.WriteString("<p>" + html.EscapeString(line) + "</p>")
		}
	}
	b.WriteString("<p>" + html.EscapeString(n.Ref()) + "</p>")
	return b.String()
}

func noteTimestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// AddNote implements crm.CRM.
func (c *Client) AddNote(ctx context.Context, n crm.Note) (string, error) {
	var assocs []assocTo
	for _, r := range n.Attach {
		if r.ID == "" {
			continue
		}
		a := assocTo{Types: []assocSpec{{Category: "HUBSPOT_DEFINED", TypeID: assocNoteToCompany}}}
		a.To.ID = r.ID
		if r.Type == crm.Contact {
			a.Types[0].TypeID = assocNoteToContact
		}
		assocs = append(assocs, a)
	}
	if len(assocs) == 0 {
		return "", &crm.Error{Op: "hubspot: create note", Permanent: true, Message: "note attached to no known record"}
	}
	body := map[string]any{
		"properties":   map[string]string{"hs_timestamp": noteTimestamp(n.At), "hs_note_body": NoteBody(n)},
		"associations": assocs,
	}
	var out struct {
		ID string `json:"id"`
	}
	if _, err := c.do(ctx, "hubspot: create note", http.MethodPost, "/crm/v3/objects/notes", body, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// FindNote implements crm.CRM: notes of the primary record at the note's
// timestamp whose body carries the note's reference.
func (c *Client) FindNote(ctx context.Context, n crm.Note) (string, bool, error) {
	if len(n.Attach) == 0 || n.Attach[0].ID == "" {
		return "", false, nil
	}
	primary := n.Attach[0]
	assocProp := "associations.company"
	if primary.Type == crm.Contact {
		assocProp = "associations.contact"
	}
	req := map[string]any{
		"filterGroups": []any{map[string]any{"filters": []any{
			map[string]string{"propertyName": assocProp, "operator": "EQ", "value": primary.ID},
			map[string]string{"propertyName": "hs_timestamp", "operator": "EQ", "value": fmt.Sprint(n.At.UTC().UnixMilli())},
		}}},
		"properties": []string{"hs_note_body", "hs_timestamp"},
		"sorts":      []string{},
		"limit":      100,
		"after":      "0",
	}
	var out struct {
		Results []struct {
			ID         string            `json:"id"`
			Properties map[string]string `json:"properties"`
		} `json:"results"`
	}
	if _, err := c.do(ctx, "hubspot: search notes", http.MethodPost, "/crm/v3/objects/notes/search", req, &out); err != nil {
		return "", false, err
	}
	ref := html.EscapeString(n.Ref())
	for _, r := range out.Results {
		if strings.Contains(r.Properties["hs_note_body"], ref) {
			return r.ID, true, nil
		}
	}
	return "", false, nil
}

// ---------------------------------------------------------------- transport

type apiError struct {
	Status     string `json:"status"`
	Message    string `json:"message"`
	Category   string `json:"category"`
	PolicyName string `json:"policyName"`
}

// do sends one API request (JSON in, JSON out) through c.api, which honours the
// limiter, waits out 429s while allowed (refused) and re-reads the token once
// after a 401.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) (int, error) {
	a, err := c.api.Do(ctx, crmhttp.Request{Op: op, Method: method, Path: path, In: in, Out: out})
	return a.Status, err
}

// auth is c.api's Auth: the private-app token and the API host.
func (c *Client) auth(ctx context.Context, op string, refresh bool) (string, string, error) {
	creds, err := c.creds(ctx, refresh)
	if err != nil {
		return "", "", &crm.Error{Op: op, Err: fmt.Errorf("credentials: %w", err)}
	}
	if creds.HubSpotToken == "" {
		return "", "", &crm.Error{Op: op, Message: "the CRM secret has no hubspotToken"}
	}
	return creds.HubSpotToken, c.base, nil
}

// refused is c.api's Refused: HubSpot's error body classified; a 429 pauses the
// limiter and is retried after Retry-After / the interval while allowed.
func (c *Client) refused(ctx context.Context, op string, attempt int, a crmhttp.Answer) (bool, error) {
	var ae apiError
	_ = json.Unmarshal(a.Body, &ae)
	e := crm.StatusError(op, a.Status, ae.Category, ae.Message)
	if a.Status != http.StatusTooManyRequests {
		return false, e
	}
	ri := readRateInfo(a.Header)
	e.Err = crm.ErrRateLimited
	if ae.PolicyName != "" {
		e.Code = ae.PolicyName
	}
	wait := ri.RetryAfter
	if wait <= 0 {
		wait = ri.Interval
	}
	if wait <= 0 {
		wait = time.Second << attempt
	}
	e.RetryAfter = wait
	c.lim.pause(wait)
	c.log.WarnContext(ctx, "hubspot rate limited", "op", op, "policy", ae.PolicyName, "waitMs", wait.Milliseconds(), "attempt", attempt+1)
	return ae.PolicyName != "DAILY" && attempt < c.retries && c.fits(ctx, wait), e
}

// fits reports whether waiting d still leaves time before ctx's deadline.
func (c *Client) fits(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return true
	}
	return c.now().Add(d + 5*time.Second).Before(dl)
}
