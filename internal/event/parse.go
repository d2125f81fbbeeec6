package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
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
	ev.Raw = json.RawMessage(body)
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
		return &SyntaxError{Offset: se.Offset, Msg: se.Error()}
	}
	if err != nil {
		return &SyntaxError{Offset: int64(len(body)), Msg: err.Error()}
	}
	return &SyntaxError{Offset: 0, Msg: "not a single JSON value"}
}
