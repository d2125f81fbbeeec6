package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/webhook/signature"
)

var testNow = time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)

const (
	cowbellToken  = "cb-token-current-0123456789"
	cowbellToken2 = "cb-token-next-9876543210"
	ncToken       = "nc-token-0123456789"
	seedAgency    = "2e054852-b63a-43da-bb78-28205748b658"
)

// A Cowbell policy.certificate as the seed documents it (fixed JSON).
const certBody = `{"meta":{"event":"policy.certificate"},"data":{"policyId":"16e420fa-7e73-4cd0-9bb5-a027860164f2",` +
	`"policyNumber":"PLM-QGTGSXI","modified":"2021-05-14T09:20:45.501+0000","effectiveDate":"2021-05-26T00:00:00.000+0000",` +
	`"endDate":"2022-05-26T00:00:00.000+0000","accountId":"877e9ee2-8ee0-4fe3-9658-b9cae24303f7","accountName":"Red Rock Test Company",` +
	`"customerFirstName":"Customer","customerLastName":"Customerlast","customerEmail":"jane.customer@redrock.example",` +
	`"agencyId":"2e054852-b63a-43da-bb78-28205748b658","agencyName":"Quote First","agentEmail":"agent@quotefirst.example",` +
	`"productType":"P100","docType":"Certificate","documentUrl":"https://docs.example/cert.pdf?X-Amz-Signature=SECRETSIG"}}`

type harness struct {
	h       *Handler
	creds   *fakeCreds
	queue   *fakeQueue
	quar    *fakeQuarantine
	metrics *recMetrics
	logs    *bytes.Buffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	hs := &harness{
		creds: &fakeCreds{bySource: map[event.Source]Credentials{
			event.SourceCowbell:  {Tokens: []string{cowbellToken, cowbellToken2}},
			event.SourceNowCerts: {Tokens: []string{ncToken}},
		}},
		queue:   &fakeQueue{},
		quar:    &fakeQuarantine{},
		metrics: &recMetrics{},
		logs:    &bytes.Buffer{},
	}
	h, err := New(Config{Credentials: hs.creds, Queue: hs.queue, Quarantine: hs.quar,
		Now: func() time.Time { return testNow }, Logger: obs.NewLogger(hs.logs, "debug"), Metrics: hs.metrics})
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	return hs
}

func (hs *harness) do(t *testing.T, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, map[string]any) {
	t.Helper()
	resp, err := hs.h.Handle(context.Background(), req)
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	if ct := resp.Headers["Content-Type"]; ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("response body is not JSON: %q", resp.Body)
	}
	return resp, body
}

func post(src, token, body string, headers ...string) events.APIGatewayV2HTTPRequest {
	path := "/webhooks/" + src + "/" + token
	h := map[string]string{"content-type": "application/json"}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			delete(h, strings.ToLower(headers[i]))
			continue
		}
		h[headers[i]] = headers[i+1]
	}
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "POST /webhooks/" + src + "/{token}", RawPath: path, Headers: h,
		PathParameters: map[string]string{"token": token}, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "req-1", Stage: "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: path}},
	}
}

func get(path string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: path, RequestContext: events.APIGatewayV2HTTPRequestContext{
		RequestID: "req-2", HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: path}}}
}

func wantStatus(t *testing.T, resp events.APIGatewayV2HTTPResponse, body map[string]any, status int, errContains string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, resp.Body)
	}
	if errContains != "" {
		msg, _ := body["error"].(string)
		if !strings.Contains(msg, errContains) {
			t.Fatalf("error = %q, want it to contain %q", msg, errContains)
		}
		if body["requestId"] == "" || body["requestId"] == nil {
			t.Fatalf("error body has no requestId: %s", resp.Body)
		}
	}
}

func (hs *harness) wantNothingQueued(t *testing.T) {
	t.Helper()
	if js := hs.queue.all(); len(js) != 0 {
		t.Fatalf("enqueued %d jobs, want none", len(js))
	}
}

