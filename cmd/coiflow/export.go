package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/local/run"
	"github.com/coiflow/coiflow/internal/opstarget"
	"github.com/coiflow/coiflow/internal/progress"
	"github.com/coiflow/coiflow/internal/sendexport"
	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/staffapi"
)

// `coiflow export` writes the send log to a CSV or XLSX file, paging through
// the staff API's GET /api/sends itself (so, unlike GET /api/sends/export,
// whatever the size), with the same columns, sheet and file name
// (internal/sendexport).

// Environment variables naming the API and the staff token (AWS: the HTTP
// API's URL and a staff JWT).
const (
	envAPI        = "COIFLOW_API"
	envStaffToken = "COIFLOW_STAFF_TOKEN"
)

const (
	// exportPageSize is the send query's largest page.
	exportPageSize = 500
	// exportRetries is how many times a failed page request is retried
	// (network errors, 429 and 5xx: the GET is idempotent).
	exportRetries = 3
	// exportRetryWait is the first wait before a retry (doubling).
	exportRetryWait = time.Second
	// exportRequestTimeout bounds one page request (API Gateway gives up at 30 s).
	exportRequestTimeout = 60 * time.Second
	// maxPageBytes bounds one page's JSON (500 sends are a few hundred KB).
	maxPageBytes = 64 << 20
	// maxErrorBytes bounds how much of an error response is read.
	maxErrorBytes = 64 << 10
)

var sendStatuses = []string{sending.StatusSending, sending.StatusSent, sending.StatusFailed, sending.StatusUnknown}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("export", "export [--from DATE] [--to DATE] [--certificate ID] [--holder H] [--status S] [--format csv|xlsx] [--out FILE|DIR|-]\n"+
		"                      [--api URL --token TOKEN | --state FILE]\n"+
		"  The send log as a CSV or XLSX file, from the running local system (its local.json) or, with --api/--token\n"+
		"  (or "+envAPI+"/"+envStaffToken+"), a deployed API and a staff JWT. DATE: YYYY-MM-DD (a UTC day) or RFC3339.", stderr)
	from := fs.String("from", "", "first creation time: YYYY-MM-DD or RFC3339 (default: 7 days before --to; with --certificate, its first send)")
	to := fs.String("to", "", "last creation time: YYYY-MM-DD (that whole UTC day) or RFC3339 (default: now)")
	cert := fs.String("certificate", "", "only this certificate's sends (its id goes in the file and sheet names)")
	holder := fs.String("holder", "", "only sends to this holder (holder id or email)")
	status := fs.String("status", "", "only sends in this status: "+strings.Join(sendStatuses, ", "))
	format := fs.String("format", "", "csv or xlsx (default: xlsx when --out ends in .xlsx, else csv)")
	out := fs.String("out", "", "the file to write, or a directory for the default name, or - for stdout (default: ./"+
		sendexport.FileName(sendexport.Meta{FromLabel: "FROM", ToLabel: "TO"}, "FORMAT")+", with the certificate id after coi-sends- when given)")
	apiURL := fs.String("api", "", "the API's base URL (default $"+envAPI+", else the local system's)")
	token := fs.String("token", "", "the staff bearer token (default $"+envStaffToken+", else the local system's); in AWS a staff JWT")
	state := fs.String("state", "", "the running local system's local.json (default <repo>/.coiflow/local.json)")
	pageSize := fs.Int("page-size", exportPageSize, "sends per GET /api/sends request (1 to 500)")
	if code, stop := parse(fs, args); stop {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "coiflow export: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	f := strings.ToLower(strings.TrimSpace(*format))
	switch f {
	case "":
		f = sendexport.FormatCSV
		if strings.HasSuffix(strings.ToLower(*out), ".xlsx") {
			f = sendexport.FormatXLSX
		}
	case sendexport.FormatCSV, sendexport.FormatXLSX:
	default:
		return usageErr("--format %q: want csv or xlsx", *format)
	}
	st := strings.ToUpper(strings.TrimSpace(*status))
	if st != "" && !slices.Contains(sendStatuses, st) {
		return usageErr("--status %q: want one of %s", *status, strings.Join(sendStatuses, ", "))
	}
	if *pageSize < 1 || *pageSize > exportPageSize {
		return usageErr("--page-size must be from 1 to %d", exportPageSize)
	}
	if *out == "-" && f == sendexport.FormatXLSX && progress.IsTerminal(stdout) {
		return usageErr("an XLSX file is binary: give --out FILE, or redirect stdout")
	}
	meta, err := sendexport.NewMeta(sendexport.Filter{CertificateID: *cert, Holder: *holder, Status: st, From: *from, To: *to}, time.Now())
	if err != nil {
		var re *sendexport.RangeError
		if errors.As(err, &re) {
			return usageErr("--%s: %s", re.Param, re.Problem)
		}
		return fail(stderr, "export", err)
	}
	meta.ExportedBy = opstarget.Operator() + " (coiflow export)"

	target, err := exportTarget(*apiURL, *token, *state, os.Getenv)
	if err != nil {
		return fail(stderr, "export", err)
	}
	dest, err := openDestination(*out, sendexport.FileName(meta, f), stdout)
	if err != nil {
		return fail(stderr, "export", err)
	}
	defer dest.abort()
	w, err := sendexport.New(f, dest, meta)
	if err != nil {
		return fail(stderr, "export", err)
	}
	defer w.Close()

	line := progress.New(stderr)
	job := &exportJob{
		base: target.base, token: target.token, meta: meta, pageSize: *pageSize,
		client: &http.Client{Timeout: exportRequestTimeout}, retryWait: exportRetryWait,
		progress: func(s exportStats) { line.Update(s.line(meta)) },
	}
	fmt.Fprintf(stderr, "coiflow export: sends from %s (%s) → %s\n", target.base, target.where, dest.label())
	stats, err := job.run(ctx, w)
	if err == nil {
		err = w.Finish()
	}
	if err == nil {
		err = dest.commit()
	}
	line.Done(stats.line(meta))
	if err != nil {
		if errors.Is(err, sendexport.ErrSheetFull) {
			err = fmt.Errorf("%w: more than %d sends do not fit one sheet: narrow the range or use --format csv", err, sendexport.MaxXLSXRows)
		}
		return fail(stderr, "export", err)
	}
	summary := fmt.Sprintf("wrote %s: %d sends, %s (%s)", dest.label(), stats.Written, size(dest.written), strings.ToUpper(f))
	if dest.stdout {
		fmt.Fprintln(stderr, summary)
	} else {
		fmt.Fprintln(stdout, summary)
	}
	return exitOK
}

