package opsdash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/samtemplate"
)

// PublishedDimensionSets returns the dimension sets (each sorted) under which
// CloudWatch publishes a metric that obs.Metrics.Emit is given with the
// dimension keys keys. It runs Emit and reads its EMF record, so it follows
// obs: today one set, exactly keys.
func PublishedDimensionSets(keys []string) ([][]string, error) {
	const probe = "OpsdashProbe"
	var buf bytes.Buffer
	var dims obs.Dims
	if len(keys) > 0 {
		dims = obs.Dims{}
		for _, k := range keys {
			dims[k] = "v"
		}
	}
	obs.NewMetrics(&buf).Emit(probe, 1, obs.Count, dims)
	var rec struct {
		AWS struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name string }
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		return nil, fmt.Errorf("opsdash: obs wrote an EMF record that is not JSON: %w", err)
	}
	var out [][]string
	for _, d := range rec.AWS.CloudWatchMetrics {
		if d.Namespace != coiflowNamespace || !slices.ContainsFunc(d.Metrics, func(m struct{ Name string }) bool { return m.Name == probe }) {
			continue
		}
		for _, set := range d.Dimensions {
			s := slices.Clone(set)
			sort.Strings(s)
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("opsdash: obs's EMF record publishes %s in namespace %s under no dimension set: %s", probe, coiflowNamespace, buf.Bytes())
	}
	return out, nil
}

// Check returns every mismatch between t's operations surface and code:
// metrics nothing emits or emits with other dimensions, metric names not in
// known (obs.MetricNames()), AWS metrics not pointing at resources of the
// template, functions without their own log group, saved queries reading
// other log groups or filtering on messages and fields the code does not log.
func Check(t *samtemplate.Template, code *Code, known []string) []string {
	s := ReadSurface(t)
	problems := slices.Clone(s.Problems)
	problems = append(problems, code.Problems...)

	published := map[string][][]string{} // metric -> dimension sets
	cache := map[string][][]string{}
	for _, e := range code.Emissions {
		key := strings.Join(e.Dims, ",")
		sets, ok := cache[key]
		if !ok {
			var err error
			if sets, err = PublishedDimensionSets(e.Dims); err != nil {
				return append(problems, err.Error())
			}
			cache[key] = sets
		}
		published[e.Metric] = append(published[e.Metric], sets...)
	}
	for _, r := range s.Metrics {
		problems = append(problems, checkMetric(t, r, published, known)...)
	}
	problems = append(problems, checkLogs(t, s, code)...)
	return problems
}

func checkMetric(t *samtemplate.Template, r MetricRef, published map[string][][]string, known []string) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s/%s: ", r.Where, r.Namespace, r.Name)+fmt.Sprintf(format, args...))
	}
	switch {
	case r.Namespace == coiflowNamespace:
		if !slices.Contains(known, r.Name) {
			bad("not in obs.MetricNames()")
		}
		sets, emitted := published[r.Name]
		if !emitted {
			bad("no code emits it (no obs.Metrics Count/Duration/Emit call with this metric outside tests)")
			break
		}
		want := r.DimNames()
		if !slices.ContainsFunc(sets, func(s []string) bool { return slices.Equal(s, want) }) {
			bad("named with dimensions {%s}, but the code publishes it only with %s", strings.Join(want, ","), formatSets(sets))
		}
		if !r.Search {
			for k, v := range r.Dims {
				if v == "" {
					bad("dimension %s has an empty value", k)
				}
			}
		}
	case r.Search:
		// AWS metrics found by SEARCH: nothing of the template to point at.
	case r.Namespace == "AWS/SQS":
		out = append(out, pointsAt(t, r, "QueueName", "queuename", []string{samtemplate.TypeQueue})...)
	case r.Namespace == "AWS/Lambda":
		out = append(out, pointsAt(t, r, "FunctionName", "ref", []string{samtemplate.TypeFunction, "AWS::Lambda::Function"})...)
	case r.Namespace == "AWS/DynamoDB":
		out = append(out, pointsAt(t, r, "TableName", "ref", []string{samtemplate.TypeTable}, "Operation")...)
	case strings.HasPrefix(r.Namespace, "AWS/"):
		// Other AWS namespaces are not checked.
	default:
		bad("unknown namespace (coiflow's is %s)", coiflowNamespace)
	}
	return out
}

// pointsAt checks that an AWS metric's dimension dim names a resource of one
// of types (its placeholder value kind:<id>); optional dimensions may follow.
func pointsAt(t *samtemplate.Template, r MetricRef, dim, kind string, types []string, optional ...string) []string {
	var out []string
	for k := range r.Dims {
		if k != dim && !slices.Contains(optional, k) {
			out = append(out, fmt.Sprintf("%s: %s/%s: unexpected dimension %s", r.Where, r.Namespace, r.Name, k))
		}
	}
	v, ok := r.Dims[dim]
	if !ok {
		return append(out, fmt.Sprintf("%s: %s/%s: no %s dimension", r.Where, r.Namespace, r.Name, dim))
	}
	id, ok := fromPlaceholder(v, kind)
	if !ok || !slices.Contains(types, t.Resources[id].Type) {
		what := "!Ref"
		if kind != "ref" {
			what = "!GetAtt X." + dim
		}
		out = append(out, fmt.Sprintf("%s: %s/%s: %s %q is not a %s of the template (use %s)", r.Where, r.Namespace, r.Name, dim, v, strings.Join(types, " or "), what))
	}
	return out
}

