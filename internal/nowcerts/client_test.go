package nowcerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// TestSendCertificateContract: the body is what the reference documents, and
// the sandbox (which answers 400 to unknown fields or wrong types) takes it.
func TestSendCertificateContract(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	ans, err := h.client.SendCertificate(context.Background(), sendReq())
	if err != nil {
		t.Fatalf("SendCertificate: %v", err)
	}
	if ans.Status != 1 || ans.Message == "" {
		t.Fatalf("answer = %+v, want status 1 with a message", ans)
	}
	calls := h.sb.CallsTo("SendCertificate")
	if len(calls) != 1 {
		t.Fatalf("%d SendCertificate calls, want 1", len(calls))
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(calls[0].Body), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"CertificateId":          nowcertssandbox.SeedCertificateReady,
		"CertificateHolder":      []any{map[string]any{"id": nowcertssandbox.SeedHolderEmail}},
		"Emails":                 "coi@northwind-pm.example, pm@northwind-pm.example",
		"Fax":                    "",
		"EmailSubject":           "Certificate of insurance",
		"EmailBody":              "Please find the certificate attached.",
		"SendCopyToInsuredEmail": false,
		"SendCopyToInsuredFax":   false,
		"SendCCToMe":             false,
		"InsuredDatabaseId":      nowcertssandbox.SeedInsuredAcme,
		"InsuredName":            "Acme Builders LLC",
	}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Fatalf("body\n got %v\nwant %v", body, want)
	}
	if !strings.HasPrefix(calls[0].Auth, "Bearer ") {
		t.Fatalf("Authorization = %q, want a bearer token", calls[0].Auth)
	}
	sends := h.sb.Sends()
	if len(sends) != 1 || len(sends[0].Emails) != 2 || sends[0].CertificateID != nowcertssandbox.SeedCertificateReady {
		t.Fatalf("sandbox sends = %+v", sends)
	}
}

// TestSandboxRejectsOffContractBodies: the contract check itself can fail.
func TestSandboxRejectsOffContractBodies(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	access, _, _ := h.sb.IssueTokens()
	cases := map[string]string{
		"unknown field":        `{"CertificateId":"` + nowcertssandbox.SeedCertificateReady + `","Emails":"a@b.example","Attachments":[]}`,
		"holder ids as string": `{"CertificateId":"` + nowcertssandbox.SeedCertificateReady + `","CertificateHolder":"x"}`,
		"not a guid":           `{"CertificateId":"cert-1","Emails":"a@b.example"}`,
		"bool as string":       `{"CertificateId":"` + nowcertssandbox.SeedCertificateReady + `","Emails":"a@b.example","SendCCToMe":"false"}`,
		"emails as array":      `{"CertificateId":"` + nowcertssandbox.SeedCertificateReady + `","Emails":["a@b.example"]}`,
		"emails joined by ;":   `{"CertificateId":"` + nowcertssandbox.SeedCertificateReady + `","Emails":"a@b.example;c@d.example"}`,
	}
	for name, body := range cases {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/api/SendCertificate/SendCertificate", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", name, resp.StatusCode)
		}
	}
	approve := `{"DataBaseId":"` + nowcertssandbox.SeedHistoricalPending + `"}`
	req, _ := http.NewRequest(http.MethodPost, h.url+"/api/SendCertificate/Approve", strings.NewReader(approve))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Approve with a string id: HTTP %d, want 400", resp.StatusCode)
	}
	if n := len(h.sb.Sends()); n != 0 {
		t.Fatalf("%d sends carried out from invalid bodies", n)
	}
}

