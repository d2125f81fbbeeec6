package obs

import (
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of every coiflow metric.
const Namespace = "Coiflow"

// Unit is a CloudWatch metric unit.
type Unit string

// Units used by coiflow.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
)

// Metrics writes CloudWatch EMF records, one JSON line per Emit, to w. It is safe
// for concurrent use.
type Metrics struct {
	mu  sync.Mutex
	w   io.Writer
	ns  string
	now func() time.Time
}

// NewMetrics returns a Metrics writing to w under Namespace.
func NewMetrics(w io.Writer) *Metrics { return &Metrics{w: w, ns: Namespace, now: time.Now} }

// Dims are metric dimensions (e.g. {"Source": "cowbell"}).
type Dims map[string]string

// Count emits a count metric with value n.
func (m *Metrics) Count(name string, n float64, dims Dims) { m.Emit(name, n, Count, dims) }

// Duration emits a latency metric in milliseconds.
func (m *Metrics) Duration(name string, d time.Duration, dims Dims) {
	m.Emit(name, float64(d.Microseconds())/1000, Milliseconds, dims)
}

// Emit writes one EMF record for a single metric. A nil *Metrics discards.
func (m *Metrics) Emit(name string, value float64, unit Unit, dims Dims) {
	if m == nil {
		return
	}
	keys := make([]string, 0, len(dims))
	rec := make(map[string]any, len(dims)+2)
	for k, v := range dims {
		keys = append(keys, k)
		rec[k] = v
	}
	slices.Sort(keys)
	rec[name] = value
	rec["_aws"] = map[string]any{
		"Timestamp": m.now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  m.ns,
			"Dimensions": [][]string{keys},
			"Metrics":    []any{map[string]any{"Name": name, "Unit": unit}},
		}},
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	b = append(b, '\n')
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.w.Write(b)
}
