package staffapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sending"
)

const staffEmail = "pat@agency.example"

type harness struct {
	srv  *Server
	fake *fakeSending
	crm  *fakeCRMFailures
	logs *bytes.Buffer
}

func newHarness(t *testing.T, auth Authenticator) *harness {
	t.Helper()
	h := &harness{fake: newFake(), crm: newFakeCRMFailures(), logs: &bytes.Buffer{}}
	srv, err := New(Config{Sending: h.fake, Auth: auth, CRMFailures: h.crm, Logger: obs.NewLogger(h.logs, "debug")})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

func jwtHarness(t *testing.T) *harness {
	t.Helper()
	a, err := NewAuthenticator(AuthJWT, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return newHarness(t, a)
}

// event builds an HTTP API request for target ("/api/sends?x=y") as API Gateway
// would after its JWT authorizer accepted a token for staffEmail.
func event(method, target, body string) events.APIGatewayV2HTTPRequest {
	path, query, _ := strings.Cut(target, "?")
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "ANY /api/{proxy+}", RawPath: path, RawQueryString: query,
		Headers: map[string]string{"content-type": "application/json", "authorization": "Bearer eyJ.jwt.sig"},
		Body:    body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: "ANY /api/{proxy+}", Stage: "$default", RequestID: "req-test-1",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
					Claims: map[string]string{"sub": "3f2c-uuid", "email": staffEmail},
				},
			},
		},
	}
	return ev
}

// do runs ev through the handler and decodes the JSON body.
func (h *harness) do(t *testing.T, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, map[string]any) {
	t.Helper()
	resp, err := h.srv.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	if ct := resp.Headers["Content-Type"]; ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if resp.Headers["X-Request-Id"] == "" {
		t.Fatalf("no X-Request-Id header")
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, resp.Body)
	}
	return resp, body
}

// wantError checks an error response: status, {"error","requestId"} only, and
// that the message contains each of parts.
func wantError(t *testing.T, resp events.APIGatewayV2HTTPResponse, body map[string]any, status int, parts ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, resp.Body)
	}
	if len(body) != 2 {
		t.Fatalf("error body has keys other than error and requestId: %s", resp.Body)
	}
	msg, _ := body["error"].(string)
	if msg == "" {
		t.Fatalf("no error message: %s", resp.Body)
	}
	if rid, _ := body["requestId"].(string); rid == "" || rid != resp.Headers["X-Request-Id"] {
		t.Fatalf("requestId %q does not match header %q", rid, resp.Headers["X-Request-Id"])
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Fatalf("error %q does not mention %q", msg, p)
		}
	}
}

