package nowcerts

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Mon, 02 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Mon, 02 Mar 2026 11:00:00 GMT": 0,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBackoffIsFullJitterCapped(t *testing.T) {
	r := Retry{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		if got := backoff(r, n, func() float64 { return 0.999999 }); got > want || got < want*99/100 {
			t.Errorf("backoff ceiling at attempt %d = %s, want %s", n, got, want)
		}
		if got := backoff(r, n, func() float64 { return 0 }); got != 0 {
			t.Errorf("backoff floor at attempt %d = %s, want 0 (full jitter)", n, got)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	cases := []struct {
		body   string
		status int
		known  bool
		msg    string
	}{
		{`{"status":1,"message":"Sent"}`, 1, true, "Sent"},
		{`{"Status":0,"Message":"Certificate is pending approval"}`, 0, true, "Certificate is pending approval"},
		{`{"status":"0","message":"x"}`, 0, true, "x"},
		{`{"status":false}`, 0, true, ""},
		{`{"status":true}`, 1, true, ""},
		{`{"ok":true}`, 1, false, ""},
		{``, 1, false, ""},
	}
	for _, c := range cases {
		a, known := parseAnswer([]byte(c.body))
		if a.Status != c.status || known != c.known || a.Message != c.msg {
			t.Errorf("parseAnswer(%s) = %+v, %v", c.body, a, known)
		}
	}
}

func TestParseGrant(t *testing.T) {
	now := time.Date(2023, 10, 18, 19, 8, 0, 0, time.UTC)
	g, err := parseGrant([]byte(`{"access_token":"a","token_type":"bearer","expires_in":101951,"refresh_token":"r","userName":"u",
		"agencyId":"ag",".issued":"Wed, 18 Oct 2023 19:08:00 GMT",".expires":"Thu, 19 Oct 2023 23:27:11 GMT"}`), now)
	if err != nil || g.AccessToken != "a" || g.RefreshToken != "r" || !g.ExpiresAt.Equal(now.Add(101951*time.Second)) {
		t.Fatalf("grant = %+v, %v", g, err)
	}
	g, err = parseGrant([]byte(`{"access_token":"a",".expires":"Thu, 19 Oct 2023 23:27:11 GMT"}`), now)
	if err != nil || !g.ExpiresAt.Equal(time.Date(2023, 10, 19, 23, 27, 11, 0, time.UTC)) {
		t.Fatalf("from .expires: %+v, %v", g, err)
	}
	g, err = parseGrant([]byte(`{"access_token":"a","expires_in":"3600"}`), now)
	if err != nil || !g.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("expires_in as a string: %+v, %v", g, err)
	}
	if _, err := parseGrant([]byte(`{"token_type":"bearer"}`), now); !errors.Is(err, ErrAuth) {
		t.Fatalf("no access_token: %v", err)
	}
}

func TestTimestampsOffsetAware(t *testing.T) {
	var h HistoricalHolder
	err := json.Unmarshal([]byte(`{"databaseId":"x","CreateDate":"2021-11-04T10:15:00.123+04:00","changeDate":null,"eMail":"a@b.example"}`), &h)
	if err != nil {
		t.Fatal(err)
	}
	if !h.CreateDate.Equal(time.Date(2021, 11, 4, 6, 15, 0, 123e6, time.UTC)) || !h.ChangeDate.IsZero() || h.Email != "a@b.example" {
		t.Fatalf("holder = %+v", h)
	}
	var c Certificate
	if err := json.Unmarshal([]byte(`{"createDate":"2021-11-04T10:15:00"}`), &c); err != nil || c.CreateDate.Hour() != 10 {
		t.Fatalf("no offset: %+v, %v", c, err)
	}
	var hol Holder
	if err := json.Unmarshal([]byte(`{"createDate":"yesterday"}`), &hol); err == nil {
		t.Fatal("an unreadable timestamp was accepted")
	}
	// A row decoded into a used value keeps nothing of the old one.
	rows := []Holder{{DatabaseID: "old", Email: "old@b.example", ChangeDate: time.Now()}}
	if err := json.Unmarshal([]byte(`[{"databaseId":"y","changeDate":"","createDate":"2021-11-04"}]`), &rows); err != nil {
		t.Fatal(err)
	}
	if r := rows[0]; r.DatabaseID != "y" || r.Email != "" || !r.ChangeDate.IsZero() || r.CreateDate.Day() != 4 {
		t.Fatalf("reused row = %+v", r)
	}
}

func TestCredentialsRoundTrip(t *testing.T) {
	c, err := ParseCredentials(`{"username":"u","password":"p","accessToken":"a","refreshToken":"r","expiresAt":"2026-03-02T12:00:00Z","rotatedBy":"ops"}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != DefaultClientID || !c.ExpiresAt.Equal(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("parsed %+v", c)
	}
	s, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	if m["rotatedBy"] != "ops" || m["clientId"] != "ngAuthApp" || m["expiresAt"] != "2026-03-02T12:00:00Z" {
		t.Fatalf("marshalled %s", s)
	}
	if _, err := ParseCredentials(`not json`); err == nil {
		t.Fatal("accepted a non-JSON secret")
	}
}
