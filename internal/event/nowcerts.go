package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// NowCerts webhooks (MasterCertificate and CertificateHolder insert/update/delete)
// have no public payload documentation, so parseNowCerts reads them tolerantly:
//
//   - field names are matched case- and punctuation-insensitively ("EventType",
//     "eventType", "event_type" are one name; so are "eMail" and "email");
//   - each field has several candidate names (EventType / Event / Type / Action +
//     Entity / ...), and the event type may be one string in any common style
//     ("MasterCertificate.Update", "CertificateHolderInsert",
//     "certificate_holder.inserted", "MASTERCERTIFICATE_UPDATE") or separate
//     entity and action fields;
//   - entity data may sit at the top level or be nested under Data / Payload /
//     Entity / Object / ... (up to three levels, also as a JSON string or a
//     one-element array), or under a key naming the entity ("CertificateHolder": {...});
//   - a top-level array holding exactly one event is unwrapped.
//
// What cannot be found (the entity kind, the action, the entity id) is reported as
// ErrUnknownShape naming what was missing, so the receiver quarantines the body.

// ncMaxDepth bounds how deep nested containers are searched; ncMaxContainers
// bounds how many are kept.
const (
	ncMaxDepth      = 3
	ncMaxContainers = 32
)

// ncObject is a JSON object with normalised keys (see normKey).
type ncObject map[string]any

// ncRole says what a nested object is for.
type ncRole uint8

const (
	roleData     ncRole = iota // may hold entity fields
	roleEnvelope               // event metadata only (type, time, event id)
)

// ncContainer is one object the parser reads fields from.
type ncContainer struct {
	obj   ncObject
	hint  Kind // entity kind named by the key it was found under, if any
	role  ncRole
	depth int
}

// ncContainerKeys are the keys whose object values are searched, in order.
var ncContainerKeys = []struct {
	key  string
	hint Kind
	role ncRole
}{
	{"event", "", roleEnvelope},
	{"meta", "", roleEnvelope},
	{"metadata", "", roleEnvelope},
	{"webhook", "", roleEnvelope},
	{"notification", "", roleEnvelope},
	{"mastercertificate", KindMasterCertificate, roleData},
	{"certificateholder", KindCertificateHolder, roleData},
	{"historicalcertificateholder", KindCertificateHolder, roleData},
	{"holder", KindCertificateHolder, roleData},
	{"certificate", KindMasterCertificate, roleData},
	{"data", "", roleData},
	{"payload", "", roleData},
	{"entity", "", roleData},
	{"object", "", roleData},
	{"record", "", roleData},
	{"body", "", roleData},
	{"message", "", roleData},
	{"detail", "", roleData},
	{"details", "", roleData},
	{"content", "", roleData},
	{"resource", "", roleData},
	{"item", "", roleData},
	{"model", "", roleData},
	{"value", "", roleData},
	{"newvalues", "", roleData},
	{"new", "", roleData},
	{"after", "", roleData},
	{"current", "", roleData},
}

// ncTypeKeys are the keys that may name the event type, the entity or the action,
// in priority order. ncActionKeys may also hold one-letter codes (I/U/D).
var (
	ncTypeKeys = []string{
		"eventtype", "eventname", "event", "webhookevent", "webhooktype", "eventkey",
		"topic", "trigger", "notificationtype", "type",
		"entitytype", "entityname", "entity", "objecttype", "objectname", "object",
		"resourcetype", "resource", "tablename", "table", "kind", "model",
		"action", "eventaction", "actiontype", "operation", "op", "changetype", "crud",
	}
	ncActionKeys = map[string]bool{
		"action": true, "eventaction": true, "actiontype": true, "operation": true,
		"op": true, "changetype": true, "crud": true,
	}
)