// apiTarget is the API an export reads.
type apiTarget struct {
	base  string // the API's base URL, no trailing slash
	token string
	where string // "local system (<local.json>)", or where the URL came from
}

// exportTarget finds the API and the token: flags, then the environment, then
// the running local system's local.json (the token only when the API is the
// local system's too: a local token means nothing elsewhere).
func exportTarget(apiFlag, tokenFlag, stateFlag string, getenv func(string) string) (apiTarget, error) {
	t := apiTarget{base: strings.TrimSpace(apiFlag), token: strings.TrimSpace(tokenFlag), where: "--api"}
	if t.base == "" {
		t.base, t.where = strings.TrimSpace(getenv(envAPI)), "$"+envAPI
	}
	if t.token == "" {
		t.token = strings.TrimSpace(getenv(envStaffToken))
	}
	if t.base == "" || t.token == "" {
		path := stateFlag
		if path == "" {
			path = stateFile("")
		}
		var info run.Info
		var err error
		if path == "" {
			err = errors.New("cannot find the repository's .coiflow/local.json")
		} else if info, err = run.ReadInfo(path); errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%s not found: is `coiflow run` (make run) running?", path)
		}
		switch {
		case t.base == "" && err != nil:
			return t, fmt.Errorf("no API to read: %v; for AWS pass --api URL and --token TOKEN (or set %s and %s)", err, envAPI, envStaffToken)
		case t.base == "":
			if info.API == "" || info.StaffToken == "" {
				return t, fmt.Errorf("%s names no API and staff token (is it a current coiflow run's?)", path)
			}
			t.base, t.where = info.API, "local system, "+path
		}
		if t.token == "" {
			if err != nil || !sameURL(info.API, t.base) {
				return t, fmt.Errorf("no staff token for %s: pass --token TOKEN or set %s (in AWS a staff JWT)", t.base, envStaffToken)
			}
			t.token = info.StaffToken
		}
	}
	u, err := url.Parse(t.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return t, fmt.Errorf("API URL %q: want http(s)://host[:port][/stage]", t.base)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return t, fmt.Errorf("API URL %q: a bearer token is only sent over http to a loopback address; use https", t.base)
	}
	t.base = strings.TrimRight(t.base, "/")
	return t, nil
}

