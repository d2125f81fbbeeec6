package staffapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/xuri/excelize/v2"

	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/staffapi"
	"github.com/coiflow/coiflow/internal/store"
)

// fileOf decodes an export response's body.
func fileOf(t *testing.T, resp events.APIGatewayV2HTTPResponse) []byte {
	t.Helper()
	if !resp.IsBase64Encoded {
		return []byte(resp.Body)
	}
	b, err := base64.StdEncoding.DecodeString(resp.Body)
	if err != nil {
		t.Fatalf("base64 body: %v", err)
	}
	return b
}

// TestExportThroughAPI: a day's sends from the real table (one sent directly,
// one approved through the API) export as a CSV and an XLSX that read back with
// their rows and holder emails; an export of one certificate names it. The
// quarantine lists what the store holds.
func TestExportThroughAPI(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	bearer := "Bearer " + s.token
	now := time.Now()
	if err := s.worker.Handle(ctx, readyJob(now)); err != nil {
		t.Fatalf("ready job: %v", err)
	}
	if err := s.worker.Handle(ctx, heldJob(now)); err != nil {
		t.Fatalf("held job: %v", err)
	}
	var holds staffapi.HoldList
	if resp, _ := s.call(t, bearer, "GET", "/api/holds", "", &holds); resp.StatusCode != 200 || len(holds.Holds) != 1 {
		t.Fatalf("holds: %d %s", resp.StatusCode, resp.Body)
	}
	var approved staffapi.ApproveResult
	if resp, _ := s.call(t, bearer, "POST", "/api/holds/"+holds.Holds[0].ID+"/approve", "", &approved); resp.StatusCode != 200 ||
		approved.Outcome.Status != sending.StatusSent {
		t.Fatalf("approve: %d %s", resp.StatusCode, resp.Body)
	}
	day := now.UTC().Format("2006-01-02")

	// CSV of the day.
	resp, _ := s.call(t, bearer, "GET", "/api/sends/export?from="+day+"&to="+day+"&format=csv", "", nil)
	if resp.StatusCode != 200 || resp.Headers["Content-Disposition"] != `attachment; filename="coi-sends-`+day+`_`+day+`.csv"` {
		t.Fatalf("csv: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	recs, err := csv.NewReader(bytes.NewReader(fileOf(t, resp))).ReadAll()
	if err != nil {
		t.Fatalf("csv reads back: %v", err)
	}
	if len(recs) != 3 || recs[0][4] != "Holder email" {
		t.Fatalf("csv records: %q", recs)
	}
	byCert := map[string][]string{}
	for _, r := range recs[1:] {
		byCert[r[1]] = r
	}
	ready, held := byCert[nowcertssandbox.SeedCertificateReady2], byCert[nowcertssandbox.SeedCertificatePending]
	if ready == nil || ready[4] != "coi@northwind-pm.example" || ready[6] != "SENT" || ready[10] == "" || ready[7] != "" {
		t.Fatalf("direct send row: %q", ready)
	}
	if held == nil || held[4] != "risk@springfield.example" || held[6] != "SENT" || held[7] != staffapi.LocalPrincipal || held[8] == "" ||
		held[0] != approved.Outcome.SendIDs[0] {
		t.Fatalf("approved send row: %q", held)
	}

	// XLSX of the day.
	resp, _ = s.call(t, bearer, "GET", "/api/sends/export?from="+day+"&to="+day+"&format=xlsx", "", nil)
	if resp.StatusCode != 200 || !resp.IsBase64Encoded {
		t.Fatalf("xlsx: %d %s", resp.StatusCode, resp.Body)
	}
	f, err := excelize.OpenReader(bytes.NewReader(fileOf(t, resp)))
	if err != nil {
		t.Fatalf("xlsx opens: %v", err)
	}
	defer f.Close()
	rows, err := f.GetRows("Sends")
	if err != nil || len(rows) != 4+2 {
		t.Fatalf("xlsx rows %q %v", rows, err)
	}
	emails := rows[4][4] + " " + rows[5][4]
	if !strings.Contains(emails, "coi@northwind-pm.example") || !strings.Contains(emails, "risk@springfield.example") {
		t.Fatalf("xlsx emails: %q", emails)
	}

	// One certificate: its id in the file name, the sheet (shortened: a GUID is
	// too long) and the title row.
	cert := nowcertssandbox.SeedCertificatePending
	resp, _ = s.call(t, bearer, "GET", "/api/sends/export?certificateId="+cert+"&format=xlsx", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Headers["Content-Disposition"], `filename="coi-sends-`+cert+`-start_`) {
		t.Fatalf("certificate export: %d %v", resp.StatusCode, resp.Headers)
	}
	fc, err := excelize.OpenReader(bytes.NewReader(fileOf(t, resp)))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	sheet := "Cert " + cert[:8] + "…"
	if sl := fc.GetSheetList(); len(sl) != 1 || sl[0] != sheet {
		t.Fatalf("sheets %q", sl)
	}
	title, _ := fc.GetCellValue(sheet, "A1")
	crows, _ := fc.GetRows(sheet)
	if !strings.Contains(title, cert) || len(crows) != 5 || crows[4][1] != cert {
		t.Fatalf("certificate sheet: %q %q", title, crows)
	}

	// The quarantine, from the real table.
	if _, err := s.store.PutQuarantine(ctx, store.Quarantined{ID: "q_it_1", Source: "nowcerts", Reason: "no entity id",
		ReceivedAt: now, Body: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	var ql staffapi.QuarantineList
	if resp, _ := s.call(t, bearer, "GET", "/api/quarantine", "", &ql); resp.StatusCode != 200 || len(ql.Events) != 1 ||
		ql.Events[0].ID != "q_it_1" || ql.Events[0].Preview != `{"x":1}` {
		t.Fatalf("quarantine: %d %s", resp.StatusCode, resp.Body)
	}
	// The export log lines carry no holder email in clear.
	if logs := s.apiLogs.String(); strings.Contains(logs, "risk@springfield.example") || !strings.Contains(logs, `"msg":"sends exported"`) {
		t.Fatalf("api logs:\n%s", logs)
	}
}
