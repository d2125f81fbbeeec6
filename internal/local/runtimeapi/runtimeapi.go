// Package runtimeapi is a small Lambda Runtime API server with the wire shape of
// Amazon's Runtime Interface Emulator, for running a built `bootstrap` outside
// Lambda (Amazon's emulator is not installable here):
//
//	GET  /2018-06-01/runtime/invocation/next          blocks until an invocation
//	POST /2018-06-01/runtime/invocation/{id}/response the function's answer
//	POST /2018-06-01/runtime/invocation/{id}/error    the function's error
//	POST /2018-06-01/runtime/init/error               the runtime failed to start
//	POST /2015-03-31/functions/function/invocations   front door: invoke and wait
//
// plus a minimal Extensions API (register, event/next) so runtimes that register
// an internal extension start. Launch starts a bootstrap against a Server.
package runtimeapi

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
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// MaxResponseBytes is Lambda's limit on a synchronous response payload (6 MB).
const MaxResponseBytes = 6 << 20

// MaxPayloadBytes is Lambda's limit on a synchronous request payload (6 MB).
const MaxPayloadBytes = 6 << 20

// FunctionError is an invocation that failed: the function reported an error, the
// runtime exited or failed to initialise, or the invocation timed out. Payload is
// the error document ({"errorMessage", "errorType", ...}) as Lambda returns it.
type FunctionError struct {
	Type    string
	Message string
	Payload []byte
}

func (e *FunctionError) Error() string {
	if e.Message == "" {
		return "function error: " + e.Type
	}
	return fmt.Sprintf("function error: %s: %s", e.Type, e.Message)
}

// Options configure a Server.
type Options struct {
	// FunctionName names the function (default "function").
	FunctionName string
	// Region and AccountID make up the invoked function ARN
	// (defaults us-east-1, 000000000000).
	Region, AccountID string
	// Timeout is the function's timeout: the deadline given to the runtime and the
	// longest an invocation may run (default 3 s, Lambda's default).
	Timeout time.Duration
	// Logger receives protocol events. Nil discards.
	Logger *slog.Logger
}

// Server is one function's Runtime API.
type Server struct {
	name, arn string
	timeout   time.Duration
	log       *slog.Logger

	queue  chan *invocation // unbuffered: an invocation is handed to a runtime's /next
	closed chan struct{}
	close  sync.Once

	mu       sync.Mutex
	inflight map[string]*invocation
	initErr  *FunctionError
	exited   chan struct{} // closed when the runtime process exits
	exitErr  error
	exitOnce sync.Once

	srv *http.Server
	ln  net.Listener
}

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	traceID  string
	taken    chan struct{} // closed by /next once deadline is set and it is in flight
	done     chan result   // buffered 1
}

type result struct {
	body []byte
	err  *FunctionError
}

