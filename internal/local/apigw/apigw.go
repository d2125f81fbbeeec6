// Package apigw is a local stand-in for an API Gateway HTTP API: it turns each
// HTTP request into an API Gateway payload-format 2.0 event
// (events.APIGatewayV2HTTPRequest), invokes the Lambda handler whose HttpApi
// route matches, and writes the handler's APIGatewayV2HTTPResponse back — so the
// handler code that runs in Lambda serves `make run` unchanged.
package apigw

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// MaxBodyBytes is API Gateway's payload limit (10 MB).
const MaxBodyBytes = 10 << 20

// DefaultTimeout is API Gateway's maximum integration timeout (30 s), used when
// a function has no timeout of its own.
const DefaultTimeout = 30 * time.Second

// Invoker is a Lambda handler (lambda.Handler satisfies it).
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Function is what a route invokes.
type Function struct {
	Handler Invoker
	// Timeout bounds one invocation (template.yaml's Timeout; at most 30 s, API
	// Gateway's integration limit). Zero means DefaultTimeout.
	Timeout time.Duration
	// ARN is reported to the handler as the invoked function ARN (optional).
	ARN string
}

// Options configure a Server.
type Options struct {
	// Logger receives one line per request and handler failures. Nil discards.
	Logger *slog.Logger
	// AccountID and APIID fill requestContext (defaults "000000000000", "local").
	AccountID, APIID string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server is an http.Handler serving the routes of an HTTP API.
type Server struct {
	router    *router
	functions map[string]Function
	log       *slog.Logger
	accountID string
	apiID     string
	now       func() time.Time
}

// New builds a server for routes. Every route's function must be in functions;
// a function whose Handler is nil answers 500 (like an integration that fails),
// so a partly built system still serves its other routes.
func New(routes []Route, functions map[string]Function, o Options) (*Server, error) {
	rt, err := newRouter(routes)
	if err != nil {
		return nil, fmt.Errorf("apigw: %w", err)
	}
	for _, r := range rt.routes {
		if _, ok := functions[r.Function]; !ok {
			return nil, fmt.Errorf("apigw: route %s names function %q, which is not configured", r.Key(), r.Function)
		}
	}
	s := &Server{router: rt, functions: functions, log: o.Logger, accountID: o.AccountID, apiID: o.APIID, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.accountID == "" {
		s.accountID = "000000000000"
	}
	if s.apiID == "" {
		s.apiID = "local"
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Routes returns the route keys in match order (most specific first).
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.router.routes))
	for i, r := range s.router.routes {
		out[i] = r.Route
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	requestID := newRequestID()
	w.Header().Set("Apigw-Requestid", requestID)
	rawPath := r.URL.EscapedPath()
	route, params, ok := s.router.find(r.Method, rawPath)
	if !ok {
		writeMessage(w, http.StatusNotFound, "Not Found")
		s.log.Info("request", "requestId", requestID, "method", r.Method, "path", logPath(r.URL.Path), "status", http.StatusNotFound, "route", "")
		return
	}
	fn := s.functions[route.Function]
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
			s.log.Info("request", "requestId", requestID, "method", r.Method, "status", http.StatusRequestEntityTooLarge, "route", route.Key())
			return
		}
		writeMessage(w, http.StatusBadRequest, "Bad Request")
		s.log.Warn("read request body", "requestId", requestID, "err", err)
		return
	}
	ev := s.event(r, route, params, body, requestID, start)
	status := s.invoke(r.Context(), w, route, fn, ev)
	// The route key, not the path: path parameters may be secrets (webhook tokens).
	s.log.Info("request", "requestId", requestID, "status", status,
		"route", route.Key(), "function", route.Function, "ms", s.now().Sub(start).Milliseconds())
}

