package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// Cowbell webhooks: {"meta": {"event": "<type>"}, "data": {...}} with the seven
// event types of Cowbell's partner documentation. Field names are matched
// case-insensitively; scalar values may be strings, numbers or booleans.

// cowbellType describes one Cowbell event type.
type cowbellType struct {
	kind    Kind
	action  Action
	docType string // default document type of document events
}

var cowbellTypes = map[string]cowbellType{
	"quote.status":                {kind: KindQuote, action: ActionStatus},
	"policy.status":               {kind: KindPolicy, action: ActionStatus},
	"account.status":              {kind: KindAccount, action: ActionStatus},
	"policy.document":             {kind: KindDocument, action: ActionDocument, docType: "policy"},
	"policy.endorsement.document": {kind: KindDocument, action: ActionDocument, docType: "endorsement"},
	"policy.non-renewal.document": {kind: KindDocument, action: ActionDocument, docType: "Non_Renewal"},
	"policy.certificate":          {kind: KindCertificate, action: ActionDocument, docType: "certificate"},
}

// cowbellLayout is Cowbell's date format: milliseconds and an offset without a
// colon (2021-05-13T06:07:54.407+0000), which time.RFC3339 rejects.
const cowbellLayout = "2006-01-02T15:04:05.000-0700"

// cowbellData holds the fields Cowbell sends (all event types share one set).
type cowbellData struct {
	QuoteID           flexString `json:"quoteId"`
	QuoteNumber       flexString `json:"quoteNumber"`
	QuoteStatus       flexString `json:"quoteStatus"`
	PolicyID          flexString `json:"policyId"`
	PolicyNumber      flexString `json:"policyNumber"`
	PolicyStatus      flexString `json:"policyStatus"`
	CertificateID     flexString `json:"certificateId"`
	AccountID         flexString `json:"accountId"`
	AccountName       flexString `json:"accountName"`
	AccountStatus     flexString `json:"accountStatus"`
	Status            flexString `json:"status"`
	Modified          flexString `json:"modified"`
	EffectiveDate     flexString `json:"effectiveDate"`
	EndDate           flexString `json:"endDate"`
	ExpiresOn         flexString `json:"expiresOn"`
	CustomerFirstName flexString `json:"customerFirstName"`
	CustomerLastName  flexString `json:"customerLastName"`
	CustomerEmail     flexString `json:"customerEmail"`
	CustomerPhone     flexString `json:"customerPhone"`
	AgencyID          flexString `json:"agencyId"`
	AgencyName        flexString `json:"agencyName"`
	AgentEmail        flexString `json:"agentEmail"`
	AgentFirstName    flexString `json:"agentFirstName"`
	AgentLastName     flexString `json:"agentLastName"`
	ProductType       flexString `json:"productType"`
	DocumentURL       flexString `json:"documentUrl"` // pre-signed: never logged or serialised
	DocType           flexString `json:"docType"`
	NonRenewalReason  flexString `json:"nonRenewalReason"`
}

// flexString accepts a JSON string, number or boolean as text; null is "".
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		if bytes.IndexByte(b, '\\') < 0 {
			*f = flexString(strings.TrimSpace(string(b[1 : len(b)-1])))
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(strings.TrimSpace(s))
	case 'n':
		*f = ""
	case '{':
		return &json.UnmarshalTypeError{Value: "object", Type: reflect.TypeFor[string]()}
	case '[':
		return &json.UnmarshalTypeError{Value: "array", Type: reflect.TypeFor[string]()}
	default: // number, true, false
		*f = flexString(b)
	}
	return nil
}

func (f flexString) String() string { return string(f) }

// cowbellEnvelope is the whole body, decoded in one pass.
type cowbellEnvelope struct {
	Meta *struct {
		Event flexString `json:"event"`
	} `json:"meta"`
	Data *cowbellData `json:"data"`
}

