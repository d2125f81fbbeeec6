// Package webhook is coiflow's webhook receiver: the handler behind
// POST /webhooks/{nowcerts|cowbell}/{token} and GET /healthz (API Gateway HTTP
// API, payload format 2.0).
//
// A webhook is checked in this order, and the first failure answers:
//
//	route        unknown path 404, wrong method 405 (with Allow)
//	token        the path token against the source's tokens (constant time):
//	             401 bad_token; a source with no tokens refuses all: 401 no_credentials
//	size         more than MaxBodyBytes (after base64 decoding): 413
//	content type not application/json or application/*+json: 415
//	signature    when the source has signing secrets (Standard Webhooks): 401
//	JSON         not JSON: 400 naming the offset and reason (the body is kept for review)
//	shape        JSON of an unknown shape: quarantined, 202 {"eventId","status":"quarantined"}
//	agency       agency not in the source's allowlist: 403
//	enqueue      one job per queue jobs.Route names; 202 {"eventId","queued"} only after
//	             SQS accepted them all, otherwise 503 with Retry-After
//
// Nothing is enqueued for a rejected request. Failures of coiflow's own
// dependencies (credentials, queues, the quarantine table) answer 503 so the
// sender retries; a retry of the same body gets the same event id.
package webhook

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/webhook/signature"
)

// MaxBodyBytes is the largest webhook body accepted (after base64 decoding).
const MaxBodyBytes = 256 << 10

// RetryAfterSeconds is the Retry-After of a 503.
const RetryAfterSeconds = "5"

// Reasons of WebhooksRejected (4xx) and WebhooksFailed (5xx) metrics and logs.
const (
	ReasonBadToken             = "bad_token"
	ReasonNoCredentials        = "no_credentials"
	ReasonTooLarge             = "too_large"
	ReasonUnsupportedMediaType = "unsupported_media_type"
	ReasonBadEncoding          = "bad_encoding"
	ReasonMalformedJSON        = "malformed_json"
	ReasonBadSignature         = "bad_signature"
	ReasonAgencyNotAllowed     = "agency_not_allowed"
	ReasonNotFound             = "not_found"
	ReasonMethodNotAllowed     = "method_not_allowed"

	ReasonCredentialsUnavailable = "credentials_unavailable"
	ReasonEnqueueFailed          = "enqueue_failed"
	ReasonQuarantineFailed       = "quarantine_failed"
)

// Credentials are what a source's webhooks are checked against.
type Credentials struct {
	// Tokens are the secrets accepted in the URL path; two during rotation.
	// None: every request from the source is refused.
	Tokens []string
	// SigningSecrets, when any, make a valid Standard Webhooks signature
	// mandatory.
	SigningSecrets []signature.Secret
	// AgencyIDs, when any, are the only agencies whose events are accepted.
	AgencyIDs []string
}

// CredentialSource returns the current credentials of a source.
type CredentialSource interface {
	Credentials(ctx context.Context, src event.Source) (Credentials, error)
}

// Enqueuer puts jobs on their queues; nil only when every job was accepted.
type Enqueuer interface {
	Enqueue(ctx context.Context, js []jobs.Job) error
}

// Quarantiner keeps bodies that could not be read as events. created is false
// when a record with that id already existed.
type Quarantiner interface {
	PutQuarantine(ctx context.Context, q store.Quarantined) (created bool, err error)
}

// Metrics counts (obs.Metrics satisfies it).
type Metrics interface {
	Count(name string, n float64, dims obs.Dims)
}

// Config is what a Handler needs. Credentials, Queue and Quarantine are required.
type Config struct {
	Credentials CredentialSource
	Queue       Enqueuer
	Quarantine  Quarantiner
	Now         func() time.Time // default time.Now
	Logger      *slog.Logger     // default: discard
	Metrics     Metrics          // default: discard
}

// Handler receives webhooks. It is safe for concurrent use.
type Handler struct {
	creds   CredentialSource
	queue   Enqueuer
	quar    Quarantiner
	now     func() time.Time
	log     *slog.Logger
	metrics Metrics
}

// New returns a Handler.
func New(c Config) (*Handler, error) {
	switch {
	case c.Credentials == nil:
		return nil, errors.New("webhook: no credential source")
	case c.Queue == nil:
		return nil, errors.New("webhook: no queue")
	case c.Quarantine == nil:
		return nil, errors.New("webhook: no quarantine")
	}
	h := &Handler{creds: c.Credentials, queue: c.Queue, quar: c.Quarantine, now: c.Now, log: c.Logger, metrics: c.Metrics}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.metrics == nil {
		h.metrics = (*obs.Metrics)(nil)
	}
	return h, nil
}

