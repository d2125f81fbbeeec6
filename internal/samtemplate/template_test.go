package samtemplate

// Checks over the repository's template.yaml: the rules of design.md and
// issue 2 that a template can break without cfn-lint noticing, and cfn-lint
// itself.

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/coiflow/coiflow/internal/local/tools"
)

func loadRepoTemplate(t *testing.T) (*Template, string) {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tm, root
}

func TestTemplateFunctionsHaveCode(t *testing.T) {
	tm, root := loadRepoTemplate(t)
	checkFunctionsHaveCode(t, tm, root)
}

func checkFunctionsHaveCode(t testing.TB, tm *Template, root string) {
	fns, err := tm.Functions()
	if err != nil {
		t.Error(err)
		return
	}
	if len(fns) == 0 {
		t.Error("template.yaml defines no functions")
	}
	for _, f := range fns {
		if f.CodeURI == "" {
			t.Errorf("%s: no CodeUri", f.LogicalID)
			continue
		}
		main := filepath.Join(root, filepath.FromSlash(f.CodeURI), "main.go")
		if _, err := os.Stat(main); err != nil {
			t.Errorf("%s: CodeUri %s has no main.go (%v)", f.LogicalID, f.CodeURI, err)
		}
		if f.Runtime != "provided.al2023" || f.Handler != "bootstrap" {
			t.Errorf("%s: runtime %q handler %q, want provided.al2023 / bootstrap", f.LogicalID, f.Runtime, f.Handler)
		}
		if bm, _ := f.Metadata["BuildMethod"].(string); bm == "" {
			t.Errorf("%s: no Metadata.BuildMethod (sam build needs one for provided.al2023)", f.LogicalID)
		}
	}
}

func TestTemplateQueuesAndConsumers(t *testing.T) {
	tm, root := loadRepoTemplate(t)
	checkQueuesAndConsumers(t, tm, root)
}

func checkQueuesAndConsumers(t testing.TB, tm *Template, root string) {
	fns, err := tm.Functions()
	if err != nil {
		t.Error(err)
		return
	}
	// Check the worst deployment the template allows: every Number parameter at
	// its MaxValue (a timeout parameter's default may satisfy 6x where its
	// maximum would not).
	r := NewResolver(tm, nil)
	for name, p := range tm.Parameters {
		if p.MaxValue != nil {
			r.Parameters[name] = fmt.Sprint(p.MaxValue)
		}
	}
	consumed := map[string]bool{}
	for _, f := range fns {
		timeout := 3
		if f.Timeout != nil {
			if timeout, err = r.Int(f.Timeout); err != nil {
				t.Errorf("%s: Timeout: %v", f.LogicalID, err)
				continue
			}
		}
		for _, e := range f.SQSEvents {
			if !e.ReportsBatchItemFailures() {
				t.Errorf("%s event %s: FunctionResponseTypes lacks ReportBatchItemFailures", f.LogicalID, e.Name)
			}
			if e.QueueLogicalID == "" {
				t.Errorf("%s event %s: Queue %v is not a queue of the template", f.LogicalID, e.Name, e.Queue)
				continue
			}
			consumed[e.QueueLogicalID] = true
			q, err := tm.Queue(e.QueueLogicalID)
			if err != nil {
				t.Errorf("%s event %s: %v", f.LogicalID, e.Name, err)
				continue
			}
			if q.DLQLogicalID == "" {
				t.Errorf("queue %s (consumed by %s) has no RedrivePolicy to a DLQ of the template", q.LogicalID, f.LogicalID)
			} else if _, err := tm.Queue(q.DLQLogicalID); err != nil {
				t.Errorf("queue %s: dead-letter target: %v", q.LogicalID, err)
			}
			if q.MaxReceiveCount < 1 {
				t.Errorf("queue %s: maxReceiveCount %d", q.LogicalID, q.MaxReceiveCount)
			}
			vt := 30 // SQS default
			if v, ok := q.Properties["VisibilityTimeout"]; ok {
				if vt, err = r.Int(v); err != nil {
					t.Errorf("queue %s VisibilityTimeout: %v", q.LogicalID, err)
					continue
				}
			}
			if vt < 6*timeout {
				t.Errorf("queue %s: VisibilityTimeout %d < 6 × %s's timeout %d", q.LogicalID, vt, f.LogicalID, timeout)
			}
		}
	}
	queues, err := tm.Queues()
	if err != nil {
		t.Error(err)
		return
	}
	isDLQ := map[string]bool{}
	for _, q := range queues {
		if q.DLQLogicalID != "" {
			isDLQ[q.DLQLogicalID] = true
		}
	}
	for _, q := range queues {
		if sse, _ := q.Properties["SqsManagedSseEnabled"].(bool); !sse && q.Properties["KmsMasterKeyId"] == nil {
			t.Errorf("queue %s: no server-side encryption", q.LogicalID)
		}
		if !consumed[q.LogicalID] && !isDLQ[q.LogicalID] {
			t.Errorf("queue %s is neither consumed by a function nor a DLQ", q.LogicalID)
		}
	}
}

