package nowcertssandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// fieldType is the type a request body field must have.
type fieldType int

const (
	ftString fieldType = iota
	ftGUID
	ftBool
	ftInt
	ftHolderRefs // [{"id": guid}]
	ftGUIDs      // [guid]
)

// sendFields are SendCertificate's body fields, per the reference (ASP.NET
// model binding: names case-insensitive).
var sendFields = map[string]fieldType{
	"certificateid":             ftGUID,
	"certificateholder":         ftHolderRefs,
	"emails":                    ftString,
	"fax":                       ftString,
	"emailsubject":              ftString,
	"emailbody":                 ftString,
	"sendcopytoinsuredemail":    ftBool,
	"sendcopytoinsuredfax":      ftBool,
	"sendcctome":                ftBool,
	"insureddatabaseid":         ftGUID,
	"insuredname":               ftString,
	"insuredemail":              ftString,
	"description":               ftString,
	"showdescriptioninacord101": ftBool,
	"databaseid":                ftGUID,
	"status":                    ftInt,
	"certificateorigin":         ftInt,
}

var approveFields = map[string]fieldType{"databaseid": ftGUIDs}

// decodeBody checks a JSON request body against fields and returns the values
// by lower-case name; a non-nil response is the 400/415 to answer.
func decodeBody(r *http.Request, body []byte, spec map[string]fieldType) (map[string]any, *response) {
	if ct := strings.ToLower(r.Header.Get("Content-Type")); !strings.HasPrefix(ct, "application/json") {
		resp := answer(http.StatusUnsupportedMediaType, map[string]any{
			"Message": fmt.Sprintf("The request entity's media type '%s' is not supported for this resource.", r.Header.Get("Content-Type")),
		})
		return nil, &resp
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil || raw == nil {
		resp := invalid("the body must be a JSON object", "body")
		return nil, &resp
	}
	out := map[string]any{}
	for k, v := range raw {
		name := strings.ToLower(k)
		ft, ok := spec[name]
		if !ok {
			resp := invalid(fmt.Sprintf("unknown field %q (not in the NowCerts API reference)", k), k)
			return nil, &resp
		}
		val, err := checkType(v, ft)
		if err != nil {
			resp := invalid(err.Error(), k)
			return nil, &resp
		}
		out[name] = val
	}
	return out, nil
}

func checkType(v any, ft fieldType) (any, error) {
	switch ft {
	case ftString:
		if v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("must be a string")
		}
		return s, nil
	case ftGUID:
		s, ok := v.(string)
		if !ok || !guidLit.MatchString(s) {
			return nil, fmt.Errorf("must be a GUID string (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
		}
		return s, nil
	case ftBool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("must be true or false")
		}
		return b, nil
	case ftInt:
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return nil, fmt.Errorf("must be an integer")
		}
		return n, nil
	case ftHolderRefs:
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf(`must be an array of {"id": guid}`)
		}
		var ids []string
		for _, e := range arr {
			obj, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf(`each element must be an object {"id": guid}`)
			}
			id := ""
			for k, x := range obj {
				if !strings.EqualFold(k, "id") {
					return nil, fmt.Errorf("unknown field %q in a holder reference (only \"id\")", k)
				}
				s, ok := x.(string)
				if !ok || !guidLit.MatchString(s) {
					return nil, fmt.Errorf("holder id must be a GUID string")
				}
				id = s
			}
			if id == "" {
				return nil, fmt.Errorf(`a holder reference has no "id"`)
			}
			ids = append(ids, id)
		}
		return ids, nil
	case ftGUIDs:
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("must be an array of GUID strings")
		}
		var ids []string
		for _, e := range arr {
			s, ok := e.(string)
			if !ok || !guidLit.MatchString(s) {
				return nil, fmt.Errorf("every element must be a GUID string")
			}
			ids = append(ids, s)
		}
		return ids, nil
	}
	return nil, fmt.Errorf("unknown field type")
}

