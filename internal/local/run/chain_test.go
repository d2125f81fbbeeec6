package run

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/xuri/excelize/v2"

	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// The ids the events/webhook/ files carry: they are the NowCerts sandbox's
// seeded ids (upper case, as NowCerts writes GUIDs) and the Cowbell sample's
// account.
const (
	chainReadyCert   = "3F2B6C1E-8A4D-4E0F-9B1A-2C5D7E8F9A01" // nowcerts-certificateholder-insert.json
	chainPendingCert = "E5C1A7B3-2D4F-4E6A-B8C0-9D1E3F5A7B92" // nowcerts-certificateholder-update.json
	chainAcme        = "7b1e4a52-3c9d-4f60-a8e2-51d0c3b9e7a4" // both files' insured
	chainCowbellAcct = "877e9ee2-8ee0-4fe3-9658-b9cae24303f7" // cowbell-quote-status.json
)

// chainDeadline bounds every wait of TestFullChain (generous: the chain
// normally settles within a few seconds; this only stops a broken one).
const chainDeadline = 2 * time.Minute

// chain is the running system as a `make run` user sees it: the URLs and
// token of local.json, the sandboxes' admin APIs at the URLs local.json gives.
type chain struct {
	t    *testing.T
	sys  *System
	info Info
	hc   *http.Client
}

