package sendexport

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"github.com/coiflow/coiflow/internal/sending"
)

// The XLSX layout: a title row (naming the certificate when the export is of
// one), a row describing the filters, an empty row, then the header row and
// one row per send, as an Excel table (filter buttons, banded rows) with the
// header frozen. Dates are real dates (UTC) shown as yyyy-mm-dd hh:mm:ss.
// Cells are typed as text, so a value starting with = is never run as a
// formula.
const (
	xlsxTitleRow  = 1
	xlsxFilterRow = 2
	xlsxHeaderRow = 4
	// maxSheetName is Excel's limit on sheet names (UTF-16 code units).
	maxSheetName = 31
	xlsxDateFmt  = "yyyy-mm-dd hh:mm:ss"
	xlsxTable    = "SendLog"
)

// MaxXLSXRows is how many sends one XLSX sheet holds (Excel's 1,048,576 rows
// less the title, filter, blank and header rows).
const MaxXLSXRows = excelize.TotalRows - xlsxHeaderRow

// ErrSheetFull is XLSX.Add's error past MaxXLSXRows sends.
var ErrSheetFull = errors.New("the XLSX sheet is full (Excel's limit is 1,048,576 rows)")

// XLSX writes the export as one sheet of an Excel workbook, streaming the rows
// (excelize keeps large sheets in a temporary file, removed by Close). The
// workbook reaches the output only on Finish.
type XLSX struct {
	out    io.Writer
	f      *excelize.File
	sw     *excelize.StreamWriter
	sheet  string
	row    int // last row written
	text   int // bytes of cell text added
	date   int // style ids
	plain  int
	values []any
	closed bool
}

var _ Writer = (*XLSX)(nil)

// NewXLSX returns an XLSX writer for the export m, writing the workbook to w
// on Finish.
func NewXLSX(w io.Writer, m Meta) (*XLSX, error) {
	x := &XLSX{out: w, f: excelize.NewFile(), sheet: SheetName(m.CertificateID), values: make([]any, len(columns))}
	if err := x.begin(m); err != nil {
		_ = x.Close()
		return nil, fmt.Errorf("xlsx export: start: %w", err)
	}
	return x, nil
}

// SheetName is the export's sheet: "Sends", or "Cert <id>" for one
// certificate when that fits Excel's rules (at most 31 characters, none of
// []:*?/\'), otherwise "Cert <first 8 characters of the id>…" (the full id is
// in the title row and the file name). Characters Excel refuses become _.
func SheetName(certificateID string) string {
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

func (x *XLSX) begin(m Meta) error {
	f := x.f
	if err := f.SetSheetName(f.GetSheetName(0), x.sheet); err != nil {
		return err
	}
	if err := f.SetDocProps(&excelize.DocProperties{
		Title: title(m), Subject: "Certificate of insurance send log", Creator: "coiflow",
		Description: description(m), Created: m.ExportedAt.UTC().Format("2006-01-02T15:04:05Z"),
	}); err != nil {
		return err
	}
	titleStyle, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true, Size: 14}})
	if err != nil {
		return err
	}
	filterStyle, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Italic: true, Color: "595959"}})
	if err != nil {
		return err
	}
	headerStyle, err := f.NewStyle(&excelize.Style{
		Font:      &excelize.Font{Bold: true, Color: "FFFFFF"},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"1F4E78"}},
		Alignment: &excelize.Alignment{Vertical: "center", WrapText: true},
		Border:    []excelize.Border{{Type: "bottom", Color: "000000", Style: 2}},
	})
	if err != nil {
		return err
	}
	datefmt := xlsxDateFmt
	if x.date, err = f.NewStyle(&excelize.Style{CustomNumFmt: &datefmt, Alignment: &excelize.Alignment{Horizontal: "left"}}); err != nil {
		return err
	}
	if x.plain, err = f.NewStyle(&excelize.Style{NumFmt: 49}); err != nil { // "@": text
		return err
	}
	sw, err := f.NewStreamWriter(x.sheet)
	if err != nil {
		return err
	}
	x.sw = sw
	for i, c := range columns {
		if err := sw.SetColWidth(i+1, i+1, c.width); err != nil {
			return err
		}
	}
	if err := sw.SetPanes(&excelize.Panes{
		Freeze: true, YSplit: xlsxHeaderRow, TopLeftCell: cellName(1, xlsxHeaderRow+1), ActivePane: "bottomLeft",
	}); err != nil {
		return err
	}
	if err := sw.SetRow(cellName(1, xlsxTitleRow), []any{excelize.Cell{StyleID: titleStyle, Value: title(m)}},
		excelize.RowOpts{Height: 22}); err != nil {
		return err
	}
	if err := sw.SetRow(cellName(1, xlsxFilterRow), []any{excelize.Cell{StyleID: filterStyle, Value: description(m)}}); err != nil {
		return err
	}
	head := make([]any, len(columns))
	for i, c := range columns {
		head[i] = excelize.Cell{StyleID: headerStyle, Value: c.title}
	}
	if err := sw.SetRow(cellName(1, xlsxHeaderRow), head, excelize.RowOpts{Height: 20}); err != nil {
		return err
	}
	x.row = xlsxHeaderRow
	return nil
}

// Add writes r's row; ErrSheetFull past MaxXLSXRows.
func (x *XLSX) Add(r *sending.SendRecord) error {
	if x.closed {
		return errors.New("xlsx export: add after close")
	}
	if x.row >= excelize.TotalRows {
		return ErrSheetFull
	}
	for i, c := range columns {
		if c.time != nil {
			if t := c.time(r); !t.IsZero() {
				x.values[i] = excelize.Cell{StyleID: x.date, Value: t.UTC()}
			} else {
				x.values[i] = nil
			}
			continue
		}
		v := c.text(r)
		x.text += len(v)
		if v == "" {
			x.values[i] = nil
			continue
		}
		x.values[i] = excelize.Cell{StyleID: x.plain, Value: v}
	}
	x.row++
	return x.sw.SetRow(cellName(1, x.row), x.values)
}

// TextBytes is the length of the cell text added so far. The compressed
// workbook is a fraction of it, so a caller bounding the file's size can stop
// once the text alone is far over, long before Finish.
func (x *XLSX) TextBytes() int { return x.text }

// Finish adds the table over the header and the rows, and writes the
// workbook to the output. It releases the writer's resources (as Close).
func (x *XLSX) Finish() error {
	if x.closed {
		return errors.New("xlsx export: finish after close")
	}
	defer x.Close()
	last := max(x.row, xlsxHeaderRow+1) // a table has at least one row under its header
	if err := x.sw.AddTable(&excelize.Table{
		Range: cellName(1, xlsxHeaderRow) + ":" + cellName(len(columns), last),
		Name:  xlsxTable, StyleName: "TableStyleLight9",
	}); err != nil {
		return fmt.Errorf("xlsx export: table: %w", err)
	}
	if err := x.sw.Flush(); err != nil {
		return fmt.Errorf("xlsx export: flush: %w", err)
	}
	if err := x.f.Write(x.out); err != nil {
		return fmt.Errorf("xlsx export: write: %w", err)
	}
	return nil
}

// Close releases the workbook (its temporary files); safe to call twice.
func (x *XLSX) Close() error {
	if x.closed {
		return nil
	}
	x.closed = true
	return x.f.Close()
}

// cellName is the A1 name of (col, row), both from 1; within the sheet's
// bounds by construction.
func cellName(col, row int) string {
	name, err := excelize.CoordinatesToCellName(col, row)
	if err != nil {
		return "A1"
	}
	return name
}
