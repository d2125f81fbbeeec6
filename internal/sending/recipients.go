package sending

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/nowcerts"
)

// recipient is one holder a certificate goes to.
type recipient struct {
	// Key identifies the holder in the send key: the NowCerts holder id, or
	// "email:<address>" / "fax:<digits>" when there is none ("" when there is
	// no holder at all).
	Key string
	// NowCertsID is the CertificateHolderList id ("" for synthetic keys).
	NowCertsID string
	Name       string
	Emails     []string
	Fax        string
	// HistoricalIDs are HistoricalCertificateHolderList ids (Approve takes them).
	HistoricalIDs []string
}

func (r recipient) hasRecipient() bool { return len(r.Emails) > 0 || r.Fax != "" }

// sendKey is the holder part of r's send key. A holder with neither email nor
// fax gets a key of its own: its hold can never be approved (there is nothing
// to send to), so the event that follows once the holder is fixed in NowCerts
// must not be suppressed as a duplicate of it.
func (r recipient) sendKey() string {
	if r.Key != "" && !r.hasRecipient() {
		return r.Key + "#no-recipient"
	}
	return r.Key
}

// channel names how the certificate travels: email, fax or email+fax.
func channelOf(emails []string, fax string) string {
	switch {
	case len(emails) > 0 && fax != "":
		return "email+fax"
	case fax != "":
		return "fax"
	case len(emails) > 0:
		return "email"
	}
	return ""
}

// splitEmails splits a field that may hold several addresses (comma, semicolon
// or whitespace separated), dropping empties and case-insensitive duplicates.
func splitEmails(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	var out []string
	for _, e := range f {
		e = strings.TrimSpace(e)
		if e == "" || !strings.Contains(e, "@") {
			continue
		}
		if slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, e) }) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// faxDigits keeps the digits of a fax number (and a leading +).
