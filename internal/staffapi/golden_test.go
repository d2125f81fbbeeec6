package staffapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the handler's answers (review the diff!)")

// eventsDir holds the api function's sample events (the files `sam local
// invoke -e` and `coiflow invoke` take).
const eventsDir = "../../events/api"

// golden is the expected answer to one event file.
type golden struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"` // the headers that matter (below)
	Body    json.RawMessage   `json:"body"`
}

// goldenHeaders are the response headers a golden file pins.
var goldenHeaders = []string{"Content-Type", "Allow", "WWW-Authenticate", "X-Request-Id", "Cache-Control"}

func eventFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no events in %s", eventsDir)
	}
	return files
}

// TestGoldenEvents runs every events/api file through the handler (JWT mode,
// as deployed, over the in-memory fake) and compares the answer with
// testdata/golden/<name>.json. Every event file must have an expectation, and
// every expectation an event file.
func TestGoldenEvents(t *testing.T) {
	files := eventFiles(t)
	seen := map[string]bool{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		seen[name+".json"] = true
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			h := jwtHarness(t)
			resp, err := h.srv.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			got := golden{Status: resp.StatusCode, Headers: map[string]string{}}
			for _, k := range goldenHeaders {
				if v, ok := resp.Headers[k]; ok {
					got.Headers[k] = v
				}
			}
			var body bytes.Buffer
			if err := json.Indent(&body, []byte(resp.Body), "", "  "); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, resp.Body)
			}
			got.Body = body.Bytes()

			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				out, err := json.MarshalIndent(got, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantRaw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no expectation for %s: %v (write it with go test -run TestGoldenEvents -update, then review)", file, err)
			}
			var want golden
			if err := json.Unmarshal(wantRaw, &want); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if got.Status != want.Status || !reflect.DeepEqual(got.Headers, want.Headers) {
				t.Errorf("status/headers\n got %d %v\nwant %d %v", got.Status, got.Headers, want.Status, want.Headers)
			}
			if !jsonEqual(t, got.Body, want.Body) {
				t.Errorf("body\n got %s\nwant %s", got.Body, want.Body)
			}
		})
	}
	if *update {
		return
	}
	stale, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	for _, g := range stale {
		if !seen[filepath.Base(g)] {
			t.Errorf("%s has no event file in %s", g, eventsDir)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// TestEventFilesRoundTrip checks each event file is a faithful
// events.APIGatewayV2HTTPRequest: decoding it and encoding it again loses no
// field and changes no value (a misspelt key would silently vanish), and it
// names a method, a path and a request id.
func TestEventFilesRoundTrip(t *testing.T) {
	for _, file := range eventFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ev events.APIGatewayV2HTTPRequest
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("not an APIGatewayV2HTTPRequest: %v", err)
			}
			again, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var orig, back any
			if err := json.Unmarshal(raw, &orig); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(again, &back); err != nil {
				t.Fatal(err)
			}
			if diff := subsetDiff("", orig, back); diff != "" {
				t.Fatalf("round trip changed the event: %s", diff)
			}
			if ev.Version != "2.0" || ev.RequestContext.HTTP.Method == "" || ev.RawPath == "" ||
				ev.RequestContext.RequestID == "" || ev.RawPath != ev.RequestContext.HTTP.Path {
				t.Fatalf("incomplete event: version %q method %q rawPath %q http.path %q requestId %q", ev.Version,
					ev.RequestContext.HTTP.Method, ev.RawPath, ev.RequestContext.HTTP.Path, ev.RequestContext.RequestID)
			}
			if !strings.HasPrefix(ev.RawPath, "/api/") {
				t.Fatalf("rawPath %q is not under /api/", ev.RawPath)
			}
		})
	}
}

// subsetDiff describes where a (the file) is not contained in b (the
// re-encoded event): a missing key or a different value. Keys only in b are
// the struct's zero-valued fields and are ignored.
func subsetDiff(path string, a, b any) string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return path + ": not an object after the round trip"
		}
		keys := make([]string, 0, len(av))
		for k := range av {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			bb, ok := bv[k]
			if !ok {
				return path + "." + k + ": lost"
			}
			if d := subsetDiff(path+"."+k, av[k], bb); d != "" {
				return d
			}
		}
		return ""
	default:
		if !reflect.DeepEqual(a, b) {
			return path + ": changed"
		}
		return ""
	}
}
