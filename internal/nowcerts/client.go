package nowcerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Client calls the NowCerts API for one agency. It is safe for concurrent use.
type Client struct {
	t      *transport
	tokens Tokens
	limit  *bucket
}

// NewClient returns a Client using tokens for authorisation (a *TokenSource in
// production).
func NewClient(cfg Config, tokens Tokens) (*Client, error) {
	if tokens == nil {
		return nil, errors.New("nowcerts: client needs a token source")
	}
	cfg = cfg.withDefaults()
	return &Client{t: &transport{cfg: cfg}, tokens: tokens, limit: newBucket(cfg.RateLimit, cfg.Now, cfg.Sleep)}, nil
}

// sendBody is SendCertificate's JSON body, with the reference's field names.
type sendBody struct {
	CertificateID          string      `json:"CertificateId"`
	CertificateHolder      []holderRef `json:"CertificateHolder"`
	Emails                 string      `json:"Emails"`
	Fax                    string      `json:"Fax"`
	EmailSubject           string      `json:"EmailSubject"`
	EmailBody              string      `json:"EmailBody"`
	SendCopyToInsuredEmail bool        `json:"SendCopyToInsuredEmail"`
	SendCopyToInsuredFax   bool        `json:"SendCopyToInsuredFax"`
	SendCCToMe             bool        `json:"SendCCToMe"`
	InsuredDatabaseID      string      `json:"InsuredDatabaseId,omitempty"`
	InsuredName            string      `json:"InsuredName,omitempty"`
	Description            string      `json:"Description,omitempty"`
}

type holderRef struct {
	ID string `json:"id"`
}

// SendCertificate emails and/or faxes a certificate (POST
// api/SendCertificate/SendCertificate). It returns NowCerts' answer, or an error
// wrapping ErrRejected (status 0 or a 4xx; the message is NowCerts'),
// ErrUnavailable (429/5xx/connection failures through every retry), ErrAuth, or
// ErrOutcomeUnknown when the request may have reached NowCerts but no answer
// came back, or a gateway answered 502/504 for it — such a send is never
// retried here.
func (c *Client) SendCertificate(ctx context.Context, r SendRequest) (Answer, error) {
	if !ValidGUID(r.CertificateID) {
		return Answer{}, fmt.Errorf("nowcerts SendCertificate: certificate id %q is not a GUID", r.CertificateID)
	}
	if len(r.Emails) == 0 && r.Fax == "" && len(r.HolderIDs) == 0 {
		return Answer{}, errors.New("nowcerts SendCertificate: no recipient (emails, fax or holders)")
	}
	b := sendBody{
		CertificateID:     CanonicalGUID(r.CertificateID),
		CertificateHolder: []holderRef{},
		Emails:            strings.Join(r.Emails, ", "),
		Fax:               r.Fax,
		EmailSubject:      r.EmailSubject,
		EmailBody:         r.EmailBody,
		InsuredName:       r.InsuredName,
		Description:       r.Description,
	}
	for _, h := range r.HolderIDs {
		if !ValidGUID(h) {
			return Answer{}, fmt.Errorf("nowcerts SendCertificate: holder id %q is not a GUID", h)
		}
		b.CertificateHolder = append(b.CertificateHolder, holderRef{ID: CanonicalGUID(h)})
	}
	if r.InsuredID != "" {
		if !ValidGUID(r.InsuredID) {
			return Answer{}, fmt.Errorf("nowcerts SendCertificate: insured id %q is not a GUID", r.InsuredID)
		}
		b.InsuredDatabaseID = CanonicalGUID(r.InsuredID)
	}
	return c.write(ctx, "SendCertificate", "/api/SendCertificate/SendCertificate", b, true)
}

// Approve releases held certificates (POST api/SendCertificate/Approve): they
// move from pending approval to not sent. It sends nothing. ids are
// HistoricalCertificateHolderList databaseIds.
func (c *Client) Approve(ctx context.Context, historicalHolderIDs []string) (Answer, error) {
	if len(historicalHolderIDs) == 0 {
		return Answer{}, errors.New("nowcerts Approve: no ids")
	}
	ids := make([]string, 0, len(historicalHolderIDs))
	for _, id := range historicalHolderIDs {
		if !ValidGUID(id) {
			return Answer{}, fmt.Errorf("nowcerts Approve: id %q is not a GUID", id)
		}
		ids = append(ids, CanonicalGUID(id))
	}
	body := struct {
		DataBaseID []string `json:"DataBaseId"`
	}{ids}
	return c.write(ctx, "Approve", "/api/SendCertificate/Approve", body, false)
}

