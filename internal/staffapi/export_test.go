package staffapi

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/xuri/excelize/v2"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sendexport"
	"github.com/coiflow/coiflow/internal/sending"
)

// genSends makes n sent records of certificate cert, one a minute back from
// start, each to its own holder (holder-<i>@example.com).
func genSends(n int, cert string, start time.Time) []sending.SendRecord {
	out := make([]sending.SendRecord, n)
	for i := range out {
		created := start.Add(-time.Duration(i) * time.Minute)
		out[i] = sending.SendRecord{
			ID: fmt.Sprintf("snd_gen%05d", i), CertificateID: cert, HolderID: fmt.Sprintf("holder-%d", i),
			HolderName: fmt.Sprintf("Holder %d LLC", i), HolderEmail: fmt.Sprintf("holder-%d@example.com", i),
			Channel: "email", Status: sending.StatusSent, NowCertsAnswer: `{"status":1}`, EventID: fmt.Sprintf("evt-%d", i),
			RequestID: fmt.Sprintf("req-%d", i), CreatedAt: created, SentAt: created.Add(2 * time.Second), Attempts: 1,
		}
	}
	return out
}

// tricky are records whose values a careless export would break: formula
// starters, separators, quotes, new lines, non-ASCII, approvals and resends.
func tricky() []sending.SendRecord {
	return []sending.SendRecord{
		{
			ID: "snd_tricky1", CertificateID: "cert-1001", HolderID: "holder-90", HolderName: `=HYPERLINK("http://evil.example","click")`,
			HolderEmail: "ap@societe.example", Channel: "email", Status: sending.StatusSent, NowCertsAnswer: "+1 queued",
			Error: "", EventID: "@evt", RequestID: "-req", ApprovedBy: "pat@agency.example",
			ApprovedAt: t0.Add(-3 * time.Hour), CreatedAt: t0.Add(-3 * time.Hour), SentAt: t0.Add(-3*time.Hour + time.Second),
		},
		{
			ID: "snd_tricky2", CertificateID: "cert-1001", HolderID: "holder-91", HolderName: "Société Générale, \"Paris\"",
			HolderEmail: "a@x.example,b@x.example", Channel: "email", Status: sending.StatusFailed,
			Error: "NowCerts said:\r\nholder <email> invalid & rejected", CreatedAt: t0.Add(-4 * time.Hour),
			ResendOf: "snd_3c8e1a7f9d2b46e0c5a1", RequestID: "req-9",
		},
	}
}

// exportHarness is a JWT harness whose fake holds extra records.
func exportHarness(t *testing.T, extra ...sending.SendRecord) *harness {
	t.Helper()
	h := jwtHarness(t)
	h.fake.sends = append(h.fake.sends, extra...)
	return h
}

// export runs GET target and returns the response with the body decoded
// (base64 undone for binary bodies).
func (h *harness) export(t *testing.T, target string) (events.APIGatewayV2HTTPResponse, []byte) {
	t.Helper()
	resp, err := h.srv.Handle(t.Context(), event("GET", target, ""))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			t.Fatalf("body is not base64: %v", err)
		}
	}
	return resp, body
}

