package opsdash

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/samtemplate"
)

func loadRepo(t *testing.T) (*samtemplate.Template, *Code) {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	code, err := ScanCode(root)
	if err != nil {
		t.Fatal(err)
	}
	return tm, code
}

// TestTemplateNamesWhatTheCodeEmits is the metric-name test: every Coiflow
// metric of the dashboard and the alarms is in obs.MetricNames(), emitted by
// non-test code, with the dimension set the widget or alarm uses; AWS
// metrics point at the template's resources; the saved queries read the
// functions' log groups and use messages and fields the code logs.
func TestTemplateNamesWhatTheCodeEmits(t *testing.T) {
	tm, code := loadRepo(t)
	if len(code.Emissions) == 0 {
		t.Fatal("the scan found no metric emission in the code")
	}
	for _, p := range Check(tm, code, obs.MetricNames()) {
		t.Error(p)
	}
	if t.Failed() {
		var lines []string
		for _, e := range code.Emissions {
			lines = append(lines, e.Metric+" {"+strings.Join(e.Dims, ",")+"} at "+e.Pos)
		}
		t.Logf("emissions found in the code:\n%s", strings.Join(lines, "\n"))
	}
}

// TestEveryMetricNameIsEmitted keeps obs.MetricNames() honest: a name nothing
// emits is a dashboard trap.
func TestEveryMetricNameIsEmitted(t *testing.T) {
	_, code := loadRepo(t)
	for _, n := range obs.MetricNames() {
		if !code.Emitted(n) {
			t.Errorf("obs.MetricNames() lists %s, but no non-test code emits it", n)
		}
	}
}

