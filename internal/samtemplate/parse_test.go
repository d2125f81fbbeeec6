package samtemplate

import (
	"reflect"
	"strings"
	"testing"
)

const sample = `
Parameters:
  Stage: {Type: String, Default: dev}
  Timeout: {Type: Number, Default: 60}
  Audience: {Type: CommaDelimitedList, Default: "a, b"}
  NoDefault: {Type: String}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
Mappings:
  Sizes:
    dev: {Memory: 128}
    prod: {Memory: 1024}
Globals:
  Function:
    Timeout: 30
    Runtime: provided.al2023
    Environment:
      Variables:
        STAGE: !Ref Stage
        TABLE_NAME: !Ref Table
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: PK, AttributeType: S}
        - {AttributeName: G, AttributeType: N}
      KeySchema:
        - {AttributeName: PK, KeyType: HASH}
      GlobalSecondaryIndexes:
        - IndexName: ByG
          KeySchema: [{AttributeName: G, KeyType: HASH}]
          Projection: {ProjectionType: INCLUDE, NonKeyAttributes: [x]}
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
      PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
      SSESpecification: {SSEEnabled: true}
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref Timeout
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt [DLQ, Arn]
        maxReceiveCount: 4
  DLQ:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: go1.x}
    Properties:
      CodeUri: functions/fn/
      Handler: bootstrap
      Timeout: !Ref Timeout
      Environment:
        Variables:
          QUEUE_URL: !Ref Q
          QUEUE_ARN: !GetAtt Q.Arn
          SUB: !Sub "${Q.Arn}/x/${Stage}/${!Literal}/${AWS::Region}"
          SUB_LIST: !Sub ["${A}-${Stage}", {A: !Select [1, !Split [",", "p,q,r"]]}]
          JOINED: !Join ["-", [!Ref Stage, !If [IsProd, big, small]]]
          MAPPED: !FindInMap [Sizes, !Ref Stage, Memory]
          AUD: !Join [",", !Ref Audience]
          COND: !If [NotProd, yes, no]
          B64: !Base64 hi
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
        Hook:
          Type: HttpApi
          Properties: {Method: post, Path: "/h/{token}", Auth: {Authorizer: NONE}}
        Tick:
          Type: ScheduleV2
          Properties: {ScheduleExpression: rate(1 hour)}
  Secret:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString: {SecretStringTemplate: '{"a": 1}', GenerateStringKey: k}
`

func parseSample(t *testing.T) *Template {
	t.Helper()
	tm, err := Parse([]byte(sample))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tm
}