// TestFullChain drives the whole system through `coiflow run`'s code path
// (run.Start with every function builder, the sandboxes run starts, DynamoDB
// Local + moto, the SQS pollers delivering jobs) with the events/webhook/
// files, and checks what the issues' "With make run" lines promise:
// NowCerts holder event → one SendCertificate and a SENT record; a held
// certificate listed, not sent, then approved → Approve then SendCertificate;
// a Cowbell quote.status → company and contact in the CRM; the send → a note on
// the insured; the page and the day's exports.
func TestFullChain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts DynamoDB Local, moto, the sandboxes and every function")
	}
	c := startChain(t)

	for name, fi := range c.info.Functions {
		if name == "token-refresher" {
			continue // scheduled (every 30m), not exercised here
		}
		if fi.Status != "running" {
			t.Fatalf("function %s is %q, want running (every builder was given)", name, fi.Status)
		}
	}
	for _, sb := range []string{"nowcerts", "crm"} {
		if c.info.Sandboxes[sb] == "" {
			t.Fatalf("local.json names no %s sandbox: %+v", sb, c.info.Sandboxes)
		}
	}

	// Deliver everything up front: the checks below poll for the outcomes.
	insert := webhookBody(t, "nowcerts-certificateholder-insert.json")
	first := c.postWebhook("nowcerts", insert)
	second := c.postWebhook("nowcerts", insert)
	if first != second {
		t.Errorf("the same NowCerts body got event ids %s and %s", first, second)
	}
	c.postWebhook("nowcerts", webhookBody(t, "nowcerts-certificateholder-update.json"))
	c.postWebhook("cowbell", webhookBody(t, "cowbell-quote-status.json"))

	var sent sendView
	ok := t.Run("holder insert twice sends once", func(t *testing.T) {
		c := c.with(t)
		sent = c.waitSend(chainReadyCert, func(s sendView) bool { return s.Status == "SENT" })
		// Both deliveries have been processed once the send queue is empty.
		c.waitQueueEmpty("SendJobsQueue")

		calls := c.nowcertsCalls("SendCertificate/SendCertificate")
		if n := len(callsFor(calls, chainReadyCert)); n != 1 {
			t.Fatalf("the NowCerts sandbox received %d SendCertificate calls for %s, want 1: %+v", n, chainReadyCert, calls)
		}
		var sends []nowcertssandbox.Send
		c.adminGet(c.info.Sandboxes["nowcerts"]+"/_sandbox/sends", &sends)
		var got []nowcertssandbox.Send
		for _, s := range sends {
			if strings.EqualFold(s.CertificateID, chainReadyCert) {
				got = append(got, s)
			}
		}
		if len(got) != 1 {
			t.Fatalf("sandbox sends of %s: %+v", chainReadyCert, got)
		}
		s := got[0]
		if !slices.ContainsFunc(s.HolderIDs, func(id string) bool { return strings.EqualFold(id, nowcertssandbox.SeedHolderEmail) }) ||
			!slices.Equal(s.Emails, []string{"coi@northwind-pm.example"}) {
			t.Errorf("sandbox send: holders %v emails %v, want holder %s and coi@northwind-pm.example", s.HolderIDs, s.Emails, nowcertssandbox.SeedHolderEmail)
		}

		if !strings.EqualFold(sent.HolderID, nowcertssandbox.SeedHolderEmail) || sent.HolderEmail != "coi@northwind-pm.example" {
			t.Errorf("send record: holder %q email %q", sent.HolderID, sent.HolderEmail)
		}
		if all := c.sends(chainReadyCert); len(all) != 1 {
			t.Errorf("GET /api/sends?certificateId=%s lists %d records, want 1: %+v", chainReadyCert, len(all), all)
		}
	})

	t.Run("held certificate is approved, then sent", func(t *testing.T) {
		c := c.with(t)
		var hold holdView
		c.eventually("the hold of "+chainPendingCert+" in GET /api/holds", func() (bool, string) {
			var list struct {
				Holds []holdView `json:"holds"`
			}
			c.api(http.MethodGet, "/api/holds", nil, http.StatusOK, &list)
			for _, h := range list.Holds {
				if strings.EqualFold(h.CertificateID, chainPendingCert) {
					hold = h
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d holds, none for the certificate", len(list.Holds))
		})
		for _, want := range []string{"additional insured", "waiver of subrogation"} {
			if !slices.ContainsFunc(hold.Reasons, func(r string) bool { return strings.Contains(strings.ToLower(r), want) }) {
				t.Errorf("hold reasons %q lack %q", hold.Reasons, want)
			}
		}
		if !strings.EqualFold(hold.HolderID, nowcertssandbox.SeedHolderBoth) {
			t.Errorf("hold holder %q, want %s", hold.HolderID, nowcertssandbox.SeedHolderBoth)
		}
		// Every job has been processed: nothing may have been sent for it.
		c.waitQueueEmpty("SendJobsQueue")
		if n := len(callsFor(c.nowcertsCalls("SendCertificate/SendCertificate"), chainPendingCert)); n != 0 {
			t.Fatalf("%d SendCertificate calls for the held certificate before approval", n)
		}
		if n := len(c.nowcertsCalls("SendCertificate/Approve")); n != 0 {
			t.Fatalf("%d Approve calls before approval", n)
		}

		var res struct {
			ApprovedBy string `json:"approvedBy"`
			Outcome    struct {
				Status  string   `json:"status"`
				SendIDs []string `json:"sendIds"`
			} `json:"outcome"`
		}
		c.api(http.MethodPost, "/api/holds/"+url.PathEscape(hold.ID)+"/approve", []byte(`{}`), http.StatusOK, &res)
		if res.Outcome.Status != "SENT" || res.ApprovedBy == "" {
			t.Errorf("approval answered %+v", res)
		}

		approves := c.nowcertsCalls("SendCertificate/Approve")
		sendCalls := callsFor(c.nowcertsCalls("SendCertificate/SendCertificate"), chainPendingCert)
		if len(approves) != 1 || len(sendCalls) != 1 {
			t.Fatalf("after approval: %d Approve and %d SendCertificate calls for %s, want 1 and 1", len(approves), len(sendCalls), chainPendingCert)
		}
		if approves[0].Status != http.StatusOK || !strings.Contains(strings.ToLower(approves[0].Body), nowcertssandbox.SeedHistoricalPending) {
			t.Errorf("Approve call %+v: want 200 with the historical holder %s", approves[0], nowcertssandbox.SeedHistoricalPending)
		}
		if approves[0].Seq >= sendCalls[0].Seq {
			t.Errorf("Approve (call %d) did not come before SendCertificate (call %d)", approves[0].Seq, sendCalls[0].Seq)
		}
		if sendCalls[0].Status != http.StatusOK || !strings.Contains(sendCalls[0].Body, "risk@springfield.example") {
			t.Errorf("SendCertificate after approval: %+v", sendCalls[0])
		}
		rec := c.waitSend(chainPendingCert, func(s sendView) bool { return s.Status == "SENT" })
		if rec.ApprovedBy != res.ApprovedBy || rec.HolderEmail != "risk@springfield.example" {
			t.Errorf("approved send record: approvedBy %q (approval said %q), holder email %q", rec.ApprovedBy, res.ApprovedBy, rec.HolderEmail)
		}
	})

	t.Run("cowbell quote reaches the CRM", func(t *testing.T) {
		c := c.with(t)
		company := c.waitObject("companies", "cowbell:"+chainCowbellAcct, nil)
		if company.Properties["name"] != "Red Rock Test Company" {
			t.Errorf("company properties %v", company.Properties)
		}
		// The worker writes the contact, then associates it: wait for both.
		contact := c.waitObject("contacts", "cowbell:"+chainCowbellAcct+":customer", func(o crmsandbox.Object) bool {
			return slices.Contains(o.Associations["companies"], company.ID)
		})
		if contact.Properties["email"] != "customer@redrocktest.example" {
			t.Errorf("customer contact properties %v", contact.Properties)
		}
	})

	if ok {
		t.Run("the send is a note on the insured", func(t *testing.T) {
			c := c.with(t)
			insured := c.waitObject("companies", "nowcerts:"+chainAcme, nil)
			c.eventually("a note about the send on the insured "+insured.ID, func() (bool, string) {
				var notes []crmsandbox.Object
				c.adminGet(c.info.Sandboxes["crm"]+"/_sandbox/objects/notes", &notes)
				for _, n := range notes {
					body := strings.ToLower(n.Properties["hs_note_body"])
					if slices.Contains(n.Associations["companies"], insured.ID) &&
						strings.Contains(body, strings.ToLower(chainReadyCert)) && strings.Contains(body, " sent ") {
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d notes, none about the send", len(notes))
			})
		})

		t.Run("page and exports", func(t *testing.T) {
			c := c.with(t)
			status, h, _ := c.request(http.MethodGet, "/app", nil, false)
			if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); status != http.StatusOK || mt != "text/html" {
				t.Errorf("GET /app: %d %q", status, h.Get("Content-Type"))
			}

			created, err := time.Parse(time.RFC3339Nano, sent.CreatedAt)
			if err != nil {
				t.Fatalf("send createdAt %q: %v", sent.CreatedAt, err)
			}
			day := created.UTC().Format("2006-01-02")

			status, h, body := c.request(http.MethodGet, "/api/sends/export?format=xlsx&from="+day, nil, true)
			if status != http.StatusOK {
				t.Fatalf("xlsx export: %d %s", status, body)
			}
			if ct := h.Get("Content-Type"); !strings.Contains(ct, "spreadsheetml") {
				t.Errorf("xlsx export content type %q", ct)
			}
			f, err := excelize.OpenReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("excelize cannot open the export (%d bytes): %v", len(body), err)
			}
			defer f.Close()
			var rows [][]string
			for _, sh := range f.GetSheetList() {
				r, err := f.GetRows(sh)
				if err != nil {
					t.Fatalf("sheet %s: %v", sh, err)
				}
				rows = append(rows, r...)
			}
			if !hasSendRow(rows, sent) {
				t.Errorf("the XLSX has no row for send %s (%s, SENT): %q", sent.ID, chainReadyCert, rows)
			}

			status, h, body = c.request(http.MethodGet, "/api/sends/export?format=csv&from="+day, nil, true)
			if status != http.StatusOK {
				t.Fatalf("csv export: %d %s", status, body)
			}
			if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "text/csv" {
				t.Errorf("csv export content type %q", h.Get("Content-Type"))
			}
			recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatalf("encoding/csv cannot read the export: %v\n%s", err, body)
			}
			if !hasSendRow(recs, sent) {
				t.Errorf("the CSV has no row for send %s: %q", sent.ID, recs)
			}
		})
	}
}

