package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// addCorpus seeds f with every fixture under testdata/<dirs>.
func addCorpus(f *testing.F, dirs ...string) {
	f.Helper()
	n := 0
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seed corpus in %v", dirs)
	}
}

// checkParse asserts Parse's contract for any input.
func checkParse(t *testing.T, src Source, body []byte) {
	ev, err := Parse(src, body, received)
	if err != nil {
		var se *SyntaxError
		isSyntax := errors.As(err, &se)
		if isSyntax == errors.Is(err, ErrUnknownShape) {
			t.Fatalf("error is neither or both of *SyntaxError and ErrUnknownShape: %v", err)
		}
		if isSyntax == json.Valid(body) {
			t.Fatalf("SyntaxError=%v for json.Valid=%v: %v", isSyntax, json.Valid(body), err)
		}
		return
	}
	if !json.Valid(body) {
		t.Fatalf("invalid JSON parsed as an event: %+v", ev)
	}
	if ev.ID == "" || ev.IdempotencyKey == "" || ev.EntityID == "" {
		t.Fatalf("empty ID/key/entity id: %q %q %q", ev.ID, ev.IdempotencyKey, ev.EntityID)
	}
	if ev.ID != IDFor(ev.IdempotencyKey) {
		t.Fatalf("ID %q is not IDFor(%q)", ev.ID, ev.IdempotencyKey)
	}
	if ev.Source != src || ev.Type == "" || ev.EntityKind == "" || ev.Action == "" {
		t.Fatalf("incomplete event: %+v", ev)
	}
	if !ev.OccurredAt.IsZero() && ev.OccurredAt.Location().String() != "UTC" {
		t.Fatalf("OccurredAt not in UTC: %v", ev.OccurredAt)
	}
	again, err := Parse(src, body, received)
	if err != nil || again.ID != ev.ID || again.IdempotencyKey != ev.IdempotencyKey {
		t.Fatalf("second parse differs: %q/%q vs %q/%q (%v)", again.ID, again.IdempotencyKey, ev.ID, ev.IdempotencyKey, err)
	}
	// The event must travel on the queues: it has to serialise.
	if _, err := json.Marshal(ev); err != nil {
		t.Fatalf("event does not serialise: %v", err)
	}
}

// Templates that put the fuzzer's bytes, as a JSON string, where the parsers
// read event types, ids and times, so mutations reach that code even when they
// are not JSON themselves. %[1]s is the quoted input.
var (
	nowCertsTemplates = []string{
		`{"EventType": %[1]s, "EntityId": "8d0f5c3e", "Timestamp": %[1]s}`,
		`{"Entity": "CertificateHolder", "Action": %[1]s, "Data": {"databaseId": %[1]s, "changeDate": %[1]s, "certificateId": %[1]s, "waverSubrogationrequested": %[1]s}}`,
		`{"type": "MasterCertificate.Update", "id": "c1", "data": %[1]s, "address": %[1]s}`,
	}
	cowbellTemplates = []string{
		`{"meta": {"event": "policy.certificate"}, "data": {"policyId": %[1]s, "modified": %[1]s, "docType": %[1]s, "certificateId": %[1]s, "endDate": %[1]s}}`,
		`{"meta": {"event": %[1]s}, "data": {"quoteId": "q", "policyId": "p", "accountId": "a", "modified": "2021-05-13T06:07:54.407+0000"}}`,
	}
)

func fuzzTemplates(t *testing.T, src Source, templates []string, body []byte) {
	q, err := json.Marshal(string(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, tmpl := range templates {
		checkParse(t, src, fmt.Appendf(nil, tmpl, q))
	}
}

func FuzzParseNowCerts(f *testing.F) {
	addCorpus(f, "nowcerts", "nowcerts/unknown")
	for _, s := range []string{"CertificateHolder.Insert", "/Date(1709633730123+0400)/", "{\"databaseId\":\"x\"}", "u", "1709619330"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, SourceNowCerts, body)
		fuzzTemplates(t, SourceNowCerts, nowCertsTemplates, body)
	})
}

func FuzzParseCowbell(f *testing.F) {
	addCorpus(f, "cowbell", "cowbell/broken")
	for _, s := range []string{"policy.status", "2021-05-13T06:07:54.407+0000", "Non_Renewal"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, SourceCowbell, body)
		fuzzTemplates(t, SourceCowbell, cowbellTemplates, body)
		checkRedact(t, body)
	})
}

// checkRedact: RedactBody keeps valid JSON valid, and a documentUrl value never
// survives it.
func checkRedact(t *testing.T, body []byte) {
	if json.Valid(body) && !json.Valid(RedactBody(body)) {
		t.Fatalf("RedactBody broke valid JSON: %s", RedactBody(body))
	}
	q, _ := json.Marshal(string(body))
	doc := fmt.Appendf(nil, `{"meta": {"event": "policy.document"}, "data": {"policyId": "p", "documentUrl": %s}}`, q)
	var got struct {
		Data struct {
			DocumentURL string `json:"documentUrl"`
		} `json:"data"`
	}
	if err := json.Unmarshal(RedactBody(doc), &got); err != nil {
		t.Fatalf("redacted body unreadable: %v", err)
	}
	if len(body) > 0 && got.Data.DocumentURL != "[redacted]" {
		t.Fatalf("documentUrl %q survived as %q", body, got.Data.DocumentURL)
	}
}
