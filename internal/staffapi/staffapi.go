// Package staffapi is the staff API behind /api/ (the api function): holds
// (list, approve, reject), sends (search, get, resend, export), quarantined
// events, permanent CRM failures, and the approvals and exceptions page at /app.
//
// Routes (JSON unless said; every error is {"error": "...", "requestId": "..."}):
//
//	GET  /api/holds?status=pending|approved|rejected&limit=N
//	POST /api/holds/{id}/approve   body optional: {"note": "..."}
//	POST /api/holds/{id}/reject    body required: {"reason": "..."}
//	POST /api/sends/{id}/resend    body required: {"reason": "..."}; header
//	     Idempotency-Key optional (≤ 255 printable ASCII characters): a repeat
//	     with the same key returns the first request's outcome
//	     ("repeat": true) and sends nothing new; without a key a send is
//	     resent once (resend the newest send to send again). Approve and
//	     reject need no key (the page sends one anyway): a hold is decided
//	     once, a repeat is a 409
//	GET  /api/sends?certificateId=&holder=&from=&to=&status=&limit=&cursor=
//	GET  /api/sends/{id}
//	GET  /api/sends/export?certificateId=&holder=&from=&to=&status=&format=csv|xlsx
//	     every matching send as a CSV or XLSX attachment (see export.go; an
//	     export over MaxExportBytes as sent is a 413: narrow it or use
//	     `coiflow export`)
//	GET  /api/quarantine?limit=N   quarantined webhook bodies, newest first
//	GET  /api/crm/failures?limit=N permanent CRM failures (not retried), newest first
//	GET  /app                      the page (HTML shell; no data, no auth: see page.go)
//
// from/to take RFC3339 or YYYY-MM-DD (a date is a UTC day; to=DATE includes that
// whole day). limit is 1..500 (default 50). An unknown path is 404, a known path
// with another method 405; the service's not-found is 404, its conflict
// (e.g. a hold already decided) 409, its invalid-request 400.
//
// Every request but GET /app is authenticated first (see NewAuthenticator): in AWS the
// principal comes from API Gateway's JWT authorizer, locally from a bearer token
// listed in the staff secret. The approver, rejecter or resend requester recorded
// by the send pipeline is always that principal, never a value from the body.
//
// Each request writes one JSON log line with its request id, route, principal
// and status; tokens are never logged and holder emails only masked. Responses
// do carry holder emails: staff need them.
package staffapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sending"
)

// Sending is the part of the send pipeline (sending.Service) the API uses.
type Sending interface {
	ListHolds(ctx context.Context, q sending.HoldQuery) ([]sending.Hold, error)
	Approve(ctx context.Context, holdID, approver string) (sending.Outcome, error)
	Reject(ctx context.Context, holdID, by, reason string) error
	Resend(ctx context.Context, q sending.ResendRequest) (sending.Outcome, error)
	QuerySends(ctx context.Context, q sending.SendQuery) (sending.SendPage, error)
	GetSend(ctx context.Context, sendID string) (sending.SendRecord, error)
}