// TestPendingApproval: a pending certificate is refused (status 0 → ErrRejected
// with NowCerts' message) until Approve, whose body is {"DataBaseId": [...]}.
func TestPendingApproval(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	ctx := context.Background()
	r := nowcerts.SendRequest{CertificateID: nowcertssandbox.SeedCertificatePending, HolderIDs: []string{nowcertssandbox.SeedHolderBoth},
		Emails: []string{"risk@springfield.example"}}
	_, err := h.client.SendCertificate(ctx, r)
	var rej *nowcerts.RejectedError
	if !errors.Is(err, nowcerts.ErrRejected) || !errors.As(err, &rej) || rej.Message != "Certificate is pending approval" {
		t.Fatalf("send before approval: %v, want ErrRejected with NowCerts' message", err)
	}
	if n := len(h.sb.CallsTo("SendCertificate")); n != 1 {
		t.Fatalf("a rejection was retried: %d calls", n)
	}
	// Upper-case ids, as NowCerts' samples write them, work too.
	if _, err := h.client.Approve(ctx, []string{strings.ToUpper(nowcertssandbox.SeedHistoricalPending)}); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	calls := h.sb.CallsTo("Approve")
	if len(calls) != 1 || calls[0].Body != `{"DataBaseId":["`+strings.ToUpper(nowcertssandbox.SeedHistoricalPending)+`"]}` {
		t.Fatalf("Approve calls = %+v", calls)
	}
	if _, err := h.client.SendCertificate(ctx, r); err != nil {
		t.Fatalf("send after approval: %v", err)
	}
	if _, err := h.client.Approve(ctx, []string{"00000000-0000-4000-8000-000000000000"}); !errors.Is(err, nowcerts.ErrRejected) {
		t.Fatalf("Approve of an unknown id: %v, want ErrRejected", err)
	}
}

// TestStatusZero: HTTP 200 with status 0 is an error carrying the message.
func TestStatusZero(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status0: true, Message: "Holder email is invalid", Count: 1}); err != nil {
		t.Fatal(err)
	}
	ans, err := h.client.SendCertificate(context.Background(), sendReq())
	var rej *nowcerts.RejectedError
	if !errors.As(err, &rej) || !errors.Is(err, nowcerts.ErrRejected) {
		t.Fatalf("err = %v, want a RejectedError", err)
	}
	if rej.Message != "Holder email is invalid" || rej.HTTPStatus != 200 || ans.Status != 0 || !strings.Contains(err.Error(), "Holder email is invalid") {
		t.Fatalf("rejection = %+v, answer %+v", rej, ans)
	}
	if n := len(h.sb.CallsTo("SendCertificate")); n != 1 {
		t.Fatalf("status 0 was retried: %d calls", n)
	}
}

// TestSendTimeoutIsOutcomeUnknown: no answer after the request went out →
// ErrOutcomeUnknown, never retried, whether or not NowCerts acted on it.
func TestSendTimeoutIsOutcomeUnknown(t *testing.T) {
	for _, sent := range []bool{true, false} {
		t.Run(fmt.Sprintf("sent=%v", sent), func(t *testing.T) {
			h := newHarness(t, nowcertssandbox.Options{})
			h.cfg.Timeout = 2 * time.Second // generous: the faults hold the request until it passes
			h.rebuild(t)
			if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Timeout: true, Sent: sent}); err != nil {
				t.Fatal(err)
			}
			_, err := h.client.SendCertificate(context.Background(), sendReq())
			if !errors.Is(err, nowcerts.ErrOutcomeUnknown) {
				t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
			}
			if errors.Is(err, nowcerts.ErrUnavailable) || errors.Is(err, nowcerts.ErrRejected) {
				t.Fatalf("err = %v also claims a definite outcome", err)
			}
			if n := len(h.sb.CallsTo("SendCertificate")); n != 1 {
				t.Fatalf("%d SendCertificate calls, want 1 (no retry)", n)
			}
			sends := h.sb.Sends()
			if sent && (len(sends) != 1 || sends[0].Answered) {
				t.Fatalf("sandbox sends = %+v, want one unanswered send", sends)
			}
			if !sent && len(sends) != 0 {
				t.Fatalf("sandbox sends = %+v, want none", sends)
			}
		})
	}
}

// TestReadTimeoutIsRetried: a list call that times out is safe to repeat.
func TestReadTimeoutIsRetried(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	h.cfg.Timeout = 2 * time.Second // generous: the faults hold the request until it passes
	h.rebuild(t)
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "CertificatesList", Timeout: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	c, err := h.client.Certificate(context.Background(), nowcertssandbox.SeedCertificateReady)
	if err != nil || c.DatabaseID != nowcertssandbox.SeedCertificateReady {
		t.Fatalf("Certificate = %+v, %v", c, err)
	}
	if n := len(h.sb.CallsTo("CertificatesList")); n != 2 {
		t.Fatalf("%d calls, want 2 (one timeout, one retry)", n)
	}
}

