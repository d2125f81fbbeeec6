package run

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/wire"
)

// receiversOnly keeps the HTTP-facing builders and drops the queue workers, so
// the jobs the webhook enqueues stay on their queues for the test to see. A
// function without a builder is the same path `coiflow run` takes for a
// function not written yet.
func receiversOnly() map[string]wire.Builder {
	all := wire.Builders()
	out := map[string]wire.Builder{}
	for _, name := range []string{"webhook", "api"} {
		if b, ok := all[name]; ok {
			out[name] = b
		}
	}
	return out
}

func startSystem(t *testing.T, builders map[string]wire.Builder) (*System, string) {
	t.Helper()
	state := t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sys, err := Start(ctx, Options{
		Addr: "127.0.0.1:0", StateDir: state, Stdout: &lockedWriter{w: &out}, Log: io.Discard,
		Builders: builders, Prefix: "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		Getenv: func(k string) string {
			if k == "LOG_LEVEL" {
				return "debug"
			}
			return "" // ignore the developer's NOWCERTS_BASE_URL etc.
		},
	})
	if err != nil {
		t.Fatalf("start the local system: %v", err)
	}
	t.Cleanup(func() {
		if err := sys.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if _, err := os.Stat(filepath.Join(state, InfoFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("local.json left behind after Stop: %v", err)
		}
	})
	return sys, state
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func post(t *testing.T, url, contentType string, body []byte) answer {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

// queued reads every visible job on a queue without consuming it (moto: the
// test is the only reader) and puts them back.
func queued(t *testing.T, c *sqs.Client, url string) []jobs.Job {
	t.Helper()
	ctx := context.Background()
	var out []jobs.Job
	var handles []types.ChangeMessageVisibilityBatchRequestEntry
	for {
		r, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			break
		}
		for _, m := range r.Messages {
			j, err := jobs.Unmarshal(aws.ToString(m.Body))
			if err != nil {
				t.Errorf("unreadable job on %s: %v", url, err)
				continue
			}
			out = append(out, j)
			handles = append(handles, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(aws.ToString(m.MessageId)), ReceiptHandle: m.ReceiptHandle})
		}
	}
	for i := 0; i < len(handles); i += 10 {
		if _, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: handles[i:min(i+10, len(handles))]}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func seedCowbell(t *testing.T, name string) []byte {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "internal", "event", "testdata", "cowbell", name))
	if err != nil {
		t.Fatalf("seed sample: %v", err)
	}
	return b
}

