package staffapi

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"github.com/coiflow/coiflow/internal/sending"
)

// The XLSX export's layout: a title row (naming the certificate when the export
// is of one), a row describing the filters, an empty row, then the header row
// and one row per send, as an Excel table (filter buttons, banded rows) with
// the header frozen. Dates are real dates (UTC) in yyyy-mm-dd hh:mm:ss. Cells
// are typed as text, so a value starting with = is never run as a formula.
const (
	xlsxTitleRow  = 1
	xlsxFilterRow = 2
	xlsxHeaderRow = 4
	// maxSheetName is Excel's limit on sheet names (UTF-16 code units).
	maxSheetName = 31
	// xlsxRawFactor: streaming stops once the cells alone hold this many times
	// the limit in text: the compressed file would certainly be too large.
	xlsxRawFactor = 10
	xlsxDateFmt   = "yyyy-mm-dd hh:mm:ss"
	xlsxTable     = "SendLog"
)

// xlsxExport streams rows into an excelize StreamWriter.
type xlsxExport struct {
	f      *excelize.File
	sw     *excelize.StreamWriter
	sheet  string
	row    int // last row written
	raw    int // bytes of cell text written
	date   int // style ids
	text   int
	values []any
}

// sheetName is the export's sheet: "Sends", or "Cert <id>" for one certificate
// when that fits Excel's rules (at most 31 characters, none of []:*?/\),
// otherwise "Cert <first 8 characters of the id>…" (the full id is in the title
// row and in the file name).
func sheetName(certificateID string) string {
	if certificateID == "" {
		return "Sends"
	}
	clean := strings.Map(func(r rune) rune {
		if strings.ContainsRune(`[]:*?/\'`, r) || r < 0x20 {
			return '_'
		}
		return r
	}, certificateID)
	if name := "Cert " + clean; utf16Len(name) <= maxSheetName {
		return name
	}
	short := clean
	for i := range clean {
		if utf8.RuneCountInString(clean[:i]) == 8 {
			short = clean[:i]
			break
		}
	}
	return "Cert " + short + "…"
}

// utf16Len is the length of s in UTF-16 code units (how Excel counts).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

func newXLSXExport(m exportMeta) (*xlsxExport, error) {
	f := excelize.NewFile()
	e := &xlsxExport{f: f, sheet: sheetName(m.CertificateID), values: make([]any, len(exportColumns))}
	if err := e.begin(m); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("export: start xlsx: %w", err)
	}
	return e, nil
}

func (e *xlsxExport) begin(m exportMeta) error {
	f := e.f
	if err := f.SetSheetName(f.GetSheetName(0), e.sheet); err != nil {
		return err
	}
	if err := f.SetDocProps(&excelize.DocProperties{
		Title: exportTitle(m), Subject: "Certificate of insurance send log", Creator: "coiflow",
		Description: exportFilters(m), Created: m.ExportedAt.UTC().Format("2006-01-02T15:04:05Z"),
	}); err != nil {
		return err
	}
	title, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true, Size: 14}})
	if err != nil {
		return err
	}
	filters, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Italic: true, Color: "595959"}})
	if err != nil {
		return err
	}
	header, err := f.NewStyle(&excelize.Style{
		Font:      &excelize.Font{Bold: true, Color: "FFFFFF"},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"1F4E78"}},
		Alignment: &excelize.Alignment{Vertical: "center", WrapText: true},
		Border: []excelize.Border{
			{Type: "bottom", Color: "000000", Style: 2},
		},
	})
	if err != nil {
		return err
	}
	datefmt := xlsxDateFmt
	if e.date, err = f.NewStyle(&excelize.Style{CustomNumFmt: &datefmt, Alignment: &excelize.Alignment{Horizontal: "left"}}); err != nil {
		return err
	}
	if e.text, err = f.NewStyle(&excelize.Style{NumFmt: 49}); err != nil { // "@": text
		return err
	}
	sw, err := f.NewStreamWriter(e.sheet)
	if err != nil {
		return err
	}
	e.sw = sw
	for i, c := range exportColumns {
		if err := sw.SetColWidth(i+1, i+1, c.width); err != nil {
			return err
		}
	}
	if err := sw.SetPanes(&excelize.Panes{
		Freeze: true, YSplit: xlsxHeaderRow, TopLeftCell: cellName(1, xlsxHeaderRow+1), ActivePane: "bottomLeft",
	}); err != nil {
		return err
	}
	if err := sw.SetRow(cellName(1, xlsxTitleRow), []any{excelize.Cell{StyleID: title, Value: exportTitle(m)}},
		excelize.RowOpts{Height: 22}); err != nil {
		return err
	}
	if err := sw.SetRow(cellName(1, xlsxFilterRow), []any{excelize.Cell{StyleID: filters, Value: exportFilters(m)}}); err != nil {
		return err
	}
	head := make([]any, len(exportColumns))
	for i, c := range exportColumns {
		head[i] = excelize.Cell{StyleID: header, Value: c.title}
	}
	if err := sw.SetRow(cellName(1, xlsxHeaderRow), head, excelize.RowOpts{Height: 20}); err != nil {
		return err
	}
	e.row = xlsxHeaderRow
	return nil
}

func (e *xlsxExport) add(r *sending.SendRecord) error {
	for i, c := range exportColumns {
		if c.time != nil {
			if t := c.time(r); !t.IsZero() {
				e.values[i] = excelize.Cell{StyleID: e.date, Value: t.UTC()}
			} else {
				e.values[i] = nil
			}
			continue
		}
		v := c.text(r)
		e.raw += len(v)
		if v == "" {
			e.values[i] = nil
			continue
		}
		e.values[i] = excelize.Cell{StyleID: e.text, Value: v}
	}
	e.row++
	return e.sw.SetRow(cellName(1, e.row), e.values)
}

// overLimit also stops before the sheet's last row (1,048,576).
func (e *xlsxExport) overLimit(limit int) bool {
	return e.raw > xlsxRawFactor*limit || e.row >= excelize.TotalRows
}

func (e *xlsxExport) finish() ([]byte, error) {
	last := max(e.row, xlsxHeaderRow+1) // a table has at least one row under its header
	if err := e.sw.AddTable(&excelize.Table{
		Range: cellName(1, xlsxHeaderRow) + ":" + cellName(len(exportColumns), last),
		Name:  xlsxTable, StyleName: "TableStyleLight9",
	}); err != nil {
		return nil, fmt.Errorf("table: %w", err)
	}
	if err := e.sw.Flush(); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	buf, err := e.f.WriteToBuffer()
	if err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	return buf.Bytes(), nil
}

func (e *xlsxExport) close() { _ = e.f.Close() }

// cellName is the A1 name of (col, row), both from 1; within the sheet's
// bounds by construction.
func cellName(col, row int) string {
	name, err := excelize.CoordinatesToCellName(col, row)
	if err != nil {
		return "A1"
	}
	return name
}
