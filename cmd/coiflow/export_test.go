package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/local/run"
	"github.com/coiflow/coiflow/internal/sendexport"
	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/staffapi"
)

func TestExportUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "local.json")
	t.Setenv(envAPI, "")
	t.Setenv(envStaffToken, "")
	cases := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"export", "-h"}, exitOK, "-certificate"},
		{[]string{"export", "extra"}, exitUsage, "usage: coiflow export"},
		{[]string{"export", "--format", "pdf"}, exitUsage, `--format "pdf": want csv or xlsx`},
		{[]string{"export", "--status", "held"}, exitUsage, `--status "held": want one of SENDING, SENT, FAILED, UNKNOWN`},
		{[]string{"export", "--page-size", "501"}, exitUsage, "--page-size must be from 1 to 500"},
		{[]string{"export", "--from", "yesterday"}, exitUsage, `--from: "yesterday": want RFC3339`},
		{[]string{"export", "--from", "2026-03-02", "--to", "2026-03-01"}, exitUsage, "--to: before from"},
		{[]string{"export", "--state", missing}, exitFail, "is `coiflow run` (make run) running?"},
		{[]string{"export", "--state", missing, "--api", "https://api.example"}, exitFail, "no staff token for https://api.example"},
		{[]string{"export", "--api", "http://api.example", "--token", "t"}, exitFail, "only sent over http to a loopback address"},
		{[]string{"export", "--api", "ftp://x", "--token", "t"}, exitFail, "want http(s)://host"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.inStderr) {
			t.Errorf("coiflow %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr.String(), c.code, c.inStderr)
		}
	}
}

// writeState writes a local.json naming api and token, as `coiflow run` does.
func writeState(t *testing.T, api, token string) string {
	t.Helper()
	b, err := json.Marshal(run.Info{API: api, StaffToken: token})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "local.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExportTarget(t *testing.T) {
	state := writeState(t, "http://127.0.0.1:3000", "local-token")
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	for _, c := range []struct {
		name              string
		api, token, state string
		env               map[string]string
		base, tok, err    string
	}{
		{name: "local system", state: state, base: "http://127.0.0.1:3000", tok: "local-token"},
		{name: "flags win", api: "https://x.execute-api.us-east-1.amazonaws.com/prod/", token: "jwt", state: state,
			env:  map[string]string{envAPI: "https://other.example", envStaffToken: "other"},
			base: "https://x.execute-api.us-east-1.amazonaws.com/prod", tok: "jwt"},
		{name: "environment", env: map[string]string{envAPI: "https://api.example", envStaffToken: "jwt"}, state: "/nonexistent/local.json",
			base: "https://api.example", tok: "jwt"},
		{name: "token from the environment, API local", env: map[string]string{envStaffToken: "mine"}, state: state,
			base: "http://127.0.0.1:3000", tok: "mine"},
		{name: "local API by flag: the local token", api: "http://127.0.0.1:3000/", state: state, base: "http://127.0.0.1:3000", tok: "local-token"},
		{name: "another API: no local token", api: "https://api.example", state: state, err: "no staff token for https://api.example"},
		{name: "localhost over http", api: "http://localhost:3000", token: "t", base: "http://localhost:3000", tok: "t"},
		{name: "plain http elsewhere", api: "http://10.0.0.5:3000", token: "t", err: "only sent over http to a loopback address"},
	} {
		got, err := exportTarget(c.api, c.token, c.state, env(c.env))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %+v, %v; want error %q", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || got.base != c.base || got.token != c.tok {
			t.Errorf("%s: %+v, %v; want %s with %s", c.name, got, err, c.base, c.tok)
		}
	}
}

// fakeSendsAPI serves GET /api/sends from recs (newest first, cursor = offset),
// answering 503 to the first failFirst requests and 401 to a wrong token.
type fakeSendsAPI struct {
	recs      []sending.SendRecord
	token     string
	failFirst int32
	requests  atomic.Int32
	mu        sync.Mutex
	queries   []string
}