// startChain starts the system as `coiflow run` does, with every builder and
// the pollers' long-poll shortened so that a test does not wait on it.
func startChain(t *testing.T) *chain {
	t.Helper()
	state := t.TempDir()
	var out bytes.Buffer
	logs := &lockedWriter{w: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sys, err := Start(ctx, Options{
		Addr: "127.0.0.1:0", StateDir: state, Stdout: logs, Log: logs,
		WaitTimeSeconds: 1, Prefix: "chain-" + strings.ToLower(t.Name()),
		Getenv: func(k string) string {
			if k == "LOG_LEVEL" {
				return "debug"
			}
			return "" // the sandboxes run starts, whatever the developer's environment says
		},
	})
	if err != nil {
		t.Fatalf("start the local system: %v", err)
	}
	t.Cleanup(func() {
		if err := sys.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("system output (last 200 lines):\n%s", tail(logs, 200))
		}
	})
	info, err := ReadInfo(filepath.Join(state, InfoFile))
	if err != nil {
		t.Fatal(err)
	}
	return &chain{t: t, sys: sys, info: info, hc: &http.Client{Timeout: time.Minute}}
}

func tail(l *lockedWriter, n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.w.(*bytes.Buffer).String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// with is c reporting to a subtest.
func (c *chain) with(t *testing.T) *chain {
	cc := *c
	cc.t = t
	return &cc
}

// eventually polls cond until it holds or chainDeadline passes (each wait
// has its own: a slow earlier step does not eat a later one's time).
func (c *chain) eventually(what string, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(chainDeadline)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("gave up waiting for %s: %s", what, detail)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// webhookBody reads the request body of an events/webhook/ file.
func webhookBody(t *testing.T, name string) []byte {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "events", "webhook", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if ev.IsBase64Encoded {
		raw, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return raw
	}
	return []byte(ev.Body)
}

// postWebhook posts body to the source's webhook URL from local.json and
// returns the event id of the 202.
func (c *chain) postWebhook(source string, body []byte) string {
	c.t.Helper()
	a := post(c.t, c.info.Webhooks[source], "application/json", body)
	id, _ := a.body["eventId"].(string)
	if a.status != http.StatusAccepted || id == "" {
		c.t.Fatalf("POST %s webhook: %d %s", source, a.status, a.raw)
	}
	return id
}

// request calls the API (with the staff token when auth) and returns the
// status, headers and body.
func (c *chain) request(method, path string, body []byte, auth bool) (int, http.Header, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.info.API+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.info.StaffToken)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// api calls the staff API and decodes a JSON answer of the wanted status.
func (c *chain) api(method, path string, body []byte, want int, out any) {
	c.t.Helper()
	status, _, b := c.request(method, path, body, true)
	if status != want {
		c.t.Fatalf("%s %s: %d %s (want %d)", method, path, status, b, want)
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
	}
}

// adminGet reads a sandbox admin URL into out.
func (c *chain) adminGet(u string, out any) {
	c.t.Helper()
	resp, err := c.hc.Get(u)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %v %s", u, resp.StatusCode, err, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("GET %s: %v in %s", u, err, b)
	}
}

type sendView struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	HolderID    string `json:"holderId"`
	HolderEmail string `json:"holderEmail"`
	ApprovedBy  string `json:"approvedBy"`
	CreatedAt   string `json:"createdAt"`
}

