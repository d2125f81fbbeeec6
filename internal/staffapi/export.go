package staffapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coiflow/coiflow/internal/sending"
)

// Exports: GET /api/sends/export?from=&to=&certificateId=&holder=&status=&format=csv|xlsx
//
// The export reads every page of the send query and answers one file (CSV by
// default). Without certificateId the range defaults to the last 7 days, like
// GET /api/sends; with certificateId the certificate's whole history is read
// and from/to, when given, narrow it by creation time.
//
// A Lambda behind API Gateway answers at most 6 MB, counted on the response as
// sent: the XLSX body is base64 (4/3 of the file) and the CSV body a JSON string.
// An export whose body would exceed MaxExportBytes that way is refused with 413
// and a message saying to narrow the range or use `coiflow export`, which pages
// through GET /api/sends itself and has no such limit.

// MaxExportBytes bounds an export's body as it travels in the Lambda response
// (base64 for XLSX, JSON-escaped for CSV), leaving room under Lambda's 6 MB
// response limit for the headers and the envelope.
const MaxExportBytes = 5_500_000

// exportPageSize is how many records each QuerySends call of an export asks for.
const exportPageSize = maxLimit

// maxExportPages stops a pipeline that would page forever.
const maxExportPages = 10_000

// errExportTooLarge is the 413 of an export over limit bytes as sent.
func errExportTooLarge(format string, limit int) error {
	return errorf(http.StatusRequestEntityTooLarge,
		"the %s export is larger than the %.1f MB one response can carry: narrow the date range or the filters, or use `coiflow export`, which pages through the sends itself",
		strings.ToUpper(format), float64(limit)/1e6)
}

// Export formats.
const (
	formatCSV  = "csv"
	formatXLSX = "xlsx"
)

// Content types of the export formats.
const (
	contentTypeCSV  = "text/csv; charset=utf-8; header=present"
	contentTypeXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
)

// exportColumn is one column of the send log export.
type exportColumn struct {
	title string
	width float64 // XLSX column width (characters)
	text  func(r *sending.SendRecord) string
	time  func(r *sending.SendRecord) time.Time // set for date columns instead of text
}

