package staffapi_test

import (
	"context"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/apigw"
	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/sending"
	"github.com/coiflow/coiflow/internal/store"
)

// readyJob is a certificate-holder insert for a certificate that is ready to
// send (no hold rule applies), to Northwind Property Management by email.
func readyJob(now time.Time) jobs.Job {
	ev := event.Event{
		ID: "evt_staffapi_browser_ready", IdempotencyKey: "nowcerts:CertificateHolder.Insert:browser-ready", Source: event.SourceNowCerts,
		Type: "CertificateHolder.Insert", Action: event.ActionInsert, EntityKind: event.KindCertificateHolder,
		EntityID: nowcertssandbox.SeedHolderEmail, OccurredAt: now.Add(-time.Minute), ReceivedAt: now,
		Certificate: &event.Certificate{
			ID: nowcertssandbox.SeedCertificateReady2, Name: "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25)",
			InsuredID: nowcertssandbox.SeedInsuredBrightline, Revision: "2026-01-15T14:30:00-05:00",
		},
		Holders: []event.Holder{{
			ID: nowcertssandbox.SeedHolderEmail, Name: "Northwind Property Management", Email: "coi@northwind-pm.example",
		}},
		Insured: &event.Party{ID: nowcertssandbox.SeedInsuredBrightline, Name: "Brightline Logistics Inc"},
	}
	return jobs.New(jobs.QueueSend, ev, "req-webhook-browser", now)
}

// until waits for a JavaScript condition to hold in the page.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr)(ctx, t)
		return err
	})
}

// browserFlags are the switches the browser test starts Debian's chromium with.
func browserFlags(userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(tools.ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(userDataDir),
		chromedp.WindowSize(1400, 1000),
	}
}

// consoleLog keeps what the page reported as errors: exceptions, console.error
// and browser log errors (CSP violations among them).
type consoleLog struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleLog) record(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		msg = "console.error:"
		for _, a := range e.Args {
			msg += " " + string(a.Value) + a.Description
		}
	case *log.EventEntryAdded:
		if e.Entry == nil || e.Entry.Level != log.EntryLevelError {
			return
		}
		msg = "log " + string(e.Entry.Source) + ": " + e.Entry.Text
	default:
		return
	}
	c.mu.Lock()
	c.errs = append(c.errs, msg)
	c.mu.Unlock()
}

func (c *consoleLog) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errs)
}