func TestExportCSV(t *testing.T) {
	// 1,200 records over the day: the export must read three pages of 500.
	gen := genSends(1200, "cert-2000", time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC))
	h := exportHarness(t, append(gen, tricky()...)...)
	resp, body := h.export(t, "/api/sends/export?from=2026-11-21&to=2026-11-21&format=csv")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if resp.IsBase64Encoded {
		t.Fatalf("CSV sent as base64")
	}
	if ct := resp.Headers["Content-Type"]; ct != "text/csv; charset=utf-8; header=present" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := resp.Headers["Content-Disposition"]; cd != `attachment; filename="coi-sends-2026-11-21_2026-11-21.csv"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if h.fake.sendQuerys != 3 || h.fake.lastSends.Limit != 500 {
		t.Fatalf("%d queries (last %+v), want 3 pages of 500", h.fake.sendQuerys, h.fake.lastSends)
	}
	if !bytes.HasSuffix(body, []byte("\r\n")) || bytes.Count(body, []byte("\r\n")) < 1203 {
		t.Fatalf("not CRLF-terminated records")
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = len(sendexport.Columns())
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("CSV does not read back: %v", err)
	}
	if got := strings.Join(recs[0], "|"); got != "Send ID|Certificate ID|Holder ID|Holder name|Holder email|Channel|Status|Approved by|"+
		"Approved at (UTC)|Created at (UTC)|Sent at (UTC)|NowCerts answer|Error|Event ID|Request ID|Resend of" {
		t.Fatalf("header %q", got)
	}
	// The 21st: the generated 1,200 (22:00 back to 02:01), the two tricky ones
	// and the fixture's UNKNOWN send (t0 is 14:30 on the 21st); the fixture's
	// send of the 20th is out.
	if len(recs) != 1+1203 || resp.Headers["X-Export-Rows"] != "1203" {
		t.Fatalf("%d rows (X-Export-Rows %s), want 1203", len(recs)-1, resp.Headers["X-Export-Rows"])
	}
	byID := map[string][]string{}
	for _, rec := range recs[1:] {
		byID[rec[0]] = rec
	}
	g := byID["snd_gen00007"]
	if g == nil || g[1] != "cert-2000" || g[4] != "holder-7@example.com" || g[6] != "SENT" ||
		g[9] != "2026-11-21T21:53:00Z" || g[10] != "2026-11-21T21:53:02Z" || g[11] != `{"status":1}` || g[8] != "" {
		t.Fatalf("generated row: %q", g)
	}
	t1 := byID["snd_tricky1"]
	want1 := []string{"snd_tricky1", "cert-1001", "holder-90", `'=HYPERLINK("http://evil.example","click")`, "ap@societe.example",
		"email", "SENT", "pat@agency.example", "2026-11-21T11:30:00Z", "2026-11-21T11:30:00Z", "2026-11-21T11:30:01Z",
		"'+1 queued", "", "'@evt", "'-req", ""}
	if strings.Join(t1, "|") != strings.Join(want1, "|") {
		t.Fatalf("tricky row\n got %q\nwant %q", t1, want1)
	}
	t2 := byID["snd_tricky2"]
	if t2[3] != `Société Générale, "Paris"` || t2[4] != "a@x.example,b@x.example" || t2[6] != "FAILED" ||
		t2[12] != "NowCerts said:\nholder <email> invalid & rejected" || // the reader folds \r\n in a field
		t2[15] != "snd_3c8e1a7f9d2b46e0c5a1" || t2[10] != "" {
		t.Fatalf("tricky row 2: %q", t2)
	}
	if !bytes.Contains(body, []byte(`"NowCerts said:`+"\r\n"+`holder <email> invalid & rejected"`)) {
		t.Fatalf("the error cell is not written as given")
	}
	// Newest first, as the query returns them.
	if recs[1][0] != "snd_gen00000" {
		t.Fatalf("first row %q", recs[1][0])
	}
	// The log line: counts, no holder email in clear.
	logs := h.logs.String()
	if !strings.Contains(logs, `"msg":"sends exported"`) || !strings.Contains(logs, `"rows":1203`) {
		t.Fatalf("no export log line:\n%s", logs)
	}
	if strings.Contains(logs, "holder-7@example.com") || strings.Contains(logs, "ap@societe.example") {
		t.Fatalf("log leaks an email:\n%s", logs)
	}
}

