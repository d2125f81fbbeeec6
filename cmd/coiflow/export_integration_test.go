package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/coiflow/coiflow/internal/local/apigw"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/wire"
)

// exportStack is the api function as wire builds it (the staff API over the
// real send pipeline and a table on DynamoDB Local), served over loopback by
// the local API Gateway stand-in, and a local.json naming it as `coiflow run`
// would.
type exportStack struct {
	url, token, state string
	store             *store.Store
}

func newExportStack(t *testing.T) *exportStack {
	t.Helper()
	env := testenv.Get(t)
	table := env.NewTable(t)
	crmURL, _ := env.NewQueue(t, 0)
	token := fmt.Sprintf("staff-export-%d", time.Now().UnixNano())
	vars := map[string]string{
		"TABLE_NAME":          table,
		"CRM_QUEUE_URL":       crmURL,
		"NOWCERTS_SECRET_ARN": env.NewSecret(t, `{"username":"u","password":"p","clientId":"ngAuthApp"}`),
		"NOWCERTS_BASE_URL":   "http://127.0.0.1:9", // exports never call NowCerts
		"STAFF_AUTH":          "token",
		"STAFF_SECRET_ARN":    env.NewSecret(t, `{"tokens": ["`+token+`"]}`),
		"LOG_LEVEL":           "warn",
	}
	api, err := wire.API(context.Background(), wire.Deps{Env: func(k string) string { return vars[k] }, AWS: env.AWS, Stdout: io.Discard})
	if err != nil {
		t.Fatalf("wire.API: %v", err)
	}
	gw, err := apigw.New([]apigw.Route{{Method: "ANY", Path: "/api/{proxy+}", Function: "api"}},
		map[string]apigw.Function{"api": {Handler: api}}, apigw.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw) // 127.0.0.1
	t.Cleanup(srv.Close)
	return &exportStack{url: srv.URL, token: token, state: writeState(t, srv.URL, token), store: store.New(env.DynamoDB(), table)}
}