// Candidate field names (normalised).
var (
	ncEntityIDKeys = []string{"entityid", "entityguid", "entitydatabaseid", "objectid", "recordid", "resourceid"}
	ncMasterIDKeys = []string{"mastercertificateid", "mastercertificatedatabaseid"}
	ncHolderIDKeys = []string{"certificateholderid", "certificateholderdatabaseid", "holderid", "holderdatabaseid"}
	ncOwnIDKeys    = []string{"databaseid", "id", "guid", "uid"}
	ncCertIDKeys   = []string{"certificateid", "mastercertificateid", "certificatedatabaseid", "mastercertificatedatabaseid"}
	ncEventTSKeys  = []string{
		"timestamp", "eventtimestamp", "eventtime", "eventdate", "eventdatetime",
		"occurredat", "occurredon", "occurred", "firedat", "raisedat", "publishedat",
		"sentat", "senton", "datetime", "time",
	}
	ncChangeKeys = []string{"changedate", "modifieddate", "datemodified", "lastmodified", "lastmodifieddate", "modifiedon", "changedon", "updatedat", "updatedon"}
	ncCreateKeys = []string{"createdate", "createddate", "datecreated", "createdat", "createdon"}
	ncDeleteKeys = []string{"deletedate", "deleteddate", "deletedat", "deletedon"}
	ncAgencyKeys = []string{"agencyid", "agencydatabaseid", "agencyguid"}

	ncNameKeys     = []string{"name", "holdername", "certificateholdername", "commercialname", "fullname"}
	ncEmailKeys    = []string{"email", "emailaddress", "emails", "holderemail"}
	ncFaxKeys      = []string{"fax", "faxnumber", "holderfax"}
	ncPhoneKeys    = []string{"phone", "phonenumber", "holderphone", "cellphone"}
	ncLine1Keys    = []string{"addressline1", "address1", "line1", "street", "streetaddress", "address"}
	ncLine2Keys    = []string{"addressline2", "address2", "line2"}
	ncCityKeys     = []string{"city"}
	ncStateKeys    = []string{"state", "statecode", "stateabbreviation", "province"}
	ncZipKeys      = []string{"zipcode", "zip", "postalcode", "postcode"}
	ncCertNameKeys = []string{"certificatename", "mastercertificatename"}
	ncDescKeys     = []string{"description", "descriptionofoperations", "certificatedescription", "remarks"}
	ncCertRevKeys  = []string{"certificatechangedate", "mastercertificatechangedate", "certificaterevision", "revision"}
	ncPolicyNoKeys = []string{"policynumber", "policyno"}

	ncInsuredIDKeys    = []string{"insureddatabaseid", "insuredid", "insuredguid"}
	ncInsuredNameKeys  = []string{"insuredcommercialname", "insuredname", "insuredfullname"}
	ncInsuredEmailKeys = []string{"insuredemail"}
	ncInsuredPhoneKeys = []string{"insuredphone", "insuredphonenumber"}

	ncAddlInsuredKeys = []string{"additionalinterestrequested", "additionalinsuredrequested", "additionalinsured", "isadditionalinsured", "additionalinterest", "addlinsd"}
	ncWaiverKeys      = []string{"waversubrogationrequested", "waiversubrogationrequested", "waiverofsubrogationrequested", "waiverofsubrogation", "waiversubrogation", "waversubrogation", "subrwvd"}
	ncWordingKeys     = []string{"specialwordingrequested", "specialwording"}
	ncPendingKeys     = []string{"pendingapproval", "ispendingapproval", "requiresapproval", "approvalrequired", "needsapproval"}
	ncStatusKeys      = []string{"status", "certificatestatus", "approvalstatus"}

	ncHolderListKeys = []string{"certificateholders", "holders", "certificateholderlist"}
)

// ncPayload is a decoded NowCerts body and the containers found in it.
type ncPayload struct {
	top   map[string]any // the top-level object as decoded (original keys)
	conts []ncContainer  // conts[0] is the top level, then breadth-first
}

