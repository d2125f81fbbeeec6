package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/coiflow/coiflow/internal/testsupport"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func startServer(t *testing.T, o Options) *Server {
	t.Helper()
	s := New(o)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func do(t *testing.T, method, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestProtocol plays the runtime by hand over HTTP.
func TestProtocol(t *testing.T) {
	s := startServer(t, Options{FunctionName: "webhook", Timeout: time.Minute})
	base := "http://" + s.Addr() + "/2018-06-01/runtime"

	type answer struct {
		out []byte
		err error
	}
	answers := make(chan answer, 1)
	go func() {
		out, err := s.Invoke(context.Background(), []byte(`{"n":1}`))
		answers <- answer{out, err}
	}()

	resp, body := do(t, "GET", base+"/invocation/next", nil)
	if resp.StatusCode != 200 || string(body) != `{"n":1}` {
		t.Fatalf("next: %d %q", resp.StatusCode, body)
	}
	id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	if id == "" {
		t.Fatal("no request id")
	}
	if arn := resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn"); arn != "arn:aws:lambda:us-east-1:000000000000:function:webhook" {
		t.Errorf("arn %q", arn)
	}
	ms, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
	if err != nil || time.UnixMilli(ms).Before(time.Now()) {
		t.Errorf("deadline %q", resp.Header.Get("Lambda-Runtime-Deadline-Ms"))
	}
	if !strings.HasPrefix(resp.Header.Get("Lambda-Runtime-Trace-Id"), "Root=1-") {
		t.Errorf("trace id %q", resp.Header.Get("Lambda-Runtime-Trace-Id"))
	}

	// An unknown id is refused; the real one is accepted once.
	if resp, _ := do(t, "POST", base+"/invocation/nope/response", []byte(`{}`)); resp.StatusCode != 400 {
		t.Errorf("unknown id: %d", resp.StatusCode)
	}
	if resp, b := do(t, "POST", base+"/invocation/"+id+"/response", []byte(`{"ok":true}`)); resp.StatusCode != 202 {
		t.Fatalf("response: %d %s", resp.StatusCode, b)
	}
	a := <-answers
	if a.err != nil || string(a.out) != `{"ok":true}` {
		t.Fatalf("invoke: %q %v", a.out, a.err)
	}
	if resp, _ := do(t, "POST", base+"/invocation/"+id+"/response", []byte(`{}`)); resp.StatusCode != 400 {
		t.Errorf("second response for one id: %d", resp.StatusCode)
	}

	// An error report.
	go func() {
		out, err := s.Invoke(context.Background(), []byte(`{}`))
		answers <- answer{out, err}
	}()
	resp, _ = do(t, "GET", base+"/invocation/next", nil)
	id = resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	req, _ := http.NewRequest("POST", base+"/invocation/"+id+"/error", strings.NewReader(`{"errorMessage":"bad","errorType":"errorString"}`))
	req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.Custom")
	r2, err := http.DefaultClient.Do(req)
	if err != nil || r2.StatusCode != 202 {
		t.Fatalf("error post: %v %v", r2, err)
	}
	r2.Body.Close()
	a = <-answers
	var fe *FunctionError
	if !errors.As(a.err, &fe) || fe.Type != "Runtime.Custom" || fe.Message != "bad" || !strings.Contains(string(fe.Payload), `"errorMessage":"bad"`) {
		t.Fatalf("error: %#v", a.err)
	}
}

