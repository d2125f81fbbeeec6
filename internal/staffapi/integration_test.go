package staffapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/coiflow/coiflow/internal/testsupport"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/staffapi"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/wire"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// syncBuffer is the shared goroutine-safe log sink.
type syncBuffer = testsupport.Buffer

// stack is the api function as wire builds it, over DynamoDB Local, moto and
// the NowCerts sandbox, plus a send pipeline to create holds with.
type stack struct {
	api     lambda.Handler
	worker  *sending.Service
	sandbox *nowcertssandbox.Sandbox
	token   string
	apiLogs *syncBuffer
	store   *store.Store // the table the api function uses
	seq     atomic.Int64
}

func newStack(t *testing.T) *stack {
	t.Helper()
	env := testenv.Get(t)
	sb := nowcertssandbox.New(nowcertssandbox.Options{})
	baseURL, stop, err := sb.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close(); _ = stop() })

	user, pass := sb.Credentials()
	ncSecret, _ := json.Marshal(map[string]string{"username": user, "password": pass, "clientId": "ngAuthApp"})
	token := "staff-it-" + fmt.Sprint(time.Now().UnixNano())
	crmURL, _ := env.NewQueue(t, 0)
	vars := map[string]string{
		"TABLE_NAME":          env.NewTable(t),
		"CRM_QUEUE_URL":       crmURL,
		"NOWCERTS_SECRET_ARN": env.NewSecret(t, string(ncSecret)),
		"NOWCERTS_BASE_URL":   baseURL,
		"STAFF_AUTH":          "token",
		"STAFF_SECRET_ARN":    env.NewSecret(t, `{"tokens": ["`+token+`"], "names": {"robin@agency.example": "`+token+`-robin"}}`),
		"LOG_LEVEL":           "debug",
	}
	logs := &syncBuffer{}
	d := wire.Deps{Env: func(k string) string { return vars[k] }, AWS: env.AWS, Stdout: logs}
	api, err := wire.API(context.Background(), d)
	if err != nil {
		t.Fatalf("wire.API: %v", err)
	}
	// The send-worker side, to put holds in the table as a webhook would.
	wlog := obs.NewLogger(io.Discard, "info")
	nc, _, err := wire.NowCerts(wire.Deps{Env: d.Env, AWS: env.AWS, Stdout: io.Discard}, wlog, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(env.DynamoDB(), vars["TABLE_NAME"])
	worker := sending.New(sending.Deps{
		Store:    st,
		NowCerts: nc,
		Logger:   wlog,
	})
	return &stack{api: api, worker: worker, sandbox: sb, token: token, apiLogs: logs, store: st}
}

// call invokes the api function the way API Gateway does (payload 2.0 JSON in,
// JSON out) and decodes the JSON body into out (when non-nil).
func (s *stack) call(t *testing.T, auth, method, target, body string, out any) (events.APIGatewayV2HTTPResponse, string) {
	t.Helper()
	return s.callWith(t, auth, nil, method, target, body, out)
}

// callWith is call with extra request headers.
func (s *stack) callWith(t *testing.T, auth string, headers map[string]string, method, target, body string, out any) (events.APIGatewayV2HTTPResponse, string) {
	t.Helper()
	reqID := fmt.Sprintf("it-%d-%d", time.Now().UnixNano(), s.seq.Add(1))
	path, query, _ := strings.Cut(target, "?")
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "ANY /api/{proxy+}", RawPath: path, RawQueryString: query,
		Headers: map[string]string{"content-type": "application/json"}, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: "ANY /api/{proxy+}", Stage: "$default", RequestID: reqID,
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
		},
	}
	if auth != "" {
		ev.Headers["authorization"] = auth
	}
	for k, v := range headers {
		ev.Headers[k] = v
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.api.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("%s %s: invoke: %v", method, target, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("%s %s: response: %v: %s", method, target, err, raw)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal([]byte(resp.Body), out); err != nil {
			t.Fatalf("%s %s: body: %v: %s", method, target, err, resp.Body)
		}
	}
	return resp, reqID
}

// heldJob is a NowCerts certificate-holder insert for the sandbox's certificate
// pending approval, to City of Springfield (email and fax): the rules hold it.
func heldJob(now time.Time) jobs.Job {
	ev := event.Event{
		ID: "evt_staffapi_it_pending", IdempotencyKey: "nowcerts:CertificateHolder.Insert:it", Source: event.SourceNowCerts,
		Type: "CertificateHolder.Insert", Action: event.ActionInsert, EntityKind: event.KindCertificateHolder,
		EntityID: nowcertssandbox.SeedHolderBoth, OccurredAt: now.Add(-time.Minute), ReceivedAt: now,
		Certificate: &event.Certificate{
			ID: nowcertssandbox.SeedCertificatePending, Name: "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25)",
			InsuredID: nowcertssandbox.SeedInsuredAcme, Revision: "2026-02-02T11:05:00-05:00", PendingApproval: true,
			SpecialWording: true,
		},
		Holders: []event.Holder{{
			ID: nowcertssandbox.SeedHolderBoth, Name: "City of Springfield", Email: "risk@springfield.example", Fax: "(217) 555-0101",
		}},
		Insured: &event.Party{ID: nowcertssandbox.SeedInsuredAcme, Name: "Acme Builders LLC"},
	}
	return jobs.New(jobs.QueueSend, ev, "req-webhook-it", now)
}