type holdView struct {
	ID            string   `json:"id"`
	CertificateID string   `json:"certificateId"`
	HolderID      string   `json:"holderId"`
	Reasons       []string `json:"reasons"`
}

// sends is GET /api/sends?certificateId=id.
func (c *chain) sends(certificateID string) []sendView {
	c.t.Helper()
	var list struct {
		Sends []sendView `json:"sends"`
	}
	c.api(http.MethodGet, "/api/sends?certificateId="+url.QueryEscape(certificateID), nil, http.StatusOK, &list)
	return list.Sends
}

// waitSend waits for a send record of the certificate that satisfies ok.
func (c *chain) waitSend(certificateID string, ok func(sendView) bool) sendView {
	c.t.Helper()
	var found sendView
	c.eventually("a matching send record of "+certificateID, func() (bool, string) {
		all := c.sends(certificateID)
		for _, s := range all {
			if ok(s) {
				found = s
				return true, ""
			}
		}
		return false, fmt.Sprintf("GET /api/sends lists %+v", all)
	})
	return found
}

// waitQueueEmpty waits until a work queue holds no message, visible or in
// flight, and checks that its DLQ is empty.
func (c *chain) waitQueueEmpty(logicalID string) {
	c.t.Helper()
	q := c.info.Queues[logicalID]
	cl := c.sys.SQS()
	depth := func(u string) (int, string) {
		out, err := cl.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			c.t.Fatal(err)
		}
		a := out.Attributes
		return atoi(a["ApproximateNumberOfMessages"]) + atoi(a["ApproximateNumberOfMessagesNotVisible"]), fmt.Sprint(a)
	}
	c.eventually(logicalID+" drained", func() (bool, string) {
		n, detail := depth(q.URL)
		return n == 0, detail
	})
	if q.DLQURL != "" {
		if n, detail := depth(q.DLQURL); n != 0 {
			c.t.Fatalf("%s's DLQ holds messages: %s", logicalID, detail)
		}
	}
}

