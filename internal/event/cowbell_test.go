package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Values of the seed's samples (and of the fixtures built from them).
const (
	cbQuoteID   = "16e420fa-7e73-4cd0-9bb5-a027860164f2"
	cbPolicyID  = "16e420fa-7e73-4cd0-9bb5-a027860164f2"
	cbNRPolicy  = "8b7c9d2e-4f1a-4e3b-9c5d-6a7b8c9d0e1f"
	cbAccountID = "877e9ee2-8ee0-4fe3-9658-b9cae24303f7"
	cbAgencyID  = "2e054852-b63a-43da-bb78-28205748b658"
)

func TestParseCowbellFixtures(t *testing.T) {
	seedModified := "2021-05-13T06:07:54.407+0000"
	cases := []struct {
		file     string
		typ      string
		kind     Kind
		action   Action
		entityID string
		keyID    string
		modified string
		docType  string
		check    func(t *testing.T, ev Event)
	}{
		{"quote_status.json", "quote.status", KindQuote, ActionStatus, cbQuoteID, cbQuoteID, seedModified, "", func(t *testing.T, ev Event) {
			if ev.Quote == nil || *ev.Quote != (Quote{ID: cbQuoteID, Number: "QCB-250-QQONJSXI", Status: "READY"}) {
				t.Errorf("quote = %+v", ev.Quote)
			}
			if ev.Policy != nil || ev.Document != nil || ev.Certificate != nil {
				t.Errorf("unexpected policy/document/certificate: %+v %+v %+v", ev.Policy, ev.Document, ev.Certificate)
			}
			wantCustomer := Person{FirstName: "Customer", LastName: "Customerlast", Email: "[email protected]", Phone: "1234121321"}
			if ev.Customer == nil || *ev.Customer != wantCustomer {
				t.Errorf("customer = %+v", ev.Customer)
			}
			if ev.Agent == nil || *ev.Agent != (Person{FirstName: "Firstname", LastName: "Lastname", Email: "[email protected]"}) {
				t.Errorf("agent = %+v", ev.Agent)
			}
		}},
		{"policy_status.json", "policy.status", KindPolicy, ActionStatus, cbPolicyID, cbPolicyID, seedModified, "", func(t *testing.T, ev Event) {
			want := Policy{
				ID: cbPolicyID, Number: "PLM-QGTGSXI", Status: "ISSUED",
				EffectiveDate: time.Date(2021, 5, 26, 0, 0, 0, 0, time.UTC),
				EndDate:       time.Date(2022, 5, 26, 0, 0, 0, 0, time.UTC),
			}
			if ev.Policy == nil || *ev.Policy != want {
				t.Errorf("policy = %+v\nwant     %+v", ev.Policy, want)
			}
			if ev.Quote == nil || ev.Quote.ID != cbQuoteID {
				t.Errorf("quote link = %+v", ev.Quote)
			}
		}},
		{"account_status.json", "account.status", KindAccount, ActionStatus, cbAccountID, cbAccountID, "2021-05-13T06:08:01.002+0000", "", func(t *testing.T, ev Event) {
			if ev.Insured.Status != "ACTIVE POLICY" {
				t.Errorf("account status = %q", ev.Insured.Status)
			}
			if ev.Policy != nil || ev.Quote != nil {
				t.Errorf("unexpected policy/quote %+v %+v", ev.Policy, ev.Quote)
			}
		}},
		{"policy_document.json", "policy.document", KindDocument, ActionDocument, cbPolicyID, cbPolicyID, "2021-05-14T09:15:02.118+0000", "Policy", func(t *testing.T, ev Event) {
			if ev.Document == nil || ev.Document.Type != "Policy" || !strings.Contains(ev.Document.URL, "/policy.pdf?") {
				t.Errorf("document = %+v", ev.Document)
			}
			if ev.Policy == nil || ev.Policy.ProductType != "P100" || ev.Policy.Number != "PLM-QGTGSXI" {
				t.Errorf("policy = %+v", ev.Policy)
			}
		}},
		{"policy_certificate.json", "policy.certificate", KindCertificate, ActionDocument, "policy:" + cbPolicyID, cbPolicyID, "2021-05-14T09:20:45.501+0000", "Certificate", func(t *testing.T, ev Event) {
			c := ev.Certificate
			if c == nil {
				t.Fatal("no certificate")
			}
			if c.ID != "policy:"+cbPolicyID || c.PolicyID != cbPolicyID || c.PolicyNo != "PLM-QGTGSXI" ||
				c.InsuredID != cbAccountID || c.Revision != "2021-05-14T09:20:45.501Z" || !strings.Contains(c.DocumentURL, "/certificate.pdf?") {
				t.Errorf("certificate = %+v", c)
			}
		}},
		{"policy_endorsement_document.json", "policy.endorsement.document", KindDocument, ActionDocument, cbPolicyID, cbPolicyID, "2021-08-02T17:40:11.930+0000", "Endorsement", func(t *testing.T, ev Event) {
			if ev.Document == nil || ev.Document.Type != "Endorsement" || ev.Document.Reason != "" {
				t.Errorf("document = %+v", ev.Document)
			}
		}},
		{"policy_non_renewal_carrier_change.json", "policy.non-renewal.document", KindDocument, ActionDocument, cbNRPolicy, cbNRPolicy, seedModified, "Non_Renewal", func(t *testing.T, ev Event) {
			d := ev.Document
			if d == nil || d.Type != "Non_Renewal" || !strings.Contains(d.Reason, "due to a carrier change") || !strings.Contains(d.URL, "X-Amz-Signature") {
				t.Errorf("document = %+v", d)
			}
			if ev.Policy == nil || !ev.Policy.EndDate.Equal(time.Date(2021, 5, 26, 0, 0, 0, 0, time.UTC)) || ev.Policy.ProductType != "P100" {
				t.Errorf("policy (expiresOn → EndDate) = %+v", ev.Policy)
			}
		}},
		{"policy_non_renewal_underwriting.json", "policy.non-renewal.document", KindDocument, ActionDocument, cbNRPolicy, cbNRPolicy, seedModified, "Non_Renewal", func(t *testing.T, ev Event) {
			if ev.Document == nil || !strings.Contains(ev.Document.Reason, "underwriting guidelines") {
				t.Errorf("document = %+v", ev.Document)
			}
		}},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.typ] = true
		t.Run(c.file, func(t *testing.T) {
			ev := mustParse(t, SourceCowbell, "cowbell/"+c.file)
			if ev.Type != c.typ || ev.EntityKind != c.kind || ev.Action != c.action || ev.EntityID != c.entityID {
				t.Fatalf("type/kind/action/id = %q/%q/%q/%q, want %q/%q/%q/%q", ev.Type, ev.EntityKind, ev.Action, ev.EntityID, c.typ, c.kind, c.action, c.entityID)
			}
			if want := Key("cowbell", c.typ, c.keyID, c.modified, c.docType); ev.IdempotencyKey != want {
				t.Errorf("key = %q, want %q", ev.IdempotencyKey, want)
			}
			if want, _ := time.Parse(cowbellLayout, c.modified); !ev.OccurredAt.Equal(want) || ev.OccurredAt.Location() != time.UTC {
				t.Errorf("OccurredAt = %v, want %v in UTC", ev.OccurredAt, want)
			}
			if ev.AgencyID != cbAgencyID {
				t.Errorf("AgencyID = %q", ev.AgencyID)
			}
			if ev.Insured == nil || ev.Insured.ID != cbAccountID || ev.Insured.Name != "Red Rock Test Company" {
				t.Errorf("insured = %+v", ev.Insured)
			}
			c.check(t, ev)
			assertNoDocumentURL(t, ev)
		})
	}
	for typ := range cowbellTypes {
		if !seen[typ] {
			t.Errorf("no fixture for %s", typ)
		}
	}
}

