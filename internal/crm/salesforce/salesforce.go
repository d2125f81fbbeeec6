// Package salesforce is the CRM port's Salesforce adapter (REST API),
// authenticated with the OAuth 2.0 client-credentials flow.
//
// Companies are Accounts, contacts are Contacts, both upserted by the external
// id field COI_External_Id__c (an External ID, unique text field the org admin
// creates once): one record with PATCH
// /services/data/vXX.X/sobjects/{SObject}/{Field}/{value}, several with sObject
// Collections (PATCH /services/data/vXX.X/composite/sobjects/{SObject}/{Field},
// allOrNone false, 200 records per request, per-record results).
//
// Field mapping (crm field → Salesforce field):
//
//	Account: name→Name, phone→Phone, fax→Fax, address→BillingStreet, other→COI_<Field>__c
//	Contact: first_name→FirstName, last_name→LastName (name→LastName when no
//	         first/last name is known), email→Email, phone→Phone, fax→Fax,
//	         address→MailingStreet, other→COI_<Field>__c
//
// where COI_<Field>__c is the field name in title case, e.g. quote_number →
// COI_Quote_Number__c. Contact ↔ company association sets Contact.AccountId
// (the contact's primary account: Salesforce contacts have one).
//
// Timeline notes are Tasks (Status Completed, ActivityDate the day of the
// entry, WhatId the Account, WhoId the first Contact): Tasks appear on the
// activity timeline of both records in Lightning, can be queried by Subject,
// and need no extra object permissions, unlike ContentNote (which needs a
// ContentDocumentLink per record and is not filterable by body). The Subject
// carries the note's reference so FindNote is a SOQL query.
//
// Errors: 300 (the external id matches several records) is permanent
// (crm.ErrMultipleMatches); 400/404 are permanent; a 401 requests a new token
// once; REQUEST_LIMIT_EXCEEDED is retryable (crm.ErrRateLimited) and makes the
// client fail fast for LimitBackoff instead of spending more API calls. The
// Sforce-Limit-Info header (api-usage=used/limit) is read on every answer; at
// 90% a warning is logged, at 100% the client backs off like above.
package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Defaults.
const (
	DefaultAPIVersion      = "v62.0"
	DefaultExternalIDField = "COI_External_Id__c"
	collectionSize         = 200
	maxBodyBytes           = 4 << 20
)

// Config configures a Client.
type Config struct {
	// BaseURL overrides the instance URL the token endpoint returns
	// (SALESFORCE_BASE_URL / CRM_BASE_URL).
	BaseURL string
	// Credentials supplies salesforceClientId, salesforceClientSecret and
	// salesforceTokenUrl (default BaseURL + /services/oauth2/token).
	Credentials     crm.CredentialsSource
	HTTPClient      *http.Client
	APIVersion      string
	ExternalIDField string
	// LimitBackoff is how long the client refuses calls after the org's API
	// limit is reached (default 5 minutes).
	LimitBackoff time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
}

// Client is a Salesforce client implementing crm.CRM. Safe for concurrent use.
type Client struct {
	base    string
	creds   crm.CredentialsSource
	hc      *http.Client
	version string
	extID   string
	backoff time.Duration
	log     *slog.Logger
	now     func() time.Time
	api     *crmhttp.Client

	mu           sync.Mutex
	token        string
	instance     string
	limitedUntil time.Time
	used, limit  int
}

var _ crm.CRM = (*Client)(nil)

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("salesforce: no credentials source")
	}
	c := &Client{
		base: strings.TrimRight(cfg.BaseURL, "/"), creds: cfg.Credentials, hc: cfg.HTTPClient,
		version: cfg.APIVersion, extID: cfg.ExternalIDField, backoff: cfg.LimitBackoff, log: cfg.Logger, now: cfg.Now,
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 20 * time.Second}
	}
	if c.version == "" {
		c.version = DefaultAPIVersion
	}
	if c.extID == "" {
		c.extID = DefaultExternalIDField
	}
	if c.backoff <= 0 {
		c.backoff = 5 * time.Minute
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.api = &crmhttp.Client{
		HTTP: c.hc, MaxRead: maxBodyBytes, Auth: c.auth, Observe: c.readLimitInfo,
		OnUnauthorized: func(ctx context.Context, op string) {
			c.log.WarnContext(ctx, "salesforce answered 401; requesting a new token", "op", op)
		},
		Refused: c.refused,
	}
	return c, nil
}