func TestAcceptsAndEnqueues(t *testing.T) {
	hs := newHarness(t)
	resp, body := hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, resp, body, http.StatusAccepted, "")

	js := hs.queue.all()
	if len(js) != 2 || js[0].Queue != jobs.QueueCRM || js[1].Queue != jobs.QueueSend {
		t.Fatalf("jobs = %+v, want crm-jobs and send-jobs", js)
	}
	ev := js[0].Event
	if body["eventId"] != ev.ID || !strings.HasPrefix(ev.ID, "evt_") {
		t.Fatalf("eventId = %v, event %s", body["eventId"], ev.ID)
	}
	if q := fmt.Sprint(body["queued"]); q != "[crm-jobs send-jobs]" {
		t.Fatalf("queued = %s", q)
	}
	for _, j := range js {
		if j.ID != ev.ID+":"+string(j.Queue) || j.RequestID != "req-1" || !j.EnqueuedAt.Equal(testNow) {
			t.Fatalf("job = %s %s %s", j.ID, j.RequestID, j.EnqueuedAt)
		}
	}
	if string(ev.Raw) != string(event.RedactBody([]byte(certBody))) || !ev.ReceivedAt.Equal(testNow) || ev.AgencyID != seedAgency {
		t.Fatalf("event raw/receivedAt/agency not carried: %s %s", ev.ReceivedAt, ev.AgencyID)
	}
	if hs.metrics.get(obs.MetricWebhooksAccepted, obs.Dims{"Source": "cowbell"}) != 1 ||
		hs.metrics.get(obs.MetricJobsEnqueued, obs.Dims{"Queue": "crm-jobs"}) != 1 ||
		hs.metrics.get(obs.MetricJobsEnqueued, obs.Dims{"Queue": "send-jobs"}) != 1 {
		t.Fatalf("metrics = %v", hs.metrics.counts)
	}

	// A redelivery gets the same event id and the same job ids.
	resp, body2 := hs.do(t, post("cowbell", cowbellToken2, certBody))
	wantStatus(t, resp, body2, http.StatusAccepted, "")
	if body2["eventId"] != body["eventId"] {
		t.Fatalf("redelivery eventId = %v, want %v", body2["eventId"], body["eventId"])
	}
	if js2 := hs.queue.all(); js2[2].ID != js[0].ID || js2[3].ID != js[1].ID {
		t.Fatalf("redelivery job ids differ")
	}

	logs := hs.logs.String()
	for _, secret := range []string{cowbellToken, cowbellToken2, "jane.customer@redrock.example", "SECRETSIG", "PLM-QGTGSXI\",\"modified"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"requestId":"req-1"`, `"eventId":"` + ev.ID, `"source":"cowbell"`, `"type":"policy.certificate"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestRouting(t *testing.T) {
	hs := newHarness(t)
	resp, body := hs.do(t, get("/healthz"))
	wantStatus(t, resp, body, http.StatusOK, "")
	if body["status"] != "ok" {
		t.Fatalf("healthz body = %s", resp.Body)
	}

	for path, echoed := range map[string]string{
		"/": "/", "/webhooks": "/webhooks", "/webhooks/cowbell": "/webhooks/cowbell", "/webhooks/cowbell/": "/webhooks/cowbell/",
		"/api/holds": "/api/holds",
		// A token on a wrong path is not echoed.
		"/webhooks/acme/" + cowbellToken:           "/webhooks/acme/[redacted]",
		"/webhooks/cowbell/" + cowbellToken + "/b": "/webhooks/cowbell/[redacted]",
	} {
		req := post("cowbell", "x", certBody)
		req.RawPath, req.RequestContext.HTTP.Path, req.PathParameters = path, path, nil
		resp, body := hs.do(t, req)
		wantStatus(t, resp, body, http.StatusNotFound, "no route for POST "+echoed)
		if strings.Contains(resp.Body, cowbellToken) {
			t.Fatalf("404 echoes the token: %s", resp.Body)
		}
	}
	if strings.Contains(hs.logs.String(), cowbellToken) {
		t.Fatalf("logs contain the token")
	}

	req := get("/webhooks/cowbell/" + cowbellToken)
	resp, body = hs.do(t, req)
	wantStatus(t, resp, body, http.StatusMethodNotAllowed, "use POST")
	if resp.Headers["Allow"] != "POST" {
		t.Fatalf("Allow = %q", resp.Headers["Allow"])
	}
	req = post("cowbell", "", "")
	req.RawPath = "/healthz"
	resp, body = hs.do(t, req)
	wantStatus(t, resp, body, http.StatusMethodNotAllowed, "use GET")
	if resp.Headers["Allow"] != "GET" {
		t.Fatalf("Allow = %q", resp.Headers["Allow"])
	}
	if got := hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "unknown", "Reason": ReasonNotFound}); got != 7 {
		t.Fatalf("not_found rejections = %v", got)
	}

	// Without path parameters (a bare event), the token comes from rawPath,
	// percent-decoded; a named stage prefix is stripped.
	req = post("cowbell", "tok%2Fen", certBody)
	req.PathParameters = nil
	hs.creds.bySource[event.SourceCowbell] = Credentials{Tokens: []string{"tok/en"}}
	resp, body = hs.do(t, req)
	wantStatus(t, resp, body, http.StatusAccepted, "")
	req = post("cowbell", "tok%2Fen", certBody)
	req.PathParameters, req.RequestContext.Stage = nil, "prod"
	req.RawPath = "/prod" + req.RawPath
	resp, body = hs.do(t, req)
	wantStatus(t, resp, body, http.StatusAccepted, "")
}

