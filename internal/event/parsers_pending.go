package event

import "fmt"

// Placeholders until the source parsers land (nowcerts.go, cowbell.go replace them).

func parseNowCerts(body []byte) (Event, error) {
	return Event{}, fmt.Errorf("%w: NowCerts parser not built yet", ErrUnknownShape)
}

func parseCowbell(body []byte) (Event, error) {
	return Event{}, fmt.Errorf("%w: Cowbell parser not built yet", ErrUnknownShape)
}