// TestTemplateOperationsCoverage checks that the surface covers what issue 5
// asks for, and follows the template when functions, queues or tables are added.
func TestTemplateOperationsCoverage(t *testing.T) {
	tm, _ := loadRepo(t)
	s := ReadSurface(tm)
	for _, p := range s.Problems {
		t.Error(p)
	}
	var dash, alarms []MetricRef
	for _, m := range s.Metrics {
		if strings.HasPrefix(m.Where, "OperationsDashboard ") {
			dash = append(dash, m)
		} else {
			alarms = append(alarms, m)
		}
	}
	has := func(refs []MetricRef, ns, name string, match func(MetricRef) bool) bool {
		return slices.ContainsFunc(refs, func(r MetricRef) bool {
			return r.Namespace == ns && r.Name == name && (match == nil || match(r))
		})
	}
	dimIs := func(dim, kind, id string) func(MetricRef) bool {
		return func(r MetricRef) bool { return r.Dims[dim] == placeholder(kind, id) }
	}
	if _, ok := tm.Resources["OperationsDashboard"]; !ok {
		t.Fatal("no OperationsDashboard")
	}
	for _, n := range []string{obs.MetricCertificatesSent, obs.MetricHeld, obs.MetricApproved, obs.MetricRejected,
		obs.MetricSendFailed, obs.MetricSendUnknown, obs.MetricDuplicateSuppressed} {
		if !has(dash, "Coiflow", n, nil) {
			t.Errorf("the dashboard does not show %s", n)
		}
	}
	for _, p := range []string{"p50", "p95", "p99"} {
		if !has(dash, "Coiflow", obs.MetricEndToEndLatency, func(r MetricRef) bool { return r.Stat == p }) {
			t.Errorf("the dashboard does not show EndToEndLatency %s", p)
		}
	}
	if !has(dash, "Coiflow", obs.MetricWebhooksRejected, func(r MetricRef) bool { _, ok := r.Dims["Reason"]; return ok }) {
		t.Error("the dashboard does not show webhook rejects by Reason")
	}
	queues, err := tm.Queues()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		if q.DLQLogicalID == "" {
			continue
		}
		if !has(dash, "AWS/SQS", "ApproximateAgeOfOldestMessage", dimIs("QueueName", "queuename", q.LogicalID)) {
			t.Errorf("the dashboard does not show the age of %s", q.LogicalID)
		}
		if !has(dash, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dimIs("QueueName", "queuename", q.DLQLogicalID)) {
			t.Errorf("the dashboard does not show the depth of %s", q.DLQLogicalID)
		}
		if !has(alarms, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dimIs("QueueName", "queuename", q.DLQLogicalID)) {
			t.Errorf("no alarm on messages in %s", q.DLQLogicalID)
		}
	}
	for _, f := range tm.ResourcesOfType(samtemplate.TypeFunction) {
		for _, m := range []string{"Errors", "Throttles", "Duration"} {
			if !has(dash, "AWS/Lambda", m, dimIs("FunctionName", "ref", f.LogicalID)) {
				t.Errorf("the dashboard does not show %s of %s", m, f.LogicalID)
			}
		}
	}
	for _, tb := range tm.ResourcesOfType(samtemplate.TypeTable) {
		if !has(dash, "AWS/DynamoDB", "ConditionalCheckFailedRequests", dimIs("TableName", "ref", tb.LogicalID)) {
			t.Errorf("the dashboard does not show ConditionalCheckFailedRequests of %s", tb.LogicalID)
		}
	}
	for _, n := range []string{obs.MetricWebhooksAccepted, obs.MetricSendFailed, obs.MetricCertificatesSent, obs.MetricEndToEndLatency, obs.MetricSendUnknown} {
		if !has(alarms, "Coiflow", n, nil) {
			t.Errorf("no alarm watches %s", n)
		}
	}
	// Alarms name dimension values explicitly: a Source must be one the
	// webhook routes (event.Source), or the series stays empty.
	for _, a := range alarms {
		if v, ok := a.Dims["Source"]; ok && a.Namespace == "Coiflow" && !event.Source(v).Valid() {
			t.Errorf("%s: Source %q is not an event source", a.Where, v)
		}
	}
	for _, src := range []event.Source{event.SourceNowCerts, event.SourceCowbell} {
		if !has(alarms, "Coiflow", obs.MetricWebhooksAccepted, func(r MetricRef) bool { return r.Dims["Source"] == string(src) }) {
			t.Errorf("the no-webhook alarm does not count webhooks from %s", src)
		}
	}

	// Every alarm notifies the SNS topic and is on the dashboard.
	r := resolver(tm)
	for _, a := range tm.ResourcesOfType(TypeAlarm) {
		actions, err := r.Resolve(a.Properties["AlarmActions"])
		if err != nil {
			t.Errorf("%s: AlarmActions: %v", a.LogicalID, err)
			continue
		}
		ok := slices.ContainsFunc(asList(actions), func(x any) bool {
			s, _ := x.(string)
			id, isRef := fromPlaceholder(s, "ref")
			return isRef && tm.Resources[id].Type == "AWS::SNS::Topic"
		})
		if !ok {
			t.Errorf("%s: AlarmActions do not notify an SNS topic of the template", a.LogicalID)
		}
		if !slices.Contains(s.AlarmWidgetAlarms, a.LogicalID) {
			t.Errorf("%s is not on the dashboard's alarm widget", a.LogicalID)
		}
	}

	// The three saved queries.
	want := map[string]func(Query) bool{
		"who received certificate X": func(q Query) bool {
			f, m := queryTerms(q.Text)
			return slices.Contains(m, "certificate sent") && slices.Contains(f, "certificateId")
		},
		"everything sent to holder Y": func(q Query) bool {
			f, m := queryTerms(q.Text)
			return slices.Contains(m, "certificate sent") && slices.Contains(f, "holderId")
		},
		"holds in the last 7 days": func(q Query) bool {
			_, m := queryTerms(q.Text)
			return slices.Contains(m, "certificate held")
		},
	}
	for name, ok := range want {
		if !slices.ContainsFunc(s.Queries, func(q Query) bool { return strings.Contains(strings.ToLower(q.Name), strings.ToLower(name)) && ok(q) }) {
			t.Errorf("no saved query %q over the fields the code logs", name)
		}
	}

	// Log retention per stage.
	for stage, days := range map[string]int{"dev": 90, "prod": 3653} {
		rs := resolver(tm)
		rs.Parameters["Stage"] = stage
		for _, g := range tm.ResourcesOfType(TypeLogGroup) {
			got, err := rs.Int(g.Properties["RetentionInDays"])
			if err != nil || got != days {
				t.Errorf("%s in %s: RetentionInDays %d (%v), want %d", g.LogicalID, stage, got, err, days)
			}
		}
	}
}

