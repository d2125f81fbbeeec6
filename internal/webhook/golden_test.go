package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/webhook/signature"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from the handler's answers to events/webhook/*.json")

const (
	eventsDir  = "../../events/webhook"
	goldenFile = "testdata/golden.json"
	// goldenSigningSecret signs the events/webhook files that carry
	// Standard Webhooks headers (cowbell-policy-certificate-signed.json).
	goldenSigningSecret = "whsec_Y29pZmxvdy1nb2xkZW4tc2lnbmluZy1rZXktMDEyMzQ1Njc="
)

// golden is the expected answer to one event file.
type golden struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"` // Allow, Retry-After
	Body    json.RawMessage   `json:"body"`
	// Jobs are the ids of the jobs enqueued; Quarantined the id of the record
	// written (a 400's body is kept too).
	Jobs        []string `json:"jobs"`
	Quarantined string   `json:"quarantined,omitempty"`
}

// goldenCredentials are the local stack's (the tokens `make run` seeds), plus,
// to exercise the optional checks, Cowbell's agency allowlist (the seed's agency)
// and — for requests that carry a webhook-signature header, as a signing
// sender would — a Cowbell signing secret.
func goldenCredentials(t *testing.T, req events.APIGatewayV2HTTPRequest) map[event.Source]Credentials {
	creds := map[event.Source]Credentials{
		event.SourceNowCerts: {Tokens: []string{"local-nowcerts-token"}},
		event.SourceCowbell:  {Tokens: []string{"local-cowbell-token"}, AgencyIDs: []string{seedAgency}},
	}
	if header(req.Headers, "webhook-signature") != "" {
		sec, err := signature.ParseSecret(goldenSigningSecret)
		if err != nil {
			t.Fatal(err)
		}
		c := creds[event.SourceCowbell]
		c.SigningSecrets = []signature.Secret{sec}
		creds[event.SourceCowbell] = c
	}
	return creds
}

// TestGolden runs every events/webhook/*.json through the handler, the way the
// Lambda runtime does (JSON in, JSON out), and compares the answer, the jobs
// enqueued and the quarantine record with testdata/golden.json. Each file is
// received at its own requestContext.timeEpoch. Run with -update to rewrite the
// golden file, then review its diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no event files in %s (%v)", eventsDir, err)
	}
	want := map[string]golden{}
	if !*update {
		b, err := os.ReadFile(goldenFile)
		if err != nil {
			t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
		}
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", goldenFile, err)
		}
	}
	got := map[string]golden{}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			g := runEventFile(t, path)
			got[name] = g
			if *update {
				return
			}
			w, ok := want[name]
			if !ok {
				t.Fatalf("%s has no expectation in %s: run go test -run TestGolden -update and review the diff", name, goldenFile)
			}
			if g.Status != w.Status {
				t.Errorf("status = %d, want %d (body %s)", g.Status, w.Status, g.Body)
			}
			if !jsonEqual(g.Body, w.Body) {
				t.Errorf("body = %s\nwant   %s", g.Body, w.Body)
			}
			if !reflect.DeepEqual(g.Headers, w.Headers) {
				t.Errorf("headers = %v, want %v", g.Headers, w.Headers)
			}
			if !slices.Equal(g.Jobs, w.Jobs) {
				t.Errorf("jobs = %v, want %v", g.Jobs, w.Jobs)
			}
			if g.Quarantined != w.Quarantined {
				t.Errorf("quarantined = %q, want %q", g.Quarantined, w.Quarantined)
			}
		})
	}
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d files)", goldenFile, len(got))
		return
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s expects %s, which no longer exists: run -update", goldenFile, name)
		}
	}
}

// runEventFile invokes the handler with the file's bytes through the Lambda
// handler wrapper and returns what happened.
func runEventFile(t *testing.T, path string) golden {
	t.Helper()
	payload, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		t.Fatalf("not an API Gateway v2 request: %v", err)
	}
	if req.RequestContext.TimeEpoch == 0 || req.RequestContext.RequestID == "" {
		t.Fatal("the event has no requestContext.timeEpoch or requestId")
	}
	hs := newHarness(t)
	hs.creds.bySource = goldenCredentials(t, req)
	h, err := New(Config{Credentials: hs.creds, Queue: hs.queue, Quarantine: hs.quar, Metrics: hs.metrics,
		Now: func() time.Time { return time.UnixMilli(req.RequestContext.TimeEpoch) }})
	if err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewHandler(h.Handle).Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response: %v", err)
	}
	g := golden{Status: resp.StatusCode, Body: json.RawMessage(resp.Body), Jobs: []string{}}
	if !json.Valid(g.Body) {
		t.Fatalf("response body is not JSON: %q", resp.Body)
	}
	for _, k := range []string{"Allow", "Retry-After"} {
		if v, ok := resp.Headers[k]; ok {
			if g.Headers == nil {
				g.Headers = map[string]string{}
			}
			g.Headers[k] = v
		}
	}
	for _, j := range hs.queue.all() {
		g.Jobs = append(g.Jobs, j.ID)
		if j.Event.ID == "" || string(j.Event.Raw) == "" {
			t.Errorf("job %s carries no event", j.ID)
		}
	}
	for id := range hs.quar.all() {
		g.Quarantined = id
	}
	if g.Status >= 400 && len(g.Jobs) > 0 {
		t.Errorf("answered %d but enqueued %v", g.Status, g.Jobs)
	}
	return g
}

// TestEventFilesRoundTrip checks every events/webhook file against
// aws-lambda-go's APIGatewayV2HTTPRequest, in the spirit of that library's own
// tests: unmarshal, marshal, and compare. Every field of the file must come
// back with the same value (a misspelt or mistyped field would not); fields the
// type always writes that the file leaves out must be zero values.
func TestEventFilesRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if len(files) == 0 {
		t.Fatal("no event files")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var req events.APIGatewayV2HTTPRequest
			dec := json.NewDecoder(bytes.NewReader(in))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			out, err := json.Marshal(req)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			var a, b any
			if err := json.Unmarshal(in, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &b); err != nil {
				t.Fatal(err)
			}
			if err := containedIn(a, b, "$"); err != nil {
				t.Fatal(err)
			}
			if req.Version != "2.0" || req.RouteKey == "" || req.RawPath == "" || req.RequestContext.HTTP.Method == "" {
				t.Fatalf("not a complete payload v2 event: version %q routeKey %q rawPath %q", req.Version, req.RouteKey, req.RawPath)
			}
		})
	}
}

// containedIn reports where file (the event as written) and round (after the
// round trip) differ: every value of file must be in round unchanged, and what
// round adds must be zero.
func containedIn(file, round any, at string) error {
	switch f := file.(type) {
	case map[string]any:
		r, ok := round.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: object became %T", at, round)
		}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for k := range f {
			if _, ok := r[k]; !ok {
				return fmt.Errorf("%s.%s: lost in the round trip (not a field of the type?)", at, k)
			}
		}
		for _, k := range keys {
			if fv, ok := f[k]; ok {
				if err := containedIn(fv, r[k], at+"."+k); err != nil {
					return err
				}
			} else if !isZero(r[k]) {
				return fmt.Errorf("%s.%s: appeared with %v", at, k, r[k])
			}
		}
		return nil
	default:
		if !reflect.DeepEqual(file, round) {
			return fmt.Errorf("%s: %v became %v", at, file, round)
		}
		return nil
	}
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case float64:
		return x == 0
	case bool:
		return !x
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, e := range x {
			if !isZero(e) {
				return false
			}
		}
		return true
	}
	return false
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