func TestExportXLSXByCertificate(t *testing.T) {
	extra := append(tricky(), genSends(30, "cert-1001", t0.Add(-5*time.Hour))...)
	h := exportHarness(t, extra...)
	resp, body := h.export(t, "/api/sends/export?certificateId=cert-1001&from=2026-11-21&to=2026-11-21&format=XLSX")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	if !resp.IsBase64Encoded || resp.Headers["Content-Type"] != sendexport.ContentTypeXLSX {
		t.Fatalf("not a base64 XLSX: %v %q", resp.IsBase64Encoded, resp.Headers["Content-Type"])
	}
	if cd := resp.Headers["Content-Disposition"]; cd != `attachment; filename="coi-sends-cert-1001-2026-11-21_2026-11-21.xlsx"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("XLSX does not open: %v", err)
	}
	defer f.Close()
	if sheets := f.GetSheetList(); len(sheets) != 1 || sheets[0] != "Cert cert-1001" {
		t.Fatalf("sheets %q", sheets)
	}
	sh := "Cert cert-1001"
	rows, err := f.GetRows(sh)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "COI sends — certificate cert-1001" {
		t.Fatalf("title %q", rows[0][0])
	}
	if !strings.Contains(rows[1][0], "certificate cert-1001") || !strings.Contains(rows[1][0], "by "+staffEmail) ||
		!strings.Contains(rows[1][0], "Created 2026-11-21 00:00:00 to 2026-11-21 23:59:59 UTC") {
		t.Fatalf("filters row %q", rows[1][0])
	}
	if rows[3][0] != "Send ID" || rows[3][15] != "Resend of" || len(rows[3]) != 16 {
		t.Fatalf("header row %q", rows[3])
	}
	// The certificate's sends of the 21st: two tricky, 30 generated (09:30 back
	// to 09:01); the 20th's send of cert-1001 is outside the range.
	data := rows[4:]
	if len(data) != 32 {
		t.Fatalf("%d data rows, want 32", len(data))
	}
	var row1 []string
	for _, r := range data {
		if r[0] == "snd_tricky1" {
			row1 = r
		}
		if r[0] == "snd_3c8e1a7f9d2b46e0c5a1" {
			t.Fatalf("a send outside the range is exported")
		}
	}
	if row1 == nil || row1[3] != `=HYPERLINK("http://evil.example","click")` || row1[4] != "ap@societe.example" ||
		row1[7] != "pat@agency.example" || row1[8] != "2026-11-21 11:30:00" || row1[10] != "2026-11-21 11:30:01" || row1[11] != "+1 queued" {
		t.Fatalf("tricky row %q", row1)
	}
	// Text is text (never a formula), dates are dates.
	idx := 0
	for i, r := range data {
		if r[0] == "snd_tricky1" {
			idx = i
		}
	}
	r := 5 + idx
	if formula, _ := f.GetCellFormula(sh, fmt.Sprintf("D%d", r)); formula != "" {
		t.Fatalf("holder name became a formula: %q", formula)
	}
	raw, err := f.GetCellValue(sh, fmt.Sprintf("J%d", r), excelize.Options{RawCellValue: true})
	if err != nil {
		t.Fatal(err)
	}
	serial, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		t.Fatalf("created at is not a number but %q", raw)
	}
	got, err := excelize.ExcelDateToTime(serial, false)
	if err != nil || !got.Equal(t0.Add(-3*time.Hour)) {
		t.Fatalf("created at serial %v = %v (%v), want %v", serial, got, err, t0.Add(-3*time.Hour))
	}
	// Header styled, widths set, header frozen, a table over header and rows.
	sid, err := f.GetCellStyle(sh, "A4")
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.GetStyle(sid)
	if err != nil || st.Font == nil || !st.Font.Bold || len(st.Fill.Color) == 0 {
		t.Fatalf("header style %+v %v", st, err)
	}
	if w, _ := f.GetColWidth(sh, "E"); w != 32 {
		t.Fatalf("holder email column width %v", w)
	}
	panes, err := f.GetPanes(sh)
	if err != nil || !panes.Freeze || panes.YSplit != 4 {
		t.Fatalf("panes %+v %v", panes, err)
	}
	tables, err := f.GetTables(sh)
	if err != nil || len(tables) != 1 || tables[0].Range != "A4:P36" {
		t.Fatalf("tables %+v %v", tables, err)
	}
}

// TestExportSheetAndFileNames: the names sendexport chooses reach the
// response (the sheet names themselves are tested in sendexport).
func TestExportSheetAndFileNames(t *testing.T) {
	// A long certificate id: a short sheet name, the full id in the title row and the file name.
	long := "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
	h := exportHarness(t, genSends(3, long, t0)...)
	h.srv.now = func() time.Time { return t0 }
	resp, body := h.export(t, "/api/sends/export?certificateId="+long+"&format=xlsx")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	wantName := "coi-sends-" + long + "-start_" + t0.Format("2006-01-02") + ".xlsx"
	if cd := resp.Headers["Content-Disposition"]; cd != `attachment; filename="`+wantName+`"` {
		t.Fatalf("Content-Disposition %q, want %s", cd, wantName)
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if s := f.GetSheetList(); len(s) != 1 || s[0] != "Cert 0a1b2c3d…" {
		t.Fatalf("sheets %q", s)
	}
	title, _ := f.GetCellValue("Cert 0a1b2c3d…", "A1")
	if !strings.Contains(title, long) {
		t.Fatalf("title %q lacks the full id", title)
	}
	rows, _ := f.GetRows("Cert 0a1b2c3d…")
	if len(rows) != 4+3 {
		t.Fatalf("%d rows", len(rows))
	}

	// An id that is not a safe file name: an ASCII fallback and the exact name.
	if got := contentDisposition("coi-sends-é/1-start_2026-11-21.csv"); got !=
		`attachment; filename="coi-sends-__1-start_2026-11-21.csv"; filename*=UTF-8''coi-sends-%C3%A9%2F1-start_2026-11-21.csv` {
		t.Fatalf("contentDisposition: %s", got)
	}
}

func TestExportDefaultsAndEmpty(t *testing.T) {
	h := exportHarness(t)
	h.srv.now = func() time.Time { return t0 }
	// No range: the last 7 days, made explicit in the query and the file name; CSV by default.
	resp, body := h.export(t, "/api/sends/export")
	if resp.StatusCode != 200 || resp.Headers["Content-Disposition"] != `attachment; filename="coi-sends-2026-11-14_2026-11-21.csv"` {
		t.Fatalf("%d %q", resp.StatusCode, resp.Headers["Content-Disposition"])
	}
	if q := h.fake.lastSends; !q.From.Equal(t0.AddDate(0, 0, -7)) || !q.To.Equal(t0) {
		t.Fatalf("query %+v", q)
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 3 { // header + the fixture's two sends
		t.Fatalf("%d records, %v", len(recs), err)
	}
	// Nothing matches: a header-only CSV, and an XLSX with its header and an empty table.
	resp, body = h.export(t, "/api/sends/export?certificateId=cert-none&format=csv")
	if resp.StatusCode != 200 || strings.Count(string(body), "\r\n") != 1 {
		t.Fatalf("empty CSV: %d %q", resp.StatusCode, body)
	}
	resp, body = h.export(t, "/api/sends/export?certificateId=cert-none&format=xlsx")
	if resp.StatusCode != 200 {
		t.Fatalf("empty XLSX: %d %s", resp.StatusCode, resp.Body)
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, _ := f.GetRows("Cert cert-none")
	if len(rows) != 4 || rows[3][0] != "Send ID" {
		t.Fatalf("empty XLSX rows %q", rows)
	}
	// RFC3339 bounds: compact timestamps in the name.
	resp, _ = h.export(t, "/api/sends/export?from=2026-11-21T08:00:00Z&to=2026-11-21T17:30:00Z")
	if cd := resp.Headers["Content-Disposition"]; cd != `attachment; filename="coi-sends-20261121T080000Z_20261121T173000Z.csv"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
}

