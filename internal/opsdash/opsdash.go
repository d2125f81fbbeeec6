// Package opsdash checks the operations surface of template.yaml — the
// CloudWatch dashboard, the alarms and the Logs Insights saved queries —
// against what the code really emits and logs, so that a widget or an alarm
// cannot silently watch a metric nothing publishes.
//
// CloudWatch matches a metric by namespace, name and its exact set of
// dimension names: an EMF record that carries {"Source": "cowbell"} publishes
// WebhooksAccepted{Source}, and a widget on WebhooksAccepted without
// dimensions shows nothing. So the check is about dimension sets, not just
// names:
//
//   - ReadSurface evaluates the template (DashboardBody's !Sub included,
//     against placeholder physical values) and lists every metric the
//     dashboard and the alarms name, with the dimension names they use
//     (explicitly, or through a SEARCH schema such as {Coiflow,Reason,Source}).
//   - ScanCode parses the Go source (not the tests) and lists every
//     obs.Metrics Count/Duration/Emit call whose metric is an obs.Metric*
//     constant, with the keys of its obs.Dims literal — following one level
//     of helper such as crmsync's count(name) — and the string literals given
//     to slog calls (messages and attribute keys).
//   - Check joins the two: each Coiflow metric must be in obs.MetricNames(),
//     be emitted by some call, and be emitted with the dimension set the
//     widget or alarm uses (the sets a call publishes are read from obs's own
//     EMF output, so a change to obs.Metrics.Emit is followed). AWS metrics
//     must point at resources of the template (a queue's QueueName, a
//     function's name, the table's name). The saved queries must read the
//     functions' log groups and filter on messages and fields the code logs.
package opsdash

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Namespace is the namespace of coiflow's own metrics (obs.Namespace).
const coiflowNamespace = "Coiflow"

// MetricRef is one metric named by a dashboard widget or an alarm.
type MetricRef struct {
	// Where tells which widget or alarm names it, for messages.
	Where     string
	Namespace string
	Name      string
	// Dims maps dimension names to values. For a SEARCH it holds the schema's
	// dimension names with empty values.
	Dims map[string]string
	// Search is true for a metric found through a SEARCH expression.
	Search bool
	// Stat is the statistic asked for ("" when the widget's default applies).
	Stat string
}

// DimNames returns the sorted dimension names of r.
func (r MetricRef) DimNames() []string {
	names := make([]string, 0, len(r.Dims))
	for k := range r.Dims {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Emission is one place in the code that emits a metric.
type Emission struct {
	Metric string
	// Dims are the sorted keys of the call's obs.Dims (empty for nil).
	Dims []string
	// Pos is file:line relative to the scanned root.
	Pos string
}

func formatSets(sets [][]string) string {
	parts := make([]string, 0, len(sets))
	for _, s := range sets {
		parts = append(parts, "{"+strings.Join(s, ",")+"}")
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	return strings.Join(parts, " ")
}

func problemf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