// Usage returns the last Sforce-Limit-Info api-usage seen (0, 0 before any).
func (c *Client) Usage() (used, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, c.limit
}

func sobject(t crm.ObjectType) (string, error) {
	switch t {
	case crm.Company:
		return "Account", nil
	case crm.Contact:
		return "Contact", nil
	}
	return "", &crm.Error{Op: "salesforce", Permanent: true, Message: fmt.Sprintf("unknown object type %q", t)}
}

// Fields maps a record's fields to Salesforce fields (see the package doc).
func Fields(t crm.ObjectType, fields map[string]string) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		if v == "" {
			continue
		}
		out[fieldName(t, k)] = v
	}
	if t == crm.Contact {
		delete(out, customField(crm.FieldName))
		if fields[crm.FieldFirstName] == "" && fields[crm.FieldLastName] == "" && fields[crm.FieldName] != "" {
			out["LastName"] = fields[crm.FieldName]
		}
	}
	return out
}

func fieldName(t crm.ObjectType, f string) string {
	std := map[crm.ObjectType]map[string]string{
		crm.Company: {crm.FieldName: "Name", crm.FieldPhone: "Phone", crm.FieldFax: "Fax", crm.FieldAddress: "BillingStreet"},
		crm.Contact: {crm.FieldFirstName: "FirstName", crm.FieldLastName: "LastName", crm.FieldEmail: "Email",
			crm.FieldPhone: "Phone", crm.FieldFax: "Fax", crm.FieldAddress: "MailingStreet"},
	}
	if n, ok := std[t][f]; ok {
		return n
	}
	return customField(f)
}