// assertNoDocumentURL checks that the pre-signed URL never leaves the process in
// the serialised Event (Raw aside: it is the body as received).
func assertNoDocumentURL(t *testing.T, ev Event) {
	t.Helper()
	url := ""
	if ev.Document != nil {
		url = ev.Document.URL
	}
	if ev.Certificate != nil && ev.Certificate.DocumentURL != "" {
		url = ev.Certificate.DocumentURL
	}
	ev.Raw = nil
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("X-Amz-")) || (url != "" && bytes.Contains(b, []byte(url))) {
		t.Errorf("serialised event carries the document URL: %s", b)
	}
}

// TestParseCowbellBroken: the seed's own broken samples, and one fixture per
// mistake, are answered with a *SyntaxError that locates and names the problem.
func TestParseCowbellBroken(t *testing.T) {
	cases := map[string][]string{
		"missing_brace.json":                   {"byte 7 (line 1, column 7)", "invalid character ':' after top-level value", "without the opening '{'"},
		"seed_non_renewal_carrier_change.json": {"line 1, column 7", "without the opening '{'"},
		"seed_non_renewal_underwriting.json":   {"line 1, column 7", "without the opening '{'"},
		"typographic_quotes.json":              {"line 20, column 1", `'“' (U+201C)`, "use straight \" quotes"},
		"newline_in_string.json":               {"line 23, column", `invalid character '\n' in string literal`, "must be escaped"},
		"truncated":                            {"unexpected end of JSON input", "truncated"},
	}
	for file, wants := range cases {
		t.Run(file, func(t *testing.T) {
			var body []byte
			if file == "truncated" {
				full := readFixture(t, "cowbell/policy_status.json")
				body = full[:len(full)/2]
			} else {
				body = readFixture(t, "cowbell/broken/"+file)
			}
			_, err := Parse(SourceCowbell, body, received)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *SyntaxError", err)
			}
			if errors.Is(err, ErrUnknownShape) {
				t.Errorf("syntax error also marked unknown shape: %v", err)
			}
			for _, w := range wants {
				if !strings.Contains(se.Error(), w) {
					t.Errorf("error %q does not say %q", se.Error(), w)
				}
			}
			if bytes.Contains([]byte(se.Error()), []byte("X-Amz")) {
				t.Errorf("error message leaks body content: %q", se.Error())
			}
		})
	}
}