// event builds the payload-format 2.0 event for r.
func (s *Server) event(r *http.Request, route compiledRoute, params map[string]string, body []byte, requestID string, at time.Time) events.APIGatewayV2HTTPRequest {
	sourceIP := r.RemoteAddr
	port := ""
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		sourceIP = h
	}
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	if xff := headers["x-forwarded-for"]; xff != "" {
		headers["x-forwarded-for"] = xff + ", " + sourceIP
	} else {
		headers["x-forwarded-for"] = sourceIP
	}
	headers["x-forwarded-proto"] = "http"
	if r.TLS != nil {
		headers["x-forwarded-proto"] = "https"
	}
	if port != "" {
		headers["x-forwarded-port"] = port
	}
	if headers["content-length"] == "" && len(body) > 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}

	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = make(map[string]string, len(q))
		for k, vs := range q {
			query[k] = strings.Join(vs, ",")
		}
	}

	domain := r.Host
	prefix := domain
	if h, _, err := net.SplitHostPort(domain); err == nil {
		prefix = h
	}
	if i := strings.IndexByte(prefix, '.'); i > 0 {
		prefix = prefix[:i]
	}

	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              route.Key(),
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     route.Key(),
			AccountID:    s.accountID,
			Stage:        "$default",
			RequestID:    requestID,
			APIID:        s.apiID,
			DomainName:   domain,
			DomainPrefix: prefix,
			Time:         at.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    at.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type"), body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// invoke runs the function on ev and writes its answer; it returns the status written.
func (s *Server) invoke(ctx context.Context, w http.ResponseWriter, route compiledRoute, fn Function, ev events.APIGatewayV2HTTPRequest) int {
	if fn.Handler == nil {
		s.log.Error("function not available", "function", route.Function, "route", route.Key(), "requestId", ev.RequestContext.RequestID)
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return http.StatusInternalServerError
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		s.log.Error("encode event", "function", route.Function, "err", err)
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return http.StatusInternalServerError
	}
	timeout := fn.Timeout
	if timeout <= 0 || timeout > DefaultTimeout {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       newInvocationID(),
		InvokedFunctionArn: fn.ARN,
	})
	out, err := fn.Handler.Invoke(ctx, payload)
	if err != nil {
		status := http.StatusInternalServerError
		msg := "Internal Server Error"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			status, msg = http.StatusServiceUnavailable, "Service Unavailable"
		}
		s.log.Error("handler failed", "function", route.Function, "route", route.Key(), "requestId", ev.RequestContext.RequestID, "err", err)
		writeMessage(w, status, msg)
		return status
	}
	resp, err := decodeResponse(out)
	if err != nil {
		s.log.Error("invalid handler response", "function", route.Function, "route", route.Key(), "requestId", ev.RequestContext.RequestID, "err", err)
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return http.StatusInternalServerError
	}
	if err := writeResponse(w, resp); err != nil {
		s.log.Error("invalid handler response", "function", route.Function, "route", route.Key(), "requestId", ev.RequestContext.RequestID, "err", err)
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return http.StatusInternalServerError
	}
	return resp.StatusCode
}

// logPath keeps the first two segments of an unmatched path: what follows may
// be a token sent to a mistyped route.
func logPath(p string) string {
	parts := strings.SplitN(p, "/", 4)
	if len(parts) == 4 {
		return strings.Join(parts[:3], "/") + "/…"
	}
	return p
}

// decodeResponse reads a handler's answer the way payload format 2.0 does: an
// object with a statusCode is a structured response; anything else valid JSON
// is the body of a 200 application/json answer.
func decodeResponse(out []byte) (events.APIGatewayV2HTTPResponse, error) {
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusOK, Headers: map[string]string{"Content-Type": "application/json"}}, nil
	}
	if !json.Valid(trimmed) {
		return events.APIGatewayV2HTTPResponse{}, errors.New("handler returned invalid JSON")
	}
	if trimmed[0] == '{' {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &probe); err != nil {
			return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("decode handler response: %w", err)
		}
		if _, structured := probe["statusCode"]; structured {
			var resp events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(trimmed, &resp); err != nil {
				return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("decode handler response: %w", err)
			}
			return resp, nil
		}
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusOK,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(trimmed),
	}, nil
}

func writeResponse(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) error {
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		return fmt.Errorf("status code %d out of range", resp.StatusCode)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return fmt.Errorf("decode base64 body: %w", err)
		}
		body = b
	}
	h := w.Header()
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if h.Get("Content-Type") == "" && len(body) > 0 {
		// API Gateway does not sniff; say what it is rather than let net/http guess.
		h.Set("Content-Type", "application/octet-stream")
		if utf8.Valid(body) {
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return nil
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// isText reports whether a body of this content type reaches the handler as text
// (otherwise API Gateway base64-encodes it).
func isText(contentType string, body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript", mt == "application/x-www-form-urlencoded",
		mt == "application/yaml", mt == "application/x-yaml":
		return true
	}
	return false
}

// newRequestID mimics API Gateway's short request ids ("JKJaXmPLvHcESHA=").
func newRequestID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// newInvocationID is a UUID-shaped Lambda request id.
func newInvocationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
