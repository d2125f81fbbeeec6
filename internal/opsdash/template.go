package opsdash

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/coiflow/coiflow/internal/samtemplate"
)

// Resource types of the operations surface.
const (
	TypeDashboard       = "AWS::CloudWatch::Dashboard"
	TypeAlarm           = "AWS::CloudWatch::Alarm"
	TypeLogGroup        = "AWS::Logs::LogGroup"
	TypeQueryDefinition = "AWS::Logs::QueryDefinition"
)

// Surface is what the template's dashboards, alarms and saved queries name.
type Surface struct {
	Metrics []MetricRef
	// AlarmWidgetAlarms are the logical ids of the alarms shown by the
	// dashboards' alarm widgets.
	AlarmWidgetAlarms []string
	Queries           []Query
	// Problems are parts of the surface that could not be read.
	Problems []string
}

// Query is an AWS::Logs::QueryDefinition.
type Query struct {
	LogicalID string
	Name      string
	// LogGroups are the logical ids of the log groups it reads.
	LogGroups []string
	Text      string
}

// Placeholder physical values: every resource's Ref is "ref:<id>" and its
// attributes "<attr>:<id>", so resolved dimension values can be traced back
// to the resource they name.
func placeholder(kind, id string) string { return kind + ":" + id }

func fromPlaceholder(v, kind string) (string, bool) {
	return strings.CutPrefix(v, kind+":")
}

var placeholderAttrs = []string{"Arn", "QueueName", "QueueUrl", "Name"}

// resolver evaluates t against placeholder physical values; parameters
// without a default get "param:<name>".
func resolver(t *samtemplate.Template) *samtemplate.Resolver {
	phys := make(map[string]samtemplate.Physical, len(t.Resources))
	for id := range t.Resources {
		attrs := make(map[string]string, len(placeholderAttrs))
		for _, a := range placeholderAttrs {
			attrs[a] = placeholder(strings.ToLower(a), id)
		}
		phys[id] = samtemplate.Physical{Ref: placeholder("ref", id), Attrs: attrs}
	}
	r := samtemplate.NewResolver(t, phys)
	for name, p := range t.Parameters {
		if !p.HasDefault {
			r.Parameters[name] = placeholder("param", name)
		}
	}
	return r
}

// ReadSurface lists the metrics, alarm widgets and saved queries of t.
func ReadSurface(t *samtemplate.Template) *Surface {
	s := &Surface{}
	r := resolver(t)
	for _, res := range t.ResourcesOfType(TypeDashboard) {
		s.readDashboard(t, r, res)
	}
	for _, res := range t.ResourcesOfType(TypeAlarm) {
		s.readAlarm(r, res)
	}
	for _, res := range t.ResourcesOfType(TypeQueryDefinition) {
		s.readQuery(t, r, res)
	}
	return s
}

func (s *Surface) problem(format string, args ...any) {
	s.Problems = append(s.Problems, problemf(format, args...))
}

type widget struct {
	Type       string         `json:"type"`
	Properties map[string]any `json:"properties"`
}