// exportColumns are the export's columns, in order. Times are UTC.
var exportColumns = []exportColumn{
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

// exportMeta describes an export: its filters, for the file name and the title rows.
type exportMeta struct {
	Format        string
	CertificateID string
	Holder        string
	Status        string
	From, To      time.Time // the effective range ("" labels when open)
	FromLabel     string    // for the file name: a date, a compact timestamp, or "start"
	ToLabel       string
	ExportedAt    time.Time
	ExportedBy    string
}

// exportWriter receives the rows of an export and produces the file.
type exportWriter interface {
	// add appends one record.
	add(r *sending.SendRecord) error
	// overLimit reports whether the body certainly exceeds limit bytes as
	// sent already (checked after each record, to stop early).
	overLimit(limit int) bool
	// finish returns the file.
	finish() ([]byte, error)
	// close releases resources (temporary files); safe after finish.
	close()
}

// exportSends serves GET /api/sends/export.
func (s *Server) exportSends(ctx context.Context, r *request) (response, error) {
	if err := onlyParams(r, "certificateId", "holder", "from", "to", "status", "format"); err != nil {
		return response{}, err
	}
	format, err := oneOf(r, "format", []string{formatCSV, formatXLSX}, true)
	if err != nil {
		return response{}, err
	}
	if format == "" {
		format = formatCSV
	}
	q, err := sendQuery(r)
	if err != nil {
		return response{}, err
	}
	meta, err := s.exportRange(r, &q)
	if err != nil {
		return response{}, err
	}
	meta.Format = format
	meta.ExportedBy = r.Principal

	var w exportWriter
	if format == formatXLSX {
		xw, err := newXLSXExport(meta)
		if err != nil {
			return response{}, err
		}
		w = xw
	} else {
		w = newCSVExport()
	}
	defer w.close()

	rows, err := s.streamSends(ctx, q, meta, w)
	if err != nil {
		return response{}, err
	}
	body, err := w.finish()
	if err != nil {
		return response{}, fmt.Errorf("export: write %s: %w", format, err)
	}
	sent := jsonStringLen(body)
	binary := format == formatXLSX
	if binary {
		sent = base64Len(len(body))
	}
	if sent > s.exportLimit {
		r.Log.InfoContext(ctx, "export too large", "format", format, "rows", rows, "bytes", len(body), "sentBytes", sent)
		return response{}, errExportTooLarge(format, s.exportLimit)
	}
	name := exportFileName(meta)
	r.Log.InfoContext(ctx, "sends exported", "format", format, "rows", rows, "bytes", len(body), "sentBytes", sent,
		"certificateId", meta.CertificateID, "holder", maskEmails(meta.Holder), "sendStatus", meta.Status,
		"from", stamp(meta.From), "to", stamp(meta.To), "file", maskEmails(name))
	ct := contentTypeCSV
	if binary {
		ct = contentTypeXLSX
	}
	return response{
		Status: http.StatusOK,
		Header: map[string]string{
			"Content-Type":        ct,
			"Content-Disposition": contentDisposition(name),
			"X-Export-Rows":       fmt.Sprint(rows),
		},
		Body:   body,
		Binary: binary,
	}, nil
}

// exportRange fixes the range of an export (q is updated) and returns the
// export's description. A day query without from/to covers the last 7 days (as
// the pipeline's default), made explicit so the file name tells the truth.
func (s *Server) exportRange(r *request, q *sending.SendQuery) (exportMeta, error) {
	now := s.now().UTC()
	m := exportMeta{CertificateID: q.CertificateID, Holder: q.Holder, Status: q.Status, ExportedAt: now}
	fromRaw, _ := single(r, "from")
	toRaw, _ := single(r, "to")
	if q.CertificateID == "" {
		if q.To.IsZero() {
			q.To = now
			toRaw = now.Format(dateLayout)
		}
		if q.From.IsZero() {
			q.From = q.To.AddDate(0, 0, -7)
			fromRaw = q.From.Format(dateLayout)
		}
		if q.To.Before(q.From) {
			return m, badParam("from", "after to (to defaults to now)")
		}
	}
	m.From, m.To = q.From, q.To
	m.FromLabel = rangeLabel(fromRaw, q.From, "start")
	m.ToLabel = rangeLabel(toRaw, q.To, now.Format(dateLayout))
	q.Limit = exportPageSize
	q.Cursor = ""
	return m, nil
}

// rangeLabel is how one end of the range appears in the file name: the date as
// given, a compact UTC timestamp for an RFC3339 time, or open when absent.
func rangeLabel(raw string, t time.Time, open string) string {
	switch {
	case raw != "" && len(raw) == len(dateLayout):
		return raw
	case !t.IsZero():
		if t.Equal(t.Truncate(24 * time.Hour)) {
			return t.Format(dateLayout)
		}
		return t.UTC().Format("20060102T150405Z")
	default:
		return open
	}
}

// streamSends feeds every page of q to w, keeping records created within
// meta's range (the certificate index is not ordered by day), and stops with a
// 413 as soon as the export is certainly too large.
func (s *Server) streamSends(ctx context.Context, q sending.SendQuery, meta exportMeta, w exportWriter) (int, error) {
	rows := 0
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages == maxExportPages {
			return rows, fmt.Errorf("export: more than %d pages: the send query does not end", maxExportPages)
		}
		page, err := s.svc.QuerySends(ctx, q)
		if err != nil {
			return rows, err
		}
		for i := range page.Sends {
			rec := &page.Sends[i]
			if (!meta.From.IsZero() && rec.CreatedAt.Before(meta.From)) || (!meta.To.IsZero() && rec.CreatedAt.After(meta.To)) {
				continue
			}
			if err := w.add(rec); err != nil {
				return rows, fmt.Errorf("export: row %d: %w", rows+1, err)
			}
			rows++
			if w.overLimit(s.exportLimit) {
				return rows, errExportTooLarge(meta.Format, s.exportLimit)
			}
		}
		if page.Next == "" {
			return rows, nil
		}
		if seen[page.Next] {
			return rows, fmt.Errorf("export: the send query returned cursor %q twice", page.Next)
		}
		seen[page.Next] = true
		q.Cursor = page.Next
		if err := ctx.Err(); err != nil {
			return rows, err
		}
	}
}

// exportFileName is "coi-sends-<certificateId>-<from>_<to>.<format>" when the
// export is of one certificate, else "coi-sends-<from>_<to>.<format>".
func exportFileName(m exportMeta) string {
	name := "coi-sends-"
	if m.CertificateID != "" {
		name += m.CertificateID + "-"
	}
	return name + m.FromLabel + "_" + m.ToLabel + "." + m.Format
}