func TestFrontDoorAndTimeout(t *testing.T) {
	// Long enough for the answering invocation on a loaded machine; the
	// hanging one costs this much.
	s := startServer(t, Options{FunctionName: "f", Timeout: time.Second})
	base := "http://" + s.Addr()

	// A runtime that answers "hi" to {"say":"hi"}, never answers {"hang":true}.
	go func() {
		for {
			resp, err := http.Get(base + "/2018-06-01/runtime/invocation/next")
			if err != nil {
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return
			}
			if bytes.Contains(body, []byte("hang")) {
				continue
			}
			id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
			r, err := http.Post(base+"/2018-06-01/runtime/invocation/"+id+"/response", "application/json", bytes.NewReader(body))
			if err != nil {
				return
			}
			r.Body.Close()
		}
	}()

	resp, body := do(t, "POST", base+"/2015-03-31/functions/function/invocations", []byte(`{"say":"hi"}`))
	if resp.StatusCode != 200 || string(body) != `{"say":"hi"}` || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Fatalf("front door: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", base+"/2015-03-31/functions/function/invocations", []byte(`{"hang":true}`))
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(string(body), "Sandbox.Timedout") {
		t.Fatalf("timeout: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestInitErrorAndExit(t *testing.T) {
	s := startServer(t, Options{FunctionName: "f"})
	resp, _ := do(t, "POST", "http://"+s.Addr()+"/2018-06-01/runtime/init/error", []byte(`{"errorMessage":"no TABLE_NAME","errorType":"Runtime.InitError"}`))
	if resp.StatusCode != 202 {
		t.Fatalf("init error: %d", resp.StatusCode)
	}
	_, err := s.Invoke(context.Background(), []byte(`{}`))
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Message != "no TABLE_NAME" {
		t.Fatalf("invoke after init error: %v", err)
	}

	s2 := startServer(t, Options{FunctionName: "g"})
	s2.RuntimeExited(errors.New("exit status 2"))
	_, err = s2.Invoke(context.Background(), []byte(`{}`))
	if !errors.As(err, &fe) || fe.Type != "Runtime.ExitError" {
		t.Fatalf("invoke after exit: %v", err)
	}
}

func TestInvokeCancelled(t *testing.T) {
	s := startServer(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Invoke(ctx, []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

// buildEcho builds testdata/echo the way a Lambda bootstrap is built.
func buildEcho(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", out, "./testdata/echo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build echo: %v\n%s", err, b)
	}
	return out
}

// TestLaunchRealRuntime runs a bootstrap built with aws-lambda-go against the
// server: the library's own Runtime API client is the judge of the wire shape.
func TestLaunchRealRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildEcho(t)
	s := startServer(t, Options{FunctionName: "echo", Timeout: 10 * time.Second})
	var stdout syncBuffer
	p, err := Launch(s, LaunchOptions{Bootstrap: bin, Env: map[string]string{"CUSTOM": "yes"}, Stdout: &stdout, Stderr: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(2 * time.Second) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Invoke(ctx, []byte(`{"say":"hello"}`))
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, stdout.String())
	}
	var got struct {
		Said, RequestID, ARN, Function, Custom, TraceID string
		HasDeadline                                     bool
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if got.Said != "hello" || got.RequestID == "" || got.ARN != s.FunctionARN() || !got.HasDeadline || got.Function != "echo" || got.Custom != "yes" || !strings.HasPrefix(got.TraceID, "Root=1-") {
		t.Errorf("answer %+v", got)
	}

	// Through the front door, a function error is Lambda's 200 + X-Amz-Function-Error.
	resp, body := do(t, "POST", "http://"+s.Addr()+"/2015-03-31/functions/function/invocations", []byte(`{"fail":true}`))
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(string(body), "asked to fail") {
		t.Errorf("function error: %d %q", resp.StatusCode, body)
	}

	// Several concurrent invocations are served one at a time by the one runtime.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			say := strconv.Itoa(i)
			out, err := s.Invoke(ctx, []byte(`{"say":"`+say+`"}`))
			if err == nil && !strings.Contains(string(out), `"said":"`+say+`"`) {
				err = errors.New("wrong answer " + string(out))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	// A runtime that dies mid-invocation fails that invocation instead of hanging it.
	_, err = s.Invoke(ctx, []byte(`{"exit":true}`))
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Type != "Runtime.ExitError" {
		t.Fatalf("exit: %v", err)
	}
	<-p.Done()
	// Once the process is gone its output has been copied in full.
	if !strings.Contains(stdout.String(), `"said":"hello"`) {
		t.Errorf("stdout not captured: %q", stdout.String())
	}

	// Stop ends a runtime that is waiting for work (SIGTERM by PID).
	s2 := startServer(t, Options{FunctionName: "echo"})
	p2, err := Launch(s2, LaunchOptions{Bootstrap: bin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Invoke(ctx, []byte(`{"say":"up"}`)); err != nil {
		t.Fatal(err)
	}
	if err := p2.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p2.Done():
	default:
		t.Fatal("process still running after Stop")
	}
}

func TestLaunchMissing(t *testing.T) {
	s := startServer(t, Options{FunctionName: "echo"})
	if _, err := Launch(s, LaunchOptions{Bootstrap: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("launched a missing bootstrap")
	}
	if _, err := Launch(New(Options{}), LaunchOptions{Bootstrap: "/bin/true"}); err == nil {
		t.Error("launched against a server that is not started")
	}
}

// syncBuffer is the shared goroutine-safe log sink.
type syncBuffer = testsupport.Buffer