const badTemplate = `
Parameters:
  Stage: {Type: String, Default: dev}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn/
      LoggingConfig: {LogGroup: !Ref FnLogs}
  Bare:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/bare/
  FnLogs:
    Type: AWS::Logs::LogGroup
    Properties: {RetentionInDays: 42}
  StrayLogs:
    Type: AWS::Logs::LogGroup
    Properties: {RetentionInDays: 90}
  Q:
    Type: AWS::SQS::Queue
  T:
    Type: AWS::DynamoDB::Table
  Topic:
    Type: AWS::SNS::Topic
  Dash:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardBody: !Sub |
        {"widgets": [
          {"type": "metric", "properties": {"title": "good", "region": "${AWS::Region}", "metrics": [
            ["Coiflow", "CertificatesSent", {"stat": "Sum"}],
            [{"expression": "SEARCH('{Coiflow,Reason,Source} MetricName=\"WebhooksRejected\"', 'Sum', 300)", "id": "good1"}],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "${Q.QueueName}"],
            ["AWS/Lambda", "Errors", "FunctionName", "${Fn}"],
            ["AWS/DynamoDB", "ConditionalCheckFailedRequests", "TableName", "${T}"]
          ]}},
          {"type": "metric", "properties": {"title": "bad", "region": "${AWS::Region}", "metrics": [
            ["Coiflow", "NoSuchMetric"],
            ["Coiflow", "Held"],
            ["Coiflow", "CertificatesSent", "Source", "nowcerts"],
            ["Coiflow", "WebhooksAccepted"],
            [{"expression": "SEARCH('{Coiflow,Reason} MetricName=\"WebhooksRejected\"', 'Sum', 300)", "id": "bad1"}],
            [{"expression": "SEARCH('Coiflow WebhooksRejected', 'Sum', 300)", "id": "bad2"}],
            [{"expression": "SEARCH('{Coiflow,Source}', 'Sum', 300)", "id": "bad3"}],
            ["CoiFlow", "CertificatesSent"],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${Q}"],
            ["AWS/Lambda", "Throttles", "FunctionName", "send-worker"],
            ["AWS/DynamoDB", "ConditionalCheckFailedRequests", "Table", "${T}"],
            ["AWS/SQS", "...", "QueueName", "x"],
            ["Coiflow"]
          ]}},
          {"type": "alarm", "properties": {"alarms": ["${Topic}"]}}
        ]}
  BadAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics:
        - Id: failed
          MetricStat:
            Metric:
              Namespace: Coiflow
              MetricName: SendFailed
              Dimensions: [{Name: Source, Value: nowcerts}]
            Period: 300
            Stat: Sum
        - Id: all
          Expression: SEARCH('{Coiflow,Source} MetricName="WebhooksAccepted"', 'Sum', 300)
  Query:
    Type: AWS::Logs::QueryDefinition
    Properties:
      Name: bad
      LogGroupNames: [!Ref StrayLogs, !Ref Q]
      QueryString: |
        # a comment naming msg = "ignored" and notAField
        fields @timestamp, certificateId, holderName, ` + "`reasons.0`" + `
        | filter msg in ["certificate sent", "no such message"] and certificateId = "X"
        | sort @timestamp desc
`