// retentionDays are the values CloudWatch Logs accepts for RetentionInDays.
var retentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// slogBuiltins are the keys slog's JSON handler writes itself.
var slogBuiltins = map[string]bool{"time": true, "level": true, "msg": true}

func checkLogs(t *samtemplate.Template, s *Surface, code *Code) []string {
	var out []string
	r := resolver(t)
	fnGroups := map[string]bool{}
	for _, f := range t.ResourcesOfType(samtemplate.TypeFunction) {
		lc, _ := f.Properties["LoggingConfig"].(map[string]any)
		if lc == nil {
			lc, _ = t.Globals["Function"]["LoggingConfig"].(map[string]any)
		}
		ref, _ := lc["LogGroup"].(map[string]any)
		id, _ := ref["Ref"].(string)
		g, ok := t.Resources[id]
		if !ok || g.Type != TypeLogGroup {
			out = append(out, fmt.Sprintf("%s: LoggingConfig.LogGroup is not a !Ref to an %s of the template", f.LogicalID, TypeLogGroup))
			continue
		}
		fnGroups[id] = true
		switch days, err := r.Int(g.Properties["RetentionInDays"]); {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: RetentionInDays: %v", id, err))
		case !slices.Contains(retentionDays, days):
			out = append(out, fmt.Sprintf("%s: RetentionInDays %d is not a retention CloudWatch Logs accepts %v", id, days, retentionDays))
		}
	}
	for _, q := range s.Queries {
		if q.Text == "" {
			out = append(out, fmt.Sprintf("%s: empty QueryString", q.LogicalID))
		}
		if len(q.LogGroups) == 0 {
			out = append(out, fmt.Sprintf("%s: reads no log group", q.LogicalID))
		}
		for _, g := range q.LogGroups {
			if !fnGroups[g] {
				out = append(out, fmt.Sprintf("%s: log group %s is no function's LoggingConfig.LogGroup", q.LogicalID, g))
			}
		}
		fields, msgs := queryTerms(q.Text)
		for _, m := range msgs {
			if !code.LogStrings[m] {
				out = append(out, fmt.Sprintf("%s: filters on msg %q, which no log call writes", q.LogicalID, m))
			}
		}
		for _, f := range fields {
			if !slogBuiltins[f] && !code.LogStrings[f] {
				out = append(out, fmt.Sprintf("%s: uses field %q, which no log call writes", q.LogicalID, f))
			}
		}
	}
	return out
}

// queryKeywords are Logs Insights words that are not field names.
var queryKeywords = map[string]bool{
	"fields": true, "display": true, "filter": true, "stats": true, "sort": true, "limit": true,
	"parse": true, "dedup": true, "unmask": true, "pattern": true, "diff": true, "by": true, "as": true,
	"asc": true, "desc": true, "and": true, "or": true, "not": true, "in": true, "like": true,
}

var (
	msgEqRE = regexp.MustCompile(`\bmsg\s*=\s*"((?:[^"\\]|\\.)*)"`)
	msgInRE = regexp.MustCompile(`\bmsg\s+in\s*\[([^\]]*)\]`)
	quoteRE = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	identRE = regexp.MustCompile("`[^`]+`|@?[A-Za-z_][A-Za-z0-9_.]*\\s*\\(?")
)

// queryTerms returns the field names a Logs Insights query uses (base names:
// reasons.0 -> reasons) and the values it compares msg with.
func queryTerms(q string) (fields, msgs []string) {
	var code strings.Builder
	for _, line := range strings.Split(q, "\n") {
		code.WriteString(stripComment(line))
		code.WriteByte('\n')
	}
	text := code.String()
	for _, m := range msgEqRE.FindAllStringSubmatch(text, -1) {
		msgs = append(msgs, unescape(m[1]))
	}
	for _, m := range msgInRE.FindAllStringSubmatch(text, -1) {
		for _, s := range quoteRE.FindAllStringSubmatch(m[1], -1) {
			msgs = append(msgs, unescape(s[1]))
		}
	}
	bare := quoteRE.ReplaceAllString(text, `""`)
	seen := map[string]bool{}
	for _, tok := range identRE.FindAllString(bare, -1) {
		var name string
		switch {
		case strings.HasPrefix(tok, "`"):
			name = strings.Trim(tok, "`")
		case strings.HasSuffix(tok, "("), strings.HasPrefix(tok, "@"):
			continue // a function, or a field Logs Insights makes
		default:
			name = strings.TrimSpace(tok)
			if queryKeywords[strings.ToLower(name)] {
				continue
			}
		}
		base, _, _ := strings.Cut(name, ".")
		if base != "" && !seen[base] {
			seen[base] = true
			fields = append(fields, base)
		}
	}
	return fields, msgs
}

// stripComment drops a # comment that is not inside quotes.
func stripComment(line string) string {
	var quote rune
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '#':
			return line[:i]
		}
	}
	return line
}

func unescape(s string) string { return strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(s) }