// seed writes sends through the store's own claim and completion (what the
// send worker does), each at its CreatedAt, a few at a time.
func (s *exportStack) seed(t *testing.T, sends []store.Send) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(sends))
	work := make(chan store.Send)
	for range 6 {
		wg.Go(func() {
			for rec := range work {
				at := rec.CreatedAt
				if _, err := s.store.WithClock(func() time.Time { return at }).ClaimSend(ctx, store.Claim{Send: rec, Owner: "seed", Lease: time.Hour}); err != nil {
					errs <- fmt.Errorf("claim %s: %w", rec.ID, err)
					continue
				}
				c := store.Completion{Status: rec.Status, Answer: rec.Answer, Error: rec.Error, RequestID: rec.RequestID}
				if err := s.store.WithClock(func() time.Time { return at.Add(2 * time.Second) }).CompleteSend(ctx, rec.ID, "seed", c); err != nil {
					errs <- fmt.Errorf("complete %s: %w", rec.ID, err)
				}
			}
		})
	}
	for _, rec := range sends {
		work <- rec
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func (s *exportStack) coiflow(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := dispatch(context.Background(), args, &out, &errw)
	return code, out.String(), errw.String()
}

// TestExportCommand: `coiflow export` against the real api function pages
// through more than one page of 500 sends of a day and writes them as an
// XLSX and a CSV that read back with every send (the CSV byte for byte what
// GET /api/sends/export answers for the same day); a certificate's export
// names it; the API's errors reach the operator.
func TestExportCommand(t *testing.T) {
	s := newExportStack(t)
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	cert := "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	const bulk = 640
	var sends []store.Send
	mk := func(id, certID string, at time.Time, i int) store.Send {
		rec := store.Send{ID: id, CertificateID: certID, Revision: "r1", HolderID: fmt.Sprintf("holder-%d", i),
			HolderName: fmt.Sprintf("Holder %d LLC", i), HolderEmail: fmt.Sprintf("holder-%d@example.com", i), Channel: "email",
			Status: store.SendSent, Answer: `{"status":1}`, RequestID: fmt.Sprintf("req-%d", i), EventID: fmt.Sprintf("evt-%d", i),
			CreatedAt: at, Source: "nowcerts"}
		if i%10 == 3 {
			rec.Status, rec.Answer, rec.Error = store.SendFailed, "", "NowCerts said: holder <email> invalid, \"rejected\""
		}
		return rec
	}
	step := (24*time.Hour - time.Minute) / bulk
	for i := range bulk {
		sends = append(sends, mk(fmt.Sprintf("snd_bulk%04d", i), "cert-bulk", day.Add(30*time.Second+time.Duration(i)*step), i))
	}
	sends[7].HolderName = "=HYPERLINK(\"http://evil.example\")"
	for i, at := range []time.Time{day.Add(-3 * time.Hour), day.Add(-time.Hour), day.Add(9 * time.Hour), day.Add(10 * time.Hour),
		day.Add(23*time.Hour + 59*time.Minute + 59*time.Second), day.Add(25 * time.Hour)} {
		sends = append(sends, mk(fmt.Sprintf("snd_cert%d", i), cert, at, 1000+i))
	}
	sends = append(sends, mk("snd_before", "cert-other", day.Add(-time.Second), 2000), mk("snd_after", "cert-other", day.Add(24*time.Hour), 2001))
	start := time.Now()
	s.seed(t, sends)
	t.Logf("seeded %d sends in %v", len(sends), time.Since(start))

	// The day's sends, newest first: 640 bulk and 3 of the certificate.
	var dayIDs []string
	byCreated := slices.Clone(sends)
	slices.SortFunc(byCreated, func(a, b store.Send) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for _, rec := range byCreated {
		if !rec.CreatedAt.Before(day) && rec.CreatedAt.Before(day.Add(24*time.Hour)) {
			dayIDs = append(dayIDs, rec.ID)
		}
	}
	if len(dayIDs) != bulk+3 {
		t.Fatalf("%d sends on the day", len(dayIDs))
	}

	// XLSX of the day, into a directory, under the default name.
	dir := t.TempDir()
	start = time.Now()
	code, stdout, stderr := s.coiflow(t, "export", "--state", s.state, "--from", "2026-03-02", "--to", "2026-03-02", "--format", "xlsx", "--out", dir)
	t.Logf("xlsx export of %d sends in %v", len(dayIDs), time.Since(start))
	file := filepath.Join(dir, "coi-sends-2026-03-02_2026-03-02.xlsx")
	if code != exitOK || !strings.Contains(stdout, "wrote "+file+": 643 sends") {
		t.Fatalf("xlsx: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "· 2 pages ·") || !strings.Contains(stderr, "100%") || strings.ContainsAny(stderr, "\r\x1b") ||
		!strings.Contains(stderr, "sends from "+s.url+" (local system, "+s.state+")") {
		t.Fatalf("progress on stderr: %q", stderr)
	}
	f, err := excelize.OpenFile(file)
	if err != nil {
		t.Fatalf("the XLSX does not open: %v", err)
	}
	defer f.Close()
	if sl := f.GetSheetList(); len(sl) != 1 || sl[0] != "Sends" {
		t.Fatalf("sheets %q", sl)
	}
	rows, err := f.GetRows("Sends")
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "COI sends" || !strings.Contains(rows[1][0], "Created 2026-03-02 00:00:00 to 2026-03-02 23:59:59 UTC") ||
		!strings.Contains(rows[1][0], "(coiflow export)") || rows[3][0] != "Send ID" || rows[3][15] != "Resend of" {
		t.Fatalf("head rows %q", rows[:4])
	}
	var got []string
	for _, r := range rows[4:] {
		got = append(got, r[0])
	}
	if !slices.Equal(got, dayIDs) {
		t.Fatalf("xlsx rows: %d, first %q; want %d, first %q", len(got), got[:min(3, len(got))], len(dayIDs), dayIDs[:3])
	}
	i7 := slices.Index(got, "snd_bulk0007")
	r7 := rows[4+i7]
	want7 := sends[7]
	if r7[1] != "cert-bulk" || r7[3] != want7.HolderName || r7[4] != "holder-7@example.com" || r7[6] != "SENT" ||
		r7[9] != want7.CreatedAt.Format("2006-01-02 15:04:05") || r7[10] != want7.CreatedAt.Add(2*time.Second).Format("2006-01-02 15:04:05") {
		t.Fatalf("row of snd_bulk0007: %q", r7)
	}
	if formula, _ := f.GetCellFormula("Sends", fmt.Sprintf("D%d", 5+i7)); formula != "" {
		t.Fatalf("a holder name became a formula: %q", formula)
	}
	r3 := rows[4+slices.Index(got, "snd_bulk0003")]
	if r3[6] != "FAILED" || r3[12] != sends[3].Error || (len(r3) > 10 && r3[10] != "") {
		t.Fatalf("failed row %q", r3)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files left in the directory: %v", entries)
	}

	// CSV of the day on stdout, 7 pages of 100: the same bytes as the API's own export.
	code, stdout, stderr = s.coiflow(t, "export", "--state", s.state, "--from", "2026-03-02", "--to", "2026-03-02", "--out", "-", "--page-size", "100")
	if code != exitOK || !strings.Contains(stderr, "wrote stdout: 643 sends") || !strings.Contains(stderr, "· 7 pages ·") {
		t.Fatalf("csv: exit %d\nstderr %s", code, stderr)
	}
	req, _ := http.NewRequest("GET", s.url+"/api/sends/export?from=2026-03-02&to=2026-03-02&format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	apiCSV, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Export-Rows") != "643" {
		t.Fatalf("API export: %d %s", resp.StatusCode, apiCSV[:min(200, len(apiCSV))])
	}
	if stdout != string(apiCSV) {
		t.Fatalf("the CLI's CSV (%d bytes) differs from the API's (%d bytes)", len(stdout), len(apiCSV))
	}
	records, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil || len(records) != 1+len(dayIDs) || records[1][0] != dayIDs[0] || records[len(records)-1][0] != dayIDs[len(dayIDs)-1] {
		t.Fatalf("csv reads back: %d records, %v", len(records), err)
	}
	if records[1+i7][3] != "'"+want7.HolderName {
		t.Fatalf("formula not defused in CSV: %q", records[1+i7][3])
	}

	// Only the day's failures: every tenth bulk send and snd_cert3.
	out := filepath.Join(t.TempDir(), "failed.csv")
	code, _, stderr = s.coiflow(t, "export", "--state", s.state, "--from", "2026-03-02", "--to", "2026-03-02", "--status", "failed", "--out", out)
	failed, _ := os.ReadFile(out)
	frows, err := csv.NewReader(bytes.NewReader(failed)).ReadAll()
	if code != exitOK || err != nil || len(frows) != 1+bulk/10+1 {
		t.Fatalf("failed only: exit %d, %d rows, %v\n%s", code, len(frows), err, stderr)
	}
	for _, r := range frows[1:] {
		if r[6] != "FAILED" {
			t.Fatalf("a %s send in the failed export", r[6])
		}
	}

	// One certificate, its whole history, under the default name in the
	// current directory; the API and token from the environment.
	cwd := t.TempDir()
	t.Chdir(cwd)
	t.Setenv(envAPI, s.url)
	t.Setenv(envStaffToken, s.token)
	code, stdout, stderr = s.coiflow(t, "export", "--state", filepath.Join(cwd, "none.json"), "--certificate", cert, "--format", "xlsx")
	name := "coi-sends-" + cert + "-start_" + time.Now().UTC().Format("2006-01-02") + ".xlsx"
	if code != exitOK || !strings.Contains(stdout, "wrote "+name+": 6 sends") || !strings.Contains(stderr, "($"+envAPI+")") {
		t.Fatalf("certificate: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	fc, err := excelize.OpenFile(filepath.Join(cwd, name))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	sheet := "Cert 7c9e6679…"
	crows, err := fc.GetRows(sheet)
	if err != nil || crows[0][0] != "COI sends — certificate "+cert || len(crows) != 4+6 || crows[4][0] != "snd_cert5" || crows[9][0] != "snd_cert0" {
		t.Fatalf("certificate sheet: %q %v", crows, err)
	}

	// The API's errors: a wrong token (401), a range the API refuses (400).
	code, _, stderr = s.coiflow(t, "export", "--token", "not-the-token", "--out", t.TempDir())
	if code != exitFail || !strings.Contains(stderr, "401 Unauthorized: authentication required") || !strings.Contains(stderr, "wrong or has expired") {
		t.Fatalf("wrong token: exit %d, stderr %s", code, stderr)
	}
	code, _, stderr = s.coiflow(t, "export", "--from", "2024-01-01", "--to", "2026-03-02", "--out", t.TempDir())
	if code != exitFail || !strings.Contains(stderr, "400 Bad Request") || !strings.Contains(stderr, "366 days") || !strings.Contains(stderr, "request id") {
		t.Fatalf("too long a range: exit %d, stderr %s", code, stderr)
	}
}
