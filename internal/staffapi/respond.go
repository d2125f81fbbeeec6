package staffapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxBody bounds request bodies (the API takes small JSON documents).
const maxBody = 64 << 10

// apiError is an error with the HTTP status and the message the caller sees.
type apiError struct {
	status int
	msg    string
	allow  []string // methods, on a 405
	cause  error    // what the log shows for a 5xx
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.cause }

// errorf returns an *apiError with status and a formatted message.
func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// badParam is the 400 for a query or body parameter, naming it.
func badParam(name, format string, args ...any) error {
	return errorf(http.StatusBadRequest, "invalid %s: %s", name, fmt.Sprintf(format, args...))
}

// ErrorBody is every error response's JSON: the message for the caller and
// the request id under which the API logged the request.
type ErrorBody struct {
	Error     string `json:"error"`
	RequestID string `json:"requestId"`
}

// jsonResponse encodes v as the body of a response with status. HTML characters
// are not escaped (the API is not embedded in pages as raw JSON).
func jsonResponse(status int, v any) (response, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return response{}, fmt.Errorf("encode response: %w", err)
	}
	return response{
		Status: status,
		Header: map[string]string{"Content-Type": "application/json; charset=utf-8"},
		Body:   buf.Bytes(),
	}, nil
}

// errorResponse is the JSON error response; it cannot fail.
func errorResponse(status int, msg, requestID string) response {
	r, err := jsonResponse(status, ErrorBody{Error: msg, RequestID: requestID})
	if err != nil { // strings always encode; keep a valid body regardless
		return response{Status: status, Header: map[string]string{"Content-Type": "application/json; charset=utf-8"},
			Body: []byte(`{"error":"internal error","requestId":""}` + "\n")}
	}
	return r
}

// decodeJSON decodes the request body into v. An empty body is accepted when
// optional is true (v is left as is); otherwise it is a 400. The body must be a
// single JSON object with no unknown fields, sent as JSON when a Content-Type
// is given.
func decodeJSON(r *request, v any, optional bool) error {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, "a JSON body is required")
	}
	if ct := header(r.Header, "content-type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errorf(http.StatusUnsupportedMediaType, "the body must be application/json")
		}
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "unreadable JSON body: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "unreadable JSON body: more than one JSON value")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the body.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s must be a %s", typ.Field, typ.Type)
		}
		return fmt.Sprintf("expected a JSON %s", typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "not a JSON object"
	}
}