func TestRouting(t *testing.T) {
	cases := []struct {
		method, target, body string
		status               int
		allow                string
	}{
		{"GET", "/api/holds", "", 200, ""},
		{"GET", "/api/holds/", "", 200, ""},
		{"POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", "", 200, ""},
		{"POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/reject", `{"reason":"no"}`, 200, ""},
		{"GET", "/api/sends", "", 200, ""},
		{"GET", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1", "", 200, ""},
		{"POST", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1/resend", `{"reason":"lost"}`, 200, ""},
		{"get", "/api/holds", "", 200, ""}, // method case
		{"GET", "/api/nothing", "", 404, ""},
		{"GET", "/", "", 404, ""},
		{"GET", "/api", "", 404, ""},
		{"GET", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2", "", 404, ""},
		{"GET", "/api/holds//approve", "", 404, ""},
		{"GET", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve/extra", "", 404, ""},
		{"DELETE", "/api/holds", "", 405, "GET"},
		{"GET", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", "", 405, "POST"},
		{"POST", "/api/sends", "", 405, "GET"},
		{"PUT", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1", "", 405, "GET"},
		{"GET", "/api/sends/x/resend", "", 405, "POST"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			h := jwtHarness(t)
			resp, body := h.do(t, event(c.method, c.target, c.body))
			if resp.StatusCode != c.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, c.status, resp.Body)
			}
			if c.status >= 400 {
				wantError(t, resp, body, c.status)
			}
			if got := resp.Headers["Allow"]; got != c.allow {
				t.Fatalf("Allow = %q, want %q", got, c.allow)
			}
		})
	}
}

func TestRoutingEscapedIDAndStage(t *testing.T) {
	h := jwtHarness(t)
	// An id with a slash, percent-encoded in the path, reaches the service whole.
	resp, body := h.do(t, event("POST", "/api/holds/hold%2Fodd%20id/approve", ""))
	wantError(t, resp, body, 404)
	if got := h.fake.approvals[0].ID; got != "hold/odd id" {
		t.Fatalf("approved id %q, want the unescaped segment", got)
	}
	// A bad escape matches nothing.
	resp, body = h.do(t, event("GET", "/api/sends/%zz", ""))
	wantError(t, resp, body, 404)

	// A named stage prefixes rawPath; the router strips it.
	ev := event("GET", "/dev/api/sends/snd_3c8e1a7f9d2b46e0c5a1", "")
	ev.RequestContext.Stage = "dev"
	resp, body = h.do(t, ev)
	if resp.StatusCode != 200 || body["id"] != "snd_3c8e1a7f9d2b46e0c5a1" {
		t.Fatalf("staged request: %d %s", resp.StatusCode, resp.Body)
	}
	// Without rawPath, requestContext.http.path is used.
	ev = event("GET", "/api/holds", "")
	ev.RawPath = ""
	if resp, _ := h.do(t, ev); resp.StatusCode != 200 {
		t.Fatalf("http.path fallback: %d %s", resp.StatusCode, resp.Body)
	}
}

func TestLookupPrefersLiterals(t *testing.T) {
	serve := func(context.Context, *request) (response, error) { return response{}, nil }
	// Whatever the order, /api/sends/export beats /api/sends/{id}.
	for _, routes := range [][]route{
		{newRoute("GET", "/api/sends/{id}", serve), newRoute("GET", "/api/sends/export", serve)},
		{newRoute("GET", "/api/sends/export", serve), newRoute("GET", "/api/sends/{id}", serve)},
	} {
		res := lookup(routes, "GET", "/api/sends/export")
		if res.route == nil || res.route.pattern != "/api/sends/export" {
			t.Fatalf("export route not chosen: %+v", res.route)
		}
		res = lookup(routes, "GET", "/api/sends/s-1")
		if res.route == nil || res.route.pattern != "/api/sends/{id}" || res.params["id"] != "s-1" {
			t.Fatalf("id route not chosen: %+v %v", res.route, res.params)
		}
	}
}

func TestJWTAuth(t *testing.T) {
	t.Run("email claim is the principal", func(t *testing.T) {
		h := jwtHarness(t)
		resp, body := h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", ""))
		if resp.StatusCode != 200 || body["approvedBy"] != staffEmail || h.fake.approvals[0].By != staffEmail {
			t.Fatalf("approve as %q: %d %s", h.fake.approvals, resp.StatusCode, resp.Body)
		}
	})
	t.Run("sub when no email", func(t *testing.T) {
		h := jwtHarness(t)
		ev := event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/reject", `{"reason":"x"}`)
		delete(ev.RequestContext.Authorizer.JWT.Claims, "email")
		resp, _ := h.do(t, ev)
		if resp.StatusCode != 200 || h.fake.rejections[0].By != "3f2c-uuid" {
			t.Fatalf("reject as %v: %d %s", h.fake.rejections, resp.StatusCode, resp.Body)
		}
	})
	refused := map[string]func(*events.APIGatewayV2HTTPRequest){
		"no authorizer": func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer = nil },
		"no jwt":        func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer.JWT = nil },
		"no claims":     func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer.JWT.Claims = nil },
		"blank email, no sub": func(ev *events.APIGatewayV2HTTPRequest) {
			ev.RequestContext.Authorizer.JWT.Claims = map[string]string{"email": " "}
		},
		"only other claims": func(ev *events.APIGatewayV2HTTPRequest) {
			ev.RequestContext.Authorizer.JWT.Claims = map[string]string{"iss": "x"}
		},
		"bearer is not enough": func(ev *events.APIGatewayV2HTTPRequest) {
			ev.RequestContext.Authorizer = nil
			ev.Headers["authorization"] = "Bearer t"
		},
	}
	for name, mutate := range refused {
		t.Run(name, func(t *testing.T) {
			h := jwtHarness(t)
			ev := event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", "")
			mutate(&ev)
			resp, body := h.do(t, ev)
			wantError(t, resp, body, 401)
			if resp.Headers["WWW-Authenticate"] != "Bearer" {
				t.Fatalf("no WWW-Authenticate header")
			}
			if len(h.fake.approvals) != 0 {
				t.Fatalf("the service was called without a principal")
			}
			// Unknown routes are not revealed to the unauthenticated either.
			ev.RawPath = "/api/secret-route"
			resp, body = h.do(t, ev)
			wantError(t, resp, body, 401)
		})
	}
}