// Handle answers one API Gateway HTTP API request. Its error is always nil:
// every outcome, failures included, is an HTTP answer.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	requestID := req.RequestContext.RequestID
	if requestID == "" {
		requestID = "local-" + rand.Text()
	}
	r := &request{h: h, id: requestID, log: h.log.With("requestId", requestID), source: "unknown"}
	return r.handle(ctx, req), nil
}

// request is one request in flight.
type request struct {
	h      *Handler
	id     string
	log    *slog.Logger
	source string
}

func (r *request) handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	method, path := requestLine(req)
	rt := route(req, path)
	switch {
	case rt.health:
		if method != http.MethodGet && method != http.MethodHead {
			return r.reject(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use GET", method, path), "Allow", http.MethodGet)
		}
		return respond(http.StatusOK, map[string]any{"status": "ok"})
	case rt.source == "":
		return r.reject(http.StatusNotFound, ReasonNotFound, fmt.Sprintf("no route for %s %s", method, redactPath(path)))
	}
	r.source = string(rt.source)
	r.log = r.log.With("source", r.source)
	if method != http.MethodPost {
		return r.reject(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, fmt.Sprintf("%s is not allowed on webhooks; use POST", method), "Allow", http.MethodPost)
	}
	return r.receive(ctx, rt.source, rt.token, req)
}

func (r *request) receive(ctx context.Context, src event.Source, token string, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	creds, err := r.h.creds.Credentials(ctx, src)
	if err != nil {
		r.log.Error("webhook credentials unavailable", "err", err)
		return r.fail(ReasonCredentialsUnavailable, "webhook credentials are unavailable; retry later")
	}
	if !slices.ContainsFunc(creds.Tokens, func(t string) bool { return t != "" }) {
		return r.reject(http.StatusUnauthorized, ReasonNoCredentials, fmt.Sprintf("webhooks from %s are not configured: every request is refused", src))
	}
	if !tokenMatches(token, creds.Tokens) {
		return r.reject(http.StatusUnauthorized, ReasonBadToken, "invalid webhook token")
	}

	body, status, reason, msg := decodeBody(req)
	if status != 0 {
		return r.reject(status, reason, msg)
	}
	contentType := header(req.Headers, "Content-Type")
	if msg := checkContentType(contentType); msg != "" {
		return r.reject(http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType, msg)
	}
	if len(creds.SigningSecrets) > 0 {
		sig := signature.Header{
			ID:        header(req.Headers, "webhook-id"),
			Timestamp: header(req.Headers, "webhook-timestamp"),
			Signature: header(req.Headers, "webhook-signature"),
		}
		if err := signature.Verify(body, sig, creds.SigningSecrets, r.h.now()); err != nil {
			return r.reject(http.StatusUnauthorized, ReasonBadSignature, "bad webhook signature: "+err.Error())
		}
	}

	receivedAt := r.h.now().UTC()
	ev, err := event.Parse(src, body, receivedAt)
	var syntaxErr *event.SyntaxError
	switch {
	case errors.As(err, &syntaxErr):
		// The sender gets a precise 400; the body is kept for review as well,
		// best effort (the answer is 400 either way).
		q := r.quarantineRecord(src, body, contentType, receivedAt, syntaxErr.Error())
		if _, qerr := r.h.quar.PutQuarantine(ctx, q); qerr != nil {
			r.log.Error("keeping a malformed body for review failed", "quarantineId", q.ID, "err", qerr)
		}
		return r.reject(http.StatusBadRequest, ReasonMalformedJSON, syntaxErr.Error())
	case err != nil:
		// ErrUnknownShape, or anything else a parser reports: keep it, never drop.
		return r.quarantine(ctx, r.quarantineRecord(src, body, contentType, receivedAt, err.Error()))
	}
	r.log = r.log.With("eventId", ev.ID, "type", ev.Type)

	if err := CheckAgency(src, ev.AgencyID, creds.AgencyIDs); err != nil {
		return r.reject(http.StatusForbidden, ReasonAgencyNotAllowed, err.Error())
	}
	return r.enqueue(ctx, ev, body, contentType)
}