func TestTemplateTables(t *testing.T) {
	tm, root := loadRepoTemplate(t)
	checkTables(t, tm, root)
}

func checkTables(t testing.TB, tm *Template, root string) {
	tables, err := tm.Tables()
	if err != nil {
		t.Error(err)
		return
	}
	if len(tables) == 0 {
		t.Error("template.yaml defines no table")
	}
	for _, tb := range tables {
		if tb.BillingMode != "PAY_PER_REQUEST" {
			t.Errorf("table %s: BillingMode %q, want PAY_PER_REQUEST", tb.LogicalID, tb.BillingMode)
		}
		if tb.TTLAttribute == "" {
			t.Errorf("table %s: TTL not enabled", tb.LogicalID)
		}
		if !tb.PITR {
			t.Errorf("table %s: point-in-time recovery not enabled", tb.LogicalID)
		}
		if !tb.SSE {
			t.Errorf("table %s: SSE not enabled", tb.LogicalID)
		}
		defined := map[string]bool{}
		for _, a := range tb.AttributeDefinitions {
			defined[a.Name] = true
		}
		used := map[string]bool{}
		for _, ks := range append([][]Key{tb.KeySchema}, indexKeys(tb)...) {
			for _, k := range ks {
				used[k.Name] = true
				if !defined[k.Name] {
					t.Errorf("table %s: key %s has no attribute definition", tb.LogicalID, k.Name)
				}
			}
		}
		for name := range defined {
			if !used[name] {
				t.Errorf("table %s: attribute %s is defined but not a key (CloudFormation rejects it)", tb.LogicalID, name)
			}
		}
	}
}

func indexKeys(tb Table) [][]Key {
	var out [][]Key
	for _, ix := range append(append([]Index{}, tb.GSIs...), tb.LSIs...) {
		out = append(out, ix.KeySchema)
	}
	return out
}

// dataActionPrefixes are the services whose data must not be granted on
// every resource.
var dataActionPrefixes = []string{"dynamodb:", "sqs:", "secretsmanager:"}

func TestTemplateNoWildcardResourceOnDataActions(t *testing.T) {
	tm, root := loadRepoTemplate(t)
	checkNoWildcardResourceOnDataActions(t, tm, root)
}

