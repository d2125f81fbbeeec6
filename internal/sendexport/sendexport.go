// Package sendexport writes the send log as a file a person opens: CSV
// (RFC 4180) or XLSX (one sheet with a title row naming the certificate, a row
// describing the filters, the header and one row per send, as an Excel table).
//
// The staff API's GET /api/sends/export (in memory, bounded by the Lambda
// response size) and `coiflow export` (paging through GET /api/sends, no bound)
// write the same files with it:
//
//	m, err := sendexport.NewMeta(sendexport.Filter{CertificateID: id, From: "2026-11-21"}, time.Now())
//	w, err := sendexport.New(sendexport.FormatXLSX, out, m)
//	defer w.Close()
//	for each record created within m's range (m.Contains): w.Add(&rec)
//	err = w.Finish()
//	// the file is conventionally named sendexport.FileName(m, sendexport.FormatXLSX)
//
// When the export is of one certificate its id is in the file name, the sheet
// name (shortened when Excel's 31 characters cannot hold it) and the title
// row, so that a file shared with a client matches the audit log.
package sendexport

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/sending"
)

// Export formats.
const (
	FormatCSV  = "csv"
	FormatXLSX = "xlsx"
)

// Content types of the formats.
const (
	ContentTypeCSV  = "text/csv; charset=utf-8; header=present"
	ContentTypeXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
)

// ContentType is the MIME type of format ("" for an unknown format).
func ContentType(format string) string {
	switch format {
	case FormatCSV:
		return ContentTypeCSV
	case FormatXLSX:
		return ContentTypeXLSX
	}
	return ""
}

// DateLayout is the date-only form of a range's ends (a UTC day).
const DateLayout = "2006-01-02"

// DefaultDays is how far back an export that names no certificate reaches
// when it gives no start: the send query's own default.
const DefaultDays = 7

// Filter is what an export is asked for: the send query's filters, with the
// range's ends as given ("" when open).
type Filter struct {
	CertificateID string
	Holder        string
	Status        string
	// From and To are RFC3339 times or YYYY-MM-DD dates (UTC days; To as a
	// date includes that whole day).
	From, To string
}

// Meta describes an export: its filters and creation-time range (for the
// file name, the XLSX title rows and which records belong), who made it and
// when.
type Meta struct {
	CertificateID string
	Holder        string
	Status        string
	// From and To bound the records' creation time, inclusive; zero when open.
	From, To time.Time
	// FromLabel and ToLabel are how the ends appear in the file name: a date,
	// a compact UTC timestamp (20261121T080000Z), or for an open end "start"
	// and the export's date.
	FromLabel, ToLabel string
	ExportedBy         string
	ExportedAt         time.Time
}

// RangeError is a from/to that NewMeta cannot use.
type RangeError struct {
	Param   string // "from" or "to"
	Problem string
}

func (e *RangeError) Error() string { return "invalid " + e.Param + ": " + e.Problem }

// ParseTime reads an RFC3339 time or a YYYY-MM-DD date (a UTC day). A date
// given as the end of a range (end) stands for the last instant of that day,
// so that to=2026-11-21 includes all of the 21st. "" is the zero time.
func ParseTime(v string, end bool) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	d, err := time.Parse(DateLayout, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC3339 (2026-11-21T15:04:05Z) or a date (2026-11-21)", v)
	}
	if end {
		return d.AddDate(0, 0, 1).Add(-time.Nanosecond), nil
	}
	return d, nil
}

// NewMeta resolves f into the description of an export made at now (its
// ExportedBy is left to the caller). Without a certificate the range is made
// explicit as the send query would read it, so that the file name tells the
// truth: To defaults to now and From to DefaultDays before To. With a
// certificate its whole history is read and open ends stay open. Errors are
// *RangeError.
func NewMeta(f Filter, now time.Time) (Meta, error) {
	now = now.UTC()
	fromRaw, toRaw := strings.TrimSpace(f.From), strings.TrimSpace(f.To)
	from, err := ParseTime(fromRaw, false)
	if err != nil {
		return Meta{}, &RangeError{Param: "from", Problem: err.Error()}
	}
	to, err := ParseTime(toRaw, true)
	if err != nil {
		return Meta{}, &RangeError{Param: "to", Problem: err.Error()}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return Meta{}, &RangeError{Param: "to", Problem: "before from"}
	}
	m := Meta{CertificateID: strings.TrimSpace(f.CertificateID), Holder: strings.TrimSpace(f.Holder),
		Status: strings.TrimSpace(f.Status), ExportedAt: now}
	if m.CertificateID == "" {
		if to.IsZero() {
			to, toRaw = now, now.Format(DateLayout)
		}
		if from.IsZero() {
			from = to.AddDate(0, 0, -DefaultDays)
			fromRaw = from.Format(DateLayout)
		}
		if to.Before(from) {
			return Meta{}, &RangeError{Param: "from", Problem: "after to (to defaults to now)"}
		}
	}
	m.From, m.To = from, to
	m.FromLabel = rangeLabel(fromRaw, from, "start")
	m.ToLabel = rangeLabel(toRaw, to, now.Format(DateLayout))
	return m, nil
}