func parseNowCerts(body []byte) (Event, error) {
	p, err := decodeNowCerts(body)
	if err != nil {
		return Event{}, err
	}
	kind, action, err := p.kindAction()
	if err != nil {
		return Event{}, err
	}
	typ := ncTypeName(kind, action)

	id, ok := p.entityID(kind)
	if !ok {
		return Event{}, fmt.Errorf("%w: NowCerts %s event without an entity id (looked for EntityId, %sId, DatabaseId, Id)",
			ErrUnknownShape, typ, ncEntityName(kind))
	}

	ev := Event{
		Type:       typ,
		Action:     action,
		EntityKind: kind,
		EntityID:   id,
	}
	ev.AgencyID, _ = firstID(p.conts, ncAgencyKeys)

	// The event's own timestamp: event-level fields first, then the entity's dates.
	entity := p.entityConts(kind)
	tsKeys := [][]string{ncEventTSKeys}
	switch action {
	case ActionInsert:
		tsKeys = append(tsKeys, ncCreateKeys, ncChangeKeys)
	case ActionDelete:
		tsKeys = append(tsKeys, ncDeleteKeys, ncChangeKeys)
	default:
		tsKeys = append(tsKeys, ncChangeKeys)
	}
	tsRaw, haveTS := "", false
	for i, keys := range tsKeys {
		conts := entity
		if i == 0 {
			conts = p.conts
		}
		for _, v := range allValues(conts, keys) {
			s, ok := scalarString(v)
			if !ok || s == "" {
				continue
			}
			if !haveTS {
				tsRaw, haveTS = s, true
			}
			if t, ok := parseTimeValue(v); ok {
				ev.OccurredAt = t
				break
			}
		}
		if haveTS && !ev.OccurredAt.IsZero() {
			break
		}
	}
	if !haveTS {
		// No timestamp at all: a hash of the whole body keeps redeliveries of the
		// same body together without merging different changes of one entity.
		tsRaw = "h:" + canonicalHash(p.top)
	}
	ev.IdempotencyKey = Key(string(SourceNowCerts), typ, keyPart(id), keyPart(tsRaw))

	ev.Insured = ncInsured(p.conts, entity)
	switch kind {
	case KindCertificateHolder:
		h := ncHolder(entity, id)
		ev.Holders = []Holder{h}
		ev.Certificate = ncHolderCertificate(p, entity, ev.Insured)
	case KindMasterCertificate:
		ev.Certificate = ncMasterCertificate(entity, id, ev.Insured)
		ev.Holders = ncHolderList(entity)
	}
	return ev, nil
}

// decodeNowCerts decodes body (valid JSON) and finds its containers.
func decodeNowCerts(body []byte) (*ncPayload, error) {
	v, err := decodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("%w: NowCerts body: %v", ErrUnknownShape, err)
	}
	if arr, ok := v.([]any); ok {
		if len(arr) != 1 {
			return nil, fmt.Errorf("%w: NowCerts body is an array of %d items, want one event object", ErrUnknownShape, len(arr))
		}
		v = arr[0]
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: NowCerts body is %s, want an object", ErrUnknownShape, jsonKind(v))
	}
	p := &ncPayload{top: top}
	p.conts = append(p.conts, ncContainer{obj: normObject(top)})
	for i := 0; i < len(p.conts) && len(p.conts) < ncMaxContainers; i++ {
		c := p.conts[i]
		if c.depth >= ncMaxDepth {
			continue
		}
		for _, ck := range ncContainerKeys {
			val, ok := c.obj[ck.key]
			if !ok {
				continue
			}
			o, ok := asObject(val)
			if !ok {
				continue
			}
			hint, role := ck.hint, ck.role
			if hint == "" {
				hint = c.hint
			}
			if c.role == roleEnvelope {
				role = roleEnvelope
			}
			p.conts = append(p.conts, ncContainer{obj: o, hint: hint, role: role, depth: c.depth + 1})
			if len(p.conts) >= ncMaxContainers {
				break
			}
		}
	}
	return p, nil
}

// kindAction finds the entity kind and the action.
func (p *ncPayload) kindAction() (Kind, Action, error) {
	var (
		kind        Kind
		action      Action
		seen        []string // type-ish strings found, for error messages
		foreign     string   // an entity the event names that is not a certificate entity
		foreignHigh bool     // foreign came from the top level or an envelope
	)
	for ci, c := range p.conts {
		for _, key := range ncTypeKeys {
			v, ok := c.obj[key]
			if !ok {
				continue
			}
			s, ok := v.(string)
			if !ok || strings.TrimSpace(s) == "" {
				continue
			}
			k, a, other, err := classifyType(s, ncActionKeys[key])
			if err != nil {
				return "", "", err
			}
			if k == "" && a == "" && other == "" {
				continue
			}
			if len(seen) < 4 {
				seen = append(seen, s)
			}
			if kind == "" && k != "" {
				kind = k
			}
			if action == "" && a != "" {
				action = a
			}
			if k == "" && other != "" && foreign == "" {
				foreign = s
				foreignHigh = ci == 0 || c.role == roleEnvelope
			}
		}
		if kind != "" && action != "" {
			break
		}
	}
	if kind == "" && !foreignHigh {
		// The entity may be named only by the key its data sits under.
		for _, c := range p.conts[1:] {
			if c.hint != "" {
				kind = c.hint
				break
			}
		}
	}
	switch {
	case kind == "" && foreign != "":
		return "", "", fmt.Errorf("%w: NowCerts event %s is not a MasterCertificate or CertificateHolder event", ErrUnknownShape, quoteShort(foreign))
	case kind == "" && action == "":
		return "", "", fmt.Errorf("%w: NowCerts event type not found (looked for EventType, Event, Type, Entity + Action fields)", ErrUnknownShape)
	case kind == "":
		return "", "", fmt.Errorf("%w: NowCerts entity kind (MasterCertificate or CertificateHolder) not found; event type fields: %s", ErrUnknownShape, quoteList(seen))
	case action == "":
		return "", "", fmt.Errorf("%w: NowCerts %s event without an action (insert/update/delete); event type fields: %s", ErrUnknownShape, ncEntityName(kind), quoteList(seen))
	}
	return kind, action, nil
}

