package sendexport

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/coiflow/coiflow/internal/sending"
)

var (
	t0  = time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC)
	est = time.FixedZone("EST", -5*3600)
)

// daySends makes n sent records spread over the UTC day of day (newest
// first, as the send query returns them), each to its own holder.
func daySends(n int, cert string, day time.Time) []sending.SendRecord {
	out := make([]sending.SendRecord, n)
	step := 24 * time.Hour / time.Duration(n+1)
	end := day.Truncate(24 * time.Hour).Add(24 * time.Hour)
	for i := range out {
		created := end.Add(-time.Duration(i+1) * step).Truncate(time.Second)
		out[i] = sending.SendRecord{
			ID: fmt.Sprintf("snd_day%05d", i), CertificateID: cert, HolderID: fmt.Sprintf("holder-%d", i),
			HolderName: fmt.Sprintf("Holder %d LLC", i), HolderEmail: fmt.Sprintf("holder-%d@example.com", i),
			Channel: "email", Status: sending.StatusSent, NowCertsAnswer: `{"status":1}`, EventID: fmt.Sprintf("evt-%d", i),
			RequestID: fmt.Sprintf("req-%d", i), CreatedAt: created, SentAt: created.Add(2 * time.Second), Attempts: 1,
		}
	}
	return out
}

// tricky are records whose values a careless export would break: formula
// starters, separators, quotes, new lines, non-ASCII, approvals and resends,
// times in another zone.
func tricky() []sending.SendRecord {
	return []sending.SendRecord{
		{
			ID: "snd_tricky1", CertificateID: "cert-1001", HolderID: "holder-90", HolderName: `=HYPERLINK("http://evil.example","click")`,
			HolderEmail: "ap@societe.example", Channel: "email", Status: sending.StatusSent, NowCertsAnswer: "+1 queued",
			EventID: "@evt", RequestID: "-req", ApprovedBy: "pat@agency.example",
			ApprovedAt: t0.Add(-3 * time.Hour).In(est), CreatedAt: t0.Add(-3 * time.Hour).In(est), SentAt: t0.Add(-3*time.Hour + time.Second),
		},
		{
			ID: "snd_tricky2", CertificateID: "cert-1001", HolderID: "holder-91", HolderName: "Société Générale, \"Paris\"",
			HolderEmail: "a@x.example,b@x.example", Channel: "email", Status: sending.StatusFailed,
			Error: "NowCerts said:\r\nholder <email> invalid & rejected", CreatedAt: t0.Add(-4 * time.Hour),
			ResendOf: "snd_3c8e1a7f9d2b46e0c5a1", RequestID: "req-9",
		},
	}
}

// write runs a whole export of recs in format and returns the file.
func write(t *testing.T, format string, m Meta, recs []sending.SendRecord) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := New(format, &buf, m)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range recs {
		if err := w.Add(&recs[i]); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return buf.Bytes()
}

func mustMeta(t *testing.T, f Filter, now time.Time) Meta {
	t.Helper()
	m, err := NewMeta(f, now)
	if err != nil {
		t.Fatal(err)
	}
	m.ExportedBy = "pat@agency.example"
	return m
}

const wantHeader = "Send ID|Certificate ID|Holder ID|Holder name|Holder email|Channel|Status|Approved by|" +
	"Approved at (UTC)|Created at (UTC)|Sent at (UTC)|NowCerts answer|Error|Event ID|Request ID|Resend of"

