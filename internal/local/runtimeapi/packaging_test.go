package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/local/tools"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// lambdaBuild builds packages the way `make build` does (provided.al2023:
// -tags lambda.norpc, -trimpath, -ldflags '-s -w', CGO off) for goarch.
// With one package, out is the binary; with several, a folder.
func lambdaBuild(t *testing.T, root, goarch, out string, pkgs ...string) {
	t.Helper()
	args := append([]string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s (GOARCH=%s): %v\n%s", strings.Join(args, " "), goarch, err, b)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestBuildAllFunctionsForLambda compiles every functions/* for linux/arm64
// with the Lambda flags (compile only: arm64 cannot run here).
func TestBuildAllFunctionsForLambda(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles every function")
	}
	root := repoRoot(t)
	dirs, err := filepath.Glob(filepath.Join(root, "functions", "*", "main.go"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no functions/*/main.go: %v", err)
	}
	var pkgs []string
	for _, d := range dirs {
		pkgs = append(pkgs, "./"+filepath.ToSlash(mustRel(t, root, filepath.Dir(d))))
	}
	out := t.TempDir()
	lambdaBuild(t, root, "arm64", out+string(filepath.Separator), pkgs...)
	for _, p := range pkgs {
		bin := filepath.Join(out, filepath.Base(p))
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Errorf("%s: no binary: %v", p, err)
			continue
		}
		// ELF, 64-bit, little endian, e_machine EM_AARCH64 (183).
		if len(b) < 20 || string(b[1:4]) != "ELF" || b[4] != 2 || b[18] != 183 {
			t.Errorf("%s: not a linux/arm64 ELF executable", p)
		}
	}
	t.Logf("built %d functions for linux/arm64: %s", len(pkgs), strings.Join(pkgs, " "))
}

func mustRel(t *testing.T, base, p string) string {
	t.Helper()
	r, err := filepath.Rel(base, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// negativeEventWords mark events/ files that are meant to be refused.
var negativeEventWords = []string{"wrong", "bad", "invalid", "malformed", "truncated", "large", "unknown", "not-json", "text-plain", "signature", "agency", "no-token", "missing"}

// webhookEvent returns an API Gateway v2 event from events/webhook/ whose
// route and body match, or builds one from the seed sample when the folder
// has none yet. It returns the event and the file it came from.
func webhookEvent(t *testing.T, root, routeKey, bodyHas string) (events.APIGatewayV2HTTPRequest, string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "events", "webhook", "*.json"))
	for _, f := range files {
		name := strings.ToLower(filepath.Base(f))
		if slices.ContainsFunc(negativeEventWords, func(w string) bool { return strings.Contains(name, w) }) {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ev events.APIGatewayV2HTTPRequest
		if json.Unmarshal(b, &ev) != nil || ev.RouteKey != routeKey || ev.IsBase64Encoded || !strings.Contains(ev.Body, bodyHas) {
			continue
		}
		return ev, mustRel(t, root, f)
	}
	// Not written yet: the seed's sample, shaped as API Gateway sends it.
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: routeKey, Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{Stage: "$default", RequestID: "pkg-test", TimeEpoch: time.Now().UnixMilli()},
	}
	method, path, _ := strings.Cut(routeKey, " ")
	ev.RequestContext.HTTP = events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, SourceIP: "127.0.0.1"}
	ev.RawPath = path
	if strings.Contains(path, "{token}") {
		ev.PathParameters = map[string]string{"token": "packaging-test-token"}
		ev.RawPath = strings.Replace(path, "{token}", "packaging-test-token", 1)
		ev.RequestContext.HTTP.Path = ev.RawPath
		b, err := os.ReadFile(filepath.Join(root, "internal", "event", "testdata", "cowbell", "quote_status.json"))
		if err != nil {
			t.Fatalf("no events/webhook file for %s and no seed sample: %v", routeKey, err)
		}
		ev.Body = string(b)
	}
	return ev, "(built from the seed sample: no matching events/webhook file yet)"
}

// TestPackagedWebhook builds functions/webhook as a Lambda bootstrap for this
// machine (linux/amd64), runs it under the Runtime API server against DynamoDB
// Local and moto, and invokes it through the front door with events/ files.
func TestPackagedWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a bootstrap")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("runs a linux/amd64 bootstrap; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "bootstrap")
	lambdaBuild(t, root, "amd64", bin, "./functions/webhook")

	quote, quoteFile := webhookEvent(t, root, "POST /webhooks/cowbell/{token}", "quote.status")
	health, healthFile := webhookEvent(t, root, "GET /healthz", "")
	t.Logf("events: %s, %s", quoteFile, healthFile)
	token := quote.PathParameters["token"]
	if token == "" {
		t.Fatalf("%s has no pathParameters.token", quoteFile)
	}

	env := testenv.Get(t)
	table := env.NewTable(t)
	crmURL, _ := env.NewQueue(t, 5)
	sendURL, _ := env.NewQueue(t, 5)
	secret, _ := json.Marshal(map[string]any{
		"cowbell":  map[string]any{"tokens": []string{token, "second-" + token}},
		"nowcerts": map[string]any{"tokens": []string{"packaging-nowcerts-token"}},
	})
	secretARN := env.NewSecret(t, string(secret))

	fnEnv := map[string]string{
		"TABLE_NAME": table, "CRM_QUEUE_URL": crmURL, "SEND_QUEUE_URL": sendURL, "WEBHOOK_SECRET_ARN": secretARN,
		"STAGE": "dev", "LOG_LEVEL": "debug",
	}
	for _, kv := range env.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			fnEnv[k] = v
		}
	}
	s := New(Options{FunctionName: "webhook", Timeout: 10 * time.Second})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var logs syncBuffer
	p, err := Launch(s, LaunchOptions{Bootstrap: bin, MemoryMB: 256, Env: fnEnv, Stdout: &logs, Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stop bootstrap: %v", err)
		}
		if t.Failed() {
			t.Logf("bootstrap output:\n%s", logs.String())
		}
	})

	frontDoor := "http://" + s.Addr() + "/2015-03-31/functions/function/invocations"
	invoke := func(ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
		t.Helper()
		payload, _ := json.Marshal(ev)
		resp, err := http.Post(frontDoor, "application/json", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out events.APIGatewayV2HTTPResponse
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
			t.Fatalf("front door: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), raw.String())
		}
		if err := json.Unmarshal(raw.Bytes(), &out); err != nil {
			t.Fatalf("response %q: %v", raw.String(), err)
		}
		return out
	}

	if h := invoke(health); h.StatusCode != 200 {
		t.Errorf("healthz: %d %s", h.StatusCode, h.Body)
	}

	q := invoke(quote)
	if q.StatusCode != 202 {
		t.Fatalf("quote.status: %d %s", q.StatusCode, q.Body)
	}
	var accepted struct {
		EventID string `json:"eventId"`
	}
	if err := json.Unmarshal([]byte(q.Body), &accepted); err != nil || !strings.HasPrefix(accepted.EventID, "evt_") {
		t.Fatalf("202 body %q: %v", q.Body, err)
	}
	out, err := env.SQS().ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(crmURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 2})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range out.Messages {
		if j, err := jobs.Unmarshal(aws.ToString(m.Body)); err == nil && j.Event.ID == accepted.EventID {
			found = true
		}
	}
	if !found {
		t.Fatalf("event %s is not on the crm queue (%d messages there)", accepted.EventID, len(out.Messages))
	}
	// Stop the runtime so that its output has been copied in full.
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), accepted.EventID) {
		t.Errorf("the bootstrap's log does not mention %s", accepted.EventID)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the bootstrap logged the webhook token")
	}
}