func parseCowbell(body []byte) (Event, error) {
	var env cowbellEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, cowbellShapeError(err, body)
	}
	if env.Meta == nil {
		return Event{}, fmt.Errorf("%w: Cowbell body without meta", ErrUnknownShape)
	}
	name := strings.ToLower(env.Meta.Event.String())
	if name == "" {
		return Event{}, fmt.Errorf("%w: Cowbell meta.event missing", ErrUnknownShape)
	}
	typ, ok := cowbellTypes[name]
	if !ok {
		return Event{}, fmt.Errorf("%w: unknown Cowbell meta.event %s", ErrUnknownShape, quoteShort(env.Meta.Event.String()))
	}
	if env.Data == nil {
		return Event{}, fmt.Errorf("%w: Cowbell %s without data", ErrUnknownShape, name)
	}
	d := env.Data

	ev := Event{
		Type:       name,
		Action:     typ.action,
		EntityKind: typ.kind,
		AgencyID:   lowerID(d.AgencyID.String()),
	}
	if t, ok := parseCowbellTime(d.Modified.String()); ok {
		ev.OccurredAt = t
	}

	// The entity id, and the id that goes into the idempotency key.
	var keyID string
	switch typ.kind {
	case KindQuote:
		keyID = lowerID(d.QuoteID.String())
		ev.EntityID = keyID
	case KindAccount:
		keyID = lowerID(d.AccountID.String())
		ev.EntityID = keyID
	case KindCertificate:
		if id := lowerID(d.CertificateID.String()); id != "" {
			keyID, ev.EntityID = id, id
		} else if id := lowerID(d.PolicyID.String()); id != "" {
			// Cowbell names no certificate id: the certificate is the policy's.
			keyID, ev.EntityID = id, "policy:"+id
		}
	default: // policy status, documents
		keyID = lowerID(d.PolicyID.String())
		ev.EntityID = keyID
	}
	if ev.EntityID == "" {
		return Event{}, fmt.Errorf("%w: Cowbell %s without %s", ErrUnknownShape, name, cowbellIDField(typ.kind))
	}

	if id := lowerID(d.AccountID.String()); id != "" {
		ev.Insured = &Party{ID: id, Name: d.AccountName.String()}
		if typ.kind == KindAccount {
			ev.Insured.Status = d.AccountStatus.String()
			if ev.Insured.Status == "" {
				ev.Insured.Status = d.Status.String()
			}
		}
	}
	if c := (Person{FirstName: d.CustomerFirstName.String(), LastName: d.CustomerLastName.String(), Email: d.CustomerEmail.String(), Phone: d.CustomerPhone.String()}); c != (Person{}) {
		ev.Customer = &c
	}
	if a := (Person{FirstName: d.AgentFirstName.String(), LastName: d.AgentLastName.String(), Email: d.AgentEmail.String()}); a != (Person{}) {
		ev.Agent = &a
	}
	if d.QuoteID != "" || d.QuoteNumber != "" || d.QuoteStatus != "" {
		ev.Quote = &Quote{ID: lowerID(d.QuoteID.String()), Number: d.QuoteNumber.String(), Status: d.QuoteStatus.String()}
	}
	if typ.kind != KindQuote && typ.kind != KindAccount && (d.PolicyID != "" || d.PolicyNumber != "") {
		p := &Policy{
			ID:          lowerID(d.PolicyID.String()),
			Number:      d.PolicyNumber.String(),
			Status:      d.PolicyStatus.String(),
			ProductType: d.ProductType.String(),
		}
		p.EffectiveDate, _ = parseCowbellTime(d.EffectiveDate.String())
		end := d.EndDate
		if end == "" {
			end = d.ExpiresOn
		}
		p.EndDate, _ = parseCowbellTime(end.String())
		ev.Policy = p
	}

	docType := ""
	if typ.action == ActionDocument {
		docType = d.DocType.String()
		if docType == "" {
			docType = typ.docType
		}
		ev.Document = &Document{Type: docType, Reason: d.NonRenewalReason.String(), URL: d.DocumentURL.String()}
	}
	if typ.kind == KindCertificate {
		ev.Certificate = &Certificate{
			ID:          ev.EntityID,
			PolicyID:    lowerID(d.PolicyID.String()),
			PolicyNo:    d.PolicyNumber.String(),
			DocumentURL: d.DocumentURL.String(),
		}
		if ev.Insured != nil {
			ev.Certificate.InsuredID = ev.Insured.ID
		}
		if t, ok := parseCowbellTime(d.Modified.String()); ok {
			ev.Certificate.Revision = t.Format(time.RFC3339Nano)
		} else if d.Modified != "" {
			ev.Certificate.Revision = d.Modified.String()
		}
	}

	modified := d.Modified.String()
	if modified == "" {
		// Without Cowbell's own timestamp, a hash of data keeps redeliveries of one
		// body together without merging different changes of one entity.
		modified = "h:" + cowbellDataHash(body)
		if ev.Certificate != nil {
			ev.Certificate.Revision = modified
		}
	}
	ev.IdempotencyKey = Key(string(SourceCowbell), name, keyPart(keyID), keyPart(modified), keyPart(docType))
	return ev, nil
}

// cowbellShapeError turns a decoding error of valid JSON into ErrUnknownShape
// with the reason: which member had the wrong type.
func cowbellShapeError(err error, body []byte) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		switch field := strings.ToLower(te.Field); {
		case field == "":
			return fmt.Errorf("%w: Cowbell body is %s, want an object", ErrUnknownShape, jsonKindOf(body))
		case field == "meta" || field == "data":
			return fmt.Errorf("%w: Cowbell %s is %s, want an object", ErrUnknownShape, field, article(te.Value))
		default:
			return fmt.Errorf("%w: Cowbell %s is %s", ErrUnknownShape, te.Field, article(te.Value))
		}
	}
	return fmt.Errorf("%w: Cowbell body: %v", ErrUnknownShape, err)
}