func checkNoWildcardResourceOnDataActions(t testing.TB, tm *Template, root string) {
	for id, res := range tm.Resources {
		var docs []any
		switch res.Type {
		case TypeFunction:
			for _, p := range asList(res.Properties["Policies"]) {
				switch x := p.(type) {
				case string:
					if strings.Contains(x, "FullAccess") {
						t.Errorf("%s: managed policy %s grants every resource", id, x)
					}
				case map[string]any:
					if _, ok := x["Statement"]; ok {
						docs = append(docs, x)
					}
				}
			}
			if s, ok := res.Properties["Policies"].(string); ok && strings.Contains(s, "FullAccess") {
				t.Errorf("%s: managed policy %s grants every resource", id, s)
			}
		case "AWS::IAM::Role":
			for _, p := range asList(res.Properties["Policies"]) {
				if m, ok := p.(map[string]any); ok {
					docs = append(docs, m["PolicyDocument"])
				}
			}
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			docs = append(docs, res.Properties["PolicyDocument"])
		}
		for _, d := range docs {
			doc, _ := d.(map[string]any)
			for i, st := range asList(doc["Statement"]) {
				s, _ := st.(map[string]any)
				if s["Effect"] == "Deny" {
					continue
				}
				actions := stringsOf(s["Action"])
				var data []string
				for _, a := range actions {
					if a == "*" {
						data = append(data, a)
					}
					for _, p := range dataActionPrefixes {
						if strings.HasPrefix(strings.ToLower(a), p) {
							data = append(data, a)
						}
					}
				}
				if len(data) == 0 {
					continue
				}
				if s["Resource"] == nil {
					t.Errorf("%s statement %d: %v without Resource", id, i, data)
				}
				for _, r := range asListOrOne(s["Resource"]) {
					if rs, ok := r.(string); ok && (rs == "*" || strings.HasSuffix(rs, ":*")) {
						t.Errorf("%s statement %d: %v on Resource %q", id, i, data, rs)
					}
				}
			}
		}
	}
}

