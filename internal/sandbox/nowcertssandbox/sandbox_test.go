package nowcertssandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t *testing.T, o Options) (*Sandbox, string) {
	t.Helper()
	sb := New(o)
	base, stop, err := sb.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return sb, base
}

func do(t *testing.T, method, u, contentType, body, auth string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header, m
}

const form = "application/x-www-form-urlencoded"

func login(t *testing.T, base string) (access, refresh string) {
	t.Helper()
	st, _, m := do(t, "POST", base+"/api/token", form, "grant_type=password&username="+DefaultUsername+"&password="+DefaultPassword+"&client_id=ngAuthApp", "")
	if st != 200 {
		t.Fatalf("login: %d %v", st, m)
	}
	return m["access_token"].(string), m["refresh_token"].(string)
}

func TestTokenEndpoint(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}
	sb, base := start(t, Options{AccessTTL: time.Hour, Now: clk.now})

	st, _, m := do(t, "POST", base+"/api/token", form, "grant_type=password&username=x&password=y&client_id=ngAuthApp", "")
	if st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("bad password: %d %v", st, m)
	}
	st, _, m = do(t, "POST", base+"/api/token", "application/json", `{"grant_type":"password"}`, "")
	if st != 400 {
		t.Fatalf("JSON body: %d %v", st, m)
	}
	st, _, m = do(t, "POST", base+"/api/token", form, "grant_type=password&username="+DefaultUsername+"&password="+DefaultPassword+"&client_id=ngAuthApp", "")
	if st != 200 || m["token_type"] != "bearer" || m["expires_in"] != float64(3600) || m["userName"] != DefaultUsername || m["agencyId"] != DefaultAgencyID {
		t.Fatalf("login: %d %v", st, m)
	}
	if rt, _ := m["refresh_token"].(string); len(rt) != 32 {
		t.Fatalf("refresh_token %q: want 32 hex chars", rt)
	}
	if _, err := http.ParseTime(m[".expires"].(string)); err != nil || !strings.HasSuffix(m[".expires"].(string), "GMT") {
		t.Fatalf(".expires %q is not RFC 1123: %v", m[".expires"], err)
	}
	access, refresh := m["access_token"].(string), m["refresh_token"].(string)

	// The refresh token works once and rotates.
	rf := "grant_type=refresh_token&refresh_token=" + refresh + "&client_id=ngAuthApp"
	st, _, m = do(t, "POST", base+"/api/token", form, rf, "")
	if st != 200 || m["refresh_token"] == refresh {
		t.Fatalf("refresh: %d %v", st, m)
	}
	if st, _, m = do(t, "POST", base+"/api/token", form, rf, ""); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("second use of a refresh token: %d %v", st, m)
	}
	if sb.TokenCalls("password") != 2 || sb.TokenCalls("refresh_token") != 2 || sb.Stats().Grants["refresh_token"] != 1 {
		t.Fatalf("stats = %+v", sb.Stats())
	}
	for _, c := range sb.CallsTo("token") {
		if strings.Contains(c.Body, DefaultPassword) || strings.Contains(c.Body, refresh) {
			t.Fatalf("recorded token body keeps a secret: %s", c.Body)
		}
	}

	// Access tokens expire by the clock: 401 after the TTL.
	list := base + "/api/CertificatesList()?$top=10&$skip=0"
	if st, _, _ := do(t, "GET", list, "", "", "bearer "+access); st != 200 {
		t.Fatalf("fresh token: %d", st)
	}
	clk.add(time.Hour)
	st, h, _ := do(t, "GET", list, "", "", "Bearer "+access)
	if st != 401 || h.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("expired token: %d", st)
	}
	if st, _, _ := do(t, "GET", list, "", "", ""); st != 401 {
		t.Fatalf("no token: %d", st)
	}
}

func TestAdminFaultsAndCalls(t *testing.T) {
	sb, base := start(t, Options{})
	access, _ := login(t, base)
	bearer := "Bearer " + access
	send := `{"CertificateId":"` + SeedCertificateReady + `","Emails":"a@b.example"}`
	sendURL := base + "/api/SendCertificate/SendCertificate"

	st, _, _ := do(t, "POST", base+"/_sandbox/faults", "application/json", `[{"path":"SendCertificate","status":429,"retryAfter":"2","count":1},{"path":"SendCertificate","status0":true,"message":"nope","count":1}]`, "")
	if st != 201 {
		t.Fatalf("add faults: %d", st)
	}
	st, h, _ := do(t, "POST", sendURL, "application/json", send, bearer)
	if st != 429 || h.Get("Retry-After") != "2" {
		t.Fatalf("429 fault: %d %q", st, h.Get("Retry-After"))
	}
	st, _, m := do(t, "POST", sendURL, "application/json", send, bearer)
	if st != 200 || m["status"] != float64(0) || m["message"] != "nope" {
		t.Fatalf("status0 fault: %d %v", st, m)
	}
	st, _, m = do(t, "POST", sendURL, "application/json", send, bearer)
	if st != 200 || m["status"] != float64(1) {
		t.Fatalf("faults spent: %d %v", st, m)
	}
	if st, _, _ := do(t, "POST", base+"/_sandbox/faults", "application/json", `{"path":"x","status":200}`, ""); st != 400 {
		t.Fatalf("a 200 fault was accepted: %d", st)
	}

	resp, err := http.Get(base + "/_sandbox/calls?path=" + url.QueryEscape("SendCertificate"))
	if err != nil {
		t.Fatal(err)
	}
	var calls []Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(calls) != 3 || calls[0].Status != 429 || calls[0].Fault != "status 429" || calls[2].Status != 200 || calls[2].Auth != bearer {
		t.Fatalf("calls = %+v", calls)
	}
	if len(sb.Sends()) != 1 {
		t.Fatalf("sends = %+v", sb.Sends())
	}

	// Reset clears calls and sends and restores the seed.
	if st, _, _ := do(t, "POST", base+"/_sandbox/reset", "", "", ""); st != 204 {
		t.Fatalf("reset: %d", st)
	}
	if len(sb.Calls()) != 0 || len(sb.Sends()) != 0 {
		t.Fatal("reset kept calls or sends")
	}
	if st, _, _ := do(t, "POST", sendURL, "application/json", send, bearer); st != 200 {
		t.Fatalf("tokens must survive a reset: %d", st)
	}
	if st, _, _ := do(t, "POST", base+"/_sandbox/expire-tokens", "", "", ""); st != 204 {
		t.Fatal("expire-tokens")
	}
	if st, _, _ := do(t, "POST", sendURL, "application/json", send, bearer); st != 401 {
		t.Fatalf("after expire-tokens: %d", st)
	}
}