// contentDisposition is an attachment header for name: an ASCII fallback in
// filename= (characters outside [A-Za-z0-9._-] replaced by "_"), and the exact
// name in filename* (RFC 6266 / RFC 5987).
func contentDisposition(name string) string {
	var ascii strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			ascii.WriteRune(c)
		default:
			ascii.WriteByte('_')
		}
	}
	h := `attachment; filename="` + ascii.String() + `"`
	if ascii.String() != name {
		h += "; filename*=UTF-8''" + url.PathEscape(name)
	}
	return h
}

// exportTitle is the first line of the XLSX sheet.
func exportTitle(m exportMeta) string {
	if m.CertificateID != "" {
		return "COI sends — certificate " + m.CertificateID
	}
	return "COI sends"
}

// exportFilters describes the export's filters, for the XLSX sheet.
func exportFilters(m exportMeta) string {
	parts := []string{}
	from, to := "the first send", "now"
	if !m.From.IsZero() {
		from = m.From.UTC().Format("2006-01-02 15:04:05")
	}
	if !m.To.IsZero() {
		to = m.To.UTC().Format("2006-01-02 15:04:05")
	}
	parts = append(parts, "Created "+from+" to "+to+" UTC")
	if m.CertificateID != "" {
		parts = append(parts, "certificate "+m.CertificateID)
	}
	if m.Holder != "" {
		parts = append(parts, "holder "+m.Holder)
	}
	if m.Status != "" {
		parts = append(parts, "status "+m.Status)
	}
	parts = append(parts, "exported "+m.ExportedAt.UTC().Format("2006-01-02 15:04:05")+" UTC by "+m.ExportedBy)
	return strings.Join(parts, " · ")
}

// ---- CSV

// csvExport writes RFC 4180 CSV (CRLF line ends, a header row, UTF-8 without a
// byte order mark). Cells starting with = + - @ (or a tab or carriage return)
// get a leading ' so that spreadsheet programs do not run them as formulas.
type csvExport struct {
	buf bytes.Buffer
	w   *csv.Writer
	// sent is the body's length as a JSON string (without the quotes), kept
	// as bytes are written.
	sent   int
	header bool
	cells  []string
}

func newCSVExport() *csvExport {
	e := &csvExport{}
	e.w = csv.NewWriter(countingWriter{e})
	e.w.UseCRLF = true
	return e
}

// countingWriter appends to the export's buffer, counting JSON-escaped bytes.
type countingWriter struct{ e *csvExport }

func (c countingWriter) Write(p []byte) (int, error) {
	c.e.sent += jsonStringLen(p)
	return c.e.buf.Write(p)
}

func (e *csvExport) writeHeader() error {
	titles := make([]string, len(exportColumns))
	for i, c := range exportColumns {
		titles[i] = c.title
	}
	e.header = true
	return e.w.Write(titles)
}

func (e *csvExport) add(r *sending.SendRecord) error {
	if !e.header {
		if err := e.writeHeader(); err != nil {
			return err
		}
	}
	e.cells = e.cells[:0]
	for _, c := range exportColumns {
		if c.time != nil {
			e.cells = append(e.cells, csvTime(c.time(r)))
		} else {
			e.cells = append(e.cells, safeCell(c.text(r)))
		}
	}
	if err := e.w.Write(e.cells); err != nil {
		return err
	}
	e.w.Flush()
	return e.w.Error()
}

func (e *csvExport) overLimit(limit int) bool { return e.sent > limit }

func (e *csvExport) finish() ([]byte, error) {
	if !e.header {
		if err := e.writeHeader(); err != nil {
			return nil, err
		}
	}
	e.w.Flush()
	if err := e.w.Error(); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

func (e *csvExport) close() {}

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

// ---- sizes as sent

// base64Len is the length of n bytes in standard base64.
func base64Len(n int) int { return (n + 2) / 3 * 4 }

// jsonStringLen is the length of b encoded as the contents of a JSON string by
// encoding/json (as the Lambda runtime encodes the response): quotes,
// backslashes and control characters escaped, <, > and & as \u00XX, U+2028 and
// U+2029 escaped, invalid UTF-8 as \ufffd.
func jsonStringLen(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}