// sendCertificate carries out POST api/SendCertificate/SendCertificate.
func (s *Sandbox) sendCertificate(r *http.Request, body []byte) (response, int) {
	v, bad := decodeBody(r, body, sendFields)
	if bad != nil {
		return *bad, 0
	}
	certID, _ := v["certificateid"].(string)
	if certID == "" {
		return invalid("CertificateId is required", "CertificateId"), 0
	}
	holders, _ := v["certificateholder"].([]string)
	emailStr, _ := v["emails"].(string)
	fax, _ := v["fax"].(string)
	var emails []string
	for e := range strings.SplitSeq(emailStr, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if at := strings.IndexByte(e, '@'); at <= 0 || at == len(e)-1 || strings.ContainsAny(e, " ;") {
			return invalid(fmt.Sprintf("%q is not an email address (join several with \", \")", e), "Emails"), 0
		}
		emails = append(emails, e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cert := s.certLocked(certID)
	switch {
	case cert == nil:
		return statusAnswer(false, "Certificate not found."), 0
	case cert.PendingApproval:
		return statusAnswer(false, "Certificate is pending approval"), 0
	case len(emails) == 0 && strings.TrimSpace(fax) == "" && len(holders) == 0:
		return statusAnswer(false, "No recipients: provide Emails, Fax or CertificateHolder."), 0
	}
	var hs []*Holder
	for _, id := range holders {
		h := s.holderLocked(id)
		if h == nil {
			return statusAnswer(false, "Certificate holder not found: "+id), 0
		}
		hs = append(hs, h)
	}
	now := s.opts.Now()
	subject, _ := v["emailsubject"].(string)
	text, _ := v["emailbody"].(string)
	desc, _ := v["description"].(string)
	send := Send{Seq: len(s.sends) + 1, Time: now, CertificateID: cert.DatabaseID, HolderIDs: append([]string{}, holders...),
		Emails: append([]string{}, emails...), Fax: fax, EmailSubject: subject, EmailBody: text, Description: desc,
		Auth: r.Header.Get("Authorization"), Answered: true}
	s.sends = append(s.sends, send)
	for _, h := range hs {
		s.addHistoricalLocked(cert, h)
	}
	return statusAnswer(true, "Certificate has been sent successfully."), send.Seq
}

// addHistoricalLocked records that holder h got cert (once per pair).
func (s *Sandbox) addHistoricalLocked(cert *Certificate, h *Holder) {
	for _, x := range s.historical {
		if sameID(x.CertificateID, cert.DatabaseID) && sameID(x.HolderID, h.DatabaseID) {
			return
		}
	}
	now := s.opts.Now().In(zone)
	s.historical = append(s.historical, HistoricalHolder{
		DatabaseID: newGUID(), HolderID: h.DatabaseID, Name: h.Name, EMail: h.EMail, Fax: h.Fax,
		CertificateID: cert.DatabaseID, CertificateName: cert.Name, InsuredDatabaseID: cert.InsuredDatabaseID,
		InsuredEmail: cert.InsuredEmail, InsuredCommercialName: cert.InsuredName, CreateDate: now, ChangeDate: now,
	})
}

// approve carries out POST api/SendCertificate/Approve: each id is a
// historical certificate holder; its certificate leaves pending approval.
func (s *Sandbox) approve(r *http.Request, body []byte) response {
	v, bad := decodeBody(r, body, approveFields)
	if bad != nil {
		return *bad
	}
	ids, _ := v["databaseid"].([]string)
	if len(ids) == 0 {
		return statusAnswer(false, "No records to update.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var certs []*Certificate
	for _, id := range ids {
		var row *HistoricalHolder
		for i := range s.historical {
			if sameID(s.historical[i].DatabaseID, id) {
				row = &s.historical[i]
			}
		}
		if row == nil {
			return statusAnswer(false, "Record not found: "+id)
		}
		if c := s.certLocked(row.CertificateID); c != nil {
			certs = append(certs, c)
		}
	}
	for _, c := range certs {
		c.PendingApproval = false
	}
	s.approvals = append(s.approvals, Approval{Seq: len(s.approvals) + 1, Time: s.opts.Now(), IDs: append([]string{}, ids...)})
	return statusAnswer(true, "Record updated successfully.")
}

// parseFormBody reads an x-www-form-urlencoded body.
func parseFormBody(b []byte) (url.Values, error) {
	v, err := url.ParseQuery(string(b))
	if err != nil {
		return url.Values{}, fmt.Errorf("%w: %w", errBadBody, err)
	}
	return v, nil
}