func (s *Surface) readDashboard(t *samtemplate.Template, r *samtemplate.Resolver, res samtemplate.Resource) {
	body, err := r.String(res.Properties["DashboardBody"])
	if err != nil {
		s.problem("%s: DashboardBody does not resolve: %v", res.LogicalID, err)
		return
	}
	var doc struct {
		Widgets []widget `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		s.problem("%s: DashboardBody is not JSON after !Sub: %v", res.LogicalID, err)
		return
	}
	if len(doc.Widgets) == 0 {
		s.problem("%s: no widgets", res.LogicalID)
	}
	for i, w := range doc.Widgets {
		title, _ := w.Properties["title"].(string)
		where := fmt.Sprintf("%s widget %d %q", res.LogicalID, i, title)
		switch w.Type {
		case "metric":
			s.readMetricRows(where, w.Properties)
		case "alarm":
			for _, a := range asList(w.Properties["alarms"]) {
				arn, _ := a.(string)
				id, ok := fromPlaceholder(arn, "arn")
				if !ok || t.Resources[id].Type != TypeAlarm {
					s.problem("%s: %q is not the ARN of an alarm of the template (use ${Alarm.Arn})", where, arn)
					continue
				}
				s.AlarmWidgetAlarms = append(s.AlarmWidgetAlarms, id)
			}
		}
	}
}

// readMetricRows reads a metric widget's "metrics": rows of
// [namespace, name, dim, value, ..., {options}] (a "." repeats the previous
// row's value at that position) or [{"expression": ...}].
func (s *Surface) readMetricRows(where string, props map[string]any) {
	defaultStat, _ := props["stat"].(string)
	rows := asList(props["metrics"])
	if len(rows) == 0 {
		s.problem("%s: no metrics", where)
	}
	var prev []string
rows:
	for j, row := range rows {
		cells, ok := row.([]any)
		if !ok || len(cells) == 0 {
			s.problem("%s row %d: not a non-empty list", where, j)
			continue
		}
		if m, ok := cells[0].(map[string]any); ok && len(cells) == 1 {
			if expr, ok := m["expression"].(string); ok {
				s.readExpression(fmt.Sprintf("%s row %d", where, j), expr)
				continue
			}
			s.problem("%s row %d: an options object without a metric or an expression", where, j)
			continue
		}
		var strs []string
		var opts map[string]any
		for k, c := range cells {
			switch x := c.(type) {
			case string:
				switch {
				case x == "...":
					s.problem("%s row %d: the \"...\" shorthand is not supported here; spell the row out", where, j)
					continue rows
				case x == ".":
					if k >= len(prev) {
						s.problem("%s row %d: \".\" at position %d has no value above it", where, j, k)
						continue rows
					}
					x = prev[k]
				}
				strs = append(strs, x)
			case map[string]any:
				if k != len(cells)-1 {
					s.problem("%s row %d: options must come last", where, j)
					continue rows
				}
				opts = x
			default:
				s.problem("%s row %d: unexpected %T in a metric row", where, j, c)
				continue rows
			}
		}
		if len(strs) < 2 || len(strs)%2 != 0 {
			s.problem("%s row %d: want namespace, metric name, then dimension name/value pairs; got %q", where, j, strs)
			continue
		}
		prev = strs
		ref := MetricRef{Where: fmt.Sprintf("%s row %d", where, j), Namespace: strs[0], Name: strs[1], Dims: map[string]string{}, Stat: defaultStat}
		for k := 2; k+1 < len(strs); k += 2 {
			ref.Dims[strs[k]] = strs[k+1]
		}
		if st, ok := opts["stat"].(string); ok {
			ref.Stat = st
		}
		s.Metrics = append(s.Metrics, ref)
	}
}

var (
	searchRE     = regexp.MustCompile(`(?i)SEARCH\(\s*'([^']*)'\s*,\s*'([^']*)'`)
	schemaRE     = regexp.MustCompile(`^\s*\{([^}]*)\}`)
	metricNameRE = regexp.MustCompile(`MetricName\s*=\s*(?:"([^"]+)"|([A-Za-z0-9_.\-]+))`)
)

// readExpression records the metrics of the SEARCH calls in a metric math
// expression. Other expressions refer to rows by id and name no metric.
func (s *Surface) readExpression(where, expr string) {
	if strings.Contains(strings.ToUpper(expr), "SEARCH(") && !searchRE.MatchString(expr) {
		s.problem("%s: cannot read the SEARCH in %q", where, expr)
		return
	}
	for _, m := range searchRE.FindAllStringSubmatch(expr, -1) {
		query, stat := m[1], m[2]
		sm := schemaRE.FindStringSubmatch(query)
		if sm == nil {
			s.problem("%s: SEARCH(%q) has no {Namespace,Dimension,...} schema, so it cannot be checked", where, query)
			continue
		}
		var schema []string
		for _, p := range strings.Split(sm[1], ",") {
			schema = append(schema, strings.Trim(strings.TrimSpace(p), `"`))
		}
		names := metricNameRE.FindAllStringSubmatch(query[len(sm[0]):], -1)
		if len(names) == 0 {
			s.problem("%s: SEARCH(%q) names no MetricName=\"...\", so it cannot be checked", where, query)
			continue
		}
		for _, n := range names {
			ref := MetricRef{Where: where, Namespace: schema[0], Name: n[1] + n[2], Dims: map[string]string{}, Search: true, Stat: stat}
			for _, d := range schema[1:] {
				ref.Dims[d] = ""
			}
			s.Metrics = append(s.Metrics, ref)
		}
	}
}