// New returns a Server; call Start to listen.
func New(o Options) *Server {
	if o.FunctionName == "" {
		o.FunctionName = "function"
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "000000000000"
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	s := &Server{
		name:     o.FunctionName,
		arn:      "arn:aws:lambda:" + o.Region + ":" + o.AccountID + ":function:" + o.FunctionName,
		timeout:  o.Timeout,
		log:      o.Logger,
		queue:    make(chan *invocation),
		closed:   make(chan struct{}),
		inflight: map[string]*invocation{},
		exited:   make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Start listens on 127.0.0.1 (a free port) and serves until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("runtime api: listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("runtime api server stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the host:port to put in AWS_LAMBDA_RUNTIME_API ("" before Start).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// FunctionARN is the ARN handed to the runtime as the invoked function.
func (s *Server) FunctionARN() string { return s.arn }

// Close stops the server; waiting callers get an error.
func (s *Server) Close() error {
	s.close.Do(func() { close(s.closed) })
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		// Long-polling /next requests do not end on their own; force them.
		_ = s.srv.Close()
	}
	return nil
}

// RuntimeExited tells the server the runtime process is gone: the invocations it
// held and every later Invoke fail with Runtime.ExitError.
func (s *Server) RuntimeExited(err error) {
	s.exitOnce.Do(func() {
		s.mu.Lock()
		s.exitErr = err
		pending := s.inflight
		s.inflight = map[string]*invocation{}
		s.mu.Unlock()
		close(s.exited)
		for _, inv := range pending {
			inv.done <- result{err: s.exitError()}
		}
	})
}

func (s *Server) exitError() *FunctionError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.initErr != nil {
		return s.initErr
	}
	msg := "Runtime exited without providing a reason"
	if s.exitErr != nil {
		msg = "Runtime exited with error: " + s.exitErr.Error()
	}
	return newFunctionError("Runtime.ExitError", msg)
}

func newFunctionError(typ, msg string) *FunctionError {
	b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
	return &FunctionError{Type: typ, Message: msg, Payload: b}
}

// Invoke queues payload for the runtime and waits for its answer. A function
// error, a timeout or a dead runtime comes back as a *FunctionError; a cancelled
// ctx or closed server as a plain error.
func (s *Server) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, newFunctionError("RequestTooLargeException", fmt.Sprintf("request payload of %d bytes exceeds %d", len(payload), MaxPayloadBytes))
	}
	inv := &invocation{id: newUUID(), payload: payload, traceID: newTraceID(), taken: make(chan struct{}), done: make(chan result, 1)}
	s.mu.Lock()
	initErr := s.initErr
	s.mu.Unlock()
	if initErr != nil {
		return nil, initErr
	}
	// The deadline is fixed when the runtime takes the invocation (/next sets it).
	select {
	case s.queue <- inv:
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke %s: %w", s.name, ctx.Err())
	case <-s.closed:
		return nil, fmt.Errorf("invoke %s: runtime api closed", s.name)
	case <-s.exited:
		return nil, s.exitError()
	}
	<-inv.taken
	s.mu.Lock()
	deadline := inv.deadline
	s.mu.Unlock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case r := <-inv.done:
		if r.err != nil {
			return nil, r.err
		}
		return r.body, nil
	case <-timer.C:
		s.forget(inv.id)
		return nil, newFunctionError("Sandbox.Timedout", fmt.Sprintf("%s Task timed out after %.2f seconds", inv.id, s.timeout.Seconds()))
	case <-ctx.Done():
		s.forget(inv.id)
		return nil, fmt.Errorf("invoke %s: %w", s.name, ctx.Err())
	case <-s.closed:
		s.forget(inv.id)
		return nil, fmt.Errorf("invoke %s: runtime api closed", s.name)
	}
}

func (s *Server) forget(id string) {
	s.mu.Lock()
	delete(s.inflight, id)
	s.mu.Unlock()
}

// take removes and returns the in-flight invocation id.
func (s *Server) take(id string) (*invocation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.inflight[id]
	delete(s.inflight, id)
	return inv, ok
}

// Handler is the Runtime API and front door as an http.Handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", s.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", s.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", s.invocationError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.initError)
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", s.frontDoor)
	mux.HandleFunc("POST /2020-01-01/extension/register", s.extensionRegister)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", s.extensionNext)
	return mux
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	var inv *invocation
	select {
	case inv = <-s.queue:
	case <-r.Context().Done():
		return
	case <-s.closed:
		writeError(w, http.StatusGone, "Runtime.Shutdown", "runtime api is shutting down")
		return
	}
	s.mu.Lock()
	inv.deadline = time.Now().Add(s.timeout)
	s.inflight[inv.id] = inv
	s.mu.Unlock()
	close(inv.taken)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", s.arn)
	h.Set("Lambda-Runtime-Trace-Id", inv.traceID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload)
	s.log.Debug("invocation handed to runtime", "function", s.name, "requestId", inv.id)
}

