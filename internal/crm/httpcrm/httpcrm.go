// Package httpcrm is the CRM port's generic adapter: one JSON POST per record to
// an upsert endpoint (CRM_UPSERT_URL) with a bearer token, the pattern of the
// NowCerts-to-CRM guide this project started from. The receiver upserts by
// externalId, so every request here is idempotent.
//
// Bodies (all carry "type" and "externalId"; unknown keys are for the receiver
// to ignore):
//
//	contact:     {"type":"contact","externalId","email","name","phone","source","fields":{…}}
//	company:     {"type":"company","externalId","email","name","phone","source","fields":{…}}
//	association: {"type":"association","externalId":<contact>,"companyExternalId":<company>,"source"}
//	note:        {"type":"note","externalId":"note:<key>","name":<subject>,"body","at":RFC3339,
//	              "attachTo":[<externalIds>],"source":"coiflow"}
//
// "fields" holds every crm field of the record (crm.Fields names), "name" is the
// company name or the contact's "First Last". A 2xx answer may carry {"id"}; the
// record's id is the external id otherwise. Notes are idempotent on the
// receiver's side by their externalId, so FindNote reports "not found" and a
// re-created note after a crash updates the same record.
package httpcrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/crm/crmhttp"
)

// Config configures a Client.
type Config struct {
	URL         string // CRM_UPSERT_URL (or CRM_BASE_URL)
	Credentials crm.CredentialsSource
	HTTPClient  *http.Client
}

// Client posts records to a generic upsert endpoint. Safe for concurrent use.
type Client struct {
	url   string
	creds crm.CredentialsSource
	api   *crmhttp.Client
}

// maxBodyBytes is how much of an answer is read.
const maxBodyBytes = 1 << 20

var _ crm.CRM = (*Client)(nil)

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("httpcrm: no upsert URL (CRM_UPSERT_URL)")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("httpcrm: no credentials source")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	c := &Client{url: cfg.URL, creds: cfg.Credentials}
	c.api = &crmhttp.Client{HTTP: hc, MaxRead: maxBodyBytes, Auth: c.auth, Refused: refused,
		// A 401 re-reads the credentials (bypassing the secret cache) and retries
		// once, so a rotated httpToken is picked up at once, like the other adapters.
		OnUnauthorized: func(context.Context, string) {}}
	return c, nil
}

// Payload is the body posted for a record.
type Payload struct {
	Type              string            `json:"type"`
	ExternalID        string            `json:"externalId"`
	Email             string            `json:"email,omitempty"`
	Name              string            `json:"name,omitempty"`
	Phone             string            `json:"phone,omitempty"`
	Source            string            `json:"source"`
	Fields            map[string]string `json:"fields,omitempty"`
	CompanyExternalID string            `json:"companyExternalId,omitempty"`
	Body              string            `json:"body,omitempty"`
	At                string            `json:"at,omitempty"`
	AttachTo          []string          `json:"attachTo,omitempty"`
}

// RecordPayload builds the body for a company or contact.
func RecordPayload(r crm.Record) Payload {
	f := r.Fields
	name := f[crm.FieldName]
	if r.Type == crm.Contact {
		if n := strings.TrimSpace(f[crm.FieldFirstName] + " " + f[crm.FieldLastName]); n != "" {
			name = n
		}
	}
	src := f[crm.FieldSource]
	if src == "" {
		src = "coiflow"
	}
	fields := make(map[string]string, len(f))
	for k, v := range f {
		if v != "" {
			fields[k] = v
		}
	}
	return Payload{Type: string(r.Type), ExternalID: r.ExternalID, Email: f[crm.FieldEmail], Name: name, Phone: f[crm.FieldPhone], Source: src, Fields: fields}
}

// Upsert implements crm.CRM: one request per record.
func (c *Client) Upsert(ctx context.Context, typ crm.ObjectType, recs []crm.Record) ([]crm.Result, error) {
	out := make([]crm.Result, len(recs))
	for i, r := range recs {
		r.Type = typ
		id, err := c.post(ctx, "httpcrm: upsert "+string(typ), RecordPayload(r))
		if err != nil && !crm.IsPermanent(err) {
			return nil, err
		}
		if id == "" {
			id = r.ExternalID
		}
		out[i] = crm.Result{ExternalID: r.ExternalID, ID: id, Err: err}
		if err != nil {
			out[i].ID = ""
		}
	}
	return out, nil
}

// Associate implements crm.CRM.
func (c *Client) Associate(ctx context.Context, contact, company crm.Ref) error {
	_, err := c.post(ctx, "httpcrm: associate", Payload{Type: "association", ExternalID: contact.ExternalID, CompanyExternalID: company.ExternalID, Source: "coiflow"})
	return err
}

// AddNote implements crm.CRM.
func (c *Client) AddNote(ctx context.Context, n crm.Note) (string, error) {
	p := Payload{Type: "note", ExternalID: "note:" + n.Key, Name: n.Subject, Body: strings.TrimSpace(n.Body) + "\n" + n.Ref(), At: n.At.UTC().Format(time.RFC3339), Source: "coiflow"}
	for _, r := range n.Attach {
		p.AttachTo = append(p.AttachTo, r.ExternalID)
	}
	id, err := c.post(ctx, "httpcrm: note", p)
	if err == nil && id == "" {
		id = p.ExternalID
	}
	return id, err
}

// FindNote implements crm.CRM: a generic endpoint cannot be searched; notes are
// idempotent by externalId on the receiver's side instead.
func (c *Client) FindNote(context.Context, crm.Note) (string, bool, error) { return "", false, nil }

// post sends one payload; a 2xx answer may name the record's id.
func (c *Client) post(ctx context.Context, op string, p Payload) (string, error) {
	a, err := c.api.Do(ctx, crmhttp.Request{Op: op, Method: http.MethodPost, In: p})
	if err != nil {
		return "", err
	}
	var ans struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(a.Body, &ans) == nil && ans.ID != nil {
		return fmt.Sprint(ans.ID), nil
	}
	return "", nil
}

// auth is c.api's Auth: the httpToken and the upsert URL (a 401 is not retried).
func (c *Client) auth(ctx context.Context, op string, refresh bool) (string, string, error) {
	creds, err := c.creds(ctx, refresh)
	if err != nil {
		return "", "", &crm.Error{Op: op, Err: fmt.Errorf("credentials: %w", err)}
	}
	if creds.HTTPToken == "" {
		return "", "", &crm.Error{Op: op, Message: "the CRM secret has no httpToken"}
	}
	return creds.HTTPToken, c.url, nil
}

// refused is c.api's Refused: the status classifies, the answer's start is the message.
func refused(_ context.Context, op string, _ int, a crmhttp.Answer) (bool, error) {
	msg := strings.TrimSpace(string(a.Body))
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return false, crm.StatusError(op, a.Status, "", msg)
}
