package crmsync

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
)

// Update is what one event says about one CRM record: the fields it sets,
// stamped with the event's time.
type Update struct {
	Type       crm.ObjectType
	ExternalID string
	Fields     map[string]string // only non-empty values: an absent field is "not said", never "cleared"
	// Ensure: write the record even when nothing changed if its CRM id is not
	// known yet (a note needs it).
	Ensure bool
}

// Link is a contact ↔ company association an event implies.
type Link struct{ Contact, Company string }

// Plan is what an event means for the CRM.
type Plan struct {
	Stamp     string
	Companies []Update
	Contacts  []Update
	Links     []Link
}

// Empty reports whether the plan writes nothing.
func (p Plan) Empty() bool { return len(p.Companies) == 0 && len(p.Contacts) == 0 }

// External ids. NowCerts ids compare case-insensitively and are lower-cased;
// a Cowbell customer has no id of its own (one per account); an agent is known
// by email, hashed so that the id (which appears in logs) carries no address.
func nowcertsID(id string) string          { return "nowcerts:" + strings.ToLower(strings.TrimSpace(id)) }
func cowbellID(id string) string           { return "cowbell:" + strings.ToLower(strings.TrimSpace(id)) }
func cowbellCustomerID(acct string) string { return cowbellID(acct) + ":customer" }

// AgentExternalID is the external id of a Cowbell agent: "cowbell:agent:" and
// 16 hex digits of SHA-256 of the lower-cased email.
func AgentExternalID(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return "cowbell:agent:" + hex.EncodeToString(sum[:8])
}

// ExternalID is the external id of an entity id in a source's id space.
func ExternalID(source, id string) string {
	if source == string(event.SourceCowbell) {
		return cowbellID(id)
	}
	return nowcertsID(id)
}

// stampLayout is fixed width so stamps compare as strings.
const stampLayout = "2006-01-02T15:04:05.000000000Z"

// Stamp orders what events say: the event's own time (its received time when
// the source gave none), then its id to break ties the same way everywhere.
func Stamp(at time.Time, id string) string { return at.UTC().Format(stampLayout) + "#" + id }

func eventStamp(ev event.Event) string {
	at := ev.OccurredAt
	if at.IsZero() {
		at = ev.ReceivedAt
	}
	return Stamp(at, ev.ID)
}

func put(m map[string]string, k, v string) {
	if v = strings.TrimSpace(v); v != "" {
		m[k] = v
	}
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02")
}

func status(a event.Action) string {
	if a == event.ActionDelete {
		return crm.StatusInactive
	}
	return crm.StatusActive
}