// TestDialFailureIsRetriedNotUnknown: nothing was sent when no connection was
// made, so even SendCertificate is retried and ends ErrUnavailable.
func TestDialFailureIsRetriedNotUnknown(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	h.cfg.BaseURL = dead
	tokens := h.tokens // a valid cached token source against the live sandbox is not needed: the secret's token is valid
	client, err := nowcerts.NewClient(h.cfg, tokens)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.SendCertificate(context.Background(), sendReq())
	if !errors.Is(err, nowcerts.ErrUnavailable) || errors.Is(err, nowcerts.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrUnavailable (not unknown)", err)
	}
	if n := len(h.sleeps.all()); n != h.cfg.Retry.MaxAttempts-1 {
		t.Fatalf("%d backoff sleeps, want %d", n, h.cfg.Retry.MaxAttempts-1)
	}
}

// TestRetriesHonourRetryAfter: 500 then 429 (Retry-After: 3) then success.
func TestRetriesHonourRetryAfter(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	for _, f := range []nowcertssandbox.Fault{
		{Path: "SendCertificate", Status: 500, Count: 1},
		{Path: "SendCertificate", Status: 429, RetryAfter: "3", Count: 1},
	} {
		if err := h.sb.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.client.SendCertificate(context.Background(), sendReq()); err != nil {
		t.Fatalf("SendCertificate: %v", err)
	}
	calls := h.sb.CallsTo("SendCertificate")
	if len(calls) != 3 || calls[0].Status != 500 || calls[1].Status != 429 || calls[2].Status != 200 {
		t.Fatalf("calls = %+v, want 500, 429, 200", calls)
	}
	ds := h.sleeps.all()
	if len(ds) != 2 || ds[0] > h.cfg.Retry.BaseDelay || ds[1] != 3*time.Second {
		t.Fatalf("sleeps = %v, want one jittered backoff ≤ %s then Retry-After 3s", ds, h.cfg.Retry.BaseDelay)
	}
	if n := len(h.sb.Sends()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
}

// TestRetriesAreBounded: a NowCerts that keeps failing → ErrUnavailable after
// MaxAttempts calls, and a Retry-After beyond the time budget stops at once.
func TestRetriesAreBounded(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 503}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.SendCertificate(context.Background(), sendReq())
	if !errors.Is(err, nowcerts.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n := len(h.sb.CallsTo("SendCertificate")); n != h.cfg.Retry.MaxAttempts {
		t.Fatalf("%d calls, want MaxAttempts = %d", n, h.cfg.Retry.MaxAttempts)
	}
	for _, d := range h.sleeps.all() {
		if d > h.cfg.Retry.MaxDelay {
			t.Fatalf("a backoff of %s exceeds MaxDelay %s", d, h.cfg.Retry.MaxDelay)
		}
	}

	h2 := newHarness(t, nowcertssandbox.Options{})
	if err := h2.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: 429, RetryAfter: "3600"}); err != nil {
		t.Fatal(err)
	}
	_, err = h2.client.SendCertificate(context.Background(), sendReq())
	if !errors.Is(err, nowcerts.ErrUnavailable) || len(h2.sb.CallsTo("SendCertificate")) != 1 {
		t.Fatalf("Retry-After past the budget: err %v after %d calls, want ErrUnavailable after 1", err, len(h2.sb.CallsTo("SendCertificate")))
	}
}