func TestCheckCatchesABadTemplate(t *testing.T) {
	tm, err := samtemplate.Parse([]byte(badTemplate))
	if err != nil {
		t.Fatal(err)
	}
	code := &Code{
		Emissions: []Emission{
			{Metric: obs.MetricCertificatesSent, Dims: []string{}, Pos: "send.go:1"},
			{Metric: obs.MetricSendFailed, Dims: []string{}, Pos: "send.go:2"},
			{Metric: obs.MetricWebhooksAccepted, Dims: []string{"Source"}, Pos: "webhook.go:1"},
			{Metric: obs.MetricWebhooksRejected, Dims: []string{"Reason", "Source"}, Pos: "webhook.go:2"},
		},
		LogStrings: map[string]bool{"certificate sent": true, "certificateId": true, "reasons": true},
		Problems:   []string{"x.go:9: Held is emitted with dimensions the scan cannot read"},
	}
	problems := Check(tm, code, obs.MetricNames())
	all := strings.Join(problems, "\n")
	for _, w := range []string{
		`Coiflow/NoSuchMetric: not in obs.MetricNames()`,
		`Coiflow/NoSuchMetric: no code emits it`,
		`Coiflow/Held: no code emits it`,
		`row 2: Coiflow/CertificatesSent: named with dimensions {Source}, but the code publishes it only with {}`,
		`Coiflow/WebhooksAccepted: named with dimensions {}, but the code publishes it only with {Source}`,
		`Coiflow/WebhooksRejected: named with dimensions {Reason}, but the code publishes it only with {Reason,Source}`,
		`SEARCH("Coiflow WebhooksRejected") has no {Namespace,Dimension,...} schema`,
		`SEARCH("{Coiflow,Source}") names no MetricName`,
		`CoiFlow/CertificatesSent: unknown namespace`,
		`AWS/SQS/ApproximateNumberOfMessagesVisible: QueueName "ref:Q" is not a AWS::SQS::Queue of the template (use !GetAtt X.QueueName)`,
		`AWS/Lambda/Throttles: FunctionName "send-worker" is not a`,
		`AWS/DynamoDB/ConditionalCheckFailedRequests: unexpected dimension Table`,
		`AWS/DynamoDB/ConditionalCheckFailedRequests: no TableName dimension`,
		`the "..." shorthand is not supported`,
		`row 12: want namespace, metric name`,
		`"ref:Topic" is not the ARN of an alarm`,
		`BadAlarm metric 0 (failed): Coiflow/SendFailed: named with dimensions {Source}, but the code publishes it only with {}`,
		`BadAlarm metric 1 (all): alarms cannot use SEARCH`,
		`Bare: LoggingConfig.LogGroup is not a !Ref`,
		`FnLogs: RetentionInDays 42 is not a retention CloudWatch Logs accepts`,
		`Query: log group "ref:Q" is not a log group of the template`,
		`Query: log group StrayLogs is no function's LoggingConfig.LogGroup`,
		`Query: filters on msg "no such message", which no log call writes`,
		`Query: uses field "holderName", which no log call writes`,
		`x.go:9: Held is emitted with dimensions the scan cannot read`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("Check did not report %q", w)
		}
	}
	for _, unwanted := range []string{`"good"`, "good1", `"ignored"`, "notAField", `"certificate sent"`, `"reasons"`, `"certificateId"`, `"X"`} {
		if strings.Contains(all, unwanted) {
			t.Errorf("Check flagged something correct (%s)", unwanted)
		}
	}
	if t.Failed() {
		t.Logf("Check reported:\n%s", all)
	}
}