func tokenHarness(t *testing.T, secret string) (*harness, *fakeSecrets) {
	t.Helper()
	sec := &fakeSecrets{values: map[string]string{"arn:staff": secret}}
	a, err := NewAuthenticator(AuthToken, sec, "arn:staff")
	if err != nil {
		t.Fatal(err)
	}
	return newHarness(t, a), sec
}

// tokenEvent is a local request (no authorizer) with the given Authorization.
func tokenEvent(method, target, body, authorization string) events.APIGatewayV2HTTPRequest {
	ev := event(method, target, body)
	ev.RequestContext.Authorizer = nil
	delete(ev.Headers, "authorization")
	if authorization != "" {
		ev.Headers["authorization"] = authorization
	}
	return ev
}

func TestTokenAuth(t *testing.T) {
	const secret = `{"tokens": ["tok-alpha-123", ""], "names": {"robin": "tok-robin-456", "": "tok-nameless"}}`
	ok := []struct{ header, principal string }{
		{"Bearer tok-alpha-123", LocalPrincipal},
		{"bearer tok-alpha-123", LocalPrincipal},
		{"BEARER   tok-alpha-123  ", LocalPrincipal},
		{"Bearer tok-robin-456", "robin"},
	}
	for _, c := range ok {
		t.Run("accepts "+c.principal, func(t *testing.T) {
			h, _ := tokenHarness(t, secret)
			resp, _ := h.do(t, tokenEvent("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", "", c.header))
			if resp.StatusCode != 200 || h.fake.approvals[0].By != c.principal {
				t.Fatalf("%q: %d %s %v", c.header, resp.StatusCode, resp.Body, h.fake.approvals)
			}
			if strings.Contains(h.logs.String(), "tok-") {
				t.Fatalf("a token reached the log: %s", h.logs)
			}
		})
	}
	refused := []string{
		"", "Bearer", "Bearer ", "Bearer tok-alpha-12", "Bearer tok-alpha-1234", "Basic tok-alpha-123",
		"tok-alpha-123", "Bearer tok-nameless", "Bearer TOK-ALPHA-123",
	}
	for _, hdr := range refused {
		t.Run(fmt.Sprintf("refuses %q", hdr), func(t *testing.T) {
			h, _ := tokenHarness(t, secret)
			resp, body := h.do(t, tokenEvent("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", "", hdr))
			wantError(t, resp, body, 401)
			if len(h.fake.approvals) != 0 {
				t.Fatal("service called")
			}
			if hdr != "" && strings.Contains(h.logs.String(), strings.TrimSpace(strings.TrimPrefix(hdr, "Bearer"))) &&
				strings.Contains(hdr, "tok") {
				t.Fatalf("the offered token reached the log: %s", h.logs)
			}
		})
	}
	t.Run("header name case", func(t *testing.T) {
		h, _ := tokenHarness(t, secret)
		ev := tokenEvent("GET", "/api/holds", "", "")
		ev.Headers["Authorization"] = "Bearer tok-alpha-123"
		if resp, _ := h.do(t, ev); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
	})
	t.Run("empty secret refuses everything", func(t *testing.T) {
		h, _ := tokenHarness(t, `{"tokens": []}`)
		resp, body := h.do(t, tokenEvent("GET", "/api/holds", "", "Bearer "))
		wantError(t, resp, body, 401)
		resp, body = h.do(t, tokenEvent("GET", "/api/holds", "", "Bearer x"))
		wantError(t, resp, body, 401)
	})
	t.Run("secret re-read each request (rotation through the cache)", func(t *testing.T) {
		h, sec := tokenHarness(t, secret)
		if resp, _ := h.do(t, tokenEvent("GET", "/api/holds", "", "Bearer tok-alpha-123")); resp.StatusCode != 200 {
			t.Fatal(resp.Body)
		}
		sec.mu.Lock()
		sec.values["arn:staff"] = `{"tokens": ["tok-new"]}`
		sec.mu.Unlock()
		resp, body := h.do(t, tokenEvent("GET", "/api/holds", "", "Bearer tok-alpha-123"))
		wantError(t, resp, body, 401)
		if resp, _ := h.do(t, tokenEvent("GET", "/api/holds", "", "Bearer tok-new")); resp.StatusCode != 200 {
			t.Fatal(resp.Body)
		}
	})
	t.Run("unreadable secret is a 500 that says nothing", func(t *testing.T) {
		h, sec := tokenHarness(t, secret)
		sec.err = errors.New("AccessDeniedException: not allowed on arn:staff")
		resp, body := h.do(t, tokenEvent("GET", "/api/holds", "", "Bearer tok-alpha-123"))
		wantError(t, resp, body, 500, "internal error")
		if strings.Contains(resp.Body, "AccessDenied") {
			t.Fatalf("internal detail leaked: %s", resp.Body)
		}
		if !strings.Contains(h.logs.String(), "AccessDenied") {
			t.Fatalf("the log should carry the cause: %s", h.logs)
		}
	})
	t.Run("malformed secret is a 500", func(t *testing.T) {
		h, _ := tokenHarness(t, `{"tokens": "tok-alpha-123"}`)
		resp, body := h.do(t, tokenEvent("GET", "/api/holds", "", "Bearer tok-alpha-123"))
		wantError(t, resp, body, 500)
	})
}