func (s *Surface) readAlarm(r *samtemplate.Resolver, res samtemplate.Resource) {
	v, err := r.Resolve(res.Properties)
	if err != nil {
		s.problem("%s: properties do not resolve: %v", res.LogicalID, err)
		return
	}
	p, _ := v.(map[string]any)
	found := false
	if name, ok := p["MetricName"].(string); ok {
		found = true
		ns, _ := p["Namespace"].(string)
		stat, _ := p["Statistic"].(string)
		if stat == "" {
			stat, _ = p["ExtendedStatistic"].(string)
		}
		s.alarmMetric(res.LogicalID, ns, name, p["Dimensions"], stat)
	}
	for i, q := range asList(p["Metrics"]) {
		found = true
		m, _ := q.(map[string]any)
		id, _ := m["Id"].(string)
		where := fmt.Sprintf("%s metric %d (%s)", res.LogicalID, i, id)
		if expr, ok := m["Expression"].(string); ok {
			if strings.Contains(strings.ToUpper(expr), "SEARCH(") {
				s.problem("%s: alarms cannot use SEARCH; name the dimension combinations the code emits", where)
			}
			continue
		}
		ms, _ := m["MetricStat"].(map[string]any)
		metric, _ := ms["Metric"].(map[string]any)
		name, _ := metric["MetricName"].(string)
		if name == "" {
			s.problem("%s: neither an Expression nor a MetricStat with a MetricName", where)
			continue
		}
		ns, _ := metric["Namespace"].(string)
		stat, _ := ms["Stat"].(string)
		s.alarmMetric(where, ns, name, metric["Dimensions"], stat)
	}
	if !found {
		s.problem("%s: names no metric", res.LogicalID)
	}
}

func (s *Surface) alarmMetric(where, ns, name string, dims any, stat string) {
	ref := MetricRef{Where: where, Namespace: ns, Name: name, Dims: map[string]string{}, Stat: stat}
	for _, d := range asList(dims) {
		m, _ := d.(map[string]any)
		dn, _ := m["Name"].(string)
		dv, ok := m["Value"].(string)
		if dn == "" || !ok {
			s.problem("%s: dimension %v is not {Name, Value}", where, d)
			continue
		}
		ref.Dims[dn] = dv
	}
	s.Metrics = append(s.Metrics, ref)
}

func (s *Surface) readQuery(t *samtemplate.Template, r *samtemplate.Resolver, res samtemplate.Resource) {
	v, err := r.Resolve(res.Properties)
	if err != nil {
		s.problem("%s: properties do not resolve: %v", res.LogicalID, err)
		return
	}
	p, _ := v.(map[string]any)
	q := Query{LogicalID: res.LogicalID}
	q.Name, _ = p["Name"].(string)
	q.Text, _ = p["QueryString"].(string)
	for _, g := range asList(p["LogGroupNames"]) {
		name, _ := g.(string)
		id, ok := fromPlaceholder(name, "ref")
		if !ok || t.Resources[id].Type != TypeLogGroup {
			s.problem("%s: log group %q is not a log group of the template (use !Ref)", res.LogicalID, name)
			continue
		}
		q.LogGroups = append(q.LogGroups, id)
	}
	sort.Strings(q.LogGroups)
	s.Queries = append(s.Queries, q)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