// entityID finds the (lower-cased) id of the entity of kind.
func (p *ncPayload) entityID(kind Kind) (string, bool) {
	if s, ok := firstID(p.conts, ncEntityIDKeys); ok {
		return s, true
	}
	own := ncHolderIDKeys
	if kind == KindMasterCertificate {
		own = ncMasterIDKeys
	}
	if s, ok := firstID(p.conts, own); ok {
		return s, true
	}
	entity := p.entityConts(kind)
	if s, ok := firstID(entity, ncOwnIDKeys); ok {
		return s, true
	}
	if kind == KindMasterCertificate {
		return firstID(entity, ncCertIDKeys)
	}
	return "", false
}

// entityConts lists the containers that may hold the fields of an entity of kind:
// those found under a key naming kind, then other data containers, then the top
// level. Envelopes and containers naming another entity are left out.
func (p *ncPayload) entityConts(kind Kind) []ncContainer {
	out := make([]ncContainer, 0, len(p.conts))
	for _, c := range p.conts[1:] {
		if c.role == roleData && c.hint == kind {
			out = append(out, c)
		}
	}
	for _, c := range p.conts[1:] {
		if c.role == roleData && c.hint == "" {
			out = append(out, c)
		}
	}
	return append(out, p.conts[0])
}

// hintedConts lists the data containers found under a key naming kind.
func (p *ncPayload) hintedConts(kind Kind) []ncContainer {
	var out []ncContainer
	for _, c := range p.conts[1:] {
		if c.role == roleData && c.hint == kind {
			out = append(out, c)
		}
	}
	return out
}

func ncHolder(entity []ncContainer, id string) Holder {
	h := Holder{ID: id}
	h.Name, _ = firstString(entity, ncNameKeys)
	h.Email, _ = firstString(entity, ncEmailKeys)
	h.Fax, _ = firstString(entity, ncFaxKeys)
	h.Phone, _ = firstString(entity, ncPhoneKeys)
	h.Address = ncAddress(entity)
	h.ChangedAt, _ = firstString(entity, ncChangeKeys)
	return h
}

// ncAddress composes "line1, line2, city, ST zip" from flat address fields or an
// "Address" object.
func ncAddress(conts []ncContainer) string {
	for _, c := range conts {
		if v, ok := c.obj["address"]; ok {
			if o, ok := asObject(v); ok {
				if s := composeAddress([]ncContainer{{obj: o}}); s != "" {
					return s
				}
			}
		}
		if s := composeAddress([]ncContainer{c}); s != "" {
			return s
		}
	}
	return ""
}