func (r *request) enqueue(ctx context.Context, ev event.Event, body []byte, contentType string) events.APIGatewayV2HTTPResponse {
	queues := jobs.Route(ev)
	names := make([]string, len(queues))
	js := make([]jobs.Job, len(queues))
	now := r.h.now()
	for i, q := range queues {
		names[i] = string(q)
		js[i] = jobs.New(q, ev, r.id, now)
	}
	if len(js) > 0 {
		if err := r.h.queue.Enqueue(ctx, js); err != nil {
			if errors.Is(err, queue.ErrTooLarge) {
				// It can never fit a message: keep it for review rather than
				// have the sender retry it forever.
				return r.quarantine(ctx, r.quarantineRecord(ev.Source, body, contentType, ev.ReceivedAt, err.Error()))
			}
			r.log.Error("enqueue failed", "queues", names, "err", err)
			return r.fail(ReasonEnqueueFailed, "the event could not be queued; retry later")
		}
		for _, q := range names {
			r.h.metrics.Count(obs.MetricJobsEnqueued, 1, obs.Dims{"Queue": q})
		}
	}
	r.h.metrics.Count(obs.MetricWebhooksAccepted, 1, obs.Dims{"Source": r.source})
	attrs := []any{"status", http.StatusAccepted, "entityKind", ev.EntityKind, "entityId", ev.EntityID, "action", ev.Action, "queued", names}
	if ev.AgencyID != "" {
		attrs = append(attrs, "agencyId", ev.AgencyID)
	}
	if len(js) == 0 {
		r.log.Info("webhook accepted; the event routes to no queue", attrs...)
	} else {
		r.log.Info("webhook accepted", attrs...)
	}
	return respond(http.StatusAccepted, acceptedBody{EventID: ev.ID, Queued: names, RequestID: r.id})
}

type acceptedBody struct {
	EventID   string   `json:"eventId"`
	Queued    []string `json:"queued"`
	RequestID string   `json:"requestId"`
}

// quarantineRecord builds the record for body; its id is derived from the source
// and the body's hash, so a redelivery is one record and answers the same id.
func (r *request) quarantineRecord(src event.Source, body []byte, contentType string, receivedAt time.Time, reason string) store.Quarantined {
	sum := sha256.Sum256(body)
	return store.Quarantined{
		ID:          event.IDFor(event.Key(string(src), "quarantine", hex.EncodeToString(sum[:]))),
		Source:      string(src),
		Reason:      reason,
		RequestID:   r.id,
		ContentType: contentType,
		ReceivedAt:  receivedAt,
		Body:        event.RedactBody(body), // pre-signed document links are never stored
	}
}

func (r *request) quarantine(ctx context.Context, q store.Quarantined) events.APIGatewayV2HTTPResponse {
	created, err := r.h.quar.PutQuarantine(ctx, q)
	if err != nil {
		r.log.Error("quarantine failed", "quarantineId", q.ID, "reason", q.Reason, "err", err)
		return r.fail(ReasonQuarantineFailed, "the event could not be stored; retry later")
	}
	r.h.metrics.Count(obs.MetricEventsQuarantined, 1, obs.Dims{"Source": r.source})
	r.log.Warn("webhook quarantined", "status", http.StatusAccepted, "eventId", q.ID, "reason", q.Reason, "redelivery", !created, "bytes", len(q.Body))
	return respond(http.StatusAccepted, map[string]any{"eventId": q.ID, "status": "quarantined", "requestId": r.id})
}

// reject answers a client error (4xx), counted as WebhooksRejected.
func (r *request) reject(status int, reason, msg string, headerKV ...string) events.APIGatewayV2HTTPResponse {
	r.h.metrics.Count(obs.MetricWebhooksRejected, 1, obs.Dims{"Source": r.source, "Reason": reason})
	r.log.Warn("webhook rejected", "status", status, "reason", reason, "detail", msg)
	resp := respond(status, errorBody{Error: msg, RequestID: r.id})
	for i := 0; i+1 < len(headerKV); i += 2 {
		resp.Headers[headerKV[i]] = headerKV[i+1]
	}
	return resp
}

// fail answers 503 for a failure of coiflow's own dependencies, counted as
// WebhooksFailed; the sender retries.
func (r *request) fail(reason, msg string) events.APIGatewayV2HTTPResponse {
	r.h.metrics.Count(obs.MetricWebhooksFailed, 1, obs.Dims{"Source": r.source, "Reason": reason})
	resp := respond(http.StatusServiceUnavailable, errorBody{Error: msg, RequestID: r.id})
	resp.Headers["Retry-After"] = RetryAfterSeconds
	return resp
}

type errorBody struct {
	Error     string `json:"error"`
	RequestID string `json:"requestId"`
}

func respond(status int, body any) events.APIGatewayV2HTTPResponse {
	b, err := json.Marshal(body)
	if err != nil { // the bodies above always encode
		b = []byte(`{"error":"internal error"}`)
		status = http.StatusInternalServerError
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(b),
	}
}

// routed is where a request goes.
type routed struct {
	health bool
	source event.Source // "" when no webhook route matched
	token  string
}

// requestLine returns the request's method and path (rawPath, else the
// context's path).
func requestLine(req events.APIGatewayV2HTTPRequest) (method, path string) {
	method = strings.ToUpper(req.RequestContext.HTTP.Method)
	path = req.RawPath
	if path == "" {
		path = req.RequestContext.HTTP.Path
	}
	return method, path
}