func sameURL(a, b string) bool {
	return a != "" && strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// exportJob pages through GET /api/sends into a sendexport.Writer.
type exportJob struct {
	base, token string
	meta        sendexport.Meta
	pageSize    int
	client      *http.Client
	retryWait   time.Duration
	progress    func(exportStats) // after each page but the last
}

// exportStats is an export's progress.
type exportStats struct {
	Pages    int   // pages read
	Fetched  int   // sends received
	Written  int   // sends written (created within the range)
	Received int64 // bytes of JSON received
	// Done is the share of the range read (0..1), estimated from the oldest
	// creation time received (the query returns newest first); -1 when the
	// range is open.
	Done float64
}

// line is the progress line: a bar when the share done is known.
func (s exportStats) line(m sendexport.Meta) string {
	counts := fmt.Sprintf("%d sends · %d pages · %s received", s.Written, s.Pages, size(s.Received))
	if s.Fetched != s.Written {
		counts = fmt.Sprintf("%d sends (of %d read) · %d pages · %s received", s.Written, s.Fetched, s.Pages, size(s.Received))
	}
	if s.Done < 0 {
		return "export: " + counts
	}
	const width = 24
	full := int(s.Done*width + 0.5)
	return fmt.Sprintf("export: [%s%s] %3.0f%%  %s", strings.Repeat("#", full), strings.Repeat(".", width-full), s.Done*100, counts)
}

// size is n bytes for people.
func size(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// run reads every page and adds the sends created within the range to w.
func (j *exportJob) run(ctx context.Context, w sendexport.Writer) (exportStats, error) {
	st := exportStats{Done: -1}
	bounded := !j.meta.From.IsZero() && !j.meta.To.IsZero() && j.meta.To.After(j.meta.From)
	if bounded {
		st.Done = 0
	}
	oldest := j.meta.To
	seen := map[string]bool{}
	cursor := ""
	for {
		page, n, err := j.page(ctx, cursor)
		if err != nil {
			return st, fmt.Errorf("page %d: %w", st.Pages+1, err)
		}
		st.Pages++
		st.Received += n
		for _, v := range page.Sends {
			rec, err := v.Record()
			if err != nil {
				return st, fmt.Errorf("page %d: %w", st.Pages, err)
			}
			st.Fetched++
			if !rec.CreatedAt.IsZero() && rec.CreatedAt.Before(oldest) {
				oldest = rec.CreatedAt
			}
			if !j.meta.Contains(&rec) {
				continue
			}
			if err := w.Add(&rec); err != nil {
				return st, fmt.Errorf("send %s: %w", rec.ID, err)
			}
			st.Written++
		}
		if page.Next == "" {
			if bounded {
				st.Done = 1
			}
			return st, nil
		}
		if bounded {
			st.Done = min(1, max(0, float64(j.meta.To.Sub(oldest))/float64(j.meta.To.Sub(j.meta.From))))
		}
		if seen[page.Next] {
			return st, fmt.Errorf("the API returned cursor %q twice: the listing does not end", page.Next)
		}
		seen[page.Next] = true
		cursor = page.Next
		if j.progress != nil {
			j.progress(st)
		}
	}
}

// query is GET /api/sends's query for the page at cursor.
func (j *exportJob) query(cursor string) url.Values {
	q := url.Values{"limit": {strconv.Itoa(j.pageSize)}}
	for k, v := range map[string]string{"certificateId": j.meta.CertificateID, "holder": j.meta.Holder, "status": j.meta.Status, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !j.meta.From.IsZero() {
		q.Set("from", j.meta.From.UTC().Format(time.RFC3339Nano))
	}
	if !j.meta.To.IsZero() {
		q.Set("to", j.meta.To.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// page fetches one page, retrying what may pass (network errors, 429, 5xx).
func (j *exportJob) page(ctx context.Context, cursor string) (staffapi.SendList, int64, error) {
	wait := j.retryWait
	for attempt := 0; ; attempt++ {
		list, n, err := j.fetch(ctx, cursor)
		if err == nil || attempt == exportRetries || !retryable(err) || ctx.Err() != nil {
			return list, n, err
		}
		select {
		case <-ctx.Done():
			return list, n, err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// apiError is an error response of the API.
type apiError struct {
	status    int
	message   string
	requestID string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("the API answered %d %s", e.status, http.StatusText(e.status))
	if e.message != "" {
		msg += ": " + e.message
	}
	if e.requestID != "" {
		msg += " (request id " + e.requestID + ")"
	}
	switch e.status {
	case http.StatusUnauthorized:
		msg += ": the staff token is wrong or has expired (locally: a current `coiflow run`'s local.json has the token; in AWS: sign in again for a fresh staff JWT and pass it with --token or $" + envStaffToken + ")"
	case http.StatusForbidden:
		msg += ": the token is not allowed to read sends"
	}
	return msg
}

// transientError is a failure worth retrying.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

func (j *exportJob) fetch(ctx context.Context, cursor string) (staffapi.SendList, int64, error) {
	var list staffapi.SendList
	u := j.base + "/api/sends?" + j.query(cursor).Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return list, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+j.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "coiflow-export")
	resp, err := j.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return list, 0, ctx.Err()
		}
		return list, 0, &transientError{fmt.Errorf("GET %s/api/sends: %w", j.base, redactURLError(err))}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := readAPIError(resp)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return list, 0, &transientError{e}
		}
		return list, 0, e
	}
	cr := &countingReader{r: io.LimitReader(resp.Body, maxPageBytes+1)}
	dec := json.NewDecoder(cr)
	if err := dec.Decode(&list); err != nil {
		if cr.n > maxPageBytes {
			return list, cr.n, fmt.Errorf("a page of sends is larger than %d MB", maxPageBytes>>20)
		}
		if ctx.Err() != nil {
			return list, cr.n, ctx.Err()
		}
		return list, cr.n, &transientError{fmt.Errorf("read the page: %w (content type %q)", err, resp.Header.Get("Content-Type"))}
	}
	_, _ = io.Copy(io.Discard, cr)
	return list, cr.n, nil
}

// redactURLError drops the URL (it holds the filters and cursor, never the
// token, but is long) from a client error, keeping the cause.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readAPIError reads an error response: the staff API's {"error", "requestId"},
// or API Gateway's own {"message"} (its JWT authorizer's 401), or text.
func readAPIError(resp *http.Response) *apiError {
	e := &apiError{status: resp.StatusCode, requestID: resp.Header.Get("X-Request-Id")}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body struct {
		staffapi.ErrorBody
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &body) == nil && (body.Error != "" || body.Message != "") {
		e.message = body.Error
		if e.message == "" {
			e.message = body.Message
		}
		if body.RequestID != "" {
			e.requestID = body.RequestID
		}
		return e
	}
	text := strings.TrimSpace(string(b))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	e.message = text
	return e
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// destination is where the file goes: a temporary file renamed into place
// on commit (a failed export leaves no partial file), or stdout.
type destination struct {
	name    string // the file, or "" for stdout
	stdout  bool
	tmp     *os.File
	buf     *bufio.Writer
	written int64
	done    bool
}

// openDestination opens out: "-" is stdout, a directory gets the default
// name, "" is the default name in the current directory.
func openDestination(out, defaultName string, stdout io.Writer) (*destination, error) {
	if out == "-" {
		return &destination{stdout: true, buf: bufio.NewWriterSize(stdout, 64<<10)}, nil
	}
	name := out
	if name == "" {
		name = safeFileName(defaultName)
	} else if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		name = filepath.Join(name, safeFileName(defaultName))
	}
	// 0600 (CreateTemp's mode): the file holds holder emails.
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	return &destination{name: name, tmp: tmp, buf: bufio.NewWriterSize(tmp, 64<<10)}, nil
}

func (d *destination) Write(p []byte) (int, error) {
	n, err := d.buf.Write(p)
	d.written += int64(n)
	return n, err
}

func (d *destination) label() string {
	if d.stdout {
		return "stdout"
	}
	return d.name
}

// commit flushes and, for a file, moves it into place.
func (d *destination) commit() error {
	if err := d.buf.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", d.label(), err)
	}
	if d.stdout {
		d.done = true
		return nil
	}
	if err := d.tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", d.name, err)
	}
	if err := os.Rename(d.tmp.Name(), d.name); err != nil {
		return fmt.Errorf("write %s: %w", d.name, err)
	}
	d.done = true
	return nil
}

// abort removes the temporary file unless committed.
func (d *destination) abort() {
	if d.done || d.stdout {
		return
	}
	_ = d.tmp.Close()
	_ = os.Remove(d.tmp.Name())
	d.done = true
}

// safeFileName replaces what a file name cannot hold (path separators,
// control characters, and what Windows refuses) with _.
func safeFileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || strings.ContainsRune(`/\:*?"<>|`, r) {
			return '_'
		}
		return r
	}, name)
}