func composeAddress(c []ncContainer) string {
	line1, _ := firstString(c, ncLine1Keys)
	line2, _ := firstString(c, ncLine2Keys)
	city, _ := firstString(c, ncCityKeys)
	state, _ := firstString(c, ncStateKeys)
	zip, _ := firstString(c, ncZipKeys)
	stateZip := strings.TrimSpace(state + " " + zip)
	var parts []string
	for _, s := range []string{line1, line2, city, stateZip} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

func ncInsured(all, entity []ncContainer) *Party {
	conts := append(slices.Clone(entity), all...)
	id, ok := firstID(conts, ncInsuredIDKeys)
	if !ok {
		return nil
	}
	p := &Party{ID: id}
	p.Name, _ = firstString(conts, ncInsuredNameKeys)
	p.Email, _ = firstString(conts, ncInsuredEmailKeys)
	p.Phone, _ = firstString(conts, ncInsuredPhoneKeys)
	return p
}

// ncMasterCertificate reads the certificate of a MasterCertificate event.
func ncMasterCertificate(entity []ncContainer, id string, insured *Party) *Certificate {
	c := &Certificate{ID: id}
	c.Name, _ = firstString(entity, ncNameKeys)
	if c.Name == "" {
		c.Name, _ = firstString(entity, ncCertNameKeys)
	}
	ncCertDetails(c, entity, insured)
	if rev, ok := firstTimeString(entity, ncChangeKeys); ok {
		c.Revision = rev
	} else {
		c.Revision = certHash(c)
	}
	return c
}

// ncHolderCertificate reads the certificate a holder event belongs to: from an
// object nested under "Certificate"/"MasterCertificate" if there is one, else
// from certificate fields next to the holder's. It returns nil when the event
// names no certificate and no certificate request flag.
func ncHolderCertificate(p *ncPayload, entity []ncContainer, insured *Party) *Certificate {
	certConts := p.hintedConts(KindMasterCertificate)
	c := &Certificate{}
	if id, ok := firstID(certConts, ncOwnIDKeys); ok {
		c.ID = id
	} else if id, ok := firstID(append(slices.Clone(entity), p.conts...), ncCertIDKeys); ok {
		c.ID = id
	}
	c.Name, _ = firstString(certConts, ncNameKeys)
	if c.Name == "" {
		c.Name, _ = firstString(append(slices.Clone(certConts), entity...), ncCertNameKeys)
	}
	ncCertDetails(c, append(slices.Clone(certConts), entity...), insured)
	if c.ID == "" && !c.AdditionalInsured && !c.WaiverOfSubrogation && !c.SpecialWording && !c.PendingApproval {
		return nil
	}
	// The holder's own change date is not the certificate's revision: a holder
	// edit must not make the same certificate look new.
	if rev, ok := firstTimeString(certConts, ncChangeKeys); ok {
		c.Revision = rev
	} else if rev, ok := firstTimeString(append(slices.Clone(entity), p.conts...), ncCertRevKeys); ok {
		c.Revision = rev
	} else {
		c.Revision = certHash(c)
	}
	return c
}

// ncCertDetails fills the certificate fields shared by both event kinds.
func ncCertDetails(c *Certificate, conts []ncContainer, insured *Party) {
	if insured != nil {
		c.InsuredID = insured.ID
	}
	c.PolicyNo, _ = firstString(conts, ncPolicyNoKeys)
	c.Description, _ = firstString(conts, ncDescKeys)
	c.AdditionalInsured = anyTrue(conts, ncAddlInsuredKeys)
	c.WaiverOfSubrogation = anyTrue(conts, ncWaiverKeys)
	c.SpecialWording = anyTrue(conts, ncWordingKeys)
	c.PendingApproval = anyTrue(conts, ncPendingKeys)
	if !c.PendingApproval {
		if s, ok := firstString(conts, ncStatusKeys); ok && strings.Contains(normKey(s), "pendingapproval") {
			c.PendingApproval = true
		}
	}
}

// ncHolderList reads a list of holders nested in a MasterCertificate event.
func ncHolderList(entity []ncContainer) []Holder {
	for _, c := range entity {
		for _, k := range ncHolderListKeys {
			arr, ok := c.obj[k].([]any)
			if !ok {
				continue
			}
			var hs []Holder
			for _, item := range arr {
				o, ok := asObject(item)
				if !ok {
					continue
				}
				hc := []ncContainer{{obj: o}}
				id, ok := firstID(hc, append(slices.Clone(ncHolderIDKeys), ncOwnIDKeys...))
				if !ok {
					continue
				}
				hs = append(hs, ncHolder(hc, id))
			}
			if len(hs) > 0 {
				return hs
			}
		}
	}
	return nil
}

// certHash is a short hash of the certificate-relevant fields, the revision when
// the event carries no change date.
func certHash(c *Certificate) string {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	h := sha256.Sum256([]byte(strings.Join([]string{
		c.ID, c.Name, c.InsuredID, c.PolicyNo, c.Description,
		b(c.AdditionalInsured), b(c.WaiverOfSubrogation), b(c.SpecialWording),
	}, "\x00")))
	return "h:" + hex.EncodeToString(h[:8])
}

// ncTypeName is the canonical type, e.g. "CertificateHolder.Insert".
func ncTypeName(k Kind, a Action) string {
	act := string(a)
	if act != "" {
		act = strings.ToUpper(act[:1]) + act[1:]
	}
	return ncEntityName(k) + "." + act
}

func ncEntityName(k Kind) string {
	if k == KindCertificateHolder {
		return "CertificateHolder"
	}
	return "MasterCertificate"
}

// Event-type vocabulary.
var (
	ncActionWords = map[string]Action{
		"insert": ActionInsert, "inserted": ActionInsert, "insertion": ActionInsert,
		"create": ActionInsert, "created": ActionInsert, "creation": ActionInsert,
		"add": ActionInsert, "added": ActionInsert, "new": ActionInsert,
		"update": ActionUpdate, "updated": ActionUpdate, "modify": ActionUpdate,
		"modified": ActionUpdate, "modification": ActionUpdate, "change": ActionUpdate,
		"changed": ActionUpdate, "edit": ActionUpdate, "edited": ActionUpdate,
		"delete": ActionDelete, "deleted": ActionDelete, "deletion": ActionDelete,
		"remove": ActionDelete, "removed": ActionDelete, "removal": ActionDelete,
	}
	// ncEntityWords name the two entities (as single words or run together).
	ncEntityWords = map[string]Kind{
		"certificateholder": KindCertificateHolder, "certificateholders": KindCertificateHolder,
		"holder": KindCertificateHolder, "holders": KindCertificateHolder,
		"mastercertificate": KindMasterCertificate, "mastercertificates": KindMasterCertificate,
		"certificate": KindMasterCertificate, "certificates": KindMasterCertificate,
		"cert": KindMasterCertificate, "mastercert": KindMasterCertificate,
	}
	ncFillerWords = map[string]bool{
		"master": true, "on": true, "event": true, "webhook": true, "the": true, "of": true,
		"a": true, "record": true, "entity": true, "nowcerts": true, "momentum": true,
		"ams": true, "historical": true, "list": true,
	}
	// ncRunTogether are the entity names an action may be glued to without any
	// separator ("CERTIFICATEHOLDERINSERT"), longest first.
	ncRunTogether = []string{"historicalcertificateholder", "mastercertificate", "certificateholder", "certificate", "holder"}
)

// classifyType reads an event-type-ish string. It returns the entity kind and
// action it names, and other when it names something else (e.g. "Insured").
// actionField allows one-letter action codes (I/U/D).
func classifyType(s string, actionField bool) (kind Kind, action Action, other string, err error) {
	words := splitWords(s)
	joined := strings.Join(words, "")
	if strings.Contains(joined, "certificateholder") {
		kind = KindCertificateHolder
	} else if strings.Contains(joined, "mastercertificate") {
		kind = KindMasterCertificate
	}
	var leftover []string
	for _, w := range words {
		if a, ok := ncActionWords[w]; ok {
			if action != "" && action != a {
				return "", "", "", fmt.Errorf("%w: NowCerts event type %s names more than one action", ErrUnknownShape, quoteShort(s))
			}
			action = a
			continue
		}
		if k, ok := ncEntityWords[w]; ok {
			if kind == "" || (kind == KindMasterCertificate && k == KindCertificateHolder) {
				kind = k
			}
			continue
		}
		if !ncFillerWords[w] {
			leftover = append(leftover, w)
		}
	}
	if action == "" && len(words) == 1 {
		// Entity and action glued together: "CERTIFICATEHOLDERINSERT", "InsertCertificateHolder".
		for _, ent := range ncRunTogether {
			a, ok := ncActionWords[strings.TrimPrefix(joined, ent)]
			if !ok || !strings.HasPrefix(joined, ent) {
				a, ok = ncActionWords[strings.TrimSuffix(joined, ent)]
				ok = ok && strings.HasSuffix(joined, ent)
			}
			if ok {
				action = a
				kind = ncEntityWords[strings.TrimPrefix(ent, "historical")]
				leftover = nil
				break
			}
		}
		if actionField && len(joined) == 1 {
			switch joined {
			case "i", "c":
				action = ActionInsert
			case "u":
				action = ActionUpdate
			case "d":
				action = ActionDelete
			}
			leftover = nil
		}
	}
	if kind == "" && len(leftover) > 0 {
		other = strings.Join(leftover, " ")
	}
	return kind, action, other, nil
}

// splitWords splits s into lower-case words at non-alphanumerics and camelCase
// boundaries: "CertificateHolderInsert" → certificate holder insert;
// "MASTER_CERTIFICATE.Updated" → master certificate updated.
func splitWords(s string) []string {
	var (
		words []string
		cur   []byte
	)
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	isUpper := func(c byte) bool { return c >= 'A' && c <= 'Z' }
	isLower := func(c byte) bool { return c >= 'a' && c <= 'z' }
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isUpper(c) && !isLower(c) && !isDigit(c) {
			flush()
			continue
		}
		if isUpper(c) && i > 0 {
			prev := s[i-1]
			next := byte(0)
			if i+1 < len(s) {
				next = s[i+1]
			}
			if isLower(prev) || isDigit(prev) || (isUpper(prev) && isLower(next)) {
				flush()
			}
		}
		if isUpper(c) {
			c += 'a' - 'A'
		}
		cur = append(cur, c)
	}
	flush()
	return words
}