func TestCSVReadsBack(t *testing.T) {
	recs := append(tricky(), daySends(3, "cert-2000", t0)...)
	body := write(t, FormatCSV, mustMeta(t, Filter{From: "2026-11-21", To: "2026-11-21"}, t0), recs)

	if !bytes.HasSuffix(body, []byte("\r\n")) || bytes.Count(body, []byte("\r\n")) < 1+len(recs) {
		t.Fatalf("not CRLF-terminated records: %q", body)
	}
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		t.Fatal("CSV starts with a byte order mark")
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = len(Columns())
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("CSV does not read back: %v", err)
	}
	if got := strings.Join(rows[0], "|"); got != wantHeader {
		t.Fatalf("header %q", got)
	}
	if len(rows) != 1+len(recs) {
		t.Fatalf("%d rows, want %d", len(rows)-1, len(recs))
	}
	want1 := []string{"snd_tricky1", "cert-1001", "holder-90", `'=HYPERLINK("http://evil.example","click")`, "ap@societe.example",
		"email", "SENT", "pat@agency.example", "2026-11-21T11:30:00Z", "2026-11-21T11:30:00Z", "2026-11-21T11:30:01Z",
		"'+1 queued", "", "'@evt", "'-req", ""}
	if got := strings.Join(rows[1], "|"); got != strings.Join(want1, "|") {
		t.Fatalf("tricky row\n got %q\nwant %q", rows[1], want1)
	}
	t2 := rows[2]
	if t2[3] != `Société Générale, "Paris"` || t2[4] != "a@x.example,b@x.example" || t2[6] != "FAILED" ||
		t2[12] != "NowCerts said:\nholder <email> invalid & rejected" || // the reader folds \r\n in a field
		t2[15] != "snd_3c8e1a7f9d2b46e0c5a1" || t2[10] != "" || t2[8] != "" {
		t.Fatalf("tricky row 2: %q", t2)
	}
	if !bytes.Contains(body, []byte(`"NowCerts said:`+"\r\n"+`holder <email> invalid & rejected"`)) {
		t.Fatal("the error cell is not written as given")
	}
	for i, rec := range recs[2:] {
		got := rows[3+i]
		if got[0] != rec.ID || got[4] != rec.HolderEmail || got[9] != rec.CreatedAt.Format(time.RFC3339) ||
			got[10] != rec.SentAt.Format(time.RFC3339) || got[11] != `{"status":1}` {
			t.Fatalf("row %d: %q for %+v", 3+i, got, rec)
		}
	}

	// Nothing added: the header alone.
	empty := write(t, FormatCSV, Meta{}, nil)
	if string(empty) != strings.ReplaceAll(wantHeader, "|", ",")+"\r\n" {
		t.Fatalf("empty CSV %q", empty)
	}
}

func TestXLSXReadsBack(t *testing.T) {
	cert := "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
	recs := tricky()
	for i := range recs {
		recs[i].CertificateID = cert
	}
	recs = append(recs, daySends(30, cert, t0)...)
	m := mustMeta(t, Filter{CertificateID: cert, From: "2026-11-21", To: "2026-11-21", Status: "SENT", Holder: "holder-1@example.com"}, t0)
	body := write(t, FormatXLSX, m, recs)

	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("XLSX does not open: %v", err)
	}
	defer f.Close()
	sh := "Cert 0a1b2c3d…"
	if sheets := f.GetSheetList(); len(sheets) != 1 || sheets[0] != sh {
		t.Fatalf("sheets %q", sheets)
	}
	rows, err := f.GetRows(sh)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "COI sends — certificate "+cert {
		t.Fatalf("title %q", rows[0][0])
	}
	for _, part := range []string{"Created 2026-11-21 00:00:00 to 2026-11-21 23:59:59 UTC", "certificate " + cert,
		"holder holder-1@example.com", "status SENT", "exported 2026-11-21 14:30:00 UTC by pat@agency.example"} {
		if !strings.Contains(rows[1][0], part) {
			t.Fatalf("filters row %q lacks %q", rows[1][0], part)
		}
	}
	if len(rows[2]) != 0 {
		t.Fatalf("row 3 is not empty: %q", rows[2])
	}
	if got := strings.Join(rows[3], "|"); got != wantHeader {
		t.Fatalf("header row %q", got)
	}
	data := rows[4:]
	if len(data) != len(recs) {
		t.Fatalf("%d data rows, want %d", len(data), len(recs))
	}
	row1 := data[0]
	if row1[0] != "snd_tricky1" || row1[1] != cert || row1[3] != `=HYPERLINK("http://evil.example","click")` ||
		row1[4] != "ap@societe.example" || row1[7] != "pat@agency.example" || row1[8] != "2026-11-21 11:30:00" ||
		row1[9] != "2026-11-21 11:30:00" || row1[10] != "2026-11-21 11:30:01" || row1[11] != "+1 queued" || row1[13] != "@evt" {
		t.Fatalf("tricky row %q", row1)
	}
	if data[1][12] != "NowCerts said:\r\nholder <email> invalid & rejected" || data[1][3] != `Société Générale, "Paris"` {
		t.Fatalf("tricky row 2 %q", data[1])
	}
	for i, rec := range recs[2:] {
		got := data[2+i]
		if got[0] != rec.ID || got[4] != rec.HolderEmail || got[9] != rec.CreatedAt.Format("2006-01-02 15:04:05") {
			t.Fatalf("row %d: %q for %+v", 2+i, got, rec)
		}
	}

	// Text is text (never a formula), dates are dates.
	if formula, _ := f.GetCellFormula(sh, "D5"); formula != "" {
		t.Fatalf("holder name became a formula: %q", formula)
	}
	for col, want := range map[string]time.Time{"I5": t0.Add(-3 * time.Hour), "J5": t0.Add(-3 * time.Hour), "K5": t0.Add(-3*time.Hour + time.Second)} {
		raw, err := f.GetCellValue(sh, col, excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		serial, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			t.Fatalf("%s is not a number but %q", col, raw)
		}
		got, err := excelize.ExcelDateToTime(serial, false)
		if err != nil || !got.Equal(want) {
			t.Fatalf("%s: serial %v = %v (%v), want %v", col, serial, got, err, want)
		}
	}
	if v, _ := f.GetCellValue(sh, "I6"); v != "" {
		t.Fatalf("unset approval time shows %q", v)
	}
	// Styled header, widths, frozen header, one table over header and rows.
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
	if err != nil || len(tables) != 1 || tables[0].Range != fmt.Sprintf("A4:P%d", 4+len(recs)) || tables[0].Name != "SendLog" {
		t.Fatalf("tables %+v %v", tables, err)
	}
	props, err := f.GetDocProps()
	if err != nil || props.Title != "COI sends — certificate "+cert || props.Creator != "coiflow" {
		t.Fatalf("doc props %+v %v", props, err)
	}
}