func stringsOf(v any) []string {
	var out []string
	for _, x := range asListOrOne(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asListOrOne(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// requiredEnv is each function's configuration per the team brief (by the
// base name of its CodeUri).
var requiredEnv = map[string][]string{
	"webhook":          {"STAGE", "LOG_LEVEL", "TABLE_NAME", "CRM_QUEUE_URL", "SEND_QUEUE_URL", "WEBHOOK_SECRET_ARN"},
	"api":              {"STAGE", "LOG_LEVEL", "TABLE_NAME", "STAFF_AUTH", "SEND_QUEUE_URL", "NOWCERTS_SECRET_ARN", "NOWCERTS_BASE_URL"},
	"send-worker":      {"STAGE", "LOG_LEVEL", "TABLE_NAME", "NOWCERTS_SECRET_ARN", "NOWCERTS_BASE_URL", "CRM_QUEUE_URL"},
	"crm-worker":       {"STAGE", "LOG_LEVEL", "TABLE_NAME", "CRM_KIND", "CRM_BASE_URL", "CRM_SECRET_ARN"},
	"token-refresher":  {"STAGE", "LOG_LEVEL", "NOWCERTS_SECRET_ARN", "NOWCERTS_BASE_URL"},
	"backlog-reporter": {"STAGE", "LOG_LEVEL", "TABLE_NAME"},
}

// optionalEnv are variables the code may read that the template does not
// set on purpose: optional overrides and local-only settings.
var optionalEnv = map[string]bool{
	"HUBSPOT_BASE_URL": true, "SALESFORCE_BASE_URL": true, "CRM_UPSERT_URL": true,
	"STAFF_SECRET_ARN":  true,                            // local bearer tokens (STAFF_AUTH=token)
	"NOWCERTS_USERNAME": true, "NOWCERTS_PASSWORD": true, // local seeding only
}

func TestTemplateFunctionEnvironment(t *testing.T) {
	tm, root := loadRepoTemplate(t)
	checkFunctionEnvironment(t, tm, root)
}

func checkFunctionEnvironment(t testing.TB, tm *Template, root string) {
	fns, err := tm.Functions()
	if err != nil {
		t.Error(err)
		return
	}
	inTemplate := map[string]bool{}
	for _, f := range fns {
		for k := range f.Environment {
			inTemplate[k] = true
		}
		want, known := requiredEnv[f.Dir()]
		if !known {
			t.Errorf("%s (%s): not in this test's list of functions; add its configuration to requiredEnv", f.LogicalID, f.Dir())
			continue
		}
		for _, k := range want {
			if _, ok := f.Environment[k]; !ok {
				t.Errorf("%s: environment lacks %s", f.LogicalID, k)
			}
		}
	}
	// Every configuration variable the Go code reads must be set by some
	// function in the template (or be a known optional one).
	read, err := envReadByCode(root)
	if err != nil {
		t.Error(err)
		return
	}
	for name, where := range read {
		if !inTemplate[name] && !optionalEnv[name] {
			t.Errorf("%s is read by %s but no function's environment in template.yaml sets it", name, strings.Join(where, ", "))
		}
	}
	// A function's own builder (internal/wire/<dir without dashes>.go) may
	// read only what that function's environment sets.
	for _, f := range fns {
		own := filepath.Join("internal", "wire", strings.ReplaceAll(f.Dir(), "-", "")+".go")
		for name, where := range read {
			if slices.Contains(where, own) && !optionalEnv[name] {
				if _, ok := f.Environment[name]; !ok {
					t.Errorf("%s reads %s but %s's environment in template.yaml does not set it", own, name, f.LogicalID)
				}
			}
		}
	}
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// envReadByCode finds configuration variables read in the non-test Go code
// of functions/ and internal/ (except internal/local, the local stack's own
// settings): string-literal arguments of Getenv, LookupEnv, Require, Or and
// calls of an Env value. It maps each variable to the files (relative to
// root) that read it.
// envReadByCode finds the configuration variables read by the code the Lambda
// functions actually link: the module's packages in `go list -deps
// ./functions/...` (CLI-only and local-stack packages are not deployed, so what
// they read is not the template's business).
func envReadByCode(root string) (map[string][]string, error) {
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if eq .Module.Path "github.com/coiflow/coiflow"}}{{.Dir}}|{{join .GoFiles ","}}{{end}}{{end}}`,
		"./functions/...")
	cmd.Dir = root
	listed, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list the functions' packages: %w", err)
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	for line := range strings.Lines(string(listed)) {
		dir, files, ok := strings.Cut(strings.TrimSpace(line), "|")
		if !ok || files == "" {
			continue
		}
		for _, name := range strings.Split(files, ",") {
			path := filepath.Join(dir, name)
			rel, _ := filepath.Rel(root, path)
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", rel, err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				var fn string
				switch x := call.Fun.(type) {
				case *ast.SelectorExpr:
					fn = x.Sel.Name
				case *ast.Ident:
					fn = x.Name
				}
				switch fn {
				case "Getenv", "LookupEnv", "Require", "Or", "Env", "env", "getenv":
				default:
					return true
				}
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				name, err := strconv.Unquote(lit.Value)
				if err != nil || !envName.MatchString(name) || strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "COIFLOW_") || strings.HasPrefix(name, "_") {
					return true
				}
				if !slices.Contains(out[name], rel) {
					out[name] = append(out[name], rel)
				}
				return true
			})
		}
	}
	return out, nil
}

func TestCfnLint(t *testing.T) {
	_, root := loadRepoTemplate(t)
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is missing: it comes with the machine image (pip package cfn-lint) and cannot be installed from the registries here")
	}
	cmd := exec.Command(bin, "template.yaml")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run cfn-lint: %v", err)
	}
	// cfn-lint's exit code is a bit set: 2 errors, 4 warnings, 8 informational;
	// anything else (1, 32) is a failure to lint.
	if code&^(4|8) != 0 {
		t.Fatalf("cfn-lint template.yaml exited %d:\n%s", code, out)
	}
	if len(out) > 0 {
		t.Logf("cfn-lint warnings:\n%s", out)
	}
}

func TestTemplateOutputsResolve(t *testing.T) {
	tm, root := loadRepoTemplate(t)
	checkOutputsResolve(t, tm, root)
}

func checkOutputsResolve(t testing.TB, tm *Template, root string) {
	// Every Ref/GetAtt/Sub in the template names something that exists.
	var bad []string
	var walk func(where string, v any)
	check := func(where, id string) {
		if strings.HasPrefix(id, "AWS::") {
			return
		}
		if _, ok := tm.Resources[id]; ok {
			return
		}
		if _, ok := tm.Parameters[id]; ok {
			return
		}
		bad = append(bad, where+": "+id)
	}
	walk = func(where string, v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(where, e)
			}
		case map[string]any:
			if len(x) == 1 {
				if s, ok := x["Ref"].(string); ok {
					check(where, s)
					return
				}
				if l, ok := x["Fn::GetAtt"].([]any); ok && len(l) > 0 {
					if s, ok := l[0].(string); ok {
						check(where, s)
					}
					return
				}
				if s, ok := x["Fn::Sub"].(string); ok {
					for _, m := range regexp.MustCompile(`\$\{([^!}][^}]*)\}`).FindAllStringSubmatch(s, -1) {
						id, _, _ := strings.Cut(m[1], ".")
						check(where, id)
					}
					return
				}
			}
			for k, e := range x {
				walk(where+"."+k, e)
			}
		}
	}
	for id, r := range tm.Resources {
		walk(id, r.Properties)
	}
	for k, v := range tm.Globals {
		walk("Globals."+k, v)
	}
	walk("Outputs", tm.Outputs)
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("reference to nothing: %s", b)
	}
}

// recorder collects what a check reports, to prove the checks catch bad templates.
type recorder struct {
	testing.TB
	problems []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any) { r.problems = append(r.problems, fmt.Sprint(args...)) }
func (r *recorder) Helper()           {}

const badTemplate = `
Parameters:
  WorkerTimeoutSeconds: {Type: Number, Default: 10, MaxValue: 100}
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/nope/
      Runtime: go1.x
      Handler: main
      Timeout: !Ref WorkerTimeoutSeconds
      Environment: {Variables: {X: !Ref Missing}}
      Policies:
        - AmazonDynamoDBFullAccess
        - Statement:
            - Effect: Allow
              Action: [dynamodb:PutItem, logs:PutLogEvents]
              Resource: "*"
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: [!GetAtt Q.Arn, "arn:aws:sqs:us-east-1:1:*"]
            - Effect: Allow
              Action: xray:PutTraceSegments
              Resource: "*"
      Events:
        Jobs:
          Type: SQS
          Properties: {Queue: !GetAtt Q.Arn, BatchSize: 10}
  Q:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 120}
  Orphan:
    Type: AWS::SQS::Queue
    Properties: {SqsManagedSseEnabled: true}
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PROVISIONED
      AttributeDefinitions: [{AttributeName: PK, AttributeType: S}, {AttributeName: Extra, AttributeType: S}]
      KeySchema: [{AttributeName: PK, KeyType: HASH}, {AttributeName: SK, KeyType: RANGE}]