// --- generic JSON helpers (shared with the Cowbell parser) ---

// decodeJSON decodes one JSON value keeping numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// normKey lower-cases ASCII letters and drops everything but letters and digits:
// "Event_Type", "eventType" and "EVENTTYPE" all become "eventtype".
func normKey(k string) string {
	clean := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			clean = false
			break
		}
	}
	if clean {
		return k
	}
	b := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		}
	}
	return string(b)
}

// normObject re-keys m by normKey. When several keys normalise alike, the one
// first in byte order wins, so the result never depends on map iteration order.
func normObject(m map[string]any) ncObject {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(ncObject, len(m))
	for _, k := range keys {
		nk := normKey(k)
		if nk == "" {
			continue
		}
		if _, dup := out[nk]; !dup {
			out[nk] = m[k]
		}
	}
	return out
}

// asObject returns v as an object: a JSON object, a one-element array holding
// one, or a string holding a JSON object (some senders double-encode).
func asObject(v any) (ncObject, bool) {
	switch t := v.(type) {
	case map[string]any:
		return normObject(t), true
	case []any:
		if len(t) == 1 {
			if m, ok := t[0].(map[string]any); ok {
				return normObject(m), true
			}
		}
	case string:
		s := strings.TrimSpace(t)
		if len(s) > 1 && s[0] == '{' && json.Valid([]byte(s)) {
			if d, err := decodeJSON([]byte(s)); err == nil {
				if m, ok := d.(map[string]any); ok {
					return normObject(m), true
				}
			}
		}
	}
	return nil, false
}