// TestXLSXDayOfSends: a day's export of sends (2,000 across the UTC day) is
// a valid workbook (a zip with the parts Excel needs, opened by excelize)
// holding every send in order, on the "Sends" sheet.
func TestXLSXDayOfSends(t *testing.T) {
	recs := daySends(2000, "cert-day", t0)
	m := mustMeta(t, Filter{From: "2026-11-21", To: "2026-11-21"}, t0)
	body := write(t, FormatXLSX, m, recs)
	if name := FileName(m, FormatXLSX); name != "coi-sends-2026-11-21_2026-11-21.xlsx" {
		t.Fatalf("file name %q", name)
	}

	z, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	parts := map[string]bool{}
	for _, f := range z.File {
		parts[f.Name] = true
	}
	for _, p := range []string{"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml", "xl/styles.xml", "xl/tables/table1.xml"} {
		if !parts[p] {
			t.Fatalf("workbook lacks %s (has %v)", p, parts)
		}
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("XLSX does not open: %v", err)
	}
	defer f.Close()
	rows, err := f.GetRows("Sends")
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "COI sends" || len(rows) != 4+len(recs) {
		t.Fatalf("title %q, %d rows", rows[0][0], len(rows))
	}
	for i, rec := range recs {
		got := rows[4+i]
		if got[0] != rec.ID || got[4] != rec.HolderEmail || got[6] != "SENT" || got[9] != rec.CreatedAt.Format("2006-01-02 15:04:05") {
			t.Fatalf("row %d: %q for %+v", i, got, rec)
		}
		if !m.Contains(&rec) {
			t.Fatalf("generated record %s outside the day", rec.ID)
		}
	}
}

