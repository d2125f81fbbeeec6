package services

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkStackStart starts and stops the whole stack; it reports the time
// until each service answered, the total, and each process's resident memory
// right after start.
//
//	go test -run '^$' -bench StackStart -benchtime 5x ./internal/local/services/
func BenchmarkStackStart(b *testing.B) {
	for _, withoutMoto := range []bool{false, true} {
		name := "moto"
		if withoutMoto {
			name = "local-aws-sqs"
		}
		b.Run(name, func(b *testing.B) {
			sums := map[string]time.Duration{}
			rss := map[string]int{}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				st, err := Start(ctx, Options{WithoutMoto: withoutMoto})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				total += st.Total
				for _, tm := range st.Timings {
					sums[tm.Service] += tm.Ready
				}
				for _, p := range st.procs {
					rss[p.name] += residentKB(p.cmd.Process.Pid)
				}
				if err := st.Stop(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "stack-ms")
			for svc, d := range sums {
				b.ReportMetric(float64(d.Milliseconds())/float64(b.N), svc+"-ms")
			}
			for svc, kb := range rss {
				b.ReportMetric(float64(kb)/1024/float64(b.N), svc+"-MB")
			}
		})
	}
}

// residentKB is VmRSS of pid and its direct children (moto's pyenv shim
// execs, so this is usually the process itself).
func residentKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