func TestExportParameters(t *testing.T) {
	h := exportHarness(t)
	for _, c := range []struct {
		target string
		status int
		parts  []string
	}{
		{"/api/sends/export?format=pdf", 400, []string{"format", "csv, xlsx"}},
		{"/api/sends/export?limit=10", 400, []string{"limit", "unknown parameter"}},
		{"/api/sends/export?cursor=page-2", 400, []string{"cursor"}},
		{"/api/sends/export?from=2026-11-22&to=2026-11-21", 400, []string{"to", "before from"}},
		{"/api/sends/export?from=yesterday", 400, []string{"from"}},
		{"/api/sends/export?status=lost", 400, []string{"status"}},
		{"/api/sends/export?format=csv&format=xlsx", 400, []string{"format", "more than once"}},
	} {
		resp, body := h.do(t, event("GET", c.target, ""))
		wantError(t, resp, body, c.status, c.parts...)
	}
	if resp, _ := h.srv.Handle(t.Context(), event("POST", "/api/sends/export", "")); resp.StatusCode != 405 {
		t.Fatalf("POST export: %d", resp.StatusCode)
	}
	ev := event("GET", "/api/sends/export?format=csv", "")
	ev.RequestContext.Authorizer = nil
	if resp, _ := h.srv.Handle(t.Context(), ev); resp.StatusCode != 401 {
		t.Fatalf("unauthenticated export: %d", resp.StatusCode)
	}
	// The pipeline's errors map as usual.
	h.fake.fail = fmt.Errorf("range: %w", sending.ErrInvalid)
	resp, body := h.do(t, event("GET", "/api/sends/export?format=xlsx", ""))
	wantError(t, resp, body, 400, "range")
}