// nowcertsCalls reads the NowCerts sandbox's recorded calls to an endpoint.
func (c *chain) nowcertsCalls(path string) []nowcertssandbox.Call {
	c.t.Helper()
	var calls []nowcertssandbox.Call
	c.adminGet(c.info.Sandboxes["nowcerts"]+"/_sandbox/calls?path="+url.QueryEscape(path), &calls)
	return calls
}

// callsFor keeps the calls whose JSON body names the certificate.
func callsFor(calls []nowcertssandbox.Call, certificateID string) []nowcertssandbox.Call {
	var out []nowcertssandbox.Call
	for _, c := range calls {
		var body map[string]any
		if json.Unmarshal([]byte(c.Body), &body) != nil {
			continue
		}
		for k, v := range body {
			if s, ok := v.(string); ok && strings.EqualFold(k, "CertificateId") && strings.EqualFold(s, certificateID) {
				out = append(out, c)
			}
		}
	}
	return out
}

// waitObject waits for a CRM sandbox object whose coi_external_id is ext and
// that satisfies ready (when not nil).
func (c *chain) waitObject(objectType, ext string, ready func(crmsandbox.Object) bool) crmsandbox.Object {
	c.t.Helper()
	var found crmsandbox.Object
	c.eventually(objectType+" "+ext+" in the CRM sandbox", func() (bool, string) {
		var objs []crmsandbox.Object
		c.adminGet(c.info.Sandboxes["crm"]+"/_sandbox/objects/"+objectType, &objs)
		for _, o := range objs {
			if o.Properties["coi_external_id"] != ext {
				continue
			}
			if ready != nil && !ready(o) {
				return false, fmt.Sprintf("%s %s is %+v", objectType, ext, o)
			}
			found = o
			return true, ""
		}
		return false, fmt.Sprintf("%d %s, none with coi_external_id %s", len(objs), objectType, ext)
	})
	return found
}

// hasSendRow reports whether an export's rows hold the send: its id, its
// certificate and the status SENT in one row.
func hasSendRow(rows [][]string, s sendView) bool {
	for _, r := range rows {
		var id, cert, status bool
		for _, cell := range r {
			id = id || cell == s.ID
			cert = cert || strings.EqualFold(cell, chainReadyCert)
			status = status || cell == "SENT"
		}
		if id && cert && status {
			return true
		}
	}
	return false
}
