// Package progress shows a long command's progress on one line of a writer
// (stderr): redrawn in place when the writer is a terminal, and as plain
// lines at most every Interval otherwise (a log file, CI), so that logs are
// not flooded with updates.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"
)

// DefaultInterval is how often a plain (non-terminal) writer gets a line.
const DefaultInterval = 5 * time.Second

// Line is one progress line. It is not safe for concurrent use.
type Line struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time
	last  time.Time
	shown string // the last line printed (plain mode)
	drawn bool
}

// New returns a Line on w, in place when w is a terminal.
func New(w io.Writer) *Line { return NewLine(w, IsTerminal(w), DefaultInterval, time.Now) }

// NewLine returns a Line on w: redrawn in place when tty, otherwise printed
// as a new line on the first update and then at most every interval (by now).
func NewLine(w io.Writer, tty bool, every time.Duration, now func() time.Time) *Line {
	if now == nil {
		now = time.Now
	}
	return &Line{w: w, tty: tty, every: every, now: now}
}

// IsTerminal reports whether w is a terminal (a character device, and TERM is
// not "dumb").
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Update shows s as the current progress.
func (l *Line) Update(s string) {
	if l.tty {
		fmt.Fprintf(l.w, "\r%s\x1b[K", s)
		l.drawn = true
		return
	}
	if now := l.now(); l.last.IsZero() || now.Sub(l.last) >= l.every {
		fmt.Fprintln(l.w, s)
		l.last, l.shown = now, s
	}
}

// Done ends the progress line with s, leaving the cursor on a new line. On a
// plain writer s is printed unless it is the line printed last.
func (l *Line) Done(s string) {
	switch {
	case l.tty && l.drawn:
		fmt.Fprintf(l.w, "\r%s\x1b[K\n", s)
		l.drawn = false
	case l.tty || s != l.shown:
		fmt.Fprintln(l.w, s)
		l.shown = s
	}
}