// TestApproveThroughAPI: a held certificate is listed by the API, approved by
// POST (as the authenticated principal), and the NowCerts sandbox receives
// Approve and then SendCertificate; the send is then found by certificate id.
func TestApproveThroughAPI(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	bearer := "Bearer " + s.token

	if err := s.worker.Handle(ctx, heldJob(time.Now())); err != nil {
		t.Fatalf("send job: %v", err)
	}
	if n := len(s.sandbox.CallsTo("SendCertificate/SendCertificate")); n != 0 {
		t.Fatalf("a held certificate reached SendCertificate %d times before approval", n)
	}

	// Unauthenticated and wrong tokens are refused by the real wiring.
	if resp, _ := s.call(t, "", "GET", "/api/holds", "", nil); resp.StatusCode != 401 {
		t.Fatalf("no token: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, "Bearer "+s.token+"x", "GET", "/api/holds", "", nil); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, resp.Body)
	}

	var holds staffapi.HoldList
	if resp, _ := s.call(t, bearer, "GET", "/api/holds", "", &holds); resp.StatusCode != 200 {
		t.Fatalf("list holds: %d %s", resp.StatusCode, resp.Body)
	}
	if len(holds.Holds) != 1 {
		t.Fatalf("want 1 pending hold, got %+v", holds.Holds)
	}
	h := holds.Holds[0]
	if h.CertificateID != nowcertssandbox.SeedCertificatePending || h.HolderEmail != "risk@springfield.example" ||
		h.Status != sending.HoldPending || !slices.Contains(h.Reasons, sending.ReasonPendingApproval) ||
		!slices.Contains(h.Reasons, sending.ReasonSpecialWording) {
		t.Fatalf("hold: %+v", h)
	}

	var approved staffapi.ApproveResult
	resp, approveReq := s.call(t, bearer, "POST", "/api/holds/"+h.ID+"/approve", `{"note":"wording checked"}`, &approved)
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, resp.Body)
	}
	if approved.ApprovedBy != staffapi.LocalPrincipal || approved.Outcome.Status != sending.StatusSent || len(approved.Outcome.SendIDs) != 1 {
		t.Fatalf("approve result: %+v", approved)
	}
	sendID := approved.Outcome.SendIDs[0]

	// The sandbox: Approve with the historical holder, then one SendCertificate.
	var order []string
	for _, c := range s.sandbox.Calls() {
		if strings.Contains(c.Path, "SendCertificate/") && c.Status == 200 {
			order = append(order, c.Path[strings.LastIndex(c.Path, "/")+1:])
		}
	}
	if !slices.Equal(order, []string{"Approve", "SendCertificate"}) {
		t.Fatalf("NowCerts calls after approval: %v, want [Approve SendCertificate]", order)
	}
	if a := s.sandbox.Approvals(); len(a) != 1 || !slices.Equal(a[0].IDs, []string{nowcertssandbox.SeedHistoricalPending}) {
		t.Fatalf("approvals: %+v", a)
	}
	sends := s.sandbox.Sends()
	if len(sends) != 1 || sends[0].CertificateID != nowcertssandbox.SeedCertificatePending ||
		!slices.Contains(sends[0].Emails, "risk@springfield.example") {
		t.Fatalf("sandbox sends: %+v", sends)
	}

	// Approving again is a conflict; nothing more reaches NowCerts.
	if resp, _ := s.call(t, bearer, "POST", "/api/holds/"+h.ID+"/approve", "", nil); resp.StatusCode != 409 {
		t.Fatalf("second approve: %d %s", resp.StatusCode, resp.Body)
	}
	if n := len(s.sandbox.Sends()); n != 1 {
		t.Fatalf("second approve sent again: %d sends", n)
	}

	// Who got what, when: by certificate, and by id.
	var page staffapi.SendList
	if resp, _ := s.call(t, bearer, "GET", "/api/sends?certificateId="+nowcertssandbox.SeedCertificatePending, "", &page); resp.StatusCode != 200 {
		t.Fatalf("query sends: %d %s", resp.StatusCode, resp.Body)
	}
	if len(page.Sends) != 1 {
		t.Fatalf("sends for the certificate: %+v", page.Sends)
	}
	rec := page.Sends[0]
	if rec.ID != sendID || rec.Status != sending.StatusSent || rec.ApprovedBy != staffapi.LocalPrincipal || rec.HoldID != h.ID ||
		rec.HolderEmail != "risk@springfield.example" || rec.RequestID != approveReq || rec.SentAt == "" {
		t.Fatalf("send record: %+v (approve request %s)", rec, approveReq)
	}
	var one staffapi.SendView
	if resp, _ := s.call(t, bearer, "GET", "/api/sends/"+sendID, "", &one); resp.StatusCode != 200 || one.ID != sendID {
		t.Fatalf("get send: %d %s", resp.StatusCode, resp.Body)
	}
	day := time.Now().UTC().Format("2006-01-02")
	if resp, _ := s.call(t, bearer, "GET", "/api/sends?from="+day+"&to="+day+"&status=sent", "", &page); resp.StatusCode != 200 ||
		len(page.Sends) != 1 || page.Sends[0].ID != sendID {
		t.Fatalf("sends of the day: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, bearer, "GET", "/api/holds?status=approved", "", &holds); resp.StatusCode != 200 ||
		len(holds.Holds) != 1 || holds.Holds[0].DecidedBy != staffapi.LocalPrincipal {
		t.Fatalf("approved holds: %d %s", resp.StatusCode, resp.Body)
	}

	// An explicit resend, by a named token: a second SendCertificate, linked.
	var resent staffapi.ResendResult
	if resp, _ := s.call(t, bearer+"-robin", "POST", "/api/sends/"+sendID+"/resend", `{"reason":"holder lost the email"}`, &resent); resp.StatusCode != 200 {
		t.Fatalf("resend: %d %s", resp.StatusCode, resp.Body)
	}
	if resent.RequestedBy != "robin@agency.example" || resent.Outcome.Status != sending.StatusSent || len(resent.Outcome.SendIDs) != 1 {
		t.Fatalf("resend result: %+v", resent)
	}
	if n := len(s.sandbox.Sends()); n != 2 {
		t.Fatalf("resend: %d sandbox sends, want 2", n)
	}
	var again staffapi.SendView
	if resp, _ := s.call(t, bearer, "GET", "/api/sends/"+resent.Outcome.SendIDs[0], "", &again); resp.StatusCode != 200 ||
		again.ResendOf != sendID || again.ResendBy != "robin@agency.example" || again.ResendReason != "holder lost the email" {
		t.Fatalf("resend record: %d %s", resp.StatusCode, resp.Body)
	}

	// Unknown ids are 404s from the real store.
	if resp, _ := s.call(t, bearer, "GET", "/api/sends/snd_nope", "", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown send: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, bearer, "POST", "/api/holds/hold_nope/reject", `{"reason":"x"}`, nil); resp.StatusCode != 404 {
		t.Fatalf("unknown hold: %d %s", resp.StatusCode, resp.Body)
	}

	// The api function's logs: request ids and principals, no token, no holder email in clear.
	logs := s.apiLogs.String()
	if !strings.Contains(logs, approveReq) || !strings.Contains(logs, `"principal":"local-staff"`) {
		t.Fatalf("api logs lack the request id or principal:\n%s", logs)
	}
	if strings.Contains(logs, s.token) || strings.Contains(logs, "risk@springfield.example") {
		t.Fatalf("api logs leak a token or a holder email:\n%s", logs)
	}
}

// TestRejectThroughAPI: a rejected hold is never sent and is listed as rejected.
func TestRejectThroughAPI(t *testing.T) {
	s := newStack(t)
	bearer := "Bearer " + s.token
	if err := s.worker.Handle(context.Background(), heldJob(time.Now())); err != nil {
		t.Fatalf("send job: %v", err)
	}
	var holds staffapi.HoldList
	if resp, _ := s.call(t, bearer, "GET", "/api/holds?status=pending", "", &holds); resp.StatusCode != 200 || len(holds.Holds) != 1 {
		t.Fatalf("list holds: %d %s", resp.StatusCode, resp.Body)
	}
	id := holds.Holds[0].ID
	if resp, _ := s.call(t, bearer, "POST", "/api/holds/"+id+"/reject", `{}`, nil); resp.StatusCode != 400 {
		t.Fatalf("reject without reason: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, bearer, "POST", "/api/holds/"+id+"/reject", `{"reason":"wording not agreed"}`, nil); resp.StatusCode != 200 {
		t.Fatalf("reject: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, bearer, "POST", "/api/holds/"+id+"/approve", "", nil); resp.StatusCode != 409 {
		t.Fatalf("approve after reject: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := s.call(t, bearer, "GET", "/api/holds?status=rejected", "", &holds); resp.StatusCode != 200 || len(holds.Holds) != 1 ||
		holds.Holds[0].Reason != "wording not agreed" || holds.Holds[0].DecidedBy != staffapi.LocalPrincipal {
		t.Fatalf("rejected holds: %d %s", resp.StatusCode, resp.Body)
	}
	if n := len(s.sandbox.CallsTo("SendCertificate/")); n != 0 {
		t.Fatalf("a rejected hold reached NowCerts: %d calls", n)
	}
}