func TestSeedPendingCertificate(t *testing.T) {
	sb, base := start(t, Options{Empty: true})
	access, _ := login(t, base)
	bearer := "Bearer " + access
	seed := `{"certificates":[{"databaseId":"11111111-2222-4333-8444-555555555555","name":"ACORD 25","insuredDatabaseId":"` + SeedInsuredAcme + `","pendingApproval":true}],
	  "holders":[{"databaseId":"66666666-7777-4888-9999-aaaaaaaaaaaa","name":"H","eMail":"h@h.example"}],
	  "historicalHolders":[{"databaseId":"bbbbbbbb-cccc-4ddd-8eee-ffffffffffff","name":"H","certificateId":"11111111-2222-4333-8444-555555555555","holderId":"66666666-7777-4888-9999-aaaaaaaaaaaa"}]}`
	if st, _, m := do(t, "POST", base+"/_sandbox/certificates", "application/json", seed, ""); st != 201 {
		t.Fatalf("seed: %d %v", st, m)
	}
	send := `{"CertificateId":"11111111-2222-4333-8444-555555555555","CertificateHolder":[{"id":"66666666-7777-4888-9999-aaaaaaaaaaaa"}]}`
	sendURL := base + "/api/SendCertificate/SendCertificate"
	if _, _, m := do(t, "POST", sendURL, "application/json", send, bearer); m["status"] != float64(0) || m["message"] != "Certificate is pending approval" {
		t.Fatalf("pending send: %v", m)
	}
	if _, _, m := do(t, "POST", base+"/api/SendCertificate/Approve", "application/json", `{"DataBaseId":["BBBBBBBB-CCCC-4DDD-8EEE-FFFFFFFFFFFF"]}`, bearer); m["status"] != float64(1) {
		t.Fatalf("approve: %v", m)
	}
	if _, _, m := do(t, "POST", sendURL, "application/json", send, bearer); m["status"] != float64(1) {
		t.Fatalf("send after approval: %v", m)
	}
	if sb.PendingApproval("11111111-2222-4333-8444-555555555555") || len(sb.Approvals()) != 1 {
		t.Fatal("approval not recorded")
	}
	// Lists: OData filters with unquoted GUIDs, counts, and paging.
	st, _, m := do(t, "GET", base+"/api/HistoricalCertificateHolderList()?$top=1&$skip=0&$count=true&$filter="+
		url.QueryEscape("certificateId eq 11111111-2222-4333-8444-555555555555 and name eq 'H'"), "", "", bearer)
	if st != 200 || m["@odata.count"] != float64(1) || len(m["value"].([]any)) != 1 {
		t.Fatalf("historical list: %d %v", st, m)
	}
	row := m["value"].([]any)[0].(map[string]any)
	if _, has := row["holderId"]; has || row["databaseId"] != "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff" {
		t.Fatalf("row = %v", row)
	}
}

func TestFilterParser(t *testing.T) {
	rows := DefaultSeed().Holders
	cases := map[string]int{
		"eMail eq 'risk@springfield.example'":                  1,
		"fax ne null":                                          2,
		"fax eq null and eMail eq null":                        1,
		"contains(name,'spring') or startswith(name,'Harbor')": 2,
		"not (state eq 'IL')":                                  0,
		"changeDate gt 2025-01-01T00:00:00-05:00":              3,
		"databaseId eq " + strings.ToUpper(SeedHolderFax):      1,
	}
	for f, want := range cases {
		p, err := parseFilter(f, holderSchema)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got := 0
		for _, r := range rows {
			if p(r.fields()) {
				got++
			}
		}
		if got != want {
			t.Errorf("%s: %d rows, want %d", f, got, want)
		}
	}
	for _, bad := range []string{"databaseId eq '" + SeedHolderFax + "'", "name eq", "colour eq 'x'", "name eq 'x' and", "(name eq 'x'", "name like 'x'", "createDate gt '2025'"} {
		if _, err := parseFilter(bad, holderSchema); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	if _, _, err := New(Options{}).Start("0.0.0.0:0"); err == nil {
		t.Fatal("bound a non-loopback address")
	}
}