func faxDigits(s string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		if r >= '0' && r <= '9' || (r == '+' && i == 0) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// syntheticKey is the holder key of a holder without a NowCerts id: its first
// email address (hashed: ids are logged and travel to the CRM, addresses must
// not), else its fax number.
func syntheticKey(emails []string, fax string) string {
	if len(emails) > 0 {
		sum := sha256.Sum256([]byte(strings.ToLower(emails[0])))
		return "email:" + hex.EncodeToString(sum[:10])
	}
	if d := faxDigits(fax); d != "" {
		return "fax:" + d
	}
	return ""
}

// recipientsFromEvent turns the event's holders into recipients (deduplicated
// by key). Holders without id, email and fax are kept (they will be held).
func recipientsFromEvent(hs []event.Holder) []recipient {
	var out []recipient
	for _, h := range hs {
		r := recipient{Name: strings.TrimSpace(h.Name), Emails: splitEmails(h.Email), Fax: strings.TrimSpace(h.Fax)}
		if id := strings.TrimSpace(h.ID); id != "" {
			r.Key = strings.ToLower(id)
			if nowcerts.ValidGUID(id) {
				r.NowCertsID = id
			}
		} else {
			r.Key = syntheticKey(r.Emails, r.Fax)
			if r.Key == "" && r.Name != "" {
				r.Key = "name:" + strings.ToLower(r.Name)
			}
		}
		if i := slices.IndexFunc(out, func(x recipient) bool { return x.Key == r.Key }); i >= 0 && r.Key != "" {
			continue
		}
		out = append(out, r)
	}
	return out
}

// recipientsFromHistory groups a master certificate's historical holders by
// recipient (email, else fax): one recipient per address, carrying every
// historical id for Approve.
func recipientsFromHistory(rows []nowcerts.HistoricalHolder) []recipient {
	var out []recipient
	for _, h := range rows {
		emails := splitEmails(h.Email)
		fax := strings.TrimSpace(h.Fax)
		key := syntheticKey(emails, fax)
		if key == "" {
			key = "hist:" + strings.ToLower(h.DatabaseID)
		}
		if i := slices.IndexFunc(out, func(x recipient) bool { return x.Key == key }); i >= 0 {
			if h.DatabaseID != "" && !slices.Contains(out[i].HistoricalIDs, h.DatabaseID) {
				out[i].HistoricalIDs = append(out[i].HistoricalIDs, h.DatabaseID)
			}
			continue
		}
		r := recipient{Key: key, Name: strings.TrimSpace(h.Name), Emails: emails, Fax: fax}
		if h.DatabaseID != "" {
			r.HistoricalIDs = []string{h.DatabaseID}
		}
		out = append(out, r)
	}
	return out
}

// matchHistorical returns the ids of the historical rows that are this
// holder: same holder id, or a shared email address or fax number
// (case-insensitively).
func matchHistorical(rows []nowcerts.HistoricalHolder, holderID string, emails []string, fax string) []string {
	var ids []string
	fd := faxDigits(fax)
	for _, h := range rows {
		match := holderID != "" && strings.EqualFold(h.DatabaseID, holderID)
		for _, e := range splitEmails(h.Email) {
			if slices.ContainsFunc(emails, func(x string) bool { return strings.EqualFold(x, e) }) {
				match = true
			}
		}
		if fd != "" && faxDigits(h.Fax) == fd {
			match = true
		}
		if match && h.DatabaseID != "" && !slices.ContainsFunc(ids, func(x string) bool { return strings.EqualFold(x, h.DatabaseID) }) {
			ids = append(ids, h.DatabaseID)
		}
	}
	return ids
}

// revisionOf is the certificate revision in the send key: the event's
// Revision (NowCerts change date), else a hash of the certificate's content.
func revisionOf(c event.Certificate) string {
	if r := strings.TrimSpace(c.Revision); r != "" {
		return r
	}
	b, _ := json.Marshal(struct {
		ID, Name, InsuredID, PolicyID, PolicyNo, Description string
		AI, WOS, SW                                          bool
	}{strings.ToLower(c.ID), c.Name, strings.ToLower(c.InsuredID), c.PolicyID, c.PolicyNo, c.Description,
		c.AdditionalInsured, c.WaiverOfSubrogation, c.SpecialWording})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:12])
}

// keyHash hashes the send key: certificate id + holder key + revision. A
// NowCerts id counts in its dashed form (with or without dashes it is the same
// certificate or holder), in any letter case.
func keyHash(certificateID, holderKey, revision string) string {
	sum := sha256.Sum256([]byte(idKey(certificateID) + "\x00" + idKey(holderKey) + "\x00" + revision))
	return hex.EncodeToString(sum[:12])
}

func idKey(id string) string {
	if nowcerts.ValidGUID(id) {
		id = nowcerts.CanonicalGUID(id)
	}
	return strings.ToLower(id)
}

// ResendID is the id of the resend of send record sendID (a send is resent at
// most once; see Service.Resend): derived, so that a repeated request names the
// same record.
func ResendID(sendID string) string {
	sum := sha256.Sum256([]byte(sendID + "\x00resend"))
	return "snd_r" + hex.EncodeToString(sum[:12])
}

// SendID is the id of the send record of (certificate, holder, revision).
func SendID(certificateID, holderKey, revision string) string {
	return "snd_" + keyHash(certificateID, holderKey, revision)
}

// HoldID is the id of the hold of (certificate, holder, revision): one hold per
// send key, so a redelivered event does not hold twice.
func HoldID(certificateID, holderKey, revision string) string {
	return "hld_" + keyHash(certificateID, holderKey, revision)
}

// isSyntheticKey reports holder keys coiflow made up (not NowCerts ids).
func isSyntheticKey(k string) bool {
	return strings.HasPrefix(k, "email:") || strings.HasPrefix(k, "fax:") || strings.HasPrefix(k, "hist:") || strings.HasPrefix(k, "name:")
}