// scalarString returns a string or number value as trimmed text.
func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return strings.TrimSpace(t), true
	case json.Number:
		return t.String(), true
	}
	return "", false
}

// allValues lists the values of keys across conts, container by container.
func allValues(conts []ncContainer, keys []string) []any {
	var out []any
	for _, c := range conts {
		for _, k := range keys {
			if v, ok := c.obj[k]; ok && v != nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// firstString is the first non-empty string or number under keys.
func firstString(conts []ncContainer, keys []string) (string, bool) {
	for _, c := range conts {
		for _, k := range keys {
			if s, ok := scalarString(c.obj[k]); ok && s != "" {
				return s, true
			}
		}
	}
	return "", false
}

// firstID is the first id under keys, lower-cased (see lowerID). It skips the
// nil GUID and zero, which name nothing.
func firstID(conts []ncContainer, keys []string) (string, bool) {
	for _, c := range conts {
		for _, k := range keys {
			s, ok := scalarString(c.obj[k])
			if !ok || isNilID(s) {
				continue
			}
			if id := lowerID(s); id != "" {
				return id, true
			}
		}
	}
	return "", false
}

// firstTimeString is the first value under keys, normalised to UTC RFC 3339
// when it parses as a time and as given otherwise.
func firstTimeString(conts []ncContainer, keys []string) (string, bool) {
	for _, v := range allValues(conts, keys) {
		s, ok := scalarString(v)
		if !ok || s == "" {
			continue
		}
		if t, ok := parseTimeValue(v); ok {
			return t.Format(time.RFC3339Nano), true
		}
		return s, true
	}
	return "", false
}

// anyTrue reports whether any value under keys is true-ish (true, "true", "yes",
// 1, "Y"): for the requested-endorsement flags, one "yes" is enough to hold.
func anyTrue(conts []ncContainer, keys []string) bool {
	for _, c := range conts {
		for _, k := range keys {
			if b, ok := truthy(c.obj[k]); ok && b {
				return true
			}
		}
	}
	return false
}

func truthy(v any) (bool, bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case json.Number:
		f, err := t.Float64()
		return err == nil && f != 0, true
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "true", "yes", "y", "1", "on", "x", "requested":
			return true, true
		case "false", "no", "n", "0", "off", "":
			return false, true
		}
	}
	return false, false
}

func isNilID(s string) bool {
	s = strings.Trim(s, "{}")
	return strings.Trim(s, "0-") == ""
}

// lowerID trims and lower-cases an id (GUIDs compare case-insensitively) and
// drops the braces of the .NET "B" format.
func lowerID(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return strings.ToLower(s)
}

// keyPart escapes "|" (the Key separator) and "%" so parts cannot run into each
// other.
func keyPart(s string) string {
	if !strings.ContainsAny(s, "|%") {
		return s
	}
	return strings.NewReplacer("%", "%25", "|", "%7C").Replace(s)
}

// canonicalHash is a short hash of v's canonical JSON (sorted keys).
func canonicalHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		b = fmt.Appendf(nil, "%v", v)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

// quoteShort quotes s for an error message, cut to 64 bytes.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

func quoteList(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quoteShort(s)
	}
	return strings.Join(q, ", ")
}

