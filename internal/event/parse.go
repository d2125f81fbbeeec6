package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Parse reads one webhook body from src. It returns:
//   - a *SyntaxError when body is not valid JSON (answer 400, name the problem);
//   - an error wrapping ErrUnknownShape when the JSON is valid but cannot be read
//     as an event of src (accept, quarantine, count);
//   - the normalised Event otherwise, with ID, IdempotencyKey, ReceivedAt and Raw set.
func Parse(src Source, body []byte, receivedAt time.Time) (Event, error) {
	if err := checkJSON(body); err != nil {
		return Event{}, err
	}
	var (
		ev  Event
		err error
	)
	switch src {
	case SourceNowCerts:
		ev, err = parseNowCerts(body)
	case SourceCowbell:
		ev, err = parseCowbell(body)
	default:
		return Event{}, fmt.Errorf("%w: unknown source %q", ErrUnknownShape, src)
	}
	if err != nil {
		return Event{}, err
	}
	ev.Source = src
	ev.ReceivedAt = receivedAt.UTC()
	// Cowbell's documentUrl is pre-signed and time-limited: it never travels
	// or gets stored with the event.
	ev.Raw = json.RawMessage(RedactBody(body))
	if ev.IdempotencyKey == "" {
		return Event{}, fmt.Errorf("%w: parser produced no idempotency key", ErrUnknownShape)
	}
	ev.ID = IDFor(ev.IdempotencyKey)
	return ev, nil
}

// checkJSON returns a *SyntaxError describing why body is not one JSON value.
func checkJSON(body []byte) error {
	if json.Valid(body) {
		return nil
	}
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return describeSyntax(body, se)
	}
	if err != nil {
		return &SyntaxError{Offset: int64(len(body)), Msg: err.Error()}
	}
	return &SyntaxError{Offset: 0, Msg: "not a single JSON value"}
}

// describeSyntax locates a JSON syntax error by line and column, names the
// offending character properly (encoding/json prints only the first byte of a
// multi-byte character, so "“" shows as 'â') and adds a hint for the mistakes
// senders make: typographic quotes, raw line breaks inside strings, a missing
// opening brace, a truncated body.
func describeSyntax(body []byte, se *json.SyntaxError) *SyntaxError {
	out := &SyntaxError{Offset: se.Offset, Msg: se.Error()}
	pos := int(se.Offset) - 1 // the offending character ends at Offset
	if pos < 0 || pos >= len(body) {
		if strings.Contains(out.Msg, "unexpected end") {
			out.Msg += "; the body is truncated or a closing bracket or quote is missing"
		}
		return out
	}
	for pos > 0 && !utf8.RuneStart(body[pos]) {
		pos--
	}
	r, _ := utf8.DecodeRune(body[pos:])
	out.Line = 1 + bytes.Count(body[:pos], []byte{'\n'})
	out.Column = 1 + utf8.RuneCount(body[bytes.LastIndexByte(body[:pos], '\n')+1:pos])
	if r >= utf8.RuneSelf && r != utf8.RuneError {
		out.Msg = strings.Replace(out.Msg, "'"+string(rune(body[pos]))+"'", fmt.Sprintf("%q (U+%04X)", r, r), 1)
	}
	switch {
	case strings.ContainsRune("\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b\u2032\u2033\u00ab\u00bb", r):
		out.Msg += "; typographic quotes are not JSON: use straight \" quotes"
	case r < 0x20 && strings.Contains(out.Msg, "in string literal"):
		out.Msg += "; a line break or other control character inside a string must be escaped (\\n)"
	case strings.Contains(out.Msg, "after top-level value") && bytes.HasPrefix(bytes.TrimSpace(body), []byte{'"'}):
		out.Msg += "; the body looks like an object's members without the opening '{'"
	case strings.Contains(out.Msg, "unexpected end"):
		out.Msg += "; the body is truncated or a closing bracket or quote is missing"
	}
	return out
}