func TestTokens(t *testing.T) {
	hs := newHarness(t)
	for _, tok := range []string{"wrong", cowbellToken + "x", cowbellToken[:10], ncToken, " " + cowbellToken} {
		resp, body := hs.do(t, post("cowbell", tok, certBody))
		wantStatus(t, resp, body, http.StatusUnauthorized, "invalid webhook token")
	}
	if got := hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "cowbell", "Reason": ReasonBadToken}); got != 5 {
		t.Fatalf("bad_token rejections = %v", got)
	}
	hs.wantNothingQueued(t)
	if len(hs.quar.all()) != 0 {
		t.Fatal("a request with a bad token was quarantined")
	}

	// A token is checked before anything else about the request.
	resp, body := hs.do(t, post("cowbell", "wrong", strings.Repeat("x", MaxBodyBytes+1), "content-type", "text/plain"))
	wantStatus(t, resp, body, http.StatusUnauthorized, "invalid webhook token")

	// Fail closed: no tokens (or only blank ones) refuse everything.
	for _, c := range []Credentials{{}, {Tokens: []string{""}}} {
		hs.creds.bySource[event.SourceCowbell] = c
		for _, tok := range []string{cowbellToken, "x"} {
			resp, body := hs.do(t, post("cowbell", tok, certBody))
			wantStatus(t, resp, body, http.StatusUnauthorized, "not configured")
		}
	}
	if got := hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "cowbell", "Reason": ReasonNoCredentials}); got != 4 {
		t.Fatalf("no_credentials rejections = %v", got)
	}
	hs.wantNothingQueued(t)

	hs.creds.err = errors.New("secrets manager: throttled")
	resp, body = hs.do(t, post("nowcerts", ncToken, `{}`))
	wantStatus(t, resp, body, http.StatusServiceUnavailable, "retry later")
	if resp.Headers["Retry-After"] == "" {
		t.Fatal("503 without Retry-After")
	}
	if hs.metrics.get(obs.MetricWebhooksFailed, obs.Dims{"Source": "nowcerts", "Reason": ReasonCredentialsUnavailable}) != 1 {
		t.Fatalf("metrics = %v", hs.metrics.counts)
	}
}