func TestXLSXEmptyAndClose(t *testing.T) {
	body := write(t, FormatXLSX, mustMeta(t, Filter{CertificateID: "cert-none"}, t0), nil)
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, _ := f.GetRows("Cert cert-none")
	if len(rows) != 4 || rows[3][0] != "Send ID" {
		t.Fatalf("empty XLSX rows %q", rows)
	}
	if tables, err := f.GetTables("Cert cert-none"); err != nil || len(tables) != 1 || tables[0].Range != "A4:P5" {
		t.Fatalf("empty table %+v %v", tables, err)
	}
	// Use after Close is an error, Close twice is fine.
	x, err := NewXLSX(&bytes.Buffer{}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Add(&sending.SendRecord{ID: "x"}); err == nil {
		t.Fatal("add after close accepted")
	}
	if err := x.Finish(); err == nil {
		t.Fatal("finish after close accepted")
	}
}

// TestXLSXSheetFull: the last row Excel has takes a send; the next is
// ErrSheetFull (the writer is moved near the end rather than fed a million rows).
func TestXLSXSheetFull(t *testing.T) {
	x, err := NewXLSX(&bytes.Buffer{}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	x.row = excelize.TotalRows - 1
	rec := daySends(1, "c", t0)[0]
	if err := x.Add(&rec); err != nil {
		t.Fatalf("last row: %v", err)
	}
	if err := x.Add(&rec); !errors.Is(err, ErrSheetFull) {
		t.Fatalf("past the last row: %v", err)
	}
	if MaxXLSXRows != 1048572 {
		t.Fatalf("MaxXLSXRows %d", MaxXLSXRows)
	}
}

func TestNewUnknownFormat(t *testing.T) {
	if _, err := New("pdf", &bytes.Buffer{}, Meta{}); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("pdf: %v", err)
	}
	if ContentType(FormatCSV) != "text/csv; charset=utf-8; header=present" || ContentType(FormatXLSX) != ContentTypeXLSX || ContentType("pdf") != "" {
		t.Fatal("content types")
	}
}

func TestSheetName(t *testing.T) {
	for _, c := range []struct{ id, sheet string }{
		{"", "Sends"},
		{"cert-1001", "Cert cert-1001"},
		{"0a1b2c3d-4e5f-6789-abcd-ef0123456789", "Cert 0a1b2c3d…"},
		{"ab/cd:ef[1]?*\\", "Cert ab_cd_ef_1____"},
		{"'quoted'", "Cert _quoted_"},
		{"12345678901234567890123456", "Cert 12345678901234567890123456"}, // exactly 31
		{"123456789012345678901234567", "Cert 12345678…"},
		{"éééééééééééééééééééééééééé", "Cert éééééééééééééééééééééééééé"}, // 31 UTF-16 units, 57 bytes
		{"😀😀😀😀😀😀😀😀😀😀😀😀😀", "Cert 😀😀😀😀😀😀😀😀😀😀😀😀😀"},                           // 5 + 13×2 = 31 units
		{"😀😀😀😀😀😀😀😀😀😀😀😀😀😀", "Cert 😀😀😀😀😀😀😀😀…"},                              // 33 units: too long
	} {
		got := SheetName(c.id)
		if got != c.sheet {
			t.Errorf("SheetName(%q) = %q, want %q", c.id, got, c.sheet)
		}
		f := excelize.NewFile()
		if err := f.SetSheetName("Sheet1", got); err != nil {
			t.Errorf("excelize refuses %q: %v", got, err)
		}
		_ = f.Close()
	}
}

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "=1+2": "'=1+2", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx",
		"a=b": "a=b", "2026-11-21": "2026-11-21", "'already": "'already",
	} {
		if got := safeCell(in); got != want {
			t.Errorf("safeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewMetaAndFileName(t *testing.T) {
	for _, c := range []struct {
		name     string
		f        Filter
		from, to time.Time
		file     string
	}{
		{"no range: the last 7 days", Filter{}, t0.AddDate(0, 0, -7), t0, "coi-sends-2026-11-14_2026-11-21.csv"},
		{"one day", Filter{From: "2026-11-20", To: "2026-11-20"}, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond), "coi-sends-2026-11-20_2026-11-20.csv"},
		{"from only", Filter{From: "2026-11-19"}, time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC), t0, "coi-sends-2026-11-19_2026-11-21.csv"},
		{"to only", Filter{To: "2026-11-10"}, time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond).AddDate(0, 0, -7),
			time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond), "coi-sends-2026-11-03_2026-11-10.csv"},
		{"RFC3339 bounds", Filter{From: "2026-11-21T03:00:00-05:00", To: "2026-11-21T17:30:00Z"},
			time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 21, 17, 30, 0, 0, time.UTC),
			"coi-sends-20261121T080000Z_20261121T173000Z.csv"},
		{"RFC3339 midnight", Filter{From: "2026-11-20T00:00:00Z", To: "2026-11-21T12:00:00Z"},
			time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
			"coi-sends-2026-11-20_20261121T120000Z.csv"},
		{"certificate: whole history", Filter{CertificateID: "cert-1001"}, time.Time{}, time.Time{}, "coi-sends-cert-1001-start_2026-11-21.csv"},
		{"certificate and a day", Filter{CertificateID: "cert-1001", From: " 2026-11-21 ", To: "2026-11-21"},
			time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond),
			"coi-sends-cert-1001-2026-11-21_2026-11-21.csv"},
	} {
		m, err := NewMeta(c.f, t0.In(est))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !m.From.Equal(c.from) || !m.To.Equal(c.to) || FileName(m, FormatCSV) != c.file || !m.ExportedAt.Equal(t0) || m.ExportedAt.Location() != time.UTC {
			t.Errorf("%s: %v .. %v, %q, at %v; want %v .. %v, %q", c.name, m.From, m.To, FileName(m, FormatCSV), m.ExportedAt, c.from, c.to, c.file)
		}
	}
	for _, c := range []struct {
		f     Filter
		param string
		part  string
	}{
		{Filter{From: "yesterday"}, "from", "want RFC3339"},
		{Filter{To: "2026-02-30"}, "to", "want RFC3339"},
		{Filter{From: "2026-11-22", To: "2026-11-21"}, "to", "before from"},
		{Filter{From: "2026-12-01"}, "from", "after to (to defaults to now)"},
	} {
		_, err := NewMeta(c.f, t0)
		var re *RangeError
		if !errors.As(err, &re) || re.Param != c.param || !strings.Contains(err.Error(), c.part) || !strings.HasPrefix(err.Error(), "invalid "+c.param+": ") {
			t.Errorf("NewMeta(%+v): %v; want a RangeError on %s with %q", c.f, err, c.param, c.part)
		}
	}
}