// TestPageInBrowser drives the approvals page in headless Chromium over the real
// stack: the api function (wire.API over DynamoDB Local, moto and the NowCerts
// sandbox) behind the local API Gateway stand-in. Sign in with the staff token,
// see the hold and its reasons, approve it in the browser: the sandbox receives
// Approve then SendCertificate and the page shows it sent. A failed send is
// listed and resent with a reason.
//
// Set COIFLOW_SCREENSHOT=/path/file.png to keep a screenshot of the page.
func TestPageInBrowser(t *testing.T) {
	if fi, err := os.Stat(tools.ChromiumPath); err != nil || fi.IsDir() {
		t.Fatalf("headless Chromium is needed at %s for the approvals page test and is missing: run `make tools` "+
			"(as root it runs apt-get install chromium), or install Debian's chromium package", tools.ChromiumPath)
	}
	s := newStack(t)
	ctx := context.Background()
	now := time.Now()

	// A hold (pending approval + special wording), a failed send, a quarantined
	// event, a permanent CRM failure.
	if err := s.worker.Handle(ctx, heldJob(now)); err != nil {
		t.Fatalf("held job: %v", err)
	}
	if err := s.sandbox.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status0: true, Count: 1,
		Message: "Holder email address was rejected by the mail server"}); err != nil {
		t.Fatal(err)
	}
	if err := s.worker.Handle(ctx, readyJob(now)); err != nil {
		t.Logf("ready job (NowCerts refuses it once): %v", err)
	}
	if _, err := s.store.PutQuarantine(ctx, store.Quarantined{
		ID: "q_browser_1", Source: "cowbell", Reason: `unknown event type "policy.renamed"`, RequestID: "req-webhook-q",
		ContentType: "application/json", ReceivedAt: now.Add(-10 * time.Minute),
		Body: []byte(`{"type":"policy.renamed","data":{"policyNumber":"CB-1","note":"<script>alert(1)</script>"}}`),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.RecordCRMFailure(ctx, store.CRMFailure{JobID: "job_browser_crm", EventID: "evt_browser_crm",
		ExternalID: "nowcerts:holder-browser", Op: "hubspot: upsert contacts", Status: 400, Code: "VALIDATION_ERROR",
		Message: `Property "coi_status" does not exist`, At: now.Add(-5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	callsBefore := len(s.sandbox.Calls())

	// The api function behind the API Gateway stand-in, on a loopback port.
	gw, err := apigw.New([]apigw.Route{
		{Method: "ANY", Path: "/api/{proxy+}", Function: "api"},
		{Method: "GET", Path: "/app", Function: "api"},
	}, map[string]apigw.Function{"api": {Handler: s.api, Timeout: 30 * time.Second}}, apigw.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw) // 127.0.0.1
	t.Cleanup(srv.Close)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, browserFlags(t.TempDir())...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	var console consoleLog
	if err := chromedp.Listen(tab, console.record); err != nil {
		t.Fatalf("start chromium at %s: %v", tools.ChromiumPath, err)
	}
	// A bound on each step so that a broken page fails instead of hanging (the
	// first Run above started the browser without one, as chromedp requires).
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(tab, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v (page errors: %q)", what, err, console.errors())
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(tab, 60*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}

	// The shell asks for a token; nothing is loaded before.
	step("open /app", chromedp.Navigate(srv.URL+"/app"), chromedp.WaitVisible(chromedp.ID("token")))
	if n := len(s.sandbox.Calls()); n != callsBefore {
		t.Fatalf("opening the page reached NowCerts")
	}
	step("sign in",
		chromedp.SendKeys(chromedp.ID("token"), s.token),
		chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="true"] #holds-body tr[data-hold-id]`)),
	)

	// The hold, with its reasons and holder; the failed send; the quarantined event.
	hold := text(`#holds-body tr[data-hold-id]`)
	for _, want := range []string{nowcertssandbox.SeedCertificatePending, "City of Springfield", "risk@springfield.example",
		sending.ReasonPendingApproval, sending.ReasonSpecialWording, "Approve", "Reject"} {
		if !strings.Contains(hold, want) {
			t.Fatalf("hold row lacks %q:\n%s", want, hold)
		}
	}
	failed := text(`#exceptions-body tr[data-send-id]`)
	for _, want := range []string{"FAILED", nowcertssandbox.SeedCertificateReady2, "coi@northwind-pm.example", "rejected by the mail server"} {
		if !strings.Contains(failed, want) {
			t.Fatalf("exceptions row lacks %q:\n%s", want, failed)
		}
	}
	q := text(`#quarantine-body tr[data-quarantine-id]`)
	if !strings.Contains(q, "cowbell") || !strings.Contains(q, `unknown event type "policy.renamed"`) {
		t.Fatalf("quarantine row: %s", q)
	}
	crmRow := text(`#crm-failures-body tr[data-crm-failure="job_browser_crm/nowcerts:holder-browser"]`)
	for _, want := range []string{"nowcerts:holder-browser", "hubspot: upsert contacts", "HTTP 400 VALIDATION_ERROR",
		`Property "coi_status" does not exist`, "evt_browser_crm", "job_browser_crm"} {
		if !strings.Contains(crmRow, want) {
			t.Fatalf("crm failure row lacks %q:\n%s", want, crmRow)
		}
	}
	if c := text(`#holds-count`); c != "1" {
		t.Fatalf("holds pending counter %q before approving, want 1", c)
	}
	// The body preview is text, never markup: no script element came from it.
	scripts, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('script').length`))
	if err != nil || scripts != 1 {
		t.Fatalf("%d script elements (%v)", scripts, err)
	}
	results := text(`#results-body`)
	if !strings.Contains(results, nowcertssandbox.SeedCertificateReady2) {
		t.Fatalf("search results of the last 7 days lack the failed send: %s", results)
	}

	shot := func(name string) {
		t.Helper()
		img, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := os.Getenv("COIFLOW_SCREENSHOT")
		if path == "" {
			path = t.TempDir() + "/page.png"
		}
		path = strings.TrimSuffix(path, ".png") + "-" + name + ".png"
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(img))
	}
	shot("before")

	// Approve in the browser: the dialog, then the hold row shows it sent.
	step("approve",
		chromedp.Click(chromedp.CSS(`#holds-body tr[data-hold-id] button.approve`)),
		chromedp.WaitVisible(chromedp.ID("decide-ok")),
		chromedp.SendKeys(chromedp.ID("decide-text"), "wording checked with the insured"),
		chromedp.Click(chromedp.ID("decide-ok")),
		chromedp.WaitVisible(chromedp.CSS(`#holds-body tr.decided .result .s-sent`)),
	)
	done := text(`#holds-body tr.decided`)
	if !strings.Contains(done, "SENT") || !strings.Contains(done, "Approved and sent") || strings.Contains(done, "Approve\n") {
		t.Fatalf("approved row: %s", done)
	}
	if n := text(`#notice`); !strings.Contains(n, "approved by local-staff: SENT") {
		t.Fatalf("notice: %s", n)
	}
	if c := text(`#holds-count`); c != "0" {
		t.Fatalf("holds pending counter %q after approving the only hold, want 0", c)
	}
	var order []string
	for _, c := range s.sandbox.Calls()[callsBefore:] {
		if strings.Contains(c.Path, "SendCertificate/") && c.Status == 200 {
			order = append(order, c.Path[strings.LastIndex(c.Path, "/")+1:])
		}
	}
	if !slices.Equal(order, []string{"Approve", "SendCertificate"}) {
		t.Fatalf("NowCerts calls after approving in the browser: %v, want [Approve SendCertificate]", order)
	}
	if a := s.sandbox.Approvals(); len(a) != 1 || !slices.Equal(a[0].IDs, []string{nowcertssandbox.SeedHistoricalPending}) {
		t.Fatalf("approvals: %+v", a)
	}
	sends := s.sandbox.Sends()
	if len(sends) != 1 || sends[0].CertificateID != nowcertssandbox.SeedCertificatePending {
		t.Fatalf("sandbox sends: %+v", sends)
	}

	// Resend the failed send: a reason is required, then it goes out. The
	// page's fetch of the resend is held until released, to look at the page
	// while the request is in flight, and its headers are kept.
	eval := func(expr string) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Evaluate[any](expr)); err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
	}
	evalBool := func(expr string) bool {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	eval(`(function () {
		window.__resends = [];
		var gate = new Promise(function (r) { window.__release = r; });
		var real = window.fetch;
		window.fetch = function (url, init) {
			if (String(url).indexOf('/resend') < 0) { return real(url, init); }
			window.__resends.push({ url: String(url), key: (init.headers || {})['Idempotency-Key'] || '' });
			return gate.then(function () { return real(url, init); });
		};
		return true;
	})()`)
	// The approval reloads the exceptions and the search results in the
	// background: let them land before reading and clicking rows.
	step("reloads after the approval", until(`!document.body.hasAttribute('data-busy')`))
	failedID, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('#exceptions-body tr[data-send-id]').getAttribute('data-send-id')`))
	if err != nil || failedID == "" {
		t.Fatalf("failed send id: %q %v", failedID, err)
	}
	sameSend := `Array.from(document.querySelectorAll('button.resend')).filter(function (b) { return b.getAttribute('data-resend-of') === '` + failedID + `'; })`
	if !evalBool(sameSend + `.length === 2`) {
		t.Fatalf("the failed send has no Resend button in both the exceptions and the search results")
	}
	step("resend without a reason",
		chromedp.Click(chromedp.CSS(`#exceptions-body tr[data-send-id] button.resend`)),
		chromedp.WaitVisible(chromedp.ID("decide-ok")),
		chromedp.Click(chromedp.ID("decide-ok")),
	)
	if e := text(`#decide-error`); !strings.Contains(e, "A reason is required") {
		t.Fatalf("dialog error: %q", e)
	}
	step("resend",
		chromedp.SendKeys(chromedp.ID("decide-text"), "holder fixed their mailbox"),
		chromedp.Click(chromedp.ID("decide-ok")),
		until(`window.__resends.length === 1`),
	)
	// In flight: every Resend button of that send is disabled, and a click on
	// the other one (search results) does nothing.
	if !evalBool(sameSend + `.every(function (b) { return b.disabled; })`) {
		t.Fatalf("a Resend button of %s is enabled while its resend is in flight", failedID)
	}
	eval(sameSend + `.forEach(function (b) { b.click(); })`)
	if evalBool(`document.getElementById('decide').open`) || !evalBool(`window.__resends.length === 1`) {
		t.Fatalf("a click during the resend opened the dialog or sent a second request")
	}
	eval(`window.__release()`)
	step("resend answered", until(`document.getElementById('notice').textContent.startsWith('Resend of')`))
	key, err := chromedp.Run(tab, chromedp.Evaluate[string](`window.__resends[0].key`))
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(key) {
		t.Fatalf("the resend carried Idempotency-Key %q (%v), want a random UUID", key, err)
	}
	if logs := s.apiLogs.String(); !strings.Contains(logs, `"idempotencyKey":true`) {
		t.Fatalf("the API did not see the Idempotency-Key:\n%s", logs)
	}
	if n := text(`#notice`); !strings.Contains(n, ": SENT.") {
		t.Fatalf("notice after resend: %s", n)
	}
	sends = s.sandbox.Sends()
	if len(sends) != 2 || sends[1].CertificateID != nowcertssandbox.SeedCertificateReady2 ||
		!slices.Contains(sends[1].Emails, "coi@northwind-pm.example") {
		t.Fatalf("sandbox sends after resend: %+v", sends)
	}
	// The failed send stays FAILED in the audit log (the resend is a new record
	// linked to it); the refreshed list says where it went.
	step("exceptions refreshed", chromedp.WaitVisible(chromedp.CSS(`#exceptions-body tr[data-send-id] .superseded`)))
	if r := text(`#exceptions-body tr[data-send-id]`); !strings.Contains(r, "Resent as snd_") || strings.Contains(r, "Resend\n") {
		t.Fatalf("resent row: %s", r)
	}

	shot("after")
	if errs := console.errors(); len(errs) > 0 {
		t.Fatalf("the page reported errors: %q", errs)
	}

	// Signing out forgets the token and clears the data: also what requests
	// still under way would have shown (their answers are dropped).
	// A search is started and sign-out clicked in the same task: the search's
	// answer arrives after the sign-out and must not refill the table.
	step("reloads settled", until(`!document.body.hasAttribute('data-busy')`))
	eval(`(function () {
		document.getElementById('search-form').requestSubmit();
		window.__searchInFlight = document.body.hasAttribute('data-busy');
		document.getElementById('signout').click();
		return true;
	})()`)
	step("sign out", chromedp.WaitVisible(chromedp.ID("token")), until(`!document.body.hasAttribute('data-busy')`))
	if !evalBool(`window.__searchInFlight === true`) {
		t.Fatalf("the search did not start before the sign-out")
	}
	stored, err := chromedp.Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem('coiflow.staffToken') || ''`))
	if err != nil || stored != "" {
		t.Fatalf("token kept after sign out: %q %v", stored, err)
	}
	rows, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('tbody tr').length`))
	if err != nil || rows != 0 {
		t.Fatalf("%d rows left after sign out (%v)", rows, err)
	}

	// A token in the URL fragment signs in and leaves the address bar.
	step("fragment token",
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(srv.URL+"/app#token="+s.token),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="true"]`)),
	)
	loc, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.href`))
	if err != nil || strings.Contains(loc, s.token) || strings.Contains(loc, "#") {
		t.Fatalf("token left in the address bar: %q %v", loc, err)
	}
	// A wrong token is refused and asks again.
	step("wrong token",
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(srv.URL+"/app#token=not-a-token"),
		chromedp.WaitVisible(chromedp.ID("token")),
		until(`document.getElementById('signin-error').textContent !== ''`),
	)
	if e := text(`#signin-error`); !strings.Contains(e, "not accepted") {
		t.Fatalf("sign-in error: %q", e)
	}
}