// write POSTs a JSON body and checks the answer's status.
func (c *Client) write(ctx context.Context, op, path string, body any, unsafe bool) (Answer, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Answer{}, fmt.Errorf("nowcerts %s: encode: %w", op, err)
	}
	rep, err := c.t.do(ctx, call{
		op: op, method: http.MethodPost, path: path, body: b,
		contentType: "application/json", tokens: c.tokens, limit: c.limit, unsafe: unsafe,
	})
	if err != nil {
		return Answer{}, err
	}
	ans, known := parseAnswer(rep.body)
	switch {
	case !known && unsafe:
		// A 2xx that is not NowCerts' {"status", "message"} (an empty body, a
		// proxy's HTML page, another shape) confirms nothing: the send may or
		// may not have happened, so it is reviewed, never recorded as sent.
		return ans, fmt.Errorf("%w: %s: HTTP %d answer without a status field: %s", ErrOutcomeUnknown, op, rep.status, snippet(rep.body))
	case !known:
		c.t.cfg.Logger.WarnContext(ctx, "nowcerts answer without a status field; taken as success", "op", op, "httpStatus", rep.status)
		return ans, nil
	case ans.Status == 1:
		return ans, nil
	case ans.Status == 0:
		return ans, &RejectedError{Op: op, HTTPStatus: rep.status, Message: ans.Message, Answer: &ans}
	case unsafe:
		return ans, fmt.Errorf("%w: %s: unrecognised status %d: %s", ErrOutcomeUnknown, op, ans.Status, ans.Message)
	default:
		return ans, &RejectedError{Op: op, HTTPStatus: rep.status, Message: fmt.Sprintf("unrecognised status %d: %s", ans.Status, ans.Message), Answer: &ans}
	}
}

// parseAnswer reads {"status": 1|0, "message": ...} tolerantly: any letter case,
// status as number, boolean or string. known is false when there is no status.
func parseAnswer(b []byte) (ans Answer, known bool) {
	ans = Answer{Status: 1, Raw: json.RawMessage(b)}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return ans, false
	}
	for k, v := range m {
		switch strings.ToLower(k) {
		case "message":
			var s string
			if json.Unmarshal(v, &s) == nil {
				ans.Message = s
			}
		case "status":
			var n float64
			var bl bool
			var s string
			switch {
			case json.Unmarshal(v, &n) == nil:
				ans.Status, known = int(n), true
			case json.Unmarshal(v, &bl) == nil:
				ans.Status, known = 0, true
				if bl {
					ans.Status = 1
				}
			case json.Unmarshal(v, &s) == nil:
				if i, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
					ans.Status, known = i, true
				}
			}
		}
	}
	return ans, known
}

var (
	dashedGUID   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	dashlessGUID = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// ValidGUID reports whether id is a NowCerts id: a GUID in any letter case,
// in the 8-4-4-4-12 form or as 32 hex digits without dashes (NowCerts' model
// binder reads both), surrounding spaces ignored. Braced and other forms are
// not accepted.
func ValidGUID(id string) bool {
	id = strings.TrimSpace(id)
	return dashedGUID.MatchString(id) || dashlessGUID.MatchString(id)
}

// CanonicalGUID returns a valid GUID in the 8-4-4-4-12 form, letter case
// kept (the form OData filters need and NowCerts' lists use); anything else
// is returned trimmed and unchanged. The client puts every id on the wire in
// this form.
func CanonicalGUID(id string) string {
	id = strings.TrimSpace(id)
	if !dashlessGUID.MatchString(id) {
		return id
	}
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}

// SameID compares NowCerts ids (GUIDs) case-insensitively: samples use upper
// case, lists return lower case.
func SameID(a, b string) bool { return strings.EqualFold(a, b) }