`

func TestChecksCatchABadTemplate(t *testing.T) {
	tm, err := Parse([]byte(badTemplate))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	want := map[string][]string{
		"FunctionsHaveCode": {"has no main.go", "provided.al2023", "BuildMethod"},
		"QueuesAndConsumers": {
			"lacks ReportBatchItemFailures", "queue Q (consumed by Worker) has no RedrivePolicy",
			"VisibilityTimeout 120 < 6 × Worker's timeout 100", "queue Q: no server-side encryption",
			"queue Orphan is neither consumed",
		},
		"Tables": {"BillingMode \"PROVISIONED\"", "TTL not enabled", "point-in-time", "SSE not enabled",
			"key SK has no attribute definition", "attribute Extra is defined but not a key"},
		"NoWildcardResourceOnDataActions": {"AmazonDynamoDBFullAccess", `[dynamodb:PutItem] on Resource "*"`, `arn:aws:sqs:us-east-1:1:*`},
		"FunctionEnvironment":             {"not in this test's list of functions"},
		"OutputsResolve":                  {"reference to nothing: Worker.Environment.Variables.X: Missing"},
	}
	checks := map[string]func(testing.TB, *Template, string){
		"FunctionsHaveCode":               checkFunctionsHaveCode,
		"QueuesAndConsumers":              checkQueuesAndConsumers,
		"Tables":                          checkTables,
		"NoWildcardResourceOnDataActions": checkNoWildcardResourceOnDataActions,
		"FunctionEnvironment":             checkFunctionEnvironment,
		"OutputsResolve":                  checkOutputsResolve,
	}
	for name, check := range checks {
		rec := &recorder{TB: t}
		check(rec, tm, root)
		all := strings.Join(rec.problems, "\n")
		for _, w := range want[name] {
			if !strings.Contains(all, w) {
				t.Errorf("check %s did not report %q; it reported:\n%s", name, w, all)
			}
		}
		if strings.Contains(all, "xray") {
			t.Errorf("check %s flagged a non-data action on *:\n%s", name, all)
		}
	}
}
