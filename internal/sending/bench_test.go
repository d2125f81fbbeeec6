package sending

import (
	"context"
	"fmt"

	"github.com/coiflow/coiflow/internal/event"
	"sync/atomic"
	"testing"
	"time"
)

// The send benchmarks measure the happy path through DynamoDB Local and the
// NowCerts sandbox (zero latency, real HTTP client): every iteration sends one
// certificate revision to a new holder (email only), so every iteration is one
// SendCertificate.
// They report DynamoDB calls per certificate sent (the store's DB is wrapped in
// a counting decorator) and certificates per second.
//
//	go test -run '^$' -bench Send -benchtime 500x ./internal/sending

func benchHarness(b *testing.B) *harness {
	b.Helper()
	h := newHarness(b, harnessOptions{quiet: true})
	// Warm the container: settings cached, token read, connections open.
	if err := h.svc.Handle(context.Background(), sendJob(holderEvent(ready("warm-up"), seedHolders[holderEmail]))); err != nil {
		b.Fatal(err)
	}
	h.db.reset()
	return h
}

// benchHolder is the i-th holder of a benchmark: each has its own revision
// mark, as the certificates of an agency's many holders do.
func benchHolder(prefix string, i int64) event.Holder {
	return event.Holder{Name: fmt.Sprintf("Holder %s-%d", prefix, i), Email: fmt.Sprintf("%s-%d@holders.example", prefix, i)}
}

func reportDB(b *testing.B, h *harness, sent int, elapsed time.Duration) {
	b.Helper()
	if got := len(h.sends()) - 1; got != sent {
		b.Fatalf("%d certificates sent, want %d", got, sent)
	}
	b.ReportMetric(float64(h.db.reads.Load())/float64(sent), "reads/cert")
	b.ReportMetric(float64(h.db.writes.Load())/float64(sent), "writes/cert")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "certs/s")
}

// BenchmarkSend: one worker, one certificate at a time (NowCerts holder event,
// no policy number: claim UpdateItem + completion UpdateItem).
func BenchmarkSend(b *testing.B) {
	h := benchHarness(b)
	ctx := context.Background()
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		if err := h.svc.Handle(ctx, sendJob(holderEvent(ready("bench"), benchHolder("b", int64(i))))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportDB(b, h, b.N, time.Since(start))
}

// BenchmarkSendPolicyGuard: certificates that name a policy, so the claim also
// checks the policy was not cancelled (one TransactWriteItems instead of the
// claim UpdateItem).
func BenchmarkSendPolicyGuard(b *testing.B) {
	h := benchHarness(b)
	ctx := context.Background()
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		c := ready("bench-policy")
		c.PolicyNo = "CBC-1"
		if err := h.svc.Handle(ctx, sendJob(holderEvent(c, benchHolder("p", int64(i))))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportDB(b, h, b.N, time.Since(start))
}

// BenchmarkSendParallel: 16 concurrent workers (as several Lambda containers
// with batch concurrency would be) sharing DynamoDB Local and the sandbox.
func BenchmarkSendParallel(b *testing.B) {
	h := benchHarness(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(8)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := h.svc.Handle(ctx, sendJob(holderEvent(ready("bench-parallel"), benchHolder("par", i)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportDB(b, h, int(n.Load()), time.Since(start))
}

// BenchmarkSendDuplicate: redeliveries of a certificate already sent (one
// conditional write that fails, nothing else).
func BenchmarkSendDuplicate(b *testing.B) {
	h := benchHarness(b)
	ctx := context.Background()
	j := sendJob(holderEvent(ready("warm-up"), seedHolders[holderEmail]))
	b.ResetTimer()
	for range b.N {
		if err := h.svc.Handle(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(h.sends()) != 1 {
		b.Fatalf("a duplicate was sent")
	}
	b.ReportMetric(float64(h.db.reads.Load())/float64(b.N), "reads/dup")
	b.ReportMetric(float64(h.db.writes.Load())/float64(b.N), "writes/dup")
}
