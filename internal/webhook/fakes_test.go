package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// In-memory stand-ins for the handler's ports (unit tests only; the adapters
// have their own integration tests against DynamoDB Local and moto).

type fakeCreds struct {
	bySource map[event.Source]Credentials
	err      error
}

func (f *fakeCreds) Credentials(_ context.Context, src event.Source) (Credentials, error) {
	if f.err != nil {
		return Credentials{}, f.err
	}
	return f.bySource[src], nil
}

type fakeQueue struct {
	mu   sync.Mutex
	jobs []jobs.Job
	err  error
}

func (f *fakeQueue) Enqueue(_ context.Context, js []jobs.Job) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.jobs = append(f.jobs, js...)
	return nil
}

func (f *fakeQueue) all() []jobs.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs)
}

type fakeQuarantine struct {
	mu      sync.Mutex
	records map[string]store.Quarantined
	err     error
}

func (f *fakeQuarantine) PutQuarantine(_ context.Context, q store.Quarantined) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	if f.records == nil {
		f.records = map[string]store.Quarantined{}
	}
	if _, ok := f.records[q.ID]; ok {
		return false, nil
	}
	f.records[q.ID] = q
	return true, nil
}

func (f *fakeQuarantine) all() map[string]store.Quarantined {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.records)
}

// recMetrics records counts as "Name{k=v,...}" → total.
type recMetrics struct {
	mu     sync.Mutex
	counts map[string]float64
}

func (m *recMetrics) Count(name string, n float64, dims obs.Dims) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]float64{}
	}
	m.counts[metricKey(name, dims)] += n
}

func (m *recMetrics) get(name string, dims obs.Dims) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[metricKey(name, dims)]
}

func metricKey(name string, dims obs.Dims) string {
	keys := slices.Sorted(maps.Keys(dims))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, dims[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}