func (f *fakeSendsAPI) query(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[i]
}

func (f *fakeSendsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"Unauthorized"}`) // API Gateway's JWT authorizer
		return
	}
	if n <= f.failFirst {
		w.Header().Set("X-Request-Id", "req-503")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"internal error","requestId":"req-503"}`)
		return
	}
	if r.URL.Path != "/prod/api/sends" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RawQuery)
	f.mu.Unlock()
	q := r.URL.Query()
	if q.Get("status") == "UNKNOWN" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid status: nope","requestId":"req-400"}`)
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	off, _ := strconv.Atoi(q.Get("cursor"))
	end := min(off+limit, len(f.recs))
	list := staffapi.SendList{Sends: []staffapi.SendView{}}
	for _, rec := range f.recs[off:end] {
		list.Sends = append(list.Sends, staffapi.NewSendView(rec))
	}
	if end < len(f.recs) {
		list.Next = strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

func genRecords(n int, day time.Time) []sending.SendRecord {
	out := make([]sending.SendRecord, n)
	for i := range out {
		at := day.Add(24*time.Hour - time.Duration(i+1)*time.Minute)
		out[i] = sending.SendRecord{ID: fmt.Sprintf("snd_%04d", i), CertificateID: "cert-1", HolderEmail: fmt.Sprintf("h%d@example.com", i),
			Status: sending.StatusSent, CreatedAt: at, SentAt: at.Add(time.Second)}
	}
	return out
}

// TestExportJob: paging, the range filter, retries of a 503, the progress
// estimate, and the API's error messages.
func TestExportJob(t *testing.T) {
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	recs := genRecords(25, day)
	recs = append(recs, sending.SendRecord{ID: "snd_early", CreatedAt: day.Add(-time.Hour)}) // outside the day
	api := &fakeSendsAPI{recs: recs, token: "jwt", failFirst: 2}
	srv := httptest.NewServer(api)
	defer srv.Close()
	meta, err := sendexport.NewMeta(sendexport.Filter{From: "2026-03-02", To: "2026-03-02", Holder: "h@x", Status: "SENT"}, day)
	if err != nil {
		t.Fatal(err)
	}
	var updates []exportStats
	job := &exportJob{base: srv.URL + "/prod", token: "jwt", meta: meta, pageSize: 10, client: srv.Client(),
		progress: func(s exportStats) { updates = append(updates, s) }}
	var buf bytes.Buffer
	w := sendexport.NewCSV(&buf)
	st, err := job.run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if st.Pages != 3 || st.Fetched != 26 || st.Written != 25 || st.Done != 1 || st.Received <= 0 || api.requests.Load() != 5 {
		t.Fatalf("stats %+v after %d requests", st, api.requests.Load())
	}
	if len(updates) != 2 || updates[0].Written != 10 || updates[1].Written != 20 {
		t.Fatalf("updates %+v", updates)
	}
	// After 10 sends a minute apart back from midnight: 10 minutes of the day.
	if d := updates[0].Done; d < 10.0/1440-1e-9 || d > 10.0/1440+1e-9 {
		t.Fatalf("first estimate %v", d)
	}
	first := api.query(0)
	for _, part := range []string{"limit=10", "from=2026-03-02T00%3A00%3A00Z", "to=2026-03-02T23%3A59%3A59.999999999Z", "holder=h%40x", "status=SENT"} {
		if !strings.Contains(first, part) {
			t.Fatalf("query %q lacks %q", first, part)
		}
	}
	if !strings.Contains(api.query(2), "cursor=20") {
		t.Fatalf("third query %q", api.query(2))
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 26 || rows[1][0] != "snd_0000" || rows[25][0] != "snd_0024" {
		t.Fatalf("csv: %d rows, %v", len(rows), err)
	}
	if line := updates[0].line(meta); !strings.HasPrefix(line, "export: [") || !strings.Contains(line, "10 sends · 1 pages") {
		t.Fatalf("progress line %q", line)
	}
	if line := (exportStats{Written: 3, Fetched: 5, Pages: 1, Received: 2048, Done: -1}).line(meta); line != "export: 3 sends (of 5 read) · 1 pages · 2.0 kB received" {
		t.Fatalf("open-range line %q", line)
	}
	if line := (exportStats{Done: 0.5}).line(meta); !strings.Contains(line, "[############............]  50%") {
		t.Fatalf("half line %q", line)
	}

	// Errors: API Gateway's 401, the staff API's 400, and 503s that do not pass.
	for _, c := range []struct {
		token, status string
		fail          int32
		parts         []string
	}{
		{"expired", "", 0, []string{"401 Unauthorized: Unauthorized", "wrong or has expired", envStaffToken}},
		{"jwt", "UNKNOWN", 0, []string{"page 1", "400 Bad Request: invalid status: nope (request id req-400)"}},
		{"jwt", "", 100, []string{"503 Service Unavailable: internal error (request id req-503)"}},
	} {
		api := &fakeSendsAPI{recs: recs, token: "jwt", failFirst: c.fail}
		srv := httptest.NewServer(api)
		m := meta
		m.Status = c.status
		job := &exportJob{base: srv.URL + "/prod", token: c.token, meta: m, pageSize: 10, client: srv.Client()}
		_, err := job.run(context.Background(), sendexport.NewCSV(&bytes.Buffer{}))
		srv.Close()
		for _, p := range c.parts {
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("token %s status %q: %v; want %q", c.token, c.status, err, p)
			}
		}
		if c.fail == 100 && api.requests.Load() != 1+exportRetries {
			t.Errorf("503s: %d requests, want %d", api.requests.Load(), 1+exportRetries)
		}
		if c.token == "expired" && api.requests.Load() != 1 {
			t.Errorf("401 retried: %d requests", api.requests.Load())
		}
	}
}

// TestExportToFileAndStdout runs the command against the fake API: the default
// file name in a directory, no partial file on failure, CSV on stdout.
func TestExportToFileAndStdout(t *testing.T) {
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	api := &fakeSendsAPI{recs: genRecords(12, day), token: "jwt"}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	base := []string{"export", "--api", srv.URL + "/prod", "--token", "jwt", "--from", "2026-03-02", "--to", "2026-03-02", "--page-size", "5"}

	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), append(base, "--format", "xlsx", "--out", dir), &stdout, &stderr)
	want := filepath.Join(dir, "coi-sends-2026-03-02_2026-03-02.xlsx")
	if code != exitOK || !strings.Contains(stdout.String(), "wrote "+want+": 12 sends") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
	}
	if fi, err := os.Stat(want); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	if strings.ContainsAny(stderr.String(), "\r\x1b") || !strings.Contains(stderr.String(), "export: [") {
		t.Fatalf("stderr %q", stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	code = dispatch(context.Background(), append(base, "--out", "-"), &stdout, &stderr)
	rows, err := csv.NewReader(&stdout).ReadAll()
	if code != exitOK || err != nil || len(rows) != 13 || !strings.Contains(stderr.String(), "wrote stdout: 12 sends") {
		t.Fatalf("stdout: exit %d, %d rows, %v\nstderr %s", code, len(rows), err, stderr.String())
	}

	// A failure leaves nothing behind.
	failDir := t.TempDir()
	stderr.Reset()
	code = dispatch(context.Background(), []string{"export", "--api", srv.URL + "/prod", "--token", "bad", "--out", failDir}, &stdout, &stderr)
	entries, _ := os.ReadDir(failDir)
	if code != exitFail || len(entries) != 0 || !strings.Contains(stderr.String(), "401") {
		t.Fatalf("bad token: exit %d, files %v, stderr %s", code, entries, stderr.String())
	}
	if slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasSuffix(e.Name(), ".partial") }) {
		t.Fatal("partial file left")
	}
}
