package sendexport

import (
	"encoding/csv"
	"io"
	"time"

	"github.com/coiflow/coiflow/internal/sending"
)

// CSV writes the export as RFC 4180 CSV: CRLF line ends, a header row, UTF-8
// without a byte order mark, times as RFC3339 UTC ("" when unset). A cell
// starting with = + - @ (or a tab or carriage return) gets a leading ' so that
// spreadsheet programs do not run it as a formula.
//
// Each row reaches the output as soon as it is added (callers counting the
// bytes written see exact figures), so give it a buffered writer when many
// small writes are costly.
type CSV struct {
	w      *csv.Writer
	header bool
	cells  []string
}

var _ Writer = (*CSV)(nil)

// NewCSV returns a CSV writer on w.
func NewCSV(w io.Writer) *CSV {
	c := &CSV{w: csv.NewWriter(w), cells: make([]string, 0, len(columns))}
	c.w.UseCRLF = true
	return c
}

func (c *CSV) writeHeader() error {
	c.header = true
	return c.w.Write(Columns())
}

// Add writes r's row (after the header, on the first call).
func (c *CSV) Add(r *sending.SendRecord) error {
	if !c.header {
		if err := c.writeHeader(); err != nil {
			return err
		}
	}
	c.cells = c.cells[:0]
	for _, col := range columns {
		if col.time != nil {
			c.cells = append(c.cells, csvTime(col.time(r)))
		} else {
			c.cells = append(c.cells, safeCell(col.text(r)))
		}
	}
	if err := c.w.Write(c.cells); err != nil {
		return err
	}
	c.w.Flush()
	return c.w.Error()
}

// Finish writes the header when no record was added, and flushes.
func (c *CSV) Finish() error {
	if !c.header {
		if err := c.writeHeader(); err != nil {
			return err
		}
	}
	c.w.Flush()
	return c.w.Error()
}

// Close does nothing: a CSV holds no resources.
func (c *CSV) Close() error { return nil }

// csvTime is an RFC 3339 UTC time, "" when unset.
func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// safeCell defuses formula injection: a cell that a spreadsheet would read as
// a formula (= + - @, or a leading tab or carriage return) is prefixed with '.
func safeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