func (s *Server) response(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "read response: "+err.Error())
		return
	}
	inv, ok := s.take(id)
	if !ok {
		// Unknown, finished, or timed out: a late answer is dropped like Lambda drops it.
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "no in-flight invocation "+id)
		return
	}
	var res result
	switch {
	case len(body) > MaxResponseBytes:
		res.err = newFunctionError("Function.ResponseSizeTooLarge", fmt.Sprintf("response payload exceeds %d bytes", MaxResponseBytes))
	case r.Trailer.Get("Lambda-Runtime-Function-Error-Type") != "":
		// A streamed response that failed part-way reports its error in trailers.
		typ := r.Trailer.Get("Lambda-Runtime-Function-Error-Type")
		res.err = &FunctionError{Type: typ, Message: "response stream failed", Payload: decodeTrailerBody(r.Trailer.Get("Lambda-Runtime-Function-Error-Body"), typ)}
	default:
		res.body = body
	}
	inv.done <- res
	writeAccepted(w)
}

func (s *Server) invocationError(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fe, err := readErrorDoc(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	inv, ok := s.take(id)
	if !ok {
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "no in-flight invocation "+id)
		return
	}
	inv.done <- result{err: fe}
	writeAccepted(w)
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	fe, err := readErrorDoc(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	s.mu.Lock()
	s.initErr = fe
	s.mu.Unlock()
	s.log.Error("runtime init error", "function", s.name, "errorType", fe.Type, "errorMessage", fe.Message)
	writeAccepted(w)
}

// readErrorDoc reads the error document a runtime posts, keeping it as the
// payload callers see.
func readErrorDoc(r *http.Request) (*FunctionError, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read error document: %w", err)
	}
	var doc struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	_ = json.Unmarshal(body, &doc) // a runtime may post anything; keep it as the payload
	typ := r.Header.Get("Lambda-Runtime-Function-Error-Type")
	if typ == "" {
		typ = doc.ErrorType
	}
	if typ == "" {
		typ = "Unhandled"
	}
	if len(bytes.TrimSpace(body)) == 0 || !json.Valid(body) {
		return newFunctionError(typ, string(body)), nil
	}
	return &FunctionError{Type: typ, Message: doc.ErrorMessage, Payload: body}, nil
}

// decodeTrailerBody decodes the base64 error document of a failed stream.
func decodeTrailerBody(b64, typ string) []byte {
	if b, err := base64.StdEncoding.DecodeString(b64); err == nil && json.Valid(b) {
		return b
	}
	return newFunctionError(typ, "response stream failed").Payload
}

// frontDoor is Lambda's Invoke API for this one function: RequestResponse waits
// and returns the answer (function errors as 200 with X-Amz-Function-Error, the
// way Lambda reports them); Event queues the invocation and answers 202.
func (s *Server) frontDoor(w http.ResponseWriter, r *http.Request) {
	payload, err := io.ReadAll(io.LimitReader(r.Body, MaxPayloadBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContentException", err.Error())
		return
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if len(payload) > MaxPayloadBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", fmt.Sprintf("request payload exceeds %d bytes", MaxPayloadBytes))
		return
	}
	if r.Header.Get("X-Amz-Invocation-Type") == "Event" {
		go func() {
			if _, err := s.Invoke(context.WithoutCancel(r.Context()), payload); err != nil {
				s.log.Error("async invocation failed", "function", s.name, "err", err)
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	out, err := s.Invoke(r.Context(), payload)
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	var fe *FunctionError
	switch {
	case errors.As(err, &fe):
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(fe.Payload)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "ServiceException", err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
	}
}

func (s *Server) extensionRegister(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<16))
	w.Header().Set("Lambda-Extension-Identifier", newUUID())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]string{"functionName": s.name, "functionVersion": "$LATEST", "handler": "bootstrap"})
}

// extensionNext blocks until shutdown, then reports SHUTDOWN.
func (s *Server) extensionNext(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
		return
	case <-s.closed:
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": time.Now().Add(2 * time.Second).UnixMilli()})
}

func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorType": typ, "errorMessage": msg})
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newTraceID is an X-Ray trace header: Root=1-<epoch hex>-<96-bit hex>;Parent=...;Sampled=0.
func newTraceID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), h[:24], h[24:40])
}