func TestScanCode(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.26\n")
	write("internal/obs/names.go", `package obs
const (
	MetricA = "A"
	MetricB = "B"
	MetricC = "C"
	MetricD = "D"
	MetricE = "E"
	MetricF = "F"
	MetricG = "G"
	MetricT = "T"
)
`)
	write("internal/obs/emf.go", `package obs
func (m *Metrics) Count(name string, n float64, dims Dims) { m.Emit(name, n, "Count", dims) }
`)
	write("internal/a/a.go", `package a

import (
	"log/slog"

	o "example.com/m/internal/obs"
)

type W struct{ m *o.Metrics; log *slog.Logger }

func (w *W) Run(src string, d o.Dims) {
	w.m.Count(o.MetricA, 1, nil)
	w.m.Count(o.MetricB, 1, o.Dims{"Source": src, "Reason": "x"})
	w.m.Duration(o.MetricC, 0, o.Dims{"Operation": "send"})
	w.m.Emit(o.MetricD, 1, o.Count, nil)
	w.count(o.MetricE)
	w.forward(o.MetricF)
	w.m.Count(o.MetricG, 1, d)
	w.log.Info("certificate sent", "certificateId", "c1", slog.String("err", "x"))
}

func (w *W) count(name string) { w.m.Count(name, 1, nil) }

func (w *W) forward(metric string) { w.count(metric) }
`)
	// A Count/Duration call with a string literal in a file without obs is
	// another API (here the flag package), not a metric.
	write("cmd/tool/flags.go", `package main

import (
	"flag"
	"time"
)

func flags(fs *flag.FlagSet) { _ = fs.Duration("visibility", time.Minute, "how long") }
`)
	write("internal/a/a_test.go", `package a

func helper(w *W) { w.m.Count(o.MetricT, 1, nil) }
`)
	write("internal/a/testdata/x.go", `package x

func f(m *obs.Metrics) { m.Count(obs.MetricT, 1, nil) }
`)
	code, err := ScanCode(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range code.Emissions {
		got = append(got, e.Metric+"{"+strings.Join(e.Dims, ",")+"}@"+e.Pos)
	}
	want := []string{
		"A{}@internal/a/a.go:12",
		"B{Reason,Source}@internal/a/a.go:13",
		"C{Operation}@internal/a/a.go:14",
		"D{}@internal/a/a.go:15",
		"E{}@internal/a/a.go:16", // through count(name)
		"F{}@internal/a/a.go:17", // through forward(metric) -> count(name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("emissions:\n got %q\nwant %q", got, want)
	}
	if len(code.Problems) != 1 || !strings.Contains(code.Problems[0], "internal/a/a.go:18: G is emitted with dimensions the scan cannot read") {
		t.Errorf("problems: %q", code.Problems)
	}
	for _, s := range []string{"certificate sent", "certificateId", "err"} {
		if !code.LogStrings[s] {
			t.Errorf("log string %q not found", s)
		}
	}
	if code.Emitted("T") {
		t.Error("metrics emitted only by tests or testdata count as emitted")
	}
}

func TestPublishedDimensionSets(t *testing.T) {
	for _, keys := range [][]string{nil, {"Source"}, {"Reason", "Source"}} {
		sets, err := PublishedDimensionSets(keys)
		if err != nil {
			t.Fatal(err)
		}
		want := keys
		if want == nil {
			want = []string{}
		}
		if !slices.ContainsFunc(sets, func(s []string) bool { return slices.Equal(s, want) }) {
			t.Errorf("keys %q: obs publishes %q, without the set of the keys themselves", keys, sets)
		}
	}
}

func TestQueryTerms(t *testing.T) {
	q := "# who: msg = \"commented\" ignoredField\n" +
		"fields @timestamp, certificateId, `by`, reasons.0 # trailing comment\n" +
		"| filter msg = \"certificate sent\" and holderId = \"HOLDER #1\" and ispresent(sendId)\n" +
		"| filter msg in [\"a\", \"b \\\"q\\\"\"]\n" +
		"| stats count(*) by channel\n" +
		"| sort @timestamp desc | limit 10\n"
	fields, msgs := queryTerms(q)
	wantFields := []string{"certificateId", "by", "reasons", "msg", "holderId", "sendId", "channel"}
	if !slices.Equal(fields, wantFields) {
		t.Errorf("fields %q, want %q", fields, wantFields)
	}
	wantMsgs := []string{"certificate sent", "a", `b "q"`}
	if !slices.Equal(msgs, wantMsgs) {
		t.Errorf("msgs %q, want %q", msgs, wantMsgs)
	}
}