// customField names a custom field: quote_number → COI_Quote_Number__c.
func customField(f string) string {
	parts := strings.Split(f, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return "COI_" + strings.Join(parts, "_") + "__c"
}

// ---------------------------------------------------------------- upsert

type saveResult struct {
	ID      string     `json:"id"`
	Success bool       `json:"success"`
	Created bool       `json:"created"`
	Errors  []sfError2 `json:"errors"`
}

// sfError2 is an error inside a save result.
type sfError2 struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// sfError is an error of a REST answer (a JSON array of these).
type sfError struct {
	ErrorCode string   `json:"errorCode"`
	Message   string   `json:"message"`
	Fields    []string `json:"fields"`
}

// Upsert implements crm.CRM.
func (c *Client) Upsert(ctx context.Context, typ crm.ObjectType, recs []crm.Record) ([]crm.Result, error) {
	obj, err := sobject(typ)
	if err != nil {
		return nil, err
	}
	if len(recs) == 1 {
		r, err := c.upsertOne(ctx, obj, typ, recs[0])
		if err != nil {
			return nil, err
		}
		return []crm.Result{r}, nil
	}
	out := make([]crm.Result, 0, len(recs))
	for start := 0; start < len(recs); start += collectionSize {
		res, err := c.upsertCollection(ctx, obj, typ, recs[start:min(start+collectionSize, len(recs))])
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// upsertOne writes one record; a refusal of the record (a permanent error) is
// its Result's Err, anything else the call's error.
func (c *Client) upsertOne(ctx context.Context, obj string, typ crm.ObjectType, r crm.Record) (crm.Result, error) {
	op := "salesforce: upsert " + obj
	res := crm.Result{ExternalID: r.ExternalID}
	p := c.dataPath("/sobjects/" + obj + "/" + c.extID + "/" + url.PathEscape(r.ExternalID))
	status, raw, err := c.call(ctx, op, http.MethodPatch, p, Fields(typ, r.Fields))
	if err != nil {
		if crm.IsPermanent(err) {
			res.Err = err
			return res, nil
		}
		return res, err
	}
	switch status {
	case http.StatusCreated, http.StatusOK:
		var sr saveResult
		if err := json.Unmarshal(raw, &sr); err != nil {
			return res, &crm.Error{Op: op, Status: status, Err: fmt.Errorf("decode answer: %w", err)}
		}
		res.ID, res.Created = sr.ID, status == http.StatusCreated || sr.Created
	case http.StatusNoContent:
		// Older API versions answer an update with no body: read the id.
		var rec struct {
			ID string `json:"Id"`
		}
		_, raw, err := c.call(ctx, "salesforce: read "+obj+" id", http.MethodGet, p+"?fields=Id", nil)
		if err != nil {
			return res, err
		}
		if err := json.Unmarshal(raw, &rec); err != nil || rec.ID == "" {
			return res, &crm.Error{Op: op, Status: status, Message: "no id for the updated record"}
		}
		res.ID = rec.ID
	default:
		return res, &crm.Error{Op: op, Status: status, Message: "unexpected answer"}
	}
	return res, nil
}

func (c *Client) upsertCollection(ctx context.Context, obj string, typ crm.ObjectType, recs []crm.Record) ([]crm.Result, error) {
	op := "salesforce: upsert " + obj + " collection"
	records := make([]map[string]any, len(recs))
	for i, r := range recs {
		f := Fields(typ, r.Fields)
		f["attributes"] = map[string]string{"type": obj}
		f[c.extID] = r.ExternalID
		records[i] = f
	}
	body := map[string]any{"allOrNone": false, "records": records}
	status, raw, err := c.call(ctx, op, http.MethodPatch, c.dataPath("/composite/sobjects/"+obj+"/"+c.extID), body)
	if err != nil {
		return nil, err
	}
	var srs []saveResult
	if err := json.Unmarshal(raw, &srs); err != nil {
		return nil, &crm.Error{Op: op, Status: status, Err: fmt.Errorf("decode answer: %w", err)}
	}
	if len(srs) != len(recs) {
		return nil, &crm.Error{Op: op, Status: status, Message: fmt.Sprintf("%d results for %d records", len(srs), len(recs))}
	}
	out := make([]crm.Result, len(recs))
	for i, sr := range srs {
		out[i] = crm.Result{ExternalID: recs[i].ExternalID, ID: sr.ID, Created: sr.Created}
		if !sr.Success {
			out[i].Err = c.saveError(op, sr.Errors)
		}
	}
	return out, nil
}

// transientCodes are Salesforce status codes worth retrying.
var transientCodes = map[string]bool{
	"REQUEST_LIMIT_EXCEEDED": true, "UNABLE_TO_LOCK_ROW": true, "SERVER_UNAVAILABLE": true,
	"API_TEMPORARILY_UNAVAILABLE": true, "TXN_SECURITY_METERING_ERROR": true,
}

func (c *Client) saveError(op string, errs []sfError2) *crm.Error {
	e := &crm.Error{Op: op, Permanent: true, Message: "record refused"}
	if len(errs) > 0 {
		e.Code, e.Message = errs[0].StatusCode, errs[0].Message
	}
	switch {
	case e.Code == "DUPLICATE_EXTERNAL_ID":
		e.Err = crm.ErrMultipleMatches
	case e.Code == "REQUEST_LIMIT_EXCEEDED":
		e.Permanent, e.Err = false, crm.ErrRateLimited
		c.limited()
	case transientCodes[e.Code]:
		e.Permanent = false
	}
	return e
}

// ---------------------------------------------------------------- associations and notes

// Associate implements crm.CRM: the contact's AccountId becomes the company.
func (c *Client) Associate(ctx context.Context, contact, company crm.Ref) error {
	if contact.ID == "" || company.ID == "" {
		return &crm.Error{Op: "salesforce: associate", Permanent: true, Message: "record ids unknown"}
	}
	_, _, err := c.call(ctx, "salesforce: associate contact with account", http.MethodPatch,
		c.dataPath("/sobjects/Contact/"+url.PathEscape(contact.ID)), map[string]string{"AccountId": company.ID})
	return err
}

// TaskSubject is the Subject of a note's Task: the subject and the reference,
// within Salesforce's 255 characters.
func TaskSubject(n crm.Note) string {
	ref := n.Ref()
	s := strings.TrimSpace(n.Subject)
	if s == "" {
		s = "COI"
	}
	if r := []rune(s); len(r) > 255-len(ref)-1 {
		s = string(r[:255-len(ref)-1])
	}
	return s + " " + ref
}

// AddNote implements crm.CRM with a completed Task.
func (c *Client) AddNote(ctx context.Context, n crm.Note) (string, error) {
	task := map[string]any{
		"Subject":      TaskSubject(n),
		"Description":  strings.TrimSpace(n.Body) + "\n" + n.Ref(),
		"ActivityDate": n.At.UTC().Format("2006-01-02"),
		"Status":       "Completed",
		"Priority":     "Normal",
	}
	for _, r := range n.Attach {
		if r.ID == "" {
			continue
		}
		switch {
		case r.Type == crm.Company && task["WhatId"] == nil:
			task["WhatId"] = r.ID
		case r.Type == crm.Contact && task["WhoId"] == nil:
			task["WhoId"] = r.ID
		}
	}
	if task["WhatId"] == nil && task["WhoId"] == nil {
		return "", &crm.Error{Op: "salesforce: create task", Permanent: true, Message: "note attached to no known record"}
	}
	status, raw, err := c.call(ctx, "salesforce: create task", http.MethodPost, c.dataPath("/sobjects/Task"), task)
	if err != nil {
		return "", err
	}
	var sr saveResult
	if err := json.Unmarshal(raw, &sr); err != nil || sr.ID == "" {
		return "", &crm.Error{Op: "salesforce: create task", Status: status, Message: "no id in the answer"}
	}
	return sr.ID, nil
}

// FindNote implements crm.CRM with a SOQL query on the Task's Subject.
func (c *Client) FindNote(ctx context.Context, n crm.Note) (string, bool, error) {
	if len(n.Attach) == 0 || n.Attach[0].ID == "" {
		return "", false, nil
	}
	field := "WhatId"
	if n.Attach[0].Type == crm.Contact {
		field = "WhoId"
	}
	q := fmt.Sprintf("SELECT Id FROM Task WHERE %s = '%s' AND Subject LIKE '%%%s' LIMIT 1",
		field, soqlEscape(n.Attach[0].ID), soqlEscape(n.Ref()))
	_, raw, err := c.call(ctx, "salesforce: query tasks", http.MethodGet, c.dataPath("/query?q="+url.QueryEscape(q)), nil)
	if err != nil {
		return "", false, err
	}
	var out struct {
		Records []struct {
			ID string `json:"Id"`
		} `json:"records"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", false, &crm.Error{Op: "salesforce: query tasks", Err: fmt.Errorf("decode answer: %w", err)}
	}
	if len(out.Records) == 0 {
		return "", false, nil
	}
	return out.Records[0].ID, true, nil
}

func soqlEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// ---------------------------------------------------------------- transport

func (c *Client) dataPath(p string) string { return "/services/data/" + c.version + p }

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	InstanceURL string `json:"instance_url"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// session returns a token and the instance URL, requesting a token when there
// is none (or fresh is set).
func (c *Client) session(ctx context.Context, fresh bool) (string, string, error) {
	c.mu.Lock()
	tok, inst := c.token, c.instance
	c.mu.Unlock()
	if tok != "" && !fresh {
		return tok, inst, nil
	}
	creds, err := c.creds(ctx, fresh)
	if err != nil {
		return "", "", &crm.Error{Op: "salesforce: token", Err: fmt.Errorf("credentials: %w", err)}
	}
	if creds.SalesforceClientID == "" || creds.SalesforceClientSecret == "" {
		return "", "", &crm.Error{Op: "salesforce: token", Message: "the CRM secret has no salesforceClientId/salesforceClientSecret"}
	}
	tokenURL := creds.SalesforceTokenURL
	if tokenURL == "" {
		if c.base == "" {
			return "", "", &crm.Error{Op: "salesforce: token", Message: "no salesforceTokenUrl and no base URL"}
		}
		tokenURL = c.base + "/services/oauth2/token"
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {creds.SalesforceClientID}, "client_secret": {creds.SalesforceClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", "", &crm.Error{Op: "salesforce: token", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", "", &crm.Error{Op: "salesforce: token", Err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	var ta tokenAnswer
	_ = json.Unmarshal(raw, &ta)
	if resp.StatusCode != http.StatusOK || ta.AccessToken == "" {
		// Refused credentials are a configuration problem: retryable, so the jobs
		// wait in the DLQ for a fix and a redrive.
		return "", "", &crm.Error{Op: "salesforce: token", Status: resp.StatusCode, Code: ta.Error, Message: ta.Description}
	}
	inst = c.base
	if inst == "" {
		inst = strings.TrimRight(ta.InstanceURL, "/")
	}
	if inst == "" {
		return "", "", &crm.Error{Op: "salesforce: token", Message: "no instance_url in the token answer and no base URL"}
	}
	c.mu.Lock()
	c.token, c.instance = ta.AccessToken, inst
	c.mu.Unlock()
	return ta.AccessToken, inst, nil
}

// auth is c.api's Auth: the session's token and instance URL.
func (c *Client) auth(ctx context.Context, _ string, refresh bool) (string, string, error) {
	return c.session(ctx, refresh)
}

// limited starts a back-off period after the org's API limit was hit.
func (c *Client) limited() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limitedUntil = c.now().Add(c.backoff)
}

func (c *Client) readLimitInfo(h http.Header) {
	v := h.Get("Sforce-Limit-Info")
	usage, ok := strings.CutPrefix(strings.TrimSpace(v), "api-usage=")
	if !ok {
		return
	}
	a, b, ok := strings.Cut(usage, "/")
	used, err1 := strconv.Atoi(strings.TrimSpace(a))
	limit, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || limit <= 0 {
		return
	}
	c.mu.Lock()
	c.used, c.limit = used, limit
	c.mu.Unlock()
	switch {
	case used >= limit:
		c.limited()
		c.log.Warn("salesforce API usage at the org's limit; backing off", "used", used, "limit", limit)
	case used*10 >= limit*9:
		c.log.Warn("salesforce API usage above 90% of the org's limit", "used", used, "limit", limit)
	}
}

// call sends one API request through c.api; a 401 requests a new token and
// retries once. Error answers become *crm.Error with the Salesforce error code.
func (c *Client) call(ctx context.Context, op, method, path string, in any) (int, []byte, error) {
	c.mu.Lock()
	until := c.limitedUntil
	c.mu.Unlock()
	if c.now().Before(until) {
		return 0, nil, &crm.Error{Op: op, Code: "REQUEST_LIMIT_EXCEEDED", Message: "backing off after the org's API limit was reached",
			RetryAfter: until.Sub(c.now()), Err: crm.ErrRateLimited}
	}
	a, err := c.api.Do(ctx, crmhttp.Request{Op: op, Method: method, Path: path, In: in})
	return a.Status, a.Body, err
}

// refused is c.api's Refused: an error answer classified, never retried here.
func (c *Client) refused(_ context.Context, op string, _ int, a crmhttp.Answer) (bool, error) {
	if a.Status == http.StatusMultipleChoices {
		return false, &crm.Error{Op: op, Status: a.Status, Code: "MULTIPLE_CHOICES", Permanent: true,
			Message: "the external id matches several records; nothing was written", Err: crm.ErrMultipleMatches}
	}
	var errs []sfError
	_ = json.Unmarshal(a.Body, &errs)
	e := crm.StatusError(op, a.Status, "", "")
	if len(errs) > 0 {
		e.Code, e.Message = errs[0].ErrorCode, errs[0].Message
		if len(errs[0].Fields) > 0 {
			e.Message += " (fields: " + strings.Join(errs[0].Fields, ", ") + ")"
		}
	}
	switch {
	case e.Code == "REQUEST_LIMIT_EXCEEDED":
		e.Permanent, e.Err = false, crm.ErrRateLimited
		c.limited()
	case transientCodes[e.Code]:
		e.Permanent = false
	}
	if ra, err := strconv.Atoi(a.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(ra) * time.Second
	}
	return false, e
}