func TestNewAuthenticatorFailsClosed(t *testing.T) {
	sec := &fakeSecrets{}
	for _, c := range []struct {
		mode, arn string
		want      string
	}{
		{"", "arn", "STAFF_AUTH is not set"},
		{"none", "arn", `unknown STAFF_AUTH "none"`},
		{"JWT", "", `unknown STAFF_AUTH "JWT"`},
		{"token", "", "STAFF_SECRET_ARN"},
	} {
		a, err := NewAuthenticator(c.mode, sec, c.arn)
		if err == nil || a != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewAuthenticator(%q, %q) = %v, %v; want an error mentioning %q", c.mode, c.arn, a, err, c.want)
		}
	}
	if _, err := NewAuthenticator(AuthToken, nil, "arn"); err == nil {
		t.Error("token mode without a secret reader accepted")
	}
	if _, err := New(Config{Auth: jwtAuth{}}); err == nil {
		t.Error("New without a service accepted")
	}
	if _, err := New(Config{Sending: newFake()}); err == nil {
		t.Error("New without an authenticator accepted")
	}
}

func TestHoldsListing(t *testing.T) {
	h := jwtHarness(t)
	resp, _ := h.do(t, event("GET", "/api/holds", ""))
	if resp.StatusCode != 200 || h.fake.lastHolds != (sending.HoldQuery{Status: "pending", Limit: 50}) {
		t.Fatalf("default query %+v: %s", h.fake.lastHolds, resp.Body)
	}
	want := `{"holds":[{"id":"hld_5f0c2a9e7b3d41c8a6e2","status":"pending","reasons":["additional insured requested","waiver of subrogation requested"],` +
		`"certificateId":"cert-1001","revision":"20261121T142500Z","holderId":"holder-77","holderName":"Acme Property Management",` +
		`"holderEmail":"coi@acme-pm.example","agencyId":"agency-1","insuredId":"ins-5","insuredName":"Bright Plumbing LLC",` +
		`"policyNumber":"GL-2026-0042","source":"nowcerts","eventId":"evt-9","requestId":"req-sqs-1",` +
		`"createdAt":"2026-11-21T14:30:00Z","sendIds":[]}]}` + "\n"
	if resp.Body != want {
		t.Fatalf("body\n got %s\nwant %s", resp.Body, want)
	}

	resp, body := h.do(t, event("GET", "/api/holds?status=rejected&limit=1", ""))
	if resp.StatusCode != 200 || h.fake.lastHolds != (sending.HoldQuery{Status: "rejected", Limit: 1}) {
		t.Fatalf("query %+v: %s", h.fake.lastHolds, resp.Body)
	}
	holds := body["holds"].([]any)
	if len(holds) != 1 || holds[0].(map[string]any)["decidedBy"] != "ops@agency.example" {
		t.Fatalf("rejected holds: %s", resp.Body)
	}

	resp, _ = h.do(t, event("GET", "/api/holds?status=approved", ""))
	if resp.Body != `{"holds":[]}`+"\n" {
		t.Fatalf("empty list must be [], got %s", resp.Body)
	}
}