func TestBodyLimitsAndContentType(t *testing.T) {
	hs := newHarness(t)
	big := `{"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	exact := `{"pad":"` + strings.Repeat("x", MaxBodyBytes-10) + `"}`
	if len(exact) != MaxBodyBytes {
		t.Fatalf("exact is %d bytes", len(exact))
	}
	b64 := func(s string) events.APIGatewayV2HTTPRequest {
		r := post("cowbell", cowbellToken, base64.StdEncoding.EncodeToString([]byte(s)))
		r.IsBase64Encoded = true
		return r
	}
	cases := []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
		msg    string
	}{
		{"too large", post("cowbell", cowbellToken, big), 413, "the limit is 262144 bytes"},
		{"too large, base64", b64(big), 413, "the limit is 262144 bytes"},
		{"far too large, base64, refused before decoding", func() events.APIGatewayV2HTTPRequest {
			r := post("cowbell", cowbellToken, strings.Repeat("!", 2*MaxBodyBytes))
			r.IsBase64Encoded = true
			return r
		}(), 413, "base64-encoded"},
		{"exactly the limit is not too large", post("cowbell", cowbellToken, exact), 202, ""},
		{"exactly the limit, base64", b64(exact), 202, ""},
		{"bad base64", func() events.APIGatewayV2HTTPRequest {
			r := post("cowbell", cowbellToken, "{not base64}")
			r.IsBase64Encoded = true
			return r
		}(), 400, "not valid base64"},
		{"text/plain", post("cowbell", cowbellToken, certBody, "content-type", "text/plain"), 415, "text/plain is not JSON"},
		{"no content type", post("cowbell", cowbellToken, certBody, "content-type", ""), 415, "missing Content-Type"},
		{"bad content type", post("cowbell", cowbellToken, certBody, "content-type", "application/json; charset"), 415, "unreadable Content-Type"},
		{"form", post("cowbell", cowbellToken, certBody, "content-type", "application/x-www-form-urlencoded"), 415, "not JSON"},
		{"json with charset", post("cowbell", cowbellToken, certBody, "content-type", "application/json; charset=utf-8"), 202, ""},
		{"+json", post("cowbell", cowbellToken, certBody, "content-type", "application/vnd.cowbell.event+json"), 202, ""},
		{"mixed-case header name", post("cowbell", cowbellToken, certBody, "content-type", "", "Content-Type", "Application/JSON"), 202, ""},
		{"too large is checked before content type", post("cowbell", cowbellToken, big, "content-type", "text/plain"), 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := hs.do(t, c.req)
			wantStatus(t, resp, body, c.status, c.msg)
		})
	}
	if got := hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "cowbell", "Reason": ReasonTooLarge}); got != 4 {
		t.Fatalf("too_large rejections = %v", got)
	}
	if got := hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "cowbell", "Reason": ReasonUnsupportedMediaType}); got != 4 {
		t.Fatalf("unsupported_media_type rejections = %v", got)
	}
}

func TestBase64BodyIsDecodedBeforeParsing(t *testing.T) {
	hs := newHarness(t)
	req := post("cowbell", cowbellToken, base64.StdEncoding.EncodeToString([]byte(certBody)))
	req.IsBase64Encoded = true
	resp, body := hs.do(t, req)
	wantStatus(t, resp, body, http.StatusAccepted, "")
	plain, body2 := hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, plain, body2, http.StatusAccepted, "")
	if body["eventId"] != body2["eventId"] {
		t.Fatalf("base64 and plain deliveries differ: %v vs %v", body["eventId"], body2["eventId"])
	}
	if raw := string(hs.queue.all()[0].Event.Raw); raw != string(event.RedactBody([]byte(certBody))) {
		t.Fatalf("raw body not decoded: %.60s", raw)
	}
}

func TestSignatures(t *testing.T) {
	hs := newHarness(t)
	secret := signature.NewSecret([]byte("cowbell-signing-key-0123456789ab"))
	oldSecret := signature.NewSecret([]byte("old-signing-key"))
	hs.creds.bySource[event.SourceCowbell] = Credentials{Tokens: []string{cowbellToken}, SigningSecrets: []signature.Secret{oldSecret, secret}}
	ts := strconv.FormatInt(testNow.Unix(), 10)
	sig := signature.Sign([]byte(certBody), "msg_2Yx", testNow, secret)

	signed := func(id, ts, sig string) events.APIGatewayV2HTTPRequest {
		return post("cowbell", cowbellToken, certBody, "webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sig)
	}
	resp, body := hs.do(t, signed("msg_2Yx", ts, sig))
	wantStatus(t, resp, body, http.StatusAccepted, "")

	// Header names are case-insensitive.
	resp, body = hs.do(t, post("cowbell", cowbellToken, certBody, "Webhook-Id", "msg_2Yx", "WEBHOOK-TIMESTAMP", ts, "Webhook-Signature", "v1,bogus "+sig))
	wantStatus(t, resp, body, http.StatusAccepted, "")

	// The signature covers the decoded bytes of a base64 body.
	req := signed("msg_2Yx", ts, sig)
	req.Body, req.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(certBody)), true
	resp, body = hs.do(t, req)
	wantStatus(t, resp, body, http.StatusAccepted, "")
	n := len(hs.queue.all())

	for _, c := range []struct {
		name string
		req  events.APIGatewayV2HTTPRequest
		msg  string
	}{
		{"unsigned", post("cowbell", cowbellToken, certBody), "missing signature header: webhook-id, webhook-timestamp, webhook-signature"},
		{"other id", signed("msg_other", ts, sig), "no matching signature"},
		{"stale", signed("msg_2Yx", strconv.FormatInt(testNow.Add(-6*time.Minute).Unix(), 10), sig), "6m0s old"},
		{"body changed", post("cowbell", cowbellToken, strings.Replace(certBody, "P100", "P250", 1),
			"webhook-id", "msg_2Yx", "webhook-timestamp", ts, "webhook-signature", sig), "no matching signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := hs.do(t, c.req)
			wantStatus(t, resp, body, http.StatusUnauthorized, c.msg)
		})
	}
	if len(hs.queue.all()) != n {
		t.Fatal("a request with a bad signature was enqueued")
	}
	if got := hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "cowbell", "Reason": ReasonBadSignature}); got != 4 {
		t.Fatalf("bad_signature rejections = %v", got)
	}
	if strings.Contains(hs.logs.String(), sig[3:]) {
		t.Fatal("logs contain the signature")
	}
}

func TestMalformedJSON(t *testing.T) {
	hs := newHarness(t)
	truncated := certBody[:len(certBody)-40]
	resp, body := hs.do(t, post("cowbell", cowbellToken, truncated))
	wantStatus(t, resp, body, http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d", len(truncated)))
	if !strings.Contains(body["error"].(string), "unexpected end of JSON input") {
		t.Fatalf("error does not say why: %v", body["error"])
	}
	hs.wantNothingQueued(t)
	// Kept for review all the same.
	recs := hs.quar.all()
	if len(recs) != 1 {
		t.Fatalf("quarantine records = %d, want 1", len(recs))
	}
	for _, q := range recs {
		if string(q.Body) != string(event.RedactBody([]byte(truncated))) || q.Source != "cowbell" || !strings.HasPrefix(q.Reason, "malformed JSON") {
			t.Fatalf("record = %+v", q)
		}
	}
	if hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "cowbell", "Reason": ReasonMalformedJSON}) != 1 {
		t.Fatalf("metrics = %v", hs.metrics.counts)
	}

	// The answer stays 400 when keeping the body fails.
	hs.quar.err = errors.New("dynamodb down")
	resp, body = hs.do(t, post("cowbell", cowbellToken, `{"meta":`))
	wantStatus(t, resp, body, http.StatusBadRequest, "malformed JSON")
}

func TestUnknownShapeIsQuarantined(t *testing.T) {
	hs := newHarness(t)
	unknown := `{"meta":{"event":"claim.opened"},"data":{"claimId":"c-1"}}`
	resp, body := hs.do(t, post("cowbell", cowbellToken, unknown))
	wantStatus(t, resp, body, http.StatusAccepted, "")
	id, _ := body["eventId"].(string)
	if body["status"] != "quarantined" || !strings.HasPrefix(id, "evt_") {
		t.Fatalf("body = %s", resp.Body)
	}
	hs.wantNothingQueued(t)
	q, ok := hs.quar.all()[id]
	if !ok {
		t.Fatalf("no quarantine record %s", id)
	}
	if string(q.Body) != unknown || q.Source != "cowbell" || q.RequestID != "req-1" || !q.ReceivedAt.Equal(testNow) ||
		!strings.Contains(q.Reason, "unknown event shape") || q.ContentType != "application/json" {
		t.Fatalf("record = %+v", q)
	}
	// A redelivery is the same record and id; the same body from the other
	// source is another record.
	_, body2 := hs.do(t, post("cowbell", cowbellToken, unknown))
	_, body3 := hs.do(t, post("nowcerts", ncToken, unknown))
	if body2["eventId"] != id || body3["eventId"] == id || len(hs.quar.all()) != 2 {
		t.Fatalf("ids %v %v %v, %d records", id, body2["eventId"], body3["eventId"], len(hs.quar.all()))
	}
	if hs.metrics.get(obs.MetricEventsQuarantined, obs.Dims{"Source": "cowbell"}) != 2 {
		t.Fatalf("metrics = %v", hs.metrics.counts)
	}

	// Never dropped: when the record cannot be written the sender must retry.
	hs.quar.err = errors.New("dynamodb down")
	resp, body = hs.do(t, post("cowbell", cowbellToken, `{"something":"else"}`))
	wantStatus(t, resp, body, http.StatusServiceUnavailable, "retry later")
	if resp.Headers["Retry-After"] == "" {
		t.Fatal("503 without Retry-After")
	}
}

func TestAgencyAllowlist(t *testing.T) {
	hs := newHarness(t)
	set := func(ids ...string) {
		hs.creds.bySource[event.SourceCowbell] = Credentials{Tokens: []string{cowbellToken}, AgencyIDs: ids}
	}
	set(strings.ToUpper(seedAgency))
	resp, body := hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, resp, body, http.StatusAccepted, "")

	set("11111111-2222-3333-4444-555555555555")
	resp, body = hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, resp, body, http.StatusForbidden, "agency "+seedAgency+" is not allowed")

	noAgency := strings.Replace(certBody, `"agencyId":"2e054852-b63a-43da-bb78-28205748b658",`, "", 1)
	resp, body = hs.do(t, post("cowbell", cowbellToken, noAgency))
	wantStatus(t, resp, body, http.StatusForbidden, "the event has no agency id")

	if len(hs.queue.all()) != 2 {
		t.Fatalf("jobs = %d, want only the allowed event's 2", len(hs.queue.all()))
	}
	if hs.metrics.get(obs.MetricWebhooksRejected, obs.Dims{"Source": "cowbell", "Reason": ReasonAgencyNotAllowed}) != 2 {
		t.Fatalf("metrics = %v", hs.metrics.counts)
	}
}

func TestEnqueueFailures(t *testing.T) {
	hs := newHarness(t)
	hs.queue.err = errors.New("sqs: throttled")
	resp, body := hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, resp, body, http.StatusServiceUnavailable, "could not be queued")
	if resp.Headers["Retry-After"] != RetryAfterSeconds {
		t.Fatalf("Retry-After = %q", resp.Headers["Retry-After"])
	}
	if hs.metrics.get(obs.MetricWebhooksFailed, obs.Dims{"Source": "cowbell", "Reason": ReasonEnqueueFailed}) != 1 ||
		hs.metrics.get(obs.MetricWebhooksAccepted, obs.Dims{"Source": "cowbell"}) != 0 {
		t.Fatalf("metrics = %v", hs.metrics.counts)
	}

	// A job too large for SQS can never be queued: keep it, answer 202.
	hs.queue.err = fmt.Errorf("%w: job x is 300000 bytes", queue.ErrTooLarge)
	resp, body = hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, resp, body, http.StatusAccepted, "")
	if body["status"] != "quarantined" {
		t.Fatalf("body = %s", resp.Body)
	}
	if q := hs.quar.all()[body["eventId"].(string)]; !strings.Contains(q.Reason, "too large") {
		t.Fatalf("record = %+v", q)
	}

	hs.queue.err = nil
	resp, body = hs.do(t, post("cowbell", cowbellToken, certBody))
	wantStatus(t, resp, body, http.StatusAccepted, "")
}

func TestEventForNoQueue(t *testing.T) {
	hs := newHarness(t)
	del := `{"EventType":"MasterCertificate.Delete","EntityId":"95C5A8E2-7F3D-4B1C-A2E9-6D4F8B0C1E3A","Timestamp":"2026-03-02T19:04:05+04:00"}`
	resp, body := hs.do(t, post("nowcerts", ncToken, del))
	wantStatus(t, resp, body, http.StatusAccepted, "")
	if q, ok := body["queued"].([]any); !ok || len(q) != 0 || body["eventId"] == "" {
		t.Fatalf("body = %s, want queued []", resp.Body)
	}
	hs.wantNothingQueued(t)
	if len(hs.quar.all()) != 0 {
		t.Fatal("an understood event was quarantined")
	}
	if !strings.Contains(hs.logs.String(), "routes to no queue") {
		t.Fatalf("not logged:\n%s", hs.logs.String())
	}
}

func TestTokenMatches(t *testing.T) {
	for _, c := range []struct {
		token  string
		tokens []string
		want   bool
	}{
		{"a", []string{"a"}, true},
		{"b", []string{"a", "b"}, true},
		{"a", []string{"a", "b"}, true},
		{"c", []string{"a", "b"}, false},
		{"", []string{""}, false},
		{"", []string{"", "a"}, false},
		{"a", nil, false},
		{"ab", []string{"a"}, false},
		{"A", []string{"a"}, false},
	} {
		if got := tokenMatches(c.token, c.tokens); got != c.want {
			t.Errorf("tokenMatches(%q, %q) = %v", c.token, c.tokens, got)
		}
	}
}

func TestNewRequiresPorts(t *testing.T) {
	if _, err := New(Config{Queue: &fakeQueue{}, Quarantine: &fakeQuarantine{}}); err == nil {
		t.Fatal("New without credentials = nil error")
	}
	if _, err := New(Config{Credentials: &fakeCreds{}, Quarantine: &fakeQuarantine{}}); err == nil {
		t.Fatal("New without queue = nil error")
	}
	if _, err := New(Config{Credentials: &fakeCreds{}, Queue: &fakeQueue{}}); err == nil {
		t.Fatal("New without quarantine = nil error")
	}
}

func TestPresignedDocumentURLNeverTravels(t *testing.T) {
	hs := newHarness(t)
	resp, _ := hs.do(t, post("cowbell", cowbellToken, certBody))
	if resp.StatusCode != 202 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	for _, j := range hs.queue.all() {
		msg, err := jobs.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(msg, "SECRETSIG") || strings.Contains(msg, "docs.example") {
			t.Fatalf("job message carries the pre-signed document link: %s", msg)
		}
	}
}