// --- time ---

// timeLayouts are tried in order; a layout without a zone reads the time as UTC.
// Fractional seconds are accepted after the seconds field of any layout.
var timeLayouts = []string{
	time.RFC3339,                // 2023-10-19T19:27:17.123+04:00, ...Z
	"2006-01-02T15:04:05Z0700",  // 2021-05-13T06:07:54.407+0000 (Cowbell)
	"2006-01-02T15:04:05Z07",    // +04
	"2006-01-02T15:04:05",       // no zone
	"2006-01-02 15:04:05Z07:00", // SQL-ish
	"2006-01-02 15:04:05Z0700",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
	time.RFC1123,  // Thu, 19 Oct 2023 19:27:17 GMT
	time.RFC1123Z, // Thu, 19 Oct 2023 19:27:17 +0400
	"1/2/2006 3:04:05 PM",
	"1/2/2006 15:04:05",
	"1/2/2006",
}

// parseTimeValue reads a JSON time value: a string in one of timeLayouts, a .NET
// "/Date(ms[+hhmm])/" string, or Unix seconds/milliseconds (number or digits).
// The result is in UTC; years outside 1..9999 are rejected.
func parseTimeValue(v any) (time.Time, bool) {
	switch t := v.(type) {
	case json.Number:
		return parseUnix(t.String())
	case string:
		return parseTime(t)
	}
	return time.Time{}, false
}

func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if strings.HasPrefix(s, "/Date(") && strings.HasSuffix(s, ")/") {
		inner := s[len("/Date(") : len(s)-len(")/")]
		// The milliseconds are UTC; a trailing +hhmm only says where it was.
		if i := strings.LastIndexAny(inner, "+-"); i > 0 {
			inner = inner[:i]
		}
		ms, err := strconv.ParseInt(inner, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return validTime(time.UnixMilli(ms))
	}
	if c := s[0]; c >= '0' && c <= '9' && isDigits(s) {
		return parseUnix(s)
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return validTime(t)
		}
	}
	return time.Time{}, false
}

// parseUnix reads Unix seconds, or milliseconds when the value is that large.
func parseUnix(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || f > 1e15 || f < -1e15 {
			return time.Time{}, false
		}
		n = int64(f)
	}
	if n > 1e11 || n < -1e11 {
		return validTime(time.UnixMilli(n))
	}
	return validTime(time.Unix(n, 0))
}

func validTime(t time.Time) (time.Time, bool) {
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