// TestThirtyPercentFailures: with 30% of calls failing with 500 or 429, every
// call eventually succeeds, each send is carried out exactly once, and no call
// needs more than the configured attempts.
func TestThirtyPercentFailures(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{RandSeed: 7})
	h.cfg.Retry.MaxAttempts = 12
	h.rebuild(t)
	for _, f := range []nowcertssandbox.Fault{
		{Path: "*", Status: 500, Rate: 0.15},
		{Path: "*", Status: 429, RetryAfter: "0", Rate: 0.15 / 0.85},
	} {
		if err := h.sb.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := sendReq()
			r.EmailSubject = fmt.Sprintf("send %d", i)
			if _, err := h.client.SendCertificate(context.Background(), r); err != nil {
				errs <- fmt.Errorf("send %d: %w", i, err)
			}
			if _, err := h.client.HistoricalHolders(context.Background(), nowcertssandbox.SeedCertificateReady); err != nil {
				errs <- fmt.Errorf("list %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sends := h.sb.Sends()
	if len(sends) != n {
		t.Fatalf("%d sends carried out, want exactly %d", len(sends), n)
	}
	seen := map[string]bool{}
	for _, s := range sends {
		if seen[s.EmailSubject] {
			t.Fatalf("%q sent twice", s.EmailSubject)
		}
		seen[s.EmailSubject] = true
	}
	failed := 0
	for _, c := range h.sb.Calls() {
		if c.Status == 500 || c.Status == 429 {
			failed++
		}
	}
	total := len(h.sb.Calls())
	t.Logf("%d calls, %d answered 500/429 (%.0f%%)", total, failed, 100*float64(failed)/float64(total))
	if failed == 0 {
		t.Fatal("no fault fired: the test proves nothing")
	}
}

// TestRateLimit: the client's bucket makes calls beyond the burst wait.
func TestRateLimit(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h.cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h.cfg.RateLimit = nowcerts.RateLimit{PerSecond: 2, Burst: 3}
	h.rebuild(t)
	for range 5 {
		if _, err := h.client.Certificate(context.Background(), nowcertssandbox.SeedCertificateReady); err != nil {
			t.Fatal(err)
		}
	}
	ds := h.sleeps.all()
	want := []time.Duration{500 * time.Millisecond, time.Second}
	if fmt.Sprint(ds) != fmt.Sprint(want) {
		t.Fatalf("rate-limit waits = %v, want %v (burst 3, then 2/s with the clock standing still)", ds, want)
	}
}

// TestLists: OData paging, filters, counts, and offset-aware timestamps.
func TestLists(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	h.cfg.PageSize = 2
	h.rebuild(t)
	ctx := context.Background()

	p, err := h.client.CertificateHolderPage(ctx, nowcerts.Query{Top: 2, Skip: 1, OrderBy: "name"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 4 || len(p.Items) != 2 || p.Items[0].Name != "Harbor Street Lender Corp" || p.Items[1].Name != "Northwind Property Management" {
		t.Fatalf("page = %+v", p)
	}
	call := h.sb.CallsTo("CertificateHolderList")[0]
	if call.Path != "/api/CertificateHolderList()" || !strings.Contains(call.Query, "$top=2") || !strings.Contains(call.Query, "$skip=1") ||
		!strings.Contains(call.Query, "$count=true") || !strings.Contains(call.Query, "$orderby=name") {
		t.Fatalf("list call = %s?%s", call.Path, call.Query)
	}

	hol, err := h.client.Holder(ctx, strings.ToUpper(nowcertssandbox.SeedHolderBoth))
	if err != nil || hol.Email != "risk@springfield.example" || hol.Fax != "(217) 555-0101" {
		t.Fatalf("Holder = %+v, %v", hol, err)
	}
	_, off := hol.ChangeDate.Zone()
	if hol.ChangeDate.IsZero() || off != -5*3600 {
		t.Fatalf("ChangeDate %v: want the offset NowCerts sent (-05:00)", hol.ChangeDate)
	}
	if _, err := h.client.Certificate(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, nowcerts.ErrNotFound) {
		t.Fatalf("unknown certificate: %v, want ErrNotFound", err)
	}

	// Three more sends to new holders: the certificate then has 4 historical
	// holders, read over 2 pages of 2 (filter by certificateId, GUID unquoted).
	for _, id := range []string{nowcertssandbox.SeedHolderFax, nowcertssandbox.SeedHolderBoth, nowcertssandbox.SeedHolderNeither} {
		r := sendReq()
		r.HolderIDs = []string{id}
		if _, err := h.client.SendCertificate(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	hist, err := h.client.HistoricalHolders(ctx, nowcertssandbox.SeedCertificateReady)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 4 {
		t.Fatalf("%d historical holders, want 4: %+v", len(hist), hist)
	}
	for _, x := range hist {
		if !nowcerts.SameID(x.CertificateID, nowcertssandbox.SeedCertificateReady) || x.DatabaseID == "" {
			t.Fatalf("historical holder %+v", x)
		}
	}
	calls := h.sb.CallsTo("HistoricalCertificateHolderList")
	if len(calls) != 2 || !strings.Contains(calls[0].Query, "$filter=certificateId%20eq%20"+nowcertssandbox.SeedCertificateReady) {
		t.Fatalf("historical calls = %+v", calls)
	}
}

// TestSandboxODataErrors: quoted GUIDs, unknown fields and missing paging are
// 400s, as the manual says.
func TestSandboxODataErrors(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	access, _, _ := h.sb.IssueTokens()
	for _, q := range []string{
		"$top=10&$skip=0&$filter=databaseId%20eq%20'" + nowcertssandbox.SeedCertificateReady + "'",
		"$top=10&$skip=0&$filter=colour%20eq%20'red'",
		"$top=10&$skip=0&$orderby=colour",
		"$filter=name%20eq%20'x'",
	} {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/api/CertificatesList()?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", q, resp.StatusCode)
		}
	}
}

// TestNoSecretsInLogs: after refreshes, fallbacks, 401s and failures, no token,
// password or holder email appears in the logs or metrics.
func TestNoSecretsInLogs(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	c := h.secrets.creds(t, secretID)
	c.RefreshToken, c.ExpiresAt = "0123456789abcdef0123456789abcdef", time.Now().Add(-time.Minute)
	h.setSecret(t, c)
	h.rebuild(t)
	for _, f := range []nowcertssandbox.Fault{
		{Path: "SendCertificate", Status: 500, Count: 1},
		{Path: "SendCertificate", Status0: true, Message: "bad recipient", Count: 1},
	} {
		if err := h.sb.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	_, _ = h.client.SendCertificate(ctx, sendReq())
	h.sb.ExpireTokens()
	if _, err := h.client.SendCertificate(ctx, sendReq()); err != nil {
		t.Fatal(err)
	}
	final := h.secrets.creds(t, secretID)
	out := h.logs.String() + h.metrics.String()
	if !strings.Contains(out, "refresh") {
		t.Fatalf("expected refresh logs, got:\n%s", out)
	}
	for _, secret := range []string{c.AccessToken, c.RefreshToken, final.AccessToken, final.RefreshToken, c.Password, "coi@northwind-pm.example", "pm@northwind-pm.example"} {
		if strings.Contains(out, secret) {
			t.Fatalf("logs contain a secret or an email (%.6s…):\n%s", secret, out)
		}
	}
}

// TestAnswerWithoutStatus: a 2xx that is not {"status", "message"} confirms
// nothing. For SendCertificate it is an unknown outcome (reviewed, never
// recorded as sent, not retried); Approve, which sends nothing, accepts it.
func TestAnswerWithoutStatus(t *testing.T) {
	for _, body := range []string{"", "<html><body>Down for maintenance</body></html>", `"error"`, `{"Success":false}`, `{"message":"done"}`} {
		t.Run(fmt.Sprintf("%q", body), func(t *testing.T) {
			h := newHarness(t, nowcertssandbox.Options{})
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, body)
			}))
			t.Cleanup(srv.Close)
			h.cfg.BaseURL = srv.URL
			h.rebuild(t)
			_, err := h.client.SendCertificate(context.Background(), sendReq())
			if !errors.Is(err, nowcerts.ErrOutcomeUnknown) || errors.Is(err, nowcerts.ErrRejected) {
				t.Fatalf("SendCertificate: err = %v, want ErrOutcomeUnknown", err)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d calls, want 1 (an unknown outcome is not retried)", n)
			}
			if _, err := h.client.Approve(context.Background(), []string{nowcertssandbox.SeedHistoricalPending}); err != nil {
				t.Fatalf("Approve: %v", err)
			}
		})
	}
}