func TestShortFormsBecomeLongForms(t *testing.T) {
	tm := parseSample(t)
	fn := tm.Resources["Fn"].Properties
	vars := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	cases := map[string]any{
		"QUEUE_URL": map[string]any{"Ref": "Q"},
		"QUEUE_ARN": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
		"SUB":       map[string]any{"Fn::Sub": "${Q.Arn}/x/${Stage}/${!Literal}/${AWS::Region}"},
		"B64":       map[string]any{"Fn::Base64": "hi"},
	}
	for k, want := range cases {
		if got := vars[k]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
	q := tm.Resources["Q"].Properties["RedrivePolicy"].(map[string]any)
	if got := q["deadLetterTargetArn"]; !reflect.DeepEqual(got, map[string]any{"Fn::GetAtt": []any{"DLQ", "Arn"}}) {
		t.Errorf("list-form GetAtt = %#v", got)
	}
	if c := tm.Conditions["NotProd"]; !reflect.DeepEqual(c, map[string]any{"Fn::Not": []any{map[string]any{"Condition": "IsProd"}}}) {
		t.Errorf("condition = %#v", c)
	}
}

func TestFunctionViewMergesGlobals(t *testing.T) {
	tm := parseSample(t)
	f, err := tm.Function("Fn")
	if err != nil {
		t.Fatal(err)
	}
	if f.Dir() != "fn" || f.Runtime != "provided.al2023" || f.Handler != "bootstrap" {
		t.Errorf("function = %+v", f)
	}
	if _, ok := f.Environment["STAGE"]; !ok {
		t.Error("Globals environment not merged")
	}
	if !reflect.DeepEqual(f.Timeout, map[string]any{"Ref": "Timeout"}) {
		t.Errorf("Timeout = %#v: the function's own value must win over Globals", f.Timeout)
	}
	if len(f.SQSEvents) != 1 {
		t.Fatalf("SQS events = %+v", f.SQSEvents)
	}
	e := f.SQSEvents[0]
	if e.QueueLogicalID != "Q" || e.BatchSize != 5 || !e.ReportsBatchItemFailures() {
		t.Errorf("SQS event = %+v", e)
	}
	if len(f.HTTPEvents) != 1 || f.HTTPEvents[0].Method != "POST" || f.HTTPEvents[0].Path != "/h/{token}" || f.HTTPEvents[0].Authorizer != "NONE" {
		t.Errorf("HTTP events = %+v", f.HTTPEvents)
	}
	if f.OtherEvents["Tick"] != "ScheduleV2" {
		t.Errorf("other events = %v", f.OtherEvents)
	}
}

func TestQueueTableSecretViews(t *testing.T) {
	tm := parseSample(t)
	q, err := tm.Queue("Q")
	if err != nil {
		t.Fatal(err)
	}
	if q.DLQLogicalID != "DLQ" || q.MaxReceiveCount != 4 {
		t.Errorf("queue = %+v", q)
	}
	tb, err := tm.Table("Table")
	if err != nil {
		t.Fatal(err)
	}
	if tb.TTLAttribute != "ttl" || !tb.PITR || !tb.SSE || tb.BillingMode != "PAY_PER_REQUEST" {
		t.Errorf("table = %+v", tb)
	}
	if len(tb.GSIs) != 1 || tb.GSIs[0].ProjectionType != "INCLUDE" || !reflect.DeepEqual(tb.GSIs[0].NonKeyAttributes, []string{"x"}) {
		t.Errorf("GSIs = %+v", tb.GSIs)
	}
	if !reflect.DeepEqual(tb.AttributeDefinitions, []Attribute{{"PK", "S"}, {"G", "N"}}) {
		t.Errorf("attributes = %+v", tb.AttributeDefinitions)
	}
	s := tm.Secrets()
	if len(s) != 1 || s[0].Template != `{"a": 1}` {
		t.Errorf("secrets = %+v", s)
	}
}

func TestResolveEnvironment(t *testing.T) {
	tm := parseSample(t)
	r := NewResolver(tm, map[string]Physical{
		"Q":     {Ref: "http://q", Attrs: map[string]string{"Arn": "arn:q"}},
		"Table": {Ref: "tbl", Attrs: map[string]string{"Arn": "arn:t"}},
	})
	f, _ := tm.Function("Fn")
	env, err := r.StringMap(f.Environment)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	want := map[string]string{
		"STAGE":      "dev",
		"TABLE_NAME": "tbl",
		"QUEUE_URL":  "http://q",
		"QUEUE_ARN":  "arn:q",
		"SUB":        "arn:q/x/dev/${Literal}/us-east-1",
		"SUB_LIST":   "q-dev",
		"JOINED":     "dev-small",
		"MAPPED":     "128",
		"AUD":        "a,b",
		"COND":       "yes",
		"B64":        "aGk=",
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("env:\n got %v\nwant %v", env, want)
	}
	n, err := r.Int(f.Timeout)
	if err != nil || n != 60 {
		t.Errorf("Timeout = %d, %v; want 60 from the parameter default", n, err)
	}
	r.Parameters["Stage"] = "prod"
	r.Parameters["Timeout"] = "90"
	env, err = r.StringMap(f.Environment)
	if err != nil {
		t.Fatal(err)
	}
	if env["JOINED"] != "prod-big" || env["COND"] != "no" {
		t.Errorf("with Stage=prod: JOINED=%q COND=%q", env["JOINED"], env["COND"])
	}
	if n, _ := r.Int(f.Timeout); n != 90 {
		t.Errorf("Timeout override = %d", n)
	}
}

func TestResolveErrorsNameTheProblem(t *testing.T) {
	tm := parseSample(t)
	r := NewResolver(tm, nil)
	cases := map[string]any{
		"no physical value": map[string]any{"Ref": "Q"},
		"no default":        map[string]any{"Ref": "NoDefault"},
		"no such":           map[string]any{"Fn::GetAtt": []any{"Nope", "Arn"}},
		"not supported":     map[string]any{"Fn::ImportValue": "x"},
		"unclosed":          map[string]any{"Fn::Sub": "${Stage"},
	}
	for want, v := range cases {
		_, err := r.Resolve(v)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve(%v) = %v, want an error containing %q", v, err, want)
		}
	}
}

func TestParseRejectsBadTemplates(t *testing.T) {
	for _, src := range []string{"", "[]", "Resources: {A: {Properties: {}}}", "Resources: {A: {Type: X}}\nx: !GetAtt nodot"} {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("Parse(%q) succeeded", src)
		}
	}
}