func TestParseCowbellUnknownShapes(t *testing.T) {
	cases := map[string]string{
		`[]`:                                     "Cowbell body is an array",
		`"quote.status"`:                         "Cowbell body is a string",
		`{}`:                                     "without meta",
		`{"meta": null, "data": {}}`:             "without meta",
		`{"meta": "quote.status", "data": {}}`:   "meta is a string",
		`{"meta": {"event": {}}, "data": {}}`:    "meta.event is an object",
		`{"meta": {}, "data": {"quoteId": "q"}}`: "meta.event missing",
		`{"meta": {"event": "claim.status"}}`:    `unknown Cowbell meta.event "claim.status"`,
		`{"meta": {"event": "quote.status"}}`:    "quote.status without data",
		`{"meta": {"event": "quote.status"}, "data": {"quoteStatus": ["READY"]}}`:          "data.quoteStatus is an array",
		`{"meta": {"event": "quote.status"}, "data": [1]}`:                                 "data is an array",
		`{"meta": {"event": "quote.status"}, "data": {"quoteId": {"id": 1}}}`:              "data.quoteId is an object",
		`{"meta": {"event": "quote.status"}, "data": {"policyId": "p", "accountId": "a"}}`: "quote.status without data.quoteId",
		`{"meta": {"event": "policy.status"}, "data": {"quoteId": "q"}}`:                   "policy.status without data.policyId",
		`{"meta": {"event": "account.status"}, "data": {"policyId": "p"}}`:                 "account.status without data.accountId",
		`{"meta": {"event": "policy.document"}, "data": {"accountId": "a"}}`:               "policy.document without data.policyId",
		`{"meta": {"event": "policy.certificate"}, "data": {"accountId": "a"}}`:            "without data.certificateId or data.policyId",
		`{"meta": {"event": "policy.non-renewal.document"}, "data": {"policyId": "  "}}`:   "without data.policyId",
	}
	for body, reason := range cases {
		_, err := Parse(SourceCowbell, []byte(body), received)
		if !errors.Is(err, ErrUnknownShape) {
			t.Errorf("%s: err = %v, want ErrUnknownShape", body, err)
			continue
		}
		if !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: err = %q, want it to say %q", body, err, reason)
		}
	}
}