// rangeLabel is how one end of the range appears in the file name: the date as
// given, a compact UTC timestamp for an RFC3339 time, or open when absent.
func rangeLabel(raw string, t time.Time, open string) string {
	switch {
	case raw != "" && len(raw) == len(DateLayout):
		return raw
	case !t.IsZero():
		if t.Equal(t.Truncate(24 * time.Hour)) {
			return t.UTC().Format(DateLayout)
		}
		return t.UTC().Format("20060102T150405Z")
	default:
		return open
	}
}

// Contains reports whether r was created within m's range. The certificate
// index is not ordered by day, so exporters check every record they are given.
func (m Meta) Contains(r *sending.SendRecord) bool {
	return (m.From.IsZero() || !r.CreatedAt.Before(m.From)) && (m.To.IsZero() || !r.CreatedAt.After(m.To))
}

// FileName is "coi-sends-<certificateId>-<from>_<to>.<format>" for an export
// of one certificate, else "coi-sends-<from>_<to>.<format>". The certificate
// id is as given (callers sending it in a header or writing it to a file
// system deal with characters those do not take).
func FileName(m Meta, format string) string {
	name := "coi-sends-"
	if m.CertificateID != "" {
		name += m.CertificateID + "-"
	}
	return name + m.FromLabel + "_" + m.ToLabel + "." + format
}

// title is the XLSX sheet's first line (and the document title).
func title(m Meta) string {
	if m.CertificateID != "" {
		return "COI sends — certificate " + m.CertificateID
	}
	return "COI sends"
}

// description states the export's filters, for the XLSX sheet's second line.
func description(m Meta) string {
	from, to := "the first send", "now"
	if !m.From.IsZero() {
		from = m.From.UTC().Format("2006-01-02 15:04:05")
	}
	if !m.To.IsZero() {
		to = m.To.UTC().Format("2006-01-02 15:04:05")
	}
	parts := []string{"Created " + from + " to " + to + " UTC"}
	if m.CertificateID != "" {
		parts = append(parts, "certificate "+m.CertificateID)
	}
	if m.Holder != "" {
		parts = append(parts, "holder "+m.Holder)
	}
	if m.Status != "" {
		parts = append(parts, "status "+m.Status)
	}
	by := ""
	if m.ExportedBy != "" {
		by = " by " + m.ExportedBy
	}
	parts = append(parts, "exported "+m.ExportedAt.UTC().Format("2006-01-02 15:04:05")+" UTC"+by)
	return strings.Join(parts, " · ")
}

// column is one column of the export.
type column struct {
	title string
	width float64 // XLSX column width (characters)
	text  func(r *sending.SendRecord) string
	time  func(r *sending.SendRecord) time.Time // set for date columns instead of text
}

// columns are the export's columns, in order. Times are UTC.
var columns = []column{
	{title: "Send ID", width: 26, text: func(r *sending.SendRecord) string { return r.ID }},
	{title: "Certificate ID", width: 38, text: func(r *sending.SendRecord) string { return r.CertificateID }},
	{title: "Holder ID", width: 38, text: func(r *sending.SendRecord) string { return r.HolderID }},
	{title: "Holder name", width: 30, text: func(r *sending.SendRecord) string { return r.HolderName }},
	{title: "Holder email", width: 32, text: func(r *sending.SendRecord) string { return r.HolderEmail }},
	{title: "Channel", width: 10, text: func(r *sending.SendRecord) string { return r.Channel }},
	{title: "Status", width: 11, text: func(r *sending.SendRecord) string { return r.Status }},
	{title: "Approved by", width: 26, text: func(r *sending.SendRecord) string { return r.ApprovedBy }},
	{title: "Approved at (UTC)", width: 20, time: func(r *sending.SendRecord) time.Time { return r.ApprovedAt }},
	{title: "Created at (UTC)", width: 20, time: func(r *sending.SendRecord) time.Time { return r.CreatedAt }},
	{title: "Sent at (UTC)", width: 20, time: func(r *sending.SendRecord) time.Time { return r.SentAt }},
	{title: "NowCerts answer", width: 40, text: func(r *sending.SendRecord) string { return r.NowCertsAnswer }},
	{title: "Error", width: 40, text: func(r *sending.SendRecord) string { return r.Error }},
	{title: "Event ID", width: 28, text: func(r *sending.SendRecord) string { return r.EventID }},
	{title: "Request ID", width: 28, text: func(r *sending.SendRecord) string { return r.RequestID }},
	{title: "Resend of", width: 26, text: func(r *sending.SendRecord) string { return r.ResendOf }},
}

// Columns returns the titles of the export's columns, in order (the CSV
// header; the XLSX header row).
func Columns() []string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = c.title
	}
	return out
}

// Writer writes one export. Add the records in the order they should appear,
// then Finish; Close always (it releases temporary files and is safe after
// Finish). A Writer is not safe for concurrent use.
type Writer interface {
	// Add appends one record.
	Add(r *sending.SendRecord) error
	// Finish completes the file on the writer's output.
	Finish() error
	// Close releases the writer's resources.
	Close() error
}

// ErrUnknownFormat is New's error for a format other than FormatCSV and FormatXLSX.
var ErrUnknownFormat = errors.New("unknown export format (want csv or xlsx)")

// New returns a Writer of format writing the file to w.
func New(format string, w io.Writer, m Meta) (Writer, error) {
	switch format {
	case FormatCSV:
		return NewCSV(w), nil
	case FormatXLSX:
		return NewXLSX(w, m)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownFormat, format)
}