// Config is what New needs. Sending and Auth are required.
type Config struct {
	Sending Sending
	Auth    Authenticator
	// Quarantine lists quarantined events (GET /api/quarantine); nil answers 501.
	Quarantine QuarantineLister
	// CRMFailures lists permanent CRM failures (GET /api/crm/failures); nil answers 501.
	CRMFailures CRMFailureLister
	// Logger receives one line per request (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the staff API. It is safe for concurrent use.
type Server struct {
	svc         Sending
	auth        Authenticator
	quarantine  QuarantineLister
	crmFailures CRMFailureLister
	page        *page
	// exportLimit is MaxExportBytes (tests lower it).
	exportLimit int
	log         *slog.Logger
	now         func() time.Time
	routes      []route
}

// New returns a Server.
func New(c Config) (*Server, error) {
	if c.Sending == nil {
		return nil, errors.New("staffapi: no send pipeline")
	}
	if c.Auth == nil {
		return nil, errors.New("staffapi: no authenticator")
	}
	pg, err := loadPage()
	if err != nil {
		return nil, err
	}
	s := &Server{svc: c.Sending, auth: c.Auth, quarantine: c.Quarantine, crmFailures: c.CRMFailures, page: pg,
		exportLimit: MaxExportBytes, log: c.Logger, now: c.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.routes = s.routeTable()
	return s, nil
}

// routeTable is the API: method, path pattern, and the function serving it.
// More specific literal paths win over parameters whatever the order
// (/api/sends/export before /api/sends/{id}).
func (s *Server) routeTable() []route {
	return []route{
		newRoute(http.MethodGet, "/api/holds", s.listHolds),
		newRoute(http.MethodPost, "/api/holds/{id}/approve", s.approveHold),
		newRoute(http.MethodPost, "/api/holds/{id}/reject", s.rejectHold),
		newRoute(http.MethodGet, "/api/sends", s.querySends),
		newRoute(http.MethodGet, "/api/sends/{id}", s.getSend),
		newRoute(http.MethodPost, "/api/sends/{id}/resend", s.resendSend),
		newRoute(http.MethodGet, "/api/sends/export", s.exportSends),
		newRoute(http.MethodGet, "/api/quarantine", s.listQuarantine),
		newRoute(http.MethodGet, "/api/crm/failures", s.listCRMFailures),
		newPublicRoute(http.MethodGet, "/app", s.servePage),
	}
}

// Handle serves one API Gateway HTTP API (payload 2.0) request. It always
// answers with a response; the error is always nil (a Lambda error would turn
// into API Gateway's bare 500 without a request id).
func (s *Server) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	start := s.now()
	reqID := ev.RequestContext.RequestID
	if reqID == "" {
		reqID = newRequestID()
	}
	method := strings.ToUpper(ev.RequestContext.HTTP.Method)
	path := requestPath(&ev)
	log := s.log.With("requestId", reqID, "method", method)

	resp, principal, routeName, err := s.serve(ctx, &ev, reqID, method, path, log)
	if err != nil {
		resp = s.errorResponse(err, reqID)
	}
	attrs := []any{"route", routeName, "principal", principal, "status", resp.Status,
		"durationMs", s.now().Sub(start).Milliseconds()}
	if routeName == "" {
		attrs = append(attrs, "path", path)
	}
	switch {
	case resp.Status >= 500:
		if err != nil {
			attrs = append(attrs, "error", obs.MaskEmails(err.Error()))
		}
		log.ErrorContext(ctx, "api request failed", attrs...)
	case err != nil:
		log.InfoContext(ctx, "api request refused", append(attrs, "reason", logReason(err))...)
	default:
		log.InfoContext(ctx, "api request", attrs...)
	}
	return toEvent(resp, reqID), nil
}

// serve authenticates, routes and runs one request. It returns the principal
// and route name for the log line even when it fails. Public routes (the page
// shell, which holds no data) skip authentication; everything else, including
// an unknown path, needs an identity first.
func (s *Server) serve(ctx context.Context, ev *events.APIGatewayV2HTTPRequest, reqID, method, path string, log *slog.Logger) (response, string, string, error) {
	res := lookup(s.routes, method, path)
	principal := ""
	if res.route == nil || !res.route.public {
		var err error
		principal, err = s.auth.Authenticate(ctx, ev)
		if err != nil {
			if errors.Is(err, errUnauthenticated) {
				return response{}, "", "", &authError{err: err}
			}
			return response{}, "", "", err
		}
	}
	if res.route == nil {
		if len(res.allow) > 0 {
			return response{}, principal, "", &apiError{status: http.StatusMethodNotAllowed,
				msg: "method " + method + " not allowed here (allowed: " + strings.Join(res.allow, ", ") + ")", allow: res.allow}
		}
		return response{}, principal, "", errorf(http.StatusNotFound, "no such route: %s %s", method, path)
	}
	rt := res.route
	query, err := parseQuery(ev)
	if err != nil {
		return response{}, principal, rt.name(), err
	}
	body, err := requestBody(ev)
	if err != nil {
		return response{}, principal, rt.name(), err
	}
	rlog := log.With("route", rt.name(), "principal", principal)
	r := &request{
		ID: reqID, Principal: principal, Method: method, Path: path, Params: res.params,
		Query: query, Header: ev.Headers, Body: body, Log: rlog,
	}
	ctx = sending.WithRequestID(obs.WithLogger(ctx, rlog), reqID)
	resp, err := rt.serve(ctx, r)
	return resp, principal, rt.name(), err
}

// authError is a 401.
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// errorResponse maps an error to its JSON response. Messages of 5xx errors are
// not shown to the caller (the log has them, under the request id).
func (s *Server) errorResponse(err error, reqID string) response {
	var ae *apiError
	var au *authError
	switch {
	case errors.As(err, &au):
		r := errorResponse(http.StatusUnauthorized, "authentication required", reqID)
		r.Header["WWW-Authenticate"] = "Bearer"
		return r
	case errors.As(err, &ae):
		r := errorResponse(ae.status, ae.msg, reqID)
		if len(ae.allow) > 0 {
			r.Header["Allow"] = strings.Join(ae.allow, ", ")
		}
		return r
	case errors.Is(err, sending.ErrNotFound):
		return errorResponse(http.StatusNotFound, err.Error(), reqID)
	case errors.Is(err, sending.ErrConflict):
		return errorResponse(http.StatusConflict, err.Error(), reqID)
	case errors.Is(err, sending.ErrInvalid):
		return errorResponse(http.StatusBadRequest, err.Error(), reqID)
	case errors.Is(err, context.DeadlineExceeded):
		return errorResponse(http.StatusGatewayTimeout, "timed out", reqID)
	default:
		return errorResponse(http.StatusInternalServerError, "internal error", reqID)
	}
}

// logReason is the loggable reason of a refused request (4xx). Errors never
// carry tokens; any email address in them is masked.
func logReason(err error) string { return obs.MaskEmails(err.Error()) }

// toEvent converts a response into API Gateway's shape, adding the headers
// every response carries.
func toEvent(r response, reqID string) events.APIGatewayV2HTTPResponse {
	h := make(map[string]string, len(r.Header)+3)
	for k, v := range r.Header {
		h[k] = v
	}
	h["X-Request-Id"] = reqID
	h["Cache-Control"] = "no-store"
	h["X-Content-Type-Options"] = "nosniff"
	out := events.APIGatewayV2HTTPResponse{StatusCode: r.Status, Headers: h}
	if r.Binary {
		out.Body = base64.StdEncoding.EncodeToString(r.Body)
		out.IsBase64Encoded = true
	} else {
		out.Body = string(r.Body)
	}
	return out
}

// requestPath is the request's path without a stage prefix (HTTP APIs on a
// named stage include it in rawPath; the $default stage does not).
func requestPath(ev *events.APIGatewayV2HTTPRequest) string {
	p := ev.RawPath
	if p == "" {
		p = ev.RequestContext.HTTP.Path
	}
	if st := ev.RequestContext.Stage; st != "" && st != "$default" {
		if rest, ok := strings.CutPrefix(p, "/"+st); ok && (rest == "" || rest[0] == '/') {
			p = rest
		}
	}
	if p == "" {
		p = "/"
	}
	return p
}

// parseQuery reads the query string (rawQueryString when present; otherwise
// the already-split parameters).
func parseQuery(ev *events.APIGatewayV2HTTPRequest) (url.Values, error) {
	if ev.RawQueryString != "" {
		q, err := url.ParseQuery(ev.RawQueryString)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "unreadable query string")
		}
		return q, nil
	}
	q := make(url.Values, len(ev.QueryStringParameters))
	for k, v := range ev.QueryStringParameters {
		q.Set(k, v)
	}
	return q, nil
}

// requestBody returns the body, base64-decoded when API Gateway encoded it,
// refusing bodies over maxBody.
func requestBody(ev *events.APIGatewayV2HTTPRequest) ([]byte, error) {
	b := []byte(ev.Body)
	if ev.IsBase64Encoded {
		d, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "body is not valid base64")
		}
		b = d
	}
	if len(b) > maxBody {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", maxBody)
	}
	return b, nil
}

// newRequestID makes an id for requests that arrive without one.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "local-" + hex.EncodeToString(b[:])
}