func TestParseCowbellTolerance(t *testing.T) {
	// Case-insensitive names, numbers where strings are expected, RFC 3339 and
	// no-millisecond dates, an upper-case event name.
	body := `{"Meta": {"Event": "Policy.Status"}, "DATA": {"PolicyID": "ABC-1", "policyNumber": 12345,
		"policyStatus": "CANCELLED", "modified": "2021-05-13T06:07:54Z", "effectiveDate": "2021-05-26T00:00:00+0000",
		"customerPhone": 1234121321, "accountId": null}}`
	ev, err := Parse(SourceCowbell, []byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "policy.status" || ev.EntityID != "abc-1" || ev.Policy.Number != "12345" || ev.Policy.Status != "CANCELLED" {
		t.Errorf("event = %+v, policy %+v", ev, ev.Policy)
	}
	if !ev.OccurredAt.Equal(time.Date(2021, 5, 13, 6, 7, 54, 0, time.UTC)) || !ev.Policy.EffectiveDate.Equal(time.Date(2021, 5, 26, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("dates: %v %v", ev.OccurredAt, ev.Policy.EffectiveDate)
	}
	if ev.Customer == nil || ev.Customer.Phone != "1234121321" || ev.Insured != nil {
		t.Errorf("customer %+v insured %+v", ev.Customer, ev.Insured)
	}

	// An explicit certificate id wins over the policy-derived one.
	body = `{"meta": {"event": "policy.certificate"}, "data": {"certificateId": "CERT-9", "policyId": "p1", "modified": "2021-05-13T06:07:54.407+0000"}}`
	ev, err = Parse(SourceCowbell, []byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	if ev.EntityID != "cert-9" || ev.Certificate.ID != "cert-9" || ev.Certificate.PolicyID != "p1" || ev.Document.Type != "certificate" {
		t.Errorf("certificate event = %+v %+v %+v", ev, ev.Certificate, ev.Document)
	}
	if want := Key("cowbell", "policy.certificate", "cert-9", "2021-05-13T06:07:54.407+0000", "certificate"); ev.IdempotencyKey != want {
		t.Errorf("key = %q, want %q", ev.IdempotencyKey, want)
	}
}

func TestParseCowbellIdempotency(t *testing.T) {
	body := readFixture(t, "cowbell/policy_non_renewal_carrier_change.json")
	a, err := Parse(SourceCowbell, body, received)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(SourceCowbell, body, received.Add(time.Hour))
	if err != nil || b.ID != a.ID {
		t.Fatalf("redelivery: %q vs %q (%v)", b.ID, a.ID, err)
	}
	// A fresh pre-signed URL on redelivery does not make it a new event.
	resigned := bytes.Replace(body, []byte("SIGNATURE-DO-NOT-LOG-0001"), []byte("SIGNATURE-DO-NOT-LOG-9999"), 1)
	if c, err := Parse(SourceCowbell, resigned, received); err != nil || c.ID != a.ID {
		t.Errorf("re-signed URL: %q vs %q (%v)", c.ID, a.ID, err)
	}
	for name, change := range map[string][2]string{
		"modified": {"2021-05-13T06:07:54.407+0000", "2021-05-13T06:07:55.000+0000"},
		"docType":  {`"Non_Renewal"`, `"Non_Renewal_Amended"`},
		"policyId": {cbNRPolicy, "00000000-1111-2222-3333-444444444444"},
		"event":    {"policy.non-renewal.document", "policy.document"},
	} {
		other := bytes.Replace(body, []byte(change[0]), []byte(change[1]), 1)
		if bytes.Equal(other, body) {
			t.Fatalf("%s: fixture changed", name)
		}
		ev, err := Parse(SourceCowbell, other, received)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ev.ID == a.ID {
			t.Errorf("different %s gave the same ID", name)
		}
	}
	// Without "modified", the key falls back to a hash of data: stable for one
	// body, different for another.
	noMod := []byte(`{"meta":{"event":"quote.status"},"data":{"quoteId":"q1","quoteStatus":"READY"}}`)
	x, err1 := Parse(SourceCowbell, noMod, received)
	y, err2 := Parse(SourceCowbell, noMod, received)
	z, err3 := Parse(SourceCowbell, bytes.Replace(noMod, []byte("READY"), []byte("BOUND"), 1), received)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if x.ID != y.ID || x.ID == z.ID || !x.OccurredAt.IsZero() {
		t.Errorf("no modified: %q %q %q, occurredAt %v", x.ID, y.ID, z.ID, x.OccurredAt)
	}
}

func TestRedactBody(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"no url", `{"a":"b"}`, `{"a":"b"}`},
		{"straight", `{"data":{"documentUrl": "https://x/y?X-Amz-Signature=abc","docType":"P"}}`,
			`{"data":{"documentUrl": "[redacted]","docType":"P"}}`},
		{"escapes and case", `{"DocumentURL":"https:\/\/x\/y?a=\"b\"&s=1"}`, `{"DocumentURL":"[redacted]"}`},
		{"two", `[{"documentUrl":"u1"},{"documentUrl":"u2"}]`, `[{"documentUrl":"[redacted]"},{"documentUrl":"[redacted]"}]`},
		{"empty and null", `{"documentUrl":"","x":{"documentUrl":null}}`, `{"documentUrl":"","x":{"documentUrl":null}}`},
		{"typographic", "“documentUrl”: “https://x/y?X-Amz-Signature=abc”,\n", "“documentUrl”: “[redacted]”,\n"},
		{"broken, unterminated", `{"documentUrl": "https://x/y?X-Amz-Signature=abc`, `{"documentUrl": "[redacted]`},
		{"name inside another string", `{"note":"see documentUrl:","documentUrl":"https://secret"}`, `{"documentUrl":"[redacted]","note":"see documentUrl:"}`},
	}
	for _, c := range cases {
		got := string(RedactBody([]byte(c.in)))
		if got != c.want {
			t.Errorf("%s: RedactBody(%s) = %s, want %s", c.name, c.in, got, c.want)
		}
		if json.Valid([]byte(c.in)) && !json.Valid([]byte(got)) {
			t.Errorf("%s: valid JSON became invalid: %s", c.name, got)
		}
	}
	// Every fixture, valid or broken, loses its signature.
	files, _ := filepath.Glob("testdata/cowbell/*/*.json")
	more, _ := filepath.Glob("testdata/cowbell/*.json")
	for _, f := range append(files, more...) {
		b, _ := os.ReadFile(f)
		if out := RedactBody(b); bytes.Contains(out, []byte("X-Amz-Signature")) {
			t.Errorf("%s: signature left after redaction:\n%s", f, out)
		}
	}
}

func TestParseRedactsPresignedDocumentURL(t *testing.T) {
	body := []byte(`{"meta":{"event":"policy.document"},"data":{"policyId":"p-1","policyNumber":"PLM-1",` +
		`"modified":"2021-05-13T06:07:54.407+0000","docType":"Policy","documentUrl":"https://bucket.example/p.pdf?X-Amz-Signature=abc"}}`)
	ev, err := Parse(SourceCowbell, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ev.Raw, []byte("X-Amz-Signature")) || !json.Valid(ev.Raw) {
		t.Fatalf("Raw keeps the pre-signed link or is no longer JSON: %s", ev.Raw)
	}
	if ev.Document == nil || ev.Document.URL == "" {
		t.Fatal("the parsed document lost its URL (needed for a prompt fetch)")
	}
}