// article turns encoding/json's value names ("string", "array") into "a string".
func article(v string) string {
	switch {
	case v == "":
		return "of the wrong type"
	case strings.ContainsAny(v[:1], "aeiou"):
		return "an " + v
	}
	return "a " + v
}

// cowbellDataHash is a short hash of the compacted "data" member of body.
func cowbellDataHash(body []byte) string {
	var raw struct {
		Data json.RawMessage `json:"data"`
	}
	var buf bytes.Buffer
	if json.Unmarshal(body, &raw) != nil || json.Compact(&buf, raw.Data) != nil {
		buf.Reset()
		buf.Write(body)
	}
	h := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(h[:8])
}

// parseCowbellTime reads Cowbell's dates (cowbellLayout first, then the layouts
// parseTime knows: RFC 3339, no milliseconds, ...), in UTC.
func parseCowbellTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(cowbellLayout, s); err == nil {
		return validTime(t)
	}
	return parseTime(s)
}

func cowbellIDField(k Kind) string {
	switch k {
	case KindQuote:
		return "data.quoteId"
	case KindAccount:
		return "data.accountId"
	case KindCertificate:
		return "data.certificateId or data.policyId"
	}
	return "data.policyId"
}

// jsonKindOf names the kind of the JSON value in b ("an array", "a string", ...).
func jsonKindOf(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "empty"
	}
	switch b[0] {
	case '{':
		return "an object of an unexpected shape"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// RedactBody returns body with the values of "documentUrl" members (Cowbell's
// pre-signed, time-limited document links) replaced by "[redacted]", matching
// the name case-insensitively. It also works on broken JSON (typographic quotes,
// a missing brace), so a body kept for review, logged or put on a queue never
// carries a live link. Valid JSON stays valid. body itself is returned when it
// holds no such value; it is never modified.
func RedactBody(body []byte) []byte {
	const key = "documenturl"
	var (
		out  []byte // nil until the first redaction
		last int
	)
	for i := 0; i+len(key) <= len(body); i++ {
		if body[i]|0x20 != 'd' || !bytes.EqualFold(body[i:i+len(key)], []byte(key)) {
			continue
		}
		j := i + len(key)
		if _, n := quoteAt(body, j); n > 0 {
			j += n // the key's closing quote
		}
		j = skipSpace(body, j)
		if j >= len(body) || body[j] != ':' {
			continue
		}
		j = skipSpace(body, j+1)
		q, n := quoteAt(body, j)
		if n == 0 {
			continue
		}
		start := j + n
		end := valueEnd(body, start, q == '"')
		if end > start {
			out = append(out, body[last:start]...)
			out = append(out, "[redacted]"...)
			last = end
		}
		i = end - 1
	}
	if out == nil {
		return body
	}
	out = append(out, body[last:]...)
	if json.Valid(body) && !json.Valid(out) {
		// The name appeared inside some other string: redact structurally.
		return redactStructured(body)
	}
	return out
}

// quoteAt reports the quote character at body[i] (a straight double quote or a
// typographic one) and its length in bytes, 0 if there is none.
func quoteAt(body []byte, i int) (rune, int) {
	if i >= len(body) {
		return 0, 0
	}
	if body[i] == '"' {
		return '"', 1
	}
	r, n := utf8.DecodeRune(body[i:])
	switch r {
	case '\u201c', '\u201d', '\u201e', '\u2018', '\u2019':
		return r, n
	}
	return 0, 0
}

// valueEnd is the index of the quote closing a string value starting at start
// (len(body) when it never closes). A straight-quoted value honours escapes; a
// typographically quoted one ends at any quote or line break.
func valueEnd(body []byte, start int, straight bool) int {
	for i := start; i < len(body); i++ {
		c := body[i]
		if straight {
			switch c {
			case '\\':
				i++
			case '"':
				return i
			}
			continue
		}
		if c == '\n' || c == '\r' {
			return i
		}
		if _, n := quoteAt(body, i); n > 0 {
			return i
		}
	}
	return len(body)
}

func skipSpace(body []byte, i int) int {
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
		i++
	}
	return i
}

// redactStructured decodes body, replaces every documentUrl member's value and
// encodes it again (key order and spacing are not kept).
func redactStructured(body []byte) []byte {
	v, err := decodeJSON(body)
	if err != nil {
		return []byte(`"[redacted: unreadable body]"`)
	}
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				if strings.EqualFold(k, "documentUrl") {
					t[k] = "[redacted]"
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range t {
				walk(x)
			}
		}
	}
	walk(v)
	out, err := json.Marshal(v)
	if err != nil {
		return []byte(`"[redacted: unreadable body]"`)
	}
	return out
}
