package apigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// recorder is a handler that keeps the event it got and answers with resp.
type recorder struct {
	got   events.APIGatewayV2HTTPRequest
	calls int
	resp  []byte
	err   error
	lc    *lambdacontext.LambdaContext
}

func (r *recorder) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	r.calls++
	r.got = events.APIGatewayV2HTTPRequest{}
	if err := json.Unmarshal(payload, &r.got); err != nil {
		return nil, err
	}
	r.lc, _ = lambdacontext.FromContext(ctx)
	return r.resp, r.err
}

func jsonResp(t *testing.T, v events.APIGatewayV2HTTPResponse) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testRoutes = []Route{
	{Method: "POST", Path: "/webhooks/nowcerts/{token}", Function: "webhook"},
	{Method: "POST", Path: "/webhooks/cowbell/{token}", Function: "webhook"},
	{Method: "GET", Path: "/healthz", Function: "webhook"},
	{Method: "ANY", Path: "/api/{proxy+}", Function: "api"},
	{Method: "GET", Path: "/api/holds", Function: "holds"},
	{Method: "GET", Path: "/app", Function: "api"},
}

func newServer(t *testing.T, fns map[string]Function) *Server {
	t.Helper()
	s, err := New(testRoutes, fns, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEventShape(t *testing.T) {
	h := &recorder{resp: jsonResp(t, events.APIGatewayV2HTTPResponse{StatusCode: 202, Body: `{"eventId":"evt_1"}`, Headers: map[string]string{"Content-Type": "application/json"}})}
	s := newServer(t, map[string]Function{"webhook": {Handler: h, ARN: "arn:aws:lambda:us-east-1:000000000000:function:webhook"}, "api": {}, "holds": {}})

	body := `{"event":"quote.status"}`
	req := httptest.NewRequest("POST", "http://127.0.0.1:3000/webhooks/cowbell/tok%20en?a=1&b=2&a=3", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Set("User-Agent", "curl/8")
	req.Header.Add("Cookie", "a=1; b=2")
	req.RemoteAddr = "127.0.0.1:55555"
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)

	if w.Code != 202 || w.Body.String() != `{"eventId":"evt_1"}` {
		t.Fatalf("answer %d %q", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	ev := h.got
	if ev.Version != "2.0" || ev.RouteKey != "POST /webhooks/cowbell/{token}" || ev.RequestContext.RouteKey != ev.RouteKey {
		t.Errorf("version/routeKey: %q %q", ev.Version, ev.RouteKey)
	}
	if ev.RawPath != "/webhooks/cowbell/tok%20en" || ev.RequestContext.HTTP.Path != "/webhooks/cowbell/tok en" {
		t.Errorf("rawPath %q path %q", ev.RawPath, ev.RequestContext.HTTP.Path)
	}
	if ev.PathParameters["token"] != "tok en" {
		t.Errorf("pathParameters %v", ev.PathParameters)
	}
	if ev.RawQueryString != "a=1&b=2&a=3" || ev.QueryStringParameters["a"] != "1,3" || ev.QueryStringParameters["b"] != "2" {
		t.Errorf("query %q %v", ev.RawQueryString, ev.QueryStringParameters)
	}
	if ev.Headers["x-multi"] != "one,two" || ev.Headers["content-type"] != "application/json" || ev.Headers["host"] != "127.0.0.1:3000" {
		t.Errorf("headers %v", ev.Headers)
	}
	if _, ok := ev.Headers["cookie"]; ok {
		t.Errorf("cookie header not moved to cookies: %v", ev.Headers)
	}
	if strings.Join(ev.Cookies, "|") != "a=1|b=2" {
		t.Errorf("cookies %v", ev.Cookies)
	}
	rc := ev.RequestContext
	if rc.Stage != "$default" || rc.RequestID == "" || rc.HTTP.Method != "POST" || rc.HTTP.SourceIP != "127.0.0.1" ||
		rc.HTTP.UserAgent != "curl/8" || rc.DomainName != "127.0.0.1:3000" || rc.TimeEpoch == 0 || rc.Time == "" {
		t.Errorf("requestContext %+v", rc)
	}
	if w.Header().Get("Apigw-Requestid") != rc.RequestID {
		t.Errorf("apigw-requestid %q vs %q", w.Header().Get("Apigw-Requestid"), rc.RequestID)
	}
	if ev.Body != body || ev.IsBase64Encoded {
		t.Errorf("body %q b64=%v", ev.Body, ev.IsBase64Encoded)
	}
	if h.lc == nil || h.lc.AwsRequestID == "" || h.lc.InvokedFunctionArn == "" {
		t.Errorf("lambda context %+v", h.lc)
	}

	// A second request gets another request id.
	first := rc.RequestID
	s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/webhooks/cowbell/x", strings.NewReader("{}")))
	if h.got.RequestContext.RequestID == first {
		t.Errorf("request id reused: %q", first)
	}
}

func TestBinaryBodyIsBase64(t *testing.T) {
	h := &recorder{resp: jsonResp(t, events.APIGatewayV2HTTPResponse{StatusCode: 200})}
	s := newServer(t, map[string]Function{"webhook": {Handler: h}, "api": {}, "holds": {}})
	raw := []byte{0x00, 0xff, 0x10, 'a'}
	req := httptest.NewRequest("POST", "/webhooks/nowcerts/t", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/octet-stream")
	s.ServeHTTP(httptest.NewRecorder(), req)
	if !h.got.IsBase64Encoded {
		t.Fatal("binary body not base64-encoded")
	}
	if dec, _ := base64.StdEncoding.DecodeString(h.got.Body); !bytes.Equal(dec, raw) {
		t.Errorf("body %q", h.got.Body)
	}

	// text/plain stays text (the handler decides it is not JSON).
	req = httptest.NewRequest("POST", "/webhooks/nowcerts/t", strings.NewReader("hello"))
	req.Header.Set("Content-Type", "text/plain")
	s.ServeHTTP(httptest.NewRecorder(), req)
	if h.got.IsBase64Encoded || h.got.Body != "hello" {
		t.Errorf("text body %q b64=%v", h.got.Body, h.got.IsBase64Encoded)
	}
}

func TestRouteMatching(t *testing.T) {
	webhook, api, holds := &recorder{resp: []byte(`{"statusCode":200}`)}, &recorder{resp: []byte(`{"statusCode":200}`)}, &recorder{resp: []byte(`{"statusCode":200}`)}
	s := newServer(t, map[string]Function{"webhook": {Handler: webhook}, "api": {Handler: api}, "holds": {Handler: holds}})
	cases := []struct {
		method, path string
		want         *recorder
		routeKey     string
		params       map[string]string
	}{
		{"GET", "/healthz", webhook, "GET /healthz", nil},
		{"GET", "/api/holds", holds, "GET /api/holds", nil},
		{"POST", "/api/holds", api, "ANY /api/{proxy+}", map[string]string{"proxy": "holds"}},
		{"DELETE", "/api/sends/s1/x", api, "ANY /api/{proxy+}", map[string]string{"proxy": "sends/s1/x"}},
		{"GET", "/app", api, "GET /app", nil},
		{"POST", "/webhooks/nowcerts/abc", webhook, "POST /webhooks/nowcerts/{token}", map[string]string{"token": "abc"}},
	}
	for _, c := range cases {
		for _, r := range []*recorder{webhook, api, holds} {
			r.calls = 0
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		if w.Code != 200 || c.want.calls != 1 {
			t.Errorf("%s %s: status %d, calls %d", c.method, c.path, w.Code, c.want.calls)
			continue
		}
		if c.want.got.RouteKey != c.routeKey {
			t.Errorf("%s %s: routeKey %q want %q", c.method, c.path, c.want.got.RouteKey, c.routeKey)
		}
		if len(c.params) != len(c.want.got.PathParameters) {
			t.Errorf("%s %s: params %v want %v", c.method, c.path, c.want.got.PathParameters, c.params)
		}
		for k, v := range c.params {
			if c.want.got.PathParameters[k] != v {
				t.Errorf("%s %s: param %s=%q want %q", c.method, c.path, k, c.want.got.PathParameters[k], v)
			}
		}
	}

	for _, nf := range []struct{ method, path string }{
		{"GET", "/webhooks/cowbell/abc"},  // wrong method
		{"POST", "/webhooks/cowbell"},     // missing token
		{"POST", "/webhooks/cowbell/a/b"}, // extra segment
		{"GET", "/api"},                   // {proxy+} needs a segment
		{"GET", "/nope"},
		{"GET", "/healthz/"},
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(nf.method, nf.path, nil))
		if w.Code != 404 || strings.TrimSpace(w.Body.String()) != `{"message":"Not Found"}` || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q", nf.method, nf.path, w.Code, w.Body.String())
		}
	}
}

func TestNewRejectsBadRoutes(t *testing.T) {
	for _, rs := range [][]Route{
		{{Method: "POST", Path: "/a/{p+}/b", Function: "f"}},
		{{Method: "FETCH", Path: "/a", Function: "f"}},
		{{Method: "GET", Path: "a", Function: "f"}},
		{{Method: "GET", Path: "/a", Function: "f"}, {Method: "GET", Path: "/a", Function: "g"}},
		{{Method: "GET", Path: "/a", Function: "missing"}},
	} {
		if _, err := New(rs, map[string]Function{"f": {}, "g": {}}, Options{}); err == nil {
			t.Errorf("New(%v) accepted", rs)
		}
	}
}

func TestResponses(t *testing.T) {
	cases := []struct {
		name       string
		resp       []byte
		err        error
		wantStatus int
		wantBody   string
		check      func(t *testing.T, h http.Header)
	}{
		{
			name:       "handler error",
			err:        errors.New("boom"),
			wantStatus: 500, wantBody: `{"message":"Internal Server Error"}`,
		},
		{
			name:       "invalid json",
			resp:       []byte(`{not json`),
			wantStatus: 500, wantBody: `{"message":"Internal Server Error"}`,
		},
		{
			name:       "inferred",
			resp:       []byte(`{"ok":true}`),
			wantStatus: 200, wantBody: `{"ok":true}`,
			check: func(t *testing.T, h http.Header) {
				if h.Get("Content-Type") != "application/json" {
					t.Errorf("content type %q", h.Get("Content-Type"))
				}
			},
		},
		{
			name: "base64 body, multi-value headers and cookies",
			resp: jsonResp(t, events.APIGatewayV2HTTPResponse{
				StatusCode:        201,
				Headers:           map[string]string{"Content-Type": "application/octet-stream"},
				MultiValueHeaders: map[string][]string{"X-Many": {"1", "2"}},
				Cookies:           []string{"a=1; Path=/", "b=2"},
				Body:              base64.StdEncoding.EncodeToString([]byte("bin\x00ary")),
				IsBase64Encoded:   true,
			}),
			wantStatus: 201, wantBody: "bin\x00ary",
			check: func(t *testing.T, h http.Header) {
				if got := h.Values("X-Many"); strings.Join(got, ",") != "1,2" {
					t.Errorf("X-Many %v", got)
				}
				if got := h.Values("Set-Cookie"); strings.Join(got, "|") != "a=1; Path=/|b=2" {
					t.Errorf("Set-Cookie %v", got)
				}
			},
		},
		{
			name:       "bad status",
			resp:       []byte(`{"statusCode":42}`),
			wantStatus: 500, wantBody: `{"message":"Internal Server Error"}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &recorder{resp: c.resp, err: c.err}
			s := newServer(t, map[string]Function{"webhook": {Handler: h}, "api": {}, "holds": {}})
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
			if w.Code != c.wantStatus || w.Body.String() != c.wantBody {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Body.String(), c.wantStatus, c.wantBody)
			}
			if c.check != nil {
				c.check(t, w.Header())
			}
		})
	}
}

func TestMissingHandlerIs500(t *testing.T) {
	s := newServer(t, map[string]Function{"webhook": {}, "api": {}, "holds": {}})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 500 {
		t.Fatalf("status %d", w.Code)
	}
}

func TestBodyLimit(t *testing.T) {
	h := &recorder{resp: []byte(`{"statusCode":200}`)}
	s := newServer(t, map[string]Function{"webhook": {Handler: h}, "api": {}, "holds": {}})
	srv := httptest.NewServer(s)
	defer srv.Close()

	post := func(n int) (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/webhooks/cowbell/t", "application/json", bytes.NewReader(bytes.Repeat([]byte("a"), n)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(MaxBodyBytes + 1); code != 413 || body != `{"message":"Request Entity Too Large"}` {
		t.Errorf("over limit: %d %q", code, body)
	}
	if h.calls != 0 {
		t.Errorf("handler invoked for an oversized body")
	}
	if code, _ := post(MaxBodyBytes); code != 200 || len(h.got.Body) != MaxBodyBytes {
		t.Errorf("at limit: %d, body %d bytes", code, len(h.got.Body))
	}
}

// slow blocks until its context ends.
type slow struct{}

func (slow) Invoke(ctx context.Context, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestTimeoutIs503(t *testing.T) {
	s := newServer(t, map[string]Function{"webhook": {Handler: slow{}, Timeout: time.Millisecond}, "api": {}, "holds": {}})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 503 {
		t.Fatalf("status %d", w.Code)
	}
}

func TestLogsNoPathSecrets(t *testing.T) {
	var buf bytes.Buffer
	h := &recorder{resp: []byte(`{"statusCode":401}`)}
	s, err := New(testRoutes, map[string]Function{"webhook": {Handler: h}, "api": {}, "holds": {}}, Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/webhooks/cowbell/s3cret-token-1", strings.NewReader("{}")))
	s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/webhooks/cowbel/s3cret-token-2", strings.NewReader("{}")))
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("a path token reached the log:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), `"route":"POST /webhooks/cowbell/{token}"`) {
		t.Errorf("request log lacks the route:\n%s", buf.String())
	}
}