func TestExportTooLarge(t *testing.T) {
	// The real limit: ~9,000 sends of about 650 bytes of CSV each (5.9 MB).
	big := genSends(9000, "cert-big", t0)
	for i := range big {
		big[i].Error = strings.Repeat("NowCerts timeout while sending; ", 16)
	}
	h := exportHarness(t, big...)
	resp, body := h.do(t, event("GET", "/api/sends/export?certificateId=cert-big&format=csv", ""))
	wantError(t, resp, body, 413, "narrow the date range", "coiflow export", "5.5 MB")
	if h.fake.sendQuerys >= 18 {
		t.Fatalf("the export read all %d pages before refusing", h.fake.sendQuerys)
	}
	// Under the limit the same data in a narrower range is fine.
	resp, raw := h.export(t, "/api/sends/export?certificateId=cert-big&from=2026-11-21T12:00:00Z&format=csv")
	if resp.StatusCode != 200 || len(raw) > MaxExportBytes {
		t.Fatalf("narrower export: %d, %d bytes", resp.StatusCode, len(raw))
	}

	// XLSX is judged on its base64 size: with a small limit, a file a little
	// over three quarters of it is refused, one under is sent.
	h = exportHarness(t, genSends(200, "cert-x", t0)...)
	resp, body2 := h.export(t, "/api/sends/export?certificateId=cert-x&format=xlsx")
	if resp.StatusCode != 200 {
		t.Fatalf("xlsx: %d", resp.StatusCode)
	}
	size := len(body2)
	h.srv.exportLimit = base64Len(size) - 1
	resp, body = h.do(t, event("GET", "/api/sends/export?certificateId=cert-x&format=xlsx", ""))
	wantError(t, resp, body, 413, "XLSX", "coiflow export")
	h.srv.exportLimit = base64Len(size)
	if resp, _ := h.export(t, "/api/sends/export?certificateId=cert-x&format=xlsx"); resp.StatusCode != 200 || len(resp.Body) != base64Len(size) {
		t.Fatalf("xlsx at the limit: %d, %d base64 bytes", resp.StatusCode, len(resp.Body))
	}
}

func TestJSONStringLen(t *testing.T) {
	samples := []string{"", "plain", "a\"b\\c", "line\r\nnext\ttab", "<b>&amp;</b>", "\x00\x01\x1f", "é€😀",
		"\u2028\u2029", "bad \xff utf8 \xc3", "\x7f"}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, rnd.IntN(40))
		for i := range b {
			b[i] = byte(rnd.IntN(256))
		}
		samples = append(samples, string(b))
	}
	for _, s := range samples {
		enc, _ := json.Marshal(s) // HTML-escaping on, as the Lambda runtime encodes
		if got, want := jsonStringLen([]byte(s)), len(enc)-2; got != want {
			t.Fatalf("jsonStringLen(%q) = %d, want %d (%s)", s, got, want, enc)
		}
	}
	for n := range 10 {
		if got, want := base64Len(n), len(base64.StdEncoding.EncodeToString(make([]byte, n))); got != want {
			t.Fatalf("base64Len(%d) = %d, want %d", n, got, want)
		}
	}
}

// BenchmarkExport measures the export of a day of 2,000 sends in each format
// (bytes/op is the file; see also the b.ReportMetric figures).
func BenchmarkExport(b *testing.B) {
	for _, format := range []string{"csv", "xlsx"} {
		b.Run(format, func(b *testing.B) {
			h := &harness{fake: newFake(), logs: &bytes.Buffer{}}
			h.fake.sends = append(h.fake.sends, genSends(2000, "cert-bench", time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC))...)
			a, _ := NewAuthenticator(AuthJWT, nil, "")
			srv, err := New(Config{Sending: h.fake, Auth: a, Logger: discardLogger()})
			if err != nil {
				b.Fatal(err)
			}
			ev := event("GET", "/api/sends/export?from=2026-11-21&to=2026-11-21&format="+format, "")
			var size int
			for b.Loop() {
				resp, _ := srv.Handle(b.Context(), ev)
				if resp.StatusCode != 200 {
					b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
				}
				size = len(resp.Body)
			}
			b.ReportMetric(float64(size), "sent-bytes")
			b.ReportMetric(float64(size)/2000, "sent-bytes/row")
		})
	}
}

func discardLogger() *slog.Logger { return obs.NewLogger(io.Discard, "info") }
