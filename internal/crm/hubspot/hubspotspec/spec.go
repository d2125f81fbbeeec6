// Package hubspotspec validates HTTP traffic against HubSpot's official OpenAPI
// documents (../shared/specs/hubspot beside the repository): the contract tests
// of the HubSpot adapter and of the CRM sandbox run every request through it.
package hubspotspec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Files are the spec documents loaded, as named in the specs directory.
var Files = []string{"contacts.json", "companies.json", "notes.json", "associations.json", "properties.json"}

// specServer is the server every document declares; requests to any other host
// (a loopback test server) are matched as if sent there.
const specServer = "https://api.hubapi.com"

// EnvDir names an environment variable that overrides where the specs are.
const EnvDir = "COIFLOW_HUBSPOT_SPECS"

// Dir finds the specs directory: $COIFLOW_HUBSPOT_SPECS, else shared/specs/hubspot
// beside (or inside) the module root found by walking up from the working directory.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("hubspot specs: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			for _, c := range []string{filepath.Join(d, "..", "shared", "specs", "hubspot"), filepath.Join(d, "shared", "specs", "hubspot")} {
				if _, err := os.Stat(filepath.Join(c, "contacts.json")); err == nil {
					return filepath.Clean(c), nil
				}
			}
			return "", fmt.Errorf("hubspot specs: no shared/specs/hubspot beside %s (set %s)", d, EnvDir)
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("hubspot specs: no go.mod above %s (set %s)", wd, EnvDir)
		}
	}
}

// Validator checks requests (and answers) against the documents.
type Validator struct {
	routers []routers.Router
	opts    *openapi3filter.Options
}

// Load reads and validates the documents in dir (examples validation disabled:
// one example in HubSpot's documents does not match its own schema).
func Load(dir string) (*Validator, error) {
	v := &Validator{opts: &openapi3filter.Options{AuthenticationFunc: authenticate, MultiError: false}}
	for _, f := range Files {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("hubspot specs: load %s: %w", f, err)
		}
		r, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
		if err != nil {
			return nil, fmt.Errorf("hubspot specs: %s: %w", f, err)
		}
		v.routers = append(v.routers, r)
	}
	return v, nil
}

// authenticate accepts what the documents' security schemes describe: an OAuth2
// or private-app bearer token, the private-app header, or the developer hapikey.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "oauth2" || s.Type == "http":
		if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok && strings.TrimSpace(tok) != "" {
			return nil
		}
		return in.NewError(errors.New("no bearer token"))
	case s.Type == "apiKey" && s.In == "header":
		// HubSpot private apps send their token as a bearer token; the scheme
		// names a header for documentation purposes.
		if req.Header.Get(s.Name) != "" || strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
			return nil
		}
		return in.NewError(fmt.Errorf("no %s header", s.Name))
	case s.Type == "apiKey" && s.In == "query":
		if req.URL.Query().Get(s.Name) != "" {
			return nil
		}
		return in.NewError(fmt.Errorf("no %s query parameter", s.Name))
	}
	return in.NewError(fmt.Errorf("unsupported security scheme %q", s.Type))
}

// route finds the operation a request is for, as if sent to api.hubapi.com.
func (v *Validator) route(r *http.Request) (*routers.Route, map[string]string, *http.Request, error) {
	u, _ := url.Parse(specServer)
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	r2.Host = u.Host
	var firstErr error
	for _, rt := range v.routers {
		route, params, err := rt.FindRoute(r2)
		if err == nil {
			return route, params, r2, nil
		}
		if firstErr == nil || !errors.Is(err, routers.ErrPathNotFound) {
			firstErr = err
		}
	}
	return nil, nil, nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, firstErr)
}

// ValidateRequest checks one request; body is its payload (r.Body is not read).
func (v *Validator) ValidateRequest(r *http.Request, body []byte) error {
	_, err := v.validateRequest(r, body)
	return err
}

func (v *Validator) validateRequest(r *http.Request, body []byte) (*openapi3filter.RequestValidationInput, error) {
	route, params, r2, err := v.route(r)
	if err != nil {
		return nil, err
	}
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	in := &openapi3filter.RequestValidationInput{Request: r2, PathParams: params, Route: route, Options: v.opts}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		return in, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}
	return in, nil
}

// ValidateExchange checks a request and the answer it got.
func (v *Validator) ValidateExchange(r *http.Request, body []byte, status int, header http.Header, answer []byte) (reqErr, respErr error) {
	in, reqErr := v.validateRequest(r, body)
	if in == nil {
		return reqErr, nil
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: &openapi3filter.Options{IncludeResponseStatus: false}}
	out.SetBodyBytes(answer)
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
		respErr = fmt.Errorf("answer %d to %s %s: %w", status, r.Method, r.URL.Path, err)
	}
	return reqErr, respErr
}

// Recorder is a middleware that validates every exchange passing through it and
// keeps the failures (requests are still forwarded, so tests see both).
type Recorder struct {
	v        *Validator
	next     http.Handler
	answers  bool
	mu       sync.Mutex
	requests int
	errs     []error
}

// Wrap returns a Recorder in front of next. With answers set, the answers of
// next are validated too (for a server claiming to speak HubSpot's API).
func (v *Validator) Wrap(next http.Handler, answers bool) *Recorder {
	return &Recorder{v: v, next: next, answers: answers}
}

// ServeHTTP implements http.Handler.
func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rec.fail(fmt.Errorf("read request: %w", err))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rw := httptest.NewRecorder()
	rec.next.ServeHTTP(rw, r)
	res := rw.Result()
	answer := rw.Body.Bytes()
	reqErr, respErr := rec.v.ValidateExchange(r.Clone(context.Background()), body, res.StatusCode, res.Header, answer)
	rec.mu.Lock()
	rec.requests++
	rec.mu.Unlock()
	if reqErr != nil {
		rec.fail(reqErr)
	}
	if rec.answers && respErr != nil {
		rec.fail(respErr)
	}
	for k, vs := range res.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(answer)
}

func (rec *Recorder) fail(err error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.errs = append(rec.errs, err)
}

// Requests is how many requests went through.
func (rec *Recorder) Requests() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.requests
}

// Errors returns the validation failures so far.
func (rec *Recorder) Errors() []error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]error(nil), rec.errs...)
}
