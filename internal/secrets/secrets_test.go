package secrets

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/coiflow/coiflow/internal/testsupport"
)

// fakeSM answers GetSecretValue from values; gate, when set, blocks each call
// until it is closed.
type fakeSM struct {
	mu     sync.Mutex
	values map[string]string
	err    error
	calls  atomic.Int32
	gate   chan struct{}
}

func (f *fakeSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.values[aws.ToString(in.SecretId)]
	if !ok {
		return nil, errors.New("ResourceNotFoundException")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

func (f *fakeSM) set(arn, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[arn] = v
}

func newTestCache(f *fakeSM, ttl time.Duration) (*Cache, *testsupport.Clock) {
	c := NewCache(f, ttl)
	clk := testsupport.NewClock(time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC))
	c.now = clk.Now
	return c, clk
}

func TestCachesPerARNForTTL(t *testing.T) {
	ctx := context.Background()
	f := &fakeSM{values: map[string]string{"arn:a": `{"n":1}`, "arn:b": `{"n":2}`}}
	c, clk := newTestCache(f, time.Minute)

	var v struct{ N int }
	for range 3 {
		if err := c.JSON(ctx, "arn:a", &v); err != nil || v.N != 1 {
			t.Fatalf("JSON(a) = %v, %+v", err, v)
		}
	}
	if err := c.JSON(ctx, "arn:b", &v); err != nil || v.N != 2 {
		t.Fatalf("JSON(b) = %v, %+v", err, v)
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("calls = %d, want 2 (one per ARN)", got)
	}

	f.set("arn:a", `{"n":3}`)
	clk.Add(59 * time.Second)
	if err := c.JSON(ctx, "arn:a", &v); err != nil || v.N != 1 {
		t.Fatalf("within TTL: JSON(a) = %v, %+v, want the cached 1", err, v)
	}
	clk.Add(time.Second)
	if err := c.JSON(ctx, "arn:a", &v); err != nil || v.N != 3 {
		t.Fatalf("after TTL: JSON(a) = %v, %+v, want 3", err, v)
	}
	if got := f.calls.Load(); got != 3 {
		t.Fatalf("calls = %d, want 3", got)
	}

	f.set("arn:a", `{"n":4}`)
	c.Invalidate("arn:a")
	if err := c.JSON(ctx, "arn:a", &v); err != nil || v.N != 4 {
		t.Fatalf("after Invalidate: JSON(a) = %v, %+v, want 4", err, v)
	}
}

func TestConcurrentMissesShareOneCall(t *testing.T) {
	f := &fakeSM{values: map[string]string{"arn:a": "v"}, gate: make(chan struct{})}
	c, _ := newTestCache(f, time.Minute)

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			v, err := c.Value(context.Background(), "arn:a")
			if err == nil && v != "v" {
				err = errors.New("wrong value " + v)
			}
			errs <- err
		})
	}
	// Let the first call reach the fake and give the others a moment to queue up
	// behind it (without singleflight they would call the fake too). The test
	// does not depend on the timing to pass, only to be sharp.
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Every caller that arrived while the fetch ran shared it; callers after it
	// hit the cache. Either way: one call.
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("calls = %d, want 1", got)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	ctx := context.Background()
	f := &fakeSM{values: map[string]string{"arn:a": "v"}, err: errors.New("throttled")}
	c, _ := newTestCache(f, time.Minute)
	if _, err := c.Value(ctx, "arn:a"); err == nil || !strings.Contains(err.Error(), "throttled") || !strings.Contains(err.Error(), "arn:a") {
		t.Fatalf("Value = %v, want the wrapped API error naming the ARN", err)
	}
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	if v, err := c.Value(ctx, "arn:a"); err != nil || v != "v" {
		t.Fatalf("after recovery: Value = %q, %v", v, err)
	}
}

func TestCallerCancellationDoesNotFailOthers(t *testing.T) {
	f := &fakeSM{values: map[string]string{"arn:a": "v"}, gate: make(chan struct{})}
	c, _ := newTestCache(f, time.Minute)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Value(ctx, "arn:a"); first <- err }()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	second := make(chan error, 1)
	go func() { _, err := c.Value(context.Background(), "arn:a"); second <- err }()
	close(f.gate)
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("calls = %d, want 1 (the detached fetch served the second caller)", got)
	}
}

func TestJSONErrorsDoNotQuoteTheSecret(t *testing.T) {
	ctx := context.Background()
	f := &fakeSM{values: map[string]string{
		"arn:syntax": `{"password": "hunter2"`,
		"arn:type":   `{"tokens": "hunter2"}`,
	}}
	c, _ := newTestCache(f, time.Minute)
	var v struct{ Tokens []string }
	for _, arn := range []string{"arn:syntax", "arn:type"} {
		err := c.JSON(ctx, arn, &v)
		if err == nil {
			t.Fatalf("%s: JSON = nil error", arn)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("%s: error quotes the secret: %v", arn, err)
		}
	}
}

func TestBinarySecret(t *testing.T) {
	c := NewCache(binarySM{}, time.Minute)
	var v map[string]string
	if err := c.JSON(context.Background(), "arn:bin", &v); err != nil || v["k"] != "v" {
		t.Fatalf("JSON = %v, %v", err, v)
	}
}

type binarySM struct{}

func (binarySM) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return &secretsmanager.GetSecretValueOutput{SecretBinary: []byte(`{"k":"v"}`)}, nil
}