func TestParameterValidation(t *testing.T) {
	cases := []struct {
		target string
		param  string // the parameter the 400 must name
	}{
		{"/api/holds?status=open", "status"},
		{"/api/holds?status=PENDING", "status"},
		{"/api/holds?limit=0", "limit"},
		{"/api/holds?limit=501", "limit"},
		{"/api/holds?limit=ten", "limit"},
		{"/api/holds?limit=-1", "limit"},
		{"/api/holds?stauts=pending", "stauts"},
		{"/api/sends?from=yesterday", "from"},
		{"/api/sends?to=2026-13-01", "to"},
		{"/api/sends?from=2026-11-21T10:00:00", "from"}, // no zone
		{"/api/sends?to=21/11/2026", "to"},
		{"/api/sends?from=2026-11-22&to=2026-11-21", "to"},
		{"/api/sends?status=lost", "status"},
		{"/api/sends?limit=1e3", "limit"},
		{"/api/sends?certificateId=a&certificateId=b", "certificateId"},
		{"/api/sends?certificateID=cert-1001", "certificateID"},
		{"/api/sends?cursor=" + strings.Repeat("c", maxCursor+1), "cursor"},
		{"/api/sends/snd_3c8e1a7f9d2b46e0c5a1?verbose=1", "verbose"},
		{"/api/sends?holder=%zz", "query string"},
	}
	for _, c := range cases {
		t.Run(c.target[:min(len(c.target), 60)], func(t *testing.T) {
			h := jwtHarness(t)
			resp, body := h.do(t, event("GET", c.target, ""))
			wantError(t, resp, body, 400, c.param)
			if h.fake.sendQuerys != 0 || h.fake.lastHolds != (sending.HoldQuery{}) {
				t.Fatal("the service was called with a bad query")
			}
		})
	}
}

