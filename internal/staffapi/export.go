package staffapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sendexport"
	"github.com/coiflow/coiflow/internal/sending"
)

// Exports: GET /api/sends/export?from=&to=&certificateId=&holder=&status=&format=csv|xlsx
//
// The export reads every page of the send query and answers one file (CSV by
// default) written by internal/sendexport. Without certificateId the range
// defaults to the last 7 days, like GET /api/sends; with certificateId the
// certificate's whole history is read and from/to, when given, narrow it by
// creation time.
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

// xlsxRawFactor: an XLSX export stops once its cells alone hold this many
// times the limit in text: the compressed file would certainly be too large.
const xlsxRawFactor = 10

// errExportTooLarge is the 413 of an export over limit bytes as sent.
func errExportTooLarge(format string, limit int) error {
	return errorf(http.StatusRequestEntityTooLarge,
		"the %s export is larger than the %.1f MB one response can carry: narrow the date range or the filters, or use `coiflow export`, which pages through the sends itself",
		strings.ToUpper(format), float64(limit)/1e6)
}

// exportFile is an export being written into memory, with its size as the
// Lambda response will carry it.
type exportFile struct {
	format string
	buf    bytes.Buffer
	// sent is the CSV body's length as a JSON string (without the quotes),
	// kept as bytes are written.
	sent int
	w    sendexport.Writer
	xlsx *sendexport.XLSX // the same writer, for an XLSX export
}

func newExportFile(format string, m sendexport.Meta) (*exportFile, error) {
	e := &exportFile{format: format}
	if format == sendexport.FormatXLSX {
		x, err := sendexport.NewXLSX(&e.buf, m)
		if err != nil {
			return nil, err
		}
		e.w, e.xlsx = x, x
		return e, nil
	}
	e.w = sendexport.NewCSV(countingWriter{e})
	return e, nil
}

// countingWriter appends to the export's buffer, counting JSON-escaped bytes.
type countingWriter struct{ e *exportFile }

func (c countingWriter) Write(p []byte) (int, error) {
	c.e.sent += jsonStringLen(p)
	return c.e.buf.Write(p)
}

// overLimit reports whether the body certainly exceeds limit bytes as sent
// already (checked after each record, to stop early).
func (e *exportFile) overLimit(limit int) bool {
	if e.xlsx != nil {
		return e.xlsx.TextBytes() > xlsxRawFactor*limit
	}
	return e.sent > limit
}

// finish completes the file and returns the body and its size as sent.
func (e *exportFile) finish() ([]byte, int, error) {
	if err := e.w.Finish(); err != nil {
		return nil, 0, err
	}
	body := e.buf.Bytes()
	if e.xlsx != nil {
		return body, base64Len(len(body)), nil
	}
	return body, e.sent, nil
}

// exportSends serves GET /api/sends/export.
func (s *Server) exportSends(ctx context.Context, r *request) (response, error) {
	if err := onlyParams(r, "certificateId", "holder", "from", "to", "status", "format"); err != nil {
		return response{}, err
	}
	format, err := oneOf(r, "format", []string{sendexport.FormatCSV, sendexport.FormatXLSX}, true)
	if err != nil {
		return response{}, err
	}
	if format == "" {
		format = sendexport.FormatCSV
	}
	q, err := sendQuery(r)
	if err != nil {
		return response{}, err
	}
	meta, err := s.exportRange(r, &q)
	if err != nil {
		return response{}, err
	}
	meta.ExportedBy = r.Principal

	file, err := newExportFile(format, meta)
	if err != nil {
		return response{}, fmt.Errorf("export: %w", err)
	}
	defer file.w.Close()

	rows, err := s.streamSends(ctx, q, meta, file)
	if err != nil {
		return response{}, err
	}
	body, sent, err := file.finish()
	if err != nil {
		return response{}, fmt.Errorf("export: write %s: %w", format, err)
	}
	if sent > s.exportLimit {
		r.Log.InfoContext(ctx, "export too large", "format", format, "rows", rows, "bytes", len(body), "sentBytes", sent)
		return response{}, errExportTooLarge(format, s.exportLimit)
	}
	name := sendexport.FileName(meta, format)
	r.Log.InfoContext(ctx, "sends exported", "format", format, "rows", rows, "bytes", len(body), "sentBytes", sent,
		"certificateId", meta.CertificateID, "holder", obs.MaskEmails(meta.Holder), "sendStatus", meta.Status,
		"from", stamp(meta.From), "to", stamp(meta.To), "file", obs.MaskEmails(name))
	return response{
		Status: http.StatusOK,
		Header: map[string]string{
			"Content-Type":        sendexport.ContentType(format),
			"Content-Disposition": contentDisposition(name),
			"X-Export-Rows":       fmt.Sprint(rows),
		},
		Body:   body,
		Binary: format == sendexport.FormatXLSX,
	}, nil
}

// exportRange fixes the range of an export (q is updated: the range made
// explicit, the first page of exportPageSize) and returns the export's
// description (sendexport.NewMeta, from the parameters as given).
func (s *Server) exportRange(r *request, q *sending.SendQuery) (sendexport.Meta, error) {
	fromRaw, _ := single(r, "from")
	toRaw, _ := single(r, "to")
	m, err := sendexport.NewMeta(sendexport.Filter{
		CertificateID: q.CertificateID, Holder: q.Holder, Status: q.Status, From: fromRaw, To: toRaw,
	}, s.now())
	if err != nil {
		var re *sendexport.RangeError
		if errors.As(err, &re) {
			return m, badParam(re.Param, "%s", re.Problem)
		}
		return m, err
	}
	q.From, q.To = m.From, m.To
	q.Limit = exportPageSize
	q.Cursor = ""
	return m, nil
}

// streamSends feeds every page of q to file, keeping records created within
// meta's range (the certificate index is not ordered by day), and stops with a
// 413 as soon as the export is certainly too large.
func (s *Server) streamSends(ctx context.Context, q sending.SendQuery, meta sendexport.Meta, file *exportFile) (int, error) {
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
			if !meta.Contains(rec) {
				continue
			}
			if err := file.w.Add(rec); err != nil {
				if errors.Is(err, sendexport.ErrSheetFull) {
					return rows, errExportTooLarge(file.format, s.exportLimit)
				}
				return rows, fmt.Errorf("export: row %d: %w", rows+1, err)
			}
			rows++
			if file.overLimit(s.exportLimit) {
				return rows, errExportTooLarge(file.format, s.exportLimit)
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