// TestEndToEnd starts the whole local system the way `coiflow run` does and
// drives the webhook over HTTP.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts DynamoDB Local and moto")
	}
	sys, state := startSystem(t, receiversOnly())
	if sys.Info.Functions["webhook"].Status != "running" {
		t.Fatalf("webhook is %q", sys.Info.Functions["webhook"].Status)
	}

	// local.json says what the banner says.
	info, err := ReadInfo(filepath.Join(state, InfoFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.API != sys.Info.API || !strings.HasPrefix(info.API, "http://127.0.0.1:") || info.StaffToken == "" ||
		info.Webhooks["cowbell"] == "" || info.Webhooks["nowcerts"] == "" || info.PID != os.Getpid() {
		t.Fatalf("local.json: %+v", info)
	}
	if st, err := os.Stat(filepath.Join(state, InfoFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("local.json mode: %v %v", st.Mode(), err)
	}
	if !strings.Contains(sys.Summary(), info.Webhooks["cowbell"]) || !strings.Contains(sys.Summary(), info.StaffToken) {
		t.Errorf("summary lacks the URLs/token:\n%s", sys.Summary())
	}

	if sc := info.Functions["token-refresher"].Schedules; len(sc) != 1 || sc[0] != "every 30m0s" {
		t.Errorf("token-refresher schedules from template.yaml: %v", sc)
	}
	if sc := info.Functions["backlog-reporter"].Schedules; len(sc) != 1 || sc[0] != "every 5m0s" {
		t.Errorf("backlog-reporter schedules from template.yaml: %v", sc)
	}

	resp, err := http.Get(info.Health)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}

	c := sys.SQS()
	crm := info.Queues["CrmJobsQueue"].URL
	send := info.Queues["SendJobsQueue"].URL
	// depth reads the queues' counters: receiving would count toward each
	// job's maxReceiveCount and, peeked often enough, move it to the DLQ.
	depth := func() int {
		n := 0
		for _, url := range []string{crm, send} {
			out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				types.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range out.Attributes {
				n += atoi(v)
			}
		}
		return n
	}

	cowbellURL := info.Webhooks["cowbell"]
	quote := seedCowbell(t, "quote_status.json")

	var eventID string
	t.Run("seed sample accepted and queued", func(t *testing.T) {
		a := post(t, cowbellURL, "application/json", quote)
		if a.status != 202 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
		eventID, _ = a.body["eventId"].(string)
		if !strings.HasPrefix(eventID, "evt_") {
			t.Fatalf("no event id: %s", a.raw)
		}
		found := false
		for _, j := range queued(t, c, crm) {
			if j.Event.ID == eventID && j.Event.Type == "quote.status" {
				found = true
			}
		}
		if !found {
			t.Fatalf("event %s is not on crm-jobs", eventID)
		}
	})

	t.Run("same body gives the same event id", func(t *testing.T) {
		a := post(t, cowbellURL, "application/json", quote)
		if a.status != 202 || a.body["eventId"] != eventID {
			t.Fatalf("second delivery: %d %s (first %s)", a.status, a.raw, eventID)
		}
	})

	t.Run("wrong token is 401 and enqueues nothing", func(t *testing.T) {
		before := depth()
		wrong := strings.TrimSuffix(cowbellURL, "/"+lastSegment(cowbellURL)) + "/not-the-token"
		a := post(t, wrong, "application/json", quote)
		if a.status != 401 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
		if after := depth(); after != before {
			t.Fatalf("queues went from %d to %d jobs", before, after)
		}
	})

	t.Run("300 KiB is 413", func(t *testing.T) {
		big := append([]byte(`{"meta":{"event":"quote.status"},"data":{"pad":"`), bytes.Repeat([]byte("x"), 300<<10)...)
		big = append(big, []byte(`"}}`)...)
		if a := post(t, cowbellURL, "application/json", big); a.status != 413 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
	})

	t.Run("text/plain is 415", func(t *testing.T) {
		if a := post(t, cowbellURL, "text/plain", quote); a.status != 415 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
	})

	t.Run("truncated JSON is 400 naming the error", func(t *testing.T) {
		a := post(t, cowbellURL, "application/json", quote[:len(quote)/2])
		if a.status != 400 || !strings.Contains(strings.ToLower(a.raw), "json") {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
	})

	t.Run("unknown shape is 202 and quarantined", func(t *testing.T) {
		before := depth()
		body := []byte(`{"hello":"an event nobody documented","n":` + time.Now().Format("20060102150405.000000") + `}`)
		a := post(t, cowbellURL, "application/json", body)
		if a.status != 202 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
		if after := depth(); after != before {
			t.Errorf("an unknown shape was enqueued (%d -> %d)", before, after)
		}
		st := store.New(sys.DynamoDB(), info.Table)
		qs, err := st.ListQuarantine(context.Background(), 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if bytes.Equal(q.Body, body) && q.Source == "cowbell" {
				return
			}
		}
		t.Fatalf("no quarantine record with the body among %d records", len(qs))
	})

	t.Run("coiflow queues shows the job", func(t *testing.T) {
		qs, err := QueueReport(context.Background(), c, info, 10)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		WriteQueueReport(&buf, qs, true)
		if !strings.Contains(buf.String(), eventID) || !strings.Contains(buf.String(), "CrmJobsQueue") {
			t.Fatalf("report:\n%s", buf.String())
		}
	})

	t.Run("invoke uses the running stack", func(t *testing.T) {
		ev := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: "GET /healthz", RawPath: "/healthz", Headers: map[string]string{},
			RequestContext: events.APIGatewayV2HTTPRequestContext{Stage: "$default", RequestID: "inv-1",
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/healthz"}},
		}
		payload, _ := json.Marshal(ev)
		var logs bytes.Buffer
		res, err := Invoke(context.Background(), Options{StateDir: state, Stdout: &logs, Log: &logs}, "webhook", payload)
		if err != nil {
			t.Fatal(err)
		}
		var out events.APIGatewayV2HTTPResponse
		if res.Err != nil || res.Stack != "running" || json.Unmarshal(res.Response, &out) != nil || out.StatusCode != 200 {
			t.Fatalf("invoke: %+v %s", res, res.Response)
		}
		if _, err := Invoke(context.Background(), Options{StateDir: state, Stdout: &logs, Log: &logs}, "nope", payload); err == nil {
			t.Error("invoked a function that does not exist")
		}
	})

	t.Run("staff token opens the staff API", func(t *testing.T) {
		if info.Functions["api"].Status != "running" {
			t.Fatalf("api function is %q", info.Functions["api"].Status)
		}
		get := func(auth string) int {
			req, _ := http.NewRequest("GET", info.API+"/api/holds", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := get("Bearer " + info.StaffToken); code != 200 {
			t.Errorf("with the staff token: %d", code)
		}
		if code := get(""); code != 401 {
			t.Errorf("without a token: %d", code)
		}
	})

	t.Run("a second run refuses to start", func(t *testing.T) {
		_, err := Start(context.Background(), Options{Addr: "127.0.0.1:0", StateDir: state, Log: io.Discard, Stdout: io.Discard, Builders: map[string]wire.Builder{}})
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("err %v", err)
		}
	})
}

// recordingWorker is a crm-worker that records the SQS events the run's event
// source mapping hands it and reports every record as processed.
type recordingWorker struct {
	got chan events.SQSMessage
}

func (w recordingWorker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	for _, r := range ev.Records {
		w.got <- r
	}
	return []byte(`{"batchItemFailures":[]}`), nil
}

// TestWorkersArePolled: a worker's SQS event from template.yaml becomes a
// running event source mapping: the job the webhook enqueues reaches the
// worker as an SQS event and is deleted.
func TestWorkersArePolled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts DynamoDB Local and moto")
	}
	w := recordingWorker{got: make(chan events.SQSMessage, 10)}
	b := receiversOnly()
	b["crm-worker"] = func(ctx context.Context, d wire.Deps) (lambda.Handler, error) {
		if d.Env("TABLE_NAME") == "" || d.Env("CRM_SECRET_ARN") == "" {
			return nil, errors.New("crm-worker built without its template environment")
		}
		return w, nil
	}
	sys, _ := startSystem(t, b)
	if st := sys.Info.Functions["crm-worker"].Status; st != "running" {
		t.Fatalf("crm-worker is %q", st)
	}
	a := post(t, sys.Info.Webhooks["cowbell"], "application/json", seedCowbell(t, "quote_status.json"))
	if a.status != 202 {
		t.Fatalf("webhook: %d %s", a.status, a.raw)
	}
	var r events.SQSMessage
	select {
	case r = <-w.got:
	case <-time.After(2 * time.Minute): // a bound on a hang, not a timing assertion
		t.Fatal("the crm worker was never invoked")
	}
	j, err := jobs.Unmarshal(r.Body)
	if err != nil || j.Event.ID != a.body["eventId"] {
		t.Fatalf("worker got %q (%v), want event %v", r.Body, err, a.body["eventId"])
	}
	q := sys.Info.Queues["CrmJobsQueue"]
	if r.EventSource != "aws:sqs" || r.EventSourceARN != q.ARN || r.Attributes["ApproximateReceiveCount"] != "1" {
		t.Errorf("record %+v", r)
	}
	// The processed job is deleted: the queue empties (bounded wait, not a timing assertion).
	c := sys.SQS()
	stop := time.Now().Add(time.Minute)
	for {
		out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.URL),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" {
			break
		}
		if time.Now().After(stop) {
			t.Fatalf("crm-jobs not drained: %v", out.Attributes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastSegment(u string) string { return u[strings.LastIndexByte(u, '/')+1:] }

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:3000", "localhost:3000", "[::1]:3000", "127.0.0.1:0"} {
		if err := CheckAddr(ok, false); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{":3000", "0.0.0.0:3000", "192.168.1.10:3000", "example.com:80", "127.0.0.1", "127.0.0.1:x"} {
		if err := CheckAddr(bad, false); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := CheckAddr("0.0.0.0:3000", true); err != nil {
		t.Errorf("explicit non-loopback refused: %v", err)
	}
}

func TestPrefixWriter(t *testing.T) {
	var buf bytes.Buffer
	p := newPrefixWriter(&buf, "webhook")
	_, _ = p.Write([]byte("{\"a\":1}\n{\"b\""))
	_, _ = p.Write([]byte(":2}\npartial"))
	p.Flush()
	want := "webhook        | {\"a\":1}\nwebhook        | {\"b\":2}\nwebhook        | partial\n"
	if buf.String() != want {
		t.Fatalf("got %q want %q", buf.String(), want)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]time.Duration{"rate(30 minutes)": 30 * time.Minute, "rate(1 hour)": time.Hour, "rate(2 days)": 48 * time.Hour} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"cron(0 12 * * ? *)", "rate(0 minutes)", "rate(5 seconds)", "at(2026-01-01T00:00:00)"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