// route matches /healthz and /webhooks/{source}/{token} (after a named stage's
// prefix, which API Gateway keeps in rawPath). The token is the path parameter
// when API Gateway supplied it, else the decoded last segment.
func route(req events.APIGatewayV2HTTPRequest, path string) routed {
	if st := req.RequestContext.Stage; st != "" && st != "$default" {
		if rest, ok := strings.CutPrefix(path, "/"+st+"/"); ok {
			path = "/" + rest
		}
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "healthz":
		return routed{health: true}
	case len(parts) == 3 && parts[0] == "webhooks" && event.Source(parts[1]).Valid() && parts[2] != "":
		token := req.PathParameters["token"]
		if token == "" {
			token = parts[2]
			if t, err := url.PathUnescape(token); err == nil {
				token = t
			}
		}
		return routed{source: event.Source(parts[1]), token: token}
	}
	return routed{}
}

// redactPath hides what follows /webhooks/<source>/ in a path that is echoed
// (a token sent to a wrong path must not reach answers or logs).
func redactPath(path string) string {
	parts := strings.SplitN(path, "/", 4) // "", "webhooks", source, rest
	if len(parts) == 4 && parts[1] == "webhooks" && parts[3] != "" {
		return "/webhooks/" + parts[2] + "/[redacted]"
	}
	return path
}

// tokenMatches compares token with every configured token in constant time
// (hashes first, so lengths are not revealed either). Empty tokens never match.
func tokenMatches(token string, tokens []string) bool {
	got := sha256.Sum256([]byte(token))
	match := 0
	for _, t := range tokens {
		want := sha256.Sum256([]byte(t))
		eq := subtle.ConstantTimeCompare(got[:], want[:])
		if t == "" {
			eq = 0
		}
		match |= eq
	}
	return match == 1 && token != ""
}

// decodeBody returns the request's raw body (base64-decoded when API Gateway
// encoded it), or the status, reason and message of why it is refused.
func decodeBody(req events.APIGatewayV2HTTPRequest) (body []byte, status int, reason, msg string) {
	tooLarge := func(n int) (int, string, string) {
		return http.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Sprintf("body is %d bytes; the limit is %d bytes (256 KiB)", n, MaxBodyBytes)
	}
	if !req.IsBase64Encoded {
		if len(req.Body) > MaxBodyBytes {
			status, reason, msg = tooLarge(len(req.Body))
			return nil, status, reason, msg
		}
		return []byte(req.Body), 0, "", ""
	}
	// Refuse before decoding what cannot fit once decoded.
	if n := base64.StdEncoding.DecodedLen(len(req.Body)); n > MaxBodyBytes+2 {
		return nil, http.StatusRequestEntityTooLarge, ReasonTooLarge,
			fmt.Sprintf("body is about %d bytes (%d base64-encoded); the limit is %d bytes (256 KiB)", n, len(req.Body), MaxBodyBytes)
	}
	body, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, http.StatusBadRequest, ReasonBadEncoding, "isBase64Encoded is set but the body is not valid base64: " + err.Error()
	}
	if len(body) > MaxBodyBytes {
		status, reason, msg = tooLarge(len(body))
		return nil, status, reason, msg
	}
	return body, 0, "", ""
}

// checkContentType returns why ct is not acceptable, or "".
func checkContentType(ct string) string {
	if strings.TrimSpace(ct) == "" {
		return "missing Content-Type; send application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Sprintf("unreadable Content-Type %q; send application/json", ct)
	}
	if mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return ""
	}
	return fmt.Sprintf("Content-Type %s is not JSON; send application/json", mt)
}

// header returns the value of the named header, matching names
// case-insensitively (API Gateway lower-cases them; other callers may not).
func header(h map[string]string, name string) string {
	if v, ok := h[strings.ToLower(name)]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// CheckAgency applies a source's agency allowlist (Credentials.AgencyIDs) to an
// event's agency id as a delivery does: without a list every event passes;
// with one, the id must be on it (case-insensitive, surrounding spaces
// ignored). The error says why the event is refused.
func CheckAgency(src event.Source, agencyID string, allowed []string) error {
	if len(allowed) == 0 {
		return nil
	}
	if agencyID == "" {
		return fmt.Errorf("the event has no agency id, and %s webhooks are accepted only for listed agencies", src)
	}
	id := strings.TrimSpace(agencyID)
	for _, a := range allowed {
		if strings.EqualFold(strings.TrimSpace(a), id) {
			return nil
		}
	}
	return fmt.Errorf("agency %s is not allowed for %s webhooks", agencyID, src)
}