// MapEvent turns an event into CRM updates:
//
//   - the insured / Cowbell account → a company (name, email, phone); its
//     status only from its own events (insured, account), inactive on delete;
//     Cowbell quote and policy numbers and statuses, policy dates and product
//     onto the company; the account status from account.status;
//   - NowCerts certificate holders → contacts (role holder), inactive when the
//     holder's own event is a delete, associated with the insured;
//   - the Cowbell customer → a contact "cowbell:<account>:customer", the agent
//     → "cowbell:agent:<email>", both associated with the account.
func MapEvent(ev event.Event) Plan {
	p := Plan{Stamp: eventStamp(ev)}
	src := string(ev.Source)
	company := ""
	if ev.Insured != nil && strings.TrimSpace(ev.Insured.ID) != "" {
		company = ExternalID(src, ev.Insured.ID)
		f := map[string]string{crm.FieldSource: src}
		put(f, crm.FieldName, ev.Insured.Name)
		put(f, crm.FieldEmail, ev.Insured.Email)
		put(f, crm.FieldPhone, ev.Insured.Phone)
		switch ev.EntityKind {
		case event.KindInsured, event.KindAccount:
			f[crm.FieldStatus] = status(ev.Action)
			put(f, crm.FieldAccountStatus, ev.Insured.Status)
		}
		if q := ev.Quote; q != nil {
			put(f, crm.FieldQuoteNumber, q.Number)
			put(f, crm.FieldQuoteStatus, q.Status)
		}
		if pol := ev.Policy; pol != nil {
			put(f, crm.FieldPolicyNumber, pol.Number)
			put(f, crm.FieldPolicyStatus, pol.Status)
			put(f, crm.FieldPolicyStart, day(pol.EffectiveDate))
			put(f, crm.FieldPolicyEnd, day(pol.EndDate))
			put(f, crm.FieldProductType, pol.ProductType)
		}
		p.Companies = append(p.Companies, Update{Type: crm.Company, ExternalID: company, Fields: f})
	}
	addContact := func(ext string, f map[string]string) {
		p.Contacts = append(p.Contacts, Update{Type: crm.Contact, ExternalID: ext, Fields: f})
		if company != "" {
			p.Links = append(p.Links, Link{Contact: ext, Company: company})
		}
	}
	for _, h := range ev.Holders {
		if strings.TrimSpace(h.ID) == "" {
			continue
		}
		f := map[string]string{crm.FieldSource: src, crm.FieldRole: crm.RoleHolder}
		put(f, crm.FieldName, h.Name)
		put(f, crm.FieldEmail, h.Email)
		put(f, crm.FieldPhone, h.Phone)
		put(f, crm.FieldFax, h.Fax)
		put(f, crm.FieldAddress, h.Address)
		if ev.EntityKind == event.KindCertificateHolder && strings.EqualFold(h.ID, ev.EntityID) {
			f[crm.FieldStatus] = status(ev.Action)
		}
		addContact(nowcertsID(h.ID), f)
	}
	if ev.Source == event.SourceCowbell && company != "" && ev.Customer != nil {
		f := map[string]string{crm.FieldSource: src, crm.FieldRole: crm.RoleCustomer}
		put(f, crm.FieldFirstName, ev.Customer.FirstName)
		put(f, crm.FieldLastName, ev.Customer.LastName)
		put(f, crm.FieldEmail, ev.Customer.Email)
		put(f, crm.FieldPhone, ev.Customer.Phone)
		addContact(cowbellCustomerID(ev.Insured.ID), f)
	}
	if ev.Source == event.SourceCowbell && ev.Agent != nil && strings.TrimSpace(ev.Agent.Email) != "" {
		f := map[string]string{crm.FieldSource: src, crm.FieldRole: crm.RoleAgent}
		put(f, crm.FieldFirstName, ev.Agent.FirstName)
		put(f, crm.FieldLastName, ev.Agent.LastName)
		put(f, crm.FieldEmail, ev.Agent.Email)
		put(f, crm.FieldPhone, ev.Agent.Phone)
		addContact(AgentExternalID(ev.Agent.Email), f)
	}
	return p
}

// outcomeWords renders a timeline outcome as the middle of the note's sentence.
func outcomeWords(e jobs.TimelineEntry) string {
	channel := e.Channel
	if channel == "" {
		channel = "email"
	}
	to := ""
	if e.HolderName != "" {
		to = " to " + e.HolderName
	}
	switch e.Outcome {
	case "sent":
		return "sent by " + channel + to
	case "held":
		return "held for approval" + forHolder(e)
	case "approved":
		return "approved for sending" + to
	case "rejected":
		return "rejected (not sent)" + forHolder(e)
	case "failed":
		return "send failed" + forHolder(e)
	case "unknown":
		return "send outcome unknown, check before resending" + forHolder(e)
	}
	return e.Outcome + forHolder(e)
}

func forHolder(e jobs.TimelineEntry) string {
	if e.HolderName == "" {
		return ""
	}
	return " for " + e.HolderName
}

func shortID(id string) string {
	r := []rune(id)
	if len(r) <= 8 {
		return id
	}
	return string(r[:8]) + "…"
}

// NoteFor renders a timeline entry as a note: the subject and a body whose
// first line reads "COI for Acme Builders sent by email to GC Holder,
// certificate 1f3c0d2e…, 2026-11-21 14:02 UTC".
func NoteFor(key string, e jobs.TimelineEntry) crm.Note {
	insured := e.InsuredName
	if insured == "" {
		insured = "insured " + e.InsuredID
	}
	at := e.At.UTC()
	line := "COI for " + insured + " " + outcomeWords(e) + ", certificate " + shortID(e.CertificateID) + ", " + at.Format("2006-01-02 15:04") + " UTC"
	lines := []string{line}
	if e.Detail != "" {
		lines = append(lines, "Detail: "+e.Detail)
	}
	ids := "Certificate " + e.CertificateID
	if e.HolderID != "" {
		ids += ", holder " + e.HolderID
	}
	if e.SendID != "" {
		ids += ", send " + e.SendID
	}
	lines = append(lines, ids)
	subject := "COI " + e.Outcome + ": " + insured
	if e.HolderName != "" {
		subject += " → " + e.HolderName
	}
	return crm.Note{Key: key, Subject: subject, Body: strings.Join(lines, "\n"), At: at}
}
