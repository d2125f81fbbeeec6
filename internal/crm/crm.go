// Package crm is coiflow's CRM port: what the CRM worker needs from a CRM, with
// adapters for HubSpot (crm/hubspot), Salesforce (crm/salesforce) and a generic
// HTTP upsert endpoint (crm/httpcrm).
//
// Every record is addressed by a stable external id ("nowcerts:<id>",
// "cowbell:<id>"), so writing the same record twice is an update, never a
// duplicate. Records are never deleted: a deleted entity is written with
// Fields[FieldStatus] = StatusInactive.
package crm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// ObjectType is the kind of CRM record.
type ObjectType string

// Object types.
const (
	Company ObjectType = "company" // an insured / a Cowbell account
	Contact ObjectType = "contact" // a certificate holder, a customer, an agent
)

// Neutral field names. Adapters map them onto their CRM's properties; a field an
// adapter does not know is written to a custom property named after it where the
// CRM allows, and documented per adapter.
const (
	FieldName          = "name"       // company name; a contact's full name when first/last are unknown
	FieldFirstName     = "first_name" // contacts
	FieldLastName      = "last_name"  // contacts
	FieldEmail         = "email"
	FieldPhone         = "phone"
	FieldFax           = "fax"
	FieldAddress       = "address"
	FieldRole          = "role"   // contacts: holder | customer | agent
	FieldStatus        = "status" // active | inactive
	FieldSource        = "source" // nowcerts | cowbell
	FieldAccountStatus = "account_status"
	FieldQuoteNumber   = "quote_number"
	FieldQuoteStatus   = "quote_status"
	FieldPolicyNumber  = "policy_number"
	FieldPolicyStatus  = "policy_status"
	FieldPolicyStart   = "policy_effective_date" // YYYY-MM-DD
	FieldPolicyEnd     = "policy_end_date"       // YYYY-MM-DD
	FieldProductType   = "product_type"
	FieldAgency        = "agency"
)

// Status values of FieldStatus.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// Roles of a contact (FieldRole).
const (
	RoleHolder   = "holder"
	RoleCustomer = "customer"
	RoleAgent    = "agent"
)

// Fields lists every neutral field name, in a stable order.
func Fields() []string {
	return []string{
		FieldName, FieldFirstName, FieldLastName, FieldEmail, FieldPhone, FieldFax, FieldAddress,
		FieldRole, FieldStatus, FieldSource, FieldAccountStatus, FieldQuoteNumber, FieldQuoteStatus,
		FieldPolicyNumber, FieldPolicyStatus, FieldPolicyStart, FieldPolicyEnd, FieldProductType, FieldAgency,
	}
}

// Record is one company or contact to write: the full current snapshot of the
// fields coiflow owns (absent fields are left as they are in the CRM).
type Record struct {
	Type       ObjectType
	ExternalID string
	Fields     map[string]string
}

// Ref names a record in the CRM: its external id and, once known, the CRM's own id.
type Ref struct {
	Type       ObjectType
	ExternalID string
	ID         string
}

// Result is the outcome of one record of an Upsert.
type Result struct {
	ExternalID string
	ID         string // the CRM's id of the record
	Created    bool   // when the CRM says so
	Err        error  // per record; classify with IsPermanent
}

// Note is a timeline entry to attach to records.
type Note struct {
	// Key is stable per timeline job; adapters put it in the note (Ref) so a note
	// can be found again after a crash (FindNote).
	Key     string
	Subject string // one line
	Body    string // plain text
	At      time.Time
	// Attach lists the records the note belongs to; the first is the primary one
	// (the insured's company). IDs must be set, except for the generic HTTP adapter.
	Attach []Ref
}

// Ref returns the short reference text that makes the note findable again:
// "[coiflow " + 16 hex digits of SHA-256(Key) + "]".
func (n Note) Ref() string {
	sum := sha256.Sum256([]byte(n.Key))
	return "[coiflow " + hex.EncodeToString(sum[:8]) + "]"
}

// CRM is the port the CRM worker writes through.
type CRM interface {
	// Upsert writes records of one type by external id, as few requests as the
	// CRM allows. The error is for the call as a whole (nothing written); per
	// record failures are in the results, one per record, in order.
	Upsert(ctx context.Context, typ ObjectType, recs []Record) ([]Result, error)
	// Associate links a contact to a company (idempotent).
	Associate(ctx context.Context, contact, company Ref) error
	// AddNote creates a timeline note and returns its id.
	AddNote(ctx context.Context, n Note) (string, error)
	// FindNote looks for a note created earlier with the same key on n.Attach[0]
	// (crash recovery). found is false when there is none or the CRM cannot tell.
	FindNote(ctx context.Context, n Note) (id string, found bool, err error)
}

// Credentials are the CRM secret's JSON (CRM_SECRET_ARN); each adapter reads its
// own fields.
type Credentials struct {
	HubSpotToken           string `json:"hubspotToken,omitempty"`
	SalesforceClientID     string `json:"salesforceClientId,omitempty"`
	SalesforceClientSecret string `json:"salesforceClientSecret,omitempty"`
	SalesforceTokenURL     string `json:"salesforceTokenUrl,omitempty"`
	HTTPToken              string `json:"httpToken,omitempty"`
}

// CredentialsSource returns the current credentials (cached by the caller's
// implementation; called before requests, and again after an authentication
// failure with refresh set).
type CredentialsSource func(ctx context.Context, refresh bool) (Credentials, error)

// StaticCredentials returns a CredentialsSource that always returns c.
func StaticCredentials(c Credentials) CredentialsSource {
	return func(context.Context, bool) (Credentials, error) { return c, nil }
}