func TestContains(t *testing.T) {
	m := mustMeta(t, Filter{From: "2026-11-21", To: "2026-11-21"}, t0)
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for at, want := range map[time.Time]bool{
		day: true, day.Add(-time.Nanosecond): false, day.Add(24*time.Hour - time.Nanosecond): true, day.Add(24 * time.Hour): false,
		day.Add(12 * time.Hour).In(est): true,
	} {
		if got := m.Contains(&sending.SendRecord{CreatedAt: at}); got != want {
			t.Errorf("Contains(%v) = %v, want %v", at, got, want)
		}
	}
	open := mustMeta(t, Filter{CertificateID: "c"}, t0)
	if !open.Contains(&sending.SendRecord{CreatedAt: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}) || !open.Contains(&sending.SendRecord{CreatedAt: t0.AddDate(1, 0, 0)}) {
		t.Error("an open range leaves records out")
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"":                          {},
		"2026-11-21T15:04:05Z":      time.Date(2026, 11, 21, 15, 4, 5, 0, time.UTC),
		"2026-11-21T10:04:05-05:00": time.Date(2026, 11, 21, 15, 4, 5, 0, time.UTC),
		"2026-11-21T15:04:05.5Z":    time.Date(2026, 11, 21, 15, 4, 5, 5e8, time.UTC),
		"2026-11-21":                time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC),
	} {
		got, err := ParseTime(in, false)
		if err != nil || !got.Equal(want) || (!got.IsZero() && got.Location() != time.UTC) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, _ := ParseTime("2026-11-21", true); !got.Equal(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)) {
		t.Errorf("end of day: %v", got)
	}
	for _, bad := range []string{"21/11/2026", "2026-11-21 15:04", "now"} {
		if _, err := ParseTime(bad, false); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

// BenchmarkWrite measures writing a day of 2,000 sends in each format (the
// file's size per row reported).
func BenchmarkWrite(b *testing.B) {
	recs := daySends(2000, "cert-bench", t0)
	m, _ := NewMeta(Filter{From: "2026-11-21", To: "2026-11-21"}, t0)
	for _, format := range []string{FormatCSV, FormatXLSX} {
		b.Run(format, func(b *testing.B) {
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				w, err := New(format, &buf, m)
				if err != nil {
					b.Fatal(err)
				}
				for i := range recs {
					if err := w.Add(&recs[i]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Finish(); err != nil {
					b.Fatal(err)
				}
				_ = w.Close()
			}
			b.ReportMetric(float64(buf.Len())/float64(len(recs)), "file-bytes/row")
		})
	}
}