func TestSendQueryParameters(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d }
	cases := []struct {
		target string
		want   sending.SendQuery
	}{
		{"/api/sends", sending.SendQuery{Limit: 50}},
		{"/api/sends?certificateId=cert-1001&holder=COI%40acme-pm.example&status=sent&limit=10&cursor=page-2",
			sending.SendQuery{CertificateID: "cert-1001", Holder: "COI@acme-pm.example", Status: "SENT", Limit: 10, Cursor: "page-2"}},
		{"/api/sends?from=2026-11-20&to=2026-11-21",
			sending.SendQuery{From: day("2026-11-20"), To: day("2026-11-22").Add(-time.Nanosecond), Limit: 50}},
		{"/api/sends?from=2026-11-20T09:00:00-05:00&to=2026-11-21T10:30:00.5Z&status=Unknown",
			sending.SendQuery{From: time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC),
				To: time.Date(2026, 11, 21, 10, 30, 0, 5e8, time.UTC), Status: "UNKNOWN", Limit: 50}},
		{"/api/sends?from=2026-11-21&to=2026-11-21", // one whole day
			sending.SendQuery{From: day("2026-11-21"), To: day("2026-11-22").Add(-time.Nanosecond), Limit: 50}},
		{"/api/sends?to=2026-11-21&limit=500", sending.SendQuery{To: day("2026-11-22").Add(-time.Nanosecond), Limit: 500}},
		{"/api/sends?status=held", sending.SendQuery{Status: "HELD", Limit: 50}},
		{"/api/sends?status=Rejected", sending.SendQuery{Status: "REJECTED", Limit: 50}},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			h := jwtHarness(t)
			resp, _ := h.do(t, event("GET", c.target, ""))
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, resp.Body)
			}
			got := h.fake.lastSends
			if got.CertificateID != c.want.CertificateID || got.Holder != c.want.Holder || got.Status != c.want.Status ||
				got.Limit != c.want.Limit || got.Cursor != c.want.Cursor || !got.From.Equal(c.want.From) || !got.To.Equal(c.want.To) {
				t.Fatalf("query\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestSendsResponses(t *testing.T) {
	h := jwtHarness(t)
	resp, body := h.do(t, event("GET", "/api/sends?certificateId=cert-1001", ""))
	sends := body["sends"].([]any)
	if resp.StatusCode != 200 || len(sends) != 1 || body["next"] != nil {
		t.Fatalf("%d %s", resp.StatusCode, resp.Body)
	}
	want := `{"id":"snd_3c8e1a7f9d2b46e0c5a1","status":"SENT","certificateId":"cert-1001","revision":"20261120T090000Z",` +
		`"holderId":"holder-77","holderName":"Acme Property Management","holderEmail":"coi@acme-pm.example","channel":"email",` +
		`"agencyId":"agency-1","insuredId":"ins-5","insuredName":"Bright Plumbing LLC","policyNumber":"GL-2026-0042",` +
		`"source":"nowcerts","nowcertsAnswer":"{\"status\":1,\"message\":\"Sent\"}","eventId":"evt-8","requestId":"req-sqs-0",` +
		`"attempts":1,"createdAt":"2026-11-20T09:30:00Z","sentAt":"2026-11-20T09:30:02Z","updatedAt":"2026-11-20T09:30:02Z",` +
		`"history":[{"requestId":"req-sqs-0","status":"SENT","answer":"Sent","at":"2026-11-20T09:30:02Z"}]}` + "\n"
	resp, _ = h.do(t, event("GET", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1", ""))
	if resp.StatusCode != 200 || resp.Body != want {
		t.Fatalf("GET send\n got %s\nwant %s", resp.Body, want)
	}

	// Paging: the cursor comes back as next and is passed on.
	resp, body = h.do(t, event("GET", "/api/sends?limit=1", ""))
	if body["next"] != "page-2" || len(body["sends"].([]any)) != 1 {
		t.Fatalf("page 1: %s", resp.Body)
	}
	resp, body = h.do(t, event("GET", "/api/sends?limit=1&cursor=bogus", ""))
	wantError(t, resp, body, 400, "cursor")

	resp, _ = h.do(t, event("GET", "/api/sends?certificateId=cert-none", ""))
	if resp.Body != `{"sends":[]}`+"\n" {
		t.Fatalf("empty page must be [], got %s", resp.Body)
	}
}

func TestDecisions(t *testing.T) {
	t.Run("approve with a note", func(t *testing.T) {
		h := jwtHarness(t)
		resp, _ := h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", `{"note": "AI wording checked with coi@acme-pm.example"}`))
		want := `{"holdId":"hld_5f0c2a9e7b3d41c8a6e2","approvedBy":"pat@agency.example","outcome":{"status":"SENT","message":"Sent","sendIds":["snd_6a1f0e9d8c7b5a4e3d2c"]}}` + "\n"
		if resp.StatusCode != 200 || resp.Body != want {
			t.Fatalf("%d\n got %s\nwant %s", resp.StatusCode, resp.Body, want)
		}
		logs := h.logs.String()
		if !strings.Contains(logs, `"note":"AI wording checked with c***@a***.example"`) || strings.Contains(logs, "coi@acme") {
			t.Fatalf("the note should be logged with emails masked: %s", logs)
		}
		// Approving again: the service's conflict is a 409.
		resp, body := h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", ""))
		wantError(t, resp, body, 409, "hld_5f0c2a9e7b3d41c8a6e2")
	})
	t.Run("approve body is optional but must be JSON", func(t *testing.T) {
		for body, status := range map[string]int{
			"": 200, "  ": 200, "{}": 200, `{"note":""}`: 200,
			"nope": 400, `{"approver":"mallory"}`: 400, `{"note": 5}`: 400, `{"note":"a"} {}`: 400, "[]": 400,
			`{"note":"` + strings.Repeat("n", maxReason+1) + `"}`: 400,
		} {
			h := jwtHarness(t)
			resp, _ := h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", body))
			if resp.StatusCode != status {
				t.Errorf("body %.30q: %d, want %d: %s", body, resp.StatusCode, status, resp.Body)
			}
			if status == 200 && h.fake.approvals[0].By != staffEmail {
				t.Errorf("approver %q", h.fake.approvals[0].By)
			}
		}
	})
	t.Run("reject needs a reason", func(t *testing.T) {
		for body, want := range map[string]string{
			"": "JSON body is required", "{}": "reason", `{"reason":"   "}`: "reason", `{"reason": null}`: "reason",
			`{"reason": ["x"]}`: "reason", `{"why":"x"}`: "why",
		} {
			h := jwtHarness(t)
			resp, rb := h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/reject", body))
			wantError(t, resp, rb, 400, want)
			if len(h.fake.rejections) != 0 {
				t.Fatalf("service called for body %q", body)
			}
		}
		h := jwtHarness(t)
		resp, _ := h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/reject", `{"reason":"  holder asked for a different address  "}`))
		want := `{"holdId":"hld_5f0c2a9e7b3d41c8a6e2","status":"rejected","rejectedBy":"pat@agency.example","reason":"holder asked for a different address"}` + "\n"
		if resp.StatusCode != 200 || resp.Body != want {
			t.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
		if h.fake.rejections[0] != (call{ID: "hld_5f0c2a9e7b3d41c8a6e2", By: staffEmail, Reason: "holder asked for a different address"}) {
			t.Fatalf("service got %+v", h.fake.rejections[0])
		}
		resp, rb := h.do(t, event("POST", "/api/holds/hold-nope/reject", `{"reason":"x"}`))
		wantError(t, resp, rb, 404, "hold-nope")
	})
	t.Run("resend needs a reason", func(t *testing.T) {
		h := jwtHarness(t)
		resp, rb := h.do(t, event("POST", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1/resend", ""))
		wantError(t, resp, rb, 400, "JSON body")
		resp, rb = h.do(t, event("POST", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1/resend", `{"reason":""}`))
		wantError(t, resp, rb, 400, "reason")
		if len(h.fake.resends) != 0 {
			t.Fatal("service called")
		}
		resp, _ = h.do(t, event("POST", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1/resend", `{"reason":"holder lost the email"}`))
		want := `{"sendId":"snd_3c8e1a7f9d2b46e0c5a1","requestedBy":"pat@agency.example","reason":"holder lost the email",` +
			`"outcome":{"status":"SENT","message":"Sent","sendIds":["snd_r7d1e0c4b2a9f"]}}` + "\n"
		if resp.StatusCode != 200 || resp.Body != want {
			t.Fatalf("%d\n got %s\nwant %s", resp.StatusCode, resp.Body, want)
		}
		resp, rb = h.do(t, event("POST", "/api/sends/send-missing/resend", `{"reason":"x"}`))
		wantError(t, resp, rb, 404)
	})
	t.Run("resend idempotency key", func(t *testing.T) {
		h := jwtHarness(t)
		for _, bad := range []string{"", "  ", strings.Repeat("k", 256), "a\tb", "clé"} {
			ev := event("POST", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1/resend", `{"reason":"lost"}`)
			ev.Headers["idempotency-key"] = bad
			resp, rb := h.do(t, ev)
			wantError(t, resp, rb, 400, "Idempotency-Key")
		}
		if len(h.fake.resends) != 0 {
			t.Fatal("service called with a bad key")
		}
		ev := event("POST", "/api/sends/snd_3c8e1a7f9d2b46e0c5a1/resend", `{"reason":"lost"}`)
		ev.Headers["Idempotency-Key"] = "5b0d8f1c-7a43-4e59-9d2e-1c3f6a8b9e70"
		if resp, _ := h.do(t, ev); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
		if len(h.fake.resends) != 1 || h.fake.resends[0].Key != "5b0d8f1c-7a43-4e59-9d2e-1c3f6a8b9e70" || h.fake.resends[0].By != staffEmail {
			t.Fatalf("service got %+v", h.fake.resends)
		}
	})
	t.Run("content type", func(t *testing.T) {
		h := jwtHarness(t)
		ev := event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/reject", `{"reason":"x"}`)
		ev.Headers["content-type"] = "text/plain"
		resp, rb := h.do(t, ev)
		wantError(t, resp, rb, 415)
		ev.Headers["content-type"] = "application/json; charset=utf-8"
		if resp, _ := h.do(t, ev); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
	})
	t.Run("base64 and size", func(t *testing.T) {
		h := jwtHarness(t)
		ev := event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/reject", base64.StdEncoding.EncodeToString([]byte(`{"reason":"b64"}`)))
		ev.IsBase64Encoded = true
		if resp, _ := h.do(t, ev); resp.StatusCode != 200 || h.fake.rejections[0].Reason != "b64" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
		ev.Body = "!!not base64"
		resp, rb := h.do(t, ev)
		wantError(t, resp, rb, 400, "base64")
		big := `{"reason":"` + strings.Repeat("x", maxBody) + `"}`
		resp, rb = h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/reject", big))
		wantError(t, resp, rb, 413)
	})
}

func TestErrorMapping(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		shown  string
	}{
		{fmt.Errorf("hold x: %w", sending.ErrNotFound), 404, "hold x: not found"},
		{fmt.Errorf("hold x is approving: %w", sending.ErrConflict), 409, "hold x is approving: conflict"},
		{fmt.Errorf("status filter: %w", sending.ErrInvalid), 400, "status filter: invalid request"},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), 504, "timed out"},
		{errors.New("dynamodb: ProvisionedThroughputExceeded for holder jane@client.example"), 500, "internal error"},
	} {
		for _, target := range []struct{ method, path, body string }{
			{"GET", "/api/holds", ""},
			{"POST", "/api/holds/h/approve", ""},
			{"POST", "/api/holds/h/reject", `{"reason":"r"}`},
			{"POST", "/api/sends/s/resend", `{"reason":"r"}`},
			{"GET", "/api/sends", ""},
			{"GET", "/api/sends/s", ""},
		} {
			h := jwtHarness(t)
			h.fake.fail = c.err
			resp, body := h.do(t, event(target.method, target.path, target.body))
			wantError(t, resp, body, c.status)
			if body["error"] != c.shown {
				t.Errorf("%s %s with %v: error %q, want %q", target.method, target.path, c.err, body["error"], c.shown)
			}
			if c.status == 500 {
				logs := h.logs.String()
				if !strings.Contains(logs, "ProvisionedThroughputExceeded") || !strings.Contains(logs, `"level":"ERROR"`) {
					t.Errorf("500 not logged with its cause: %s", logs)
				}
				if strings.Contains(logs, "jane@client.example") || !strings.Contains(logs, "j***@c***.example") {
					t.Errorf("email in an error not masked in the log: %s", logs)
				}
			}
		}
	}
}

func TestFailedSendOutcome(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		shown  string
	}{
		{fmt.Errorf("approve hold h: %w: Certificate not found", nowcerts.ErrRejected), 502, "NowCerts said no"},
		{fmt.Errorf("send certificate c: %w", nowcerts.ErrUnavailable), 503, "NowCerts said no"},
		{errors.New("put claim: ThrottlingException"), 503, "a temporary failure, retry later"},
	} {
		for _, target := range []struct{ path, body, want string }{
			{"/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", "", "approval not completed, the hold is pending again: " + c.shown + " (FAILED)"},
			{"/api/sends/snd_3c8e1a7f9d2b46e0c5a1/resend", `{"reason":"r"}`, "resend not completed: " + c.shown + " (FAILED)"},
		} {
			h := jwtHarness(t)
			h.fake.fail = c.err
			h.fake.failOutcome = sending.Outcome{Status: sending.StatusFailed, Message: "NowCerts said no", SendIDs: []string{"s1"}}
			resp, body := h.do(t, event("POST", target.path, target.body))
			wantError(t, resp, body, c.status)
			if body["error"] != target.want {
				t.Errorf("%v: error %q, want %q", c.err, body["error"], target.want)
			}
			if !strings.Contains(h.logs.String(), c.err.Error()) {
				t.Errorf("cause not logged: %s", h.logs)
			}
		}
	}
	// A sentinel wins over an outcome.
	h := jwtHarness(t)
	h.fake.fail = fmt.Errorf("%w: hold has no email or fax", sending.ErrInvalid)
	h.fake.failOutcome = sending.Outcome{Status: sending.StatusFailed, Message: "x"}
	resp, body := h.do(t, event("POST", "/api/holds/hld_5f0c2a9e7b3d41c8a6e2/approve", ""))
	wantError(t, resp, body, 400, "no email or fax")
}

func TestLogLine(t *testing.T) {
	h := jwtHarness(t)
	h.do(t, event("GET", "/api/sends?holder=coi%40acme-pm.example&certificateId=cert-1001", ""))
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	last := lines[len(lines)-1]
	for k, want := range map[string]any{
		"msg": "api request", "requestId": "req-test-1", "route": "GET /api/sends", "principal": staffEmail,
		"status": float64(200), "method": "GET",
	} {
		if last[k] != want {
			t.Errorf("log %s = %v, want %v (%v)", k, last[k], want, last)
		}
	}
	if strings.Contains(h.logs.String(), "coi@acme-pm.example") {
		t.Fatalf("holder email in clear in the log: %s", h.logs)
	}
	if strings.Contains(h.logs.String(), "eyJ.jwt.sig") {
		t.Fatalf("bearer JWT in the log: %s", h.logs)
	}

	// A request without an id gets one, echoed in header, body and log.
	h = jwtHarness(t)
	ev := event("GET", "/api/nowhere", "")
	ev.RequestContext.RequestID = ""
	resp, body := h.do(t, ev)
	rid := resp.Headers["X-Request-Id"]
	if !strings.HasPrefix(rid, "local-") || body["requestId"] != rid || !strings.Contains(h.logs.String(), rid) {
		t.Fatalf("generated request id %q not used throughout: %s / %s", rid, resp.Body, h.logs)
	}
	if !strings.Contains(h.logs.String(), `"path":"/api/nowhere"`) {
		t.Fatalf("unknown route path not logged: %s", h.logs)
	}
}
