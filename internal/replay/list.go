package replay

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coiflow/coiflow/internal/store"
)

// Lister lists quarantine records, newest first (*store.Store).
type Lister interface {
	ListQuarantine(ctx context.Context, limit int) ([]store.Quarantined, error)
}

// Entry is one quarantine record and whether its body parses now.
type Entry struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"receivedAt"`
	Reason     string    `json:"reason"`
	Bytes      int       `json:"bytes"`
	// ParsesNow is set when the current parser reads the body; EventID is then
	// the event id a replay would enqueue.
	ParsesNow bool   `json:"parsesNow"`
	EventID   string `json:"eventId,omitempty"`
	// Problem is why the body still does not parse.
	Problem string `json:"problem,omitempty"`
	// Replayed is set once the record was replayed.
	Replayed *store.QuarantineReplay `json:"replayed,omitempty"`
}

// List returns up to limit quarantine records, newest first, each checked
// against the current parser.
func List(ctx context.Context, l Lister, limit int) ([]Entry, error) {
	qs, err := l.ListQuarantine(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(qs))
	for _, q := range qs {
		e := Entry{ID: q.ID, Source: q.Source, ReceivedAt: q.ReceivedAt, Reason: q.Reason, Bytes: len(q.Body), Replayed: q.Replay}
		if ev, err := Reparse(q); err != nil {
			e.Problem = err.Error()
		} else {
			e.ParsesNow, e.EventID = true, ev.ID
		}
		out = append(out, e)
	}
	return out, nil
}

// WriteList writes entries as a table: id, source, received, status, reason.
func WriteList(w io.Writer, entries []Entry) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintln(w, "no quarantined events")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tRECEIVED (UTC)\tSTATUS\tREASON")
	for _, e := range entries {
		status := "unreadable"
		switch {
		case e.Replayed != nil:
			status = "replayed " + e.Replayed.At.UTC().Format("2006-01-02 15:04") + " by " + e.Replayed.By
		case e.ParsesNow:
			status = "parses now: replayable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Source, e.ReceivedAt.UTC().Format("2006-01-02 15:04:05"), status, shorten(e.Reason, 90))
	}
	return tw.Flush()
}

// shorten cuts s to n characters (runes) on one line.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
