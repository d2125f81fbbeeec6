package samtemplate

import (
	"fmt"
	"sort"
	"strings"
)

// Resource types the views read.
const (
	TypeFunction = "AWS::Serverless::Function"
	TypeQueue    = "AWS::SQS::Queue"
	TypeTable    = "AWS::DynamoDB::Table"
	TypeSecret   = "AWS::SecretsManager::Secret"
)

// Function is an AWS::Serverless::Function with Globals.Function merged in.
// Values that may hold intrinsics (Timeout, Environment) stay raw: evaluate
// them with a Resolver.
type Function struct {
	LogicalID string
	CodeURI   string
	Handler   string
	Runtime   string
	// Timeout is the raw Timeout (a number, or e.g. {"Ref": "WorkerTimeoutSeconds"}); nil: 3 s (AWS default).
	Timeout     any
	MemorySize  any
	Environment map[string]any // variable -> raw value
	Policies    any
	SQSEvents   []SQSEvent
	HTTPEvents  []HTTPEvent
	// OtherEvents names events of other types (Schedule, ScheduleV2, ...) by event name -> type.
	OtherEvents map[string]string
	Metadata    map[string]any
}

// Dir is the base name of the function's CodeUri (functions/webhook/ -> webhook),
// the key of wire.Builders.
func (f Function) Dir() string {
	s := strings.TrimRight(f.CodeURI, "/")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// SQSEvent is an event source mapping from a queue.
type SQSEvent struct {
	Name string
	// Queue is the raw Queue property (usually {"Fn::GetAtt": [id, "Arn"]}).
	Queue any
	// QueueLogicalID is the queue's logical id when Queue refers to a resource of the template.
	QueueLogicalID        string
	BatchSize             int // default 10
	BatchingWindowSeconds int
	FunctionResponseTypes []string
	// MaximumConcurrency is ScalingConfig.MaximumConcurrency (0: unset).
	MaximumConcurrency int
	Enabled            bool
}

// ReportsBatchItemFailures tells whether the mapping uses partial batch responses.
func (e SQSEvent) ReportsBatchItemFailures() bool {
	for _, t := range e.FunctionResponseTypes {
		if t == "ReportBatchItemFailures" {
			return true
		}
	}
	return false
}

// HTTPEvent is an HttpApi (or Api) route.
type HTTPEvent struct {
	Name   string
	Type   string // HttpApi or Api
	Method string // upper case; ANY for any
	Path   string
	// Authorizer is Auth.Authorizer ("NONE" for a public route, "" for the API's default).
	Authorizer string
}

// Functions returns every function, sorted by logical id.
func (t *Template) Functions() ([]Function, error) {
	var out []Function
	for _, r := range t.ResourcesOfType(TypeFunction) {
		f, err := t.function(r)
		if err != nil {
			return nil, fmt.Errorf("samtemplate: function %s: %w", r.LogicalID, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// Function returns the function with the given logical id.
func (t *Template) Function(id string) (Function, error) {
	r, ok := t.Resources[id]
	if !ok || r.Type != TypeFunction {
		return Function{}, fmt.Errorf("samtemplate: no function %s", id)
	}
	f, err := t.function(r)
	if err != nil {
		return Function{}, fmt.Errorf("samtemplate: function %s: %w", id, err)
	}
	return f, nil
}

func (t *Template) function(r Resource) (Function, error) {
	g := t.Globals["Function"]
	prop := func(name string) any {
		if v, ok := r.Properties[name]; ok {
			return v
		}
		return g[name]
	}
	f := Function{LogicalID: r.LogicalID, Metadata: r.Metadata, Environment: map[string]any{}, OtherEvents: map[string]string{}}
	f.CodeURI, _ = prop("CodeUri").(string)
	f.Handler, _ = prop("Handler").(string)
	f.Runtime, _ = prop("Runtime").(string)
	f.Timeout = prop("Timeout")
	f.MemorySize = prop("MemorySize")
	f.Policies = r.Properties["Policies"]
	for _, src := range []map[string]any{g, r.Properties} {
		env, _ := src["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		for k, v := range vars {
			f.Environment[k] = v
		}
	}
	events, _ := r.Properties["Events"].(map[string]any)
	names := make([]string, 0, len(events))
	for name := range events {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ev, ok := events[name].(map[string]any)
		if !ok {
			return f, fmt.Errorf("event %s: not a mapping", name)
		}
		typ, _ := ev["Type"].(string)
		p, _ := ev["Properties"].(map[string]any)
		switch typ {
		case "SQS":
			e := SQSEvent{Name: name, Queue: p["Queue"], BatchSize: 10, Enabled: true}
			e.QueueLogicalID = refTarget(e.Queue)
			if v, ok := asInt(p["BatchSize"]); ok {
				e.BatchSize = v
			}
			if v, ok := asInt(p["MaximumBatchingWindowInSeconds"]); ok {
				e.BatchingWindowSeconds = v
			}
			if v, ok := p["Enabled"].(bool); ok {
				e.Enabled = v
			}
			if sc, ok := p["ScalingConfig"].(map[string]any); ok {
				e.MaximumConcurrency, _ = asInt(sc["MaximumConcurrency"])
			}
			for _, x := range asList(p["FunctionResponseTypes"]) {
				if s, ok := x.(string); ok {
					e.FunctionResponseTypes = append(e.FunctionResponseTypes, s)
				}
			}
			f.SQSEvents = append(f.SQSEvents, e)
		case "HttpApi", "Api":
			e := HTTPEvent{Name: name, Type: typ}
			m, _ := p["Method"].(string)
			e.Method = strings.ToUpper(m)
			if e.Method == "" || e.Method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
				e.Method = "ANY"
			}
			e.Path, _ = p["Path"].(string)
			if auth, ok := p["Auth"].(map[string]any); ok {
				e.Authorizer, _ = auth["Authorizer"].(string)
			}
			f.HTTPEvents = append(f.HTTPEvents, e)
		default:
			f.OtherEvents[name] = typ
		}
	}
	return f, nil
}

// Queue is an AWS::SQS::Queue.
type Queue struct {
	LogicalID  string
	Properties map[string]any
	// DLQLogicalID is the RedrivePolicy's deadLetterTargetArn when it refers
	// to a queue of the template ("" without a redrive policy).
	DLQLogicalID string
	// DeadLetterTarget is the raw deadLetterTargetArn (nil without redrive).
	DeadLetterTarget any
	MaxReceiveCount  int
}

// Queues returns every queue, sorted by logical id.
func (t *Template) Queues() ([]Queue, error) {
	var out []Queue
	for _, r := range t.ResourcesOfType(TypeQueue) {
		q, err := t.Queue(r.LogicalID)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// Queue returns the queue with the given logical id.
func (t *Template) Queue(id string) (Queue, error) {
	r, ok := t.Resources[id]
	if !ok || r.Type != TypeQueue {
		return Queue{}, fmt.Errorf("samtemplate: no queue %s", id)
	}
	q := Queue{LogicalID: id, Properties: r.Properties}
	if rp, ok := r.Properties["RedrivePolicy"].(map[string]any); ok {
		q.DeadLetterTarget = rp["deadLetterTargetArn"]
		q.DLQLogicalID = refTarget(q.DeadLetterTarget)
		if n, ok := asInt(rp["maxReceiveCount"]); ok {
			q.MaxReceiveCount = n
		} else {
			return Queue{}, fmt.Errorf("samtemplate: queue %s: RedrivePolicy.maxReceiveCount is not a number", id)
		}
	}
	return q, nil
}

// Table is an AWS::DynamoDB::Table.
type Table struct {
	LogicalID            string
	Properties           map[string]any
	BillingMode          string
	AttributeDefinitions []Attribute
	KeySchema            []Key
	GSIs                 []Index
	LSIs                 []Index
	TTLAttribute         string // "" when TTL is not enabled
	PITR                 bool
	SSE                  bool
	StreamViewType       string
}

// Attribute is an attribute definition (Type S, N or B).
type Attribute struct{ Name, Type string }

// Key is one key schema element (KeyType HASH or RANGE).
type Key struct{ Name, KeyType string }

// Index is a secondary index.
type Index struct {
	Name             string
	KeySchema        []Key
	ProjectionType   string
	NonKeyAttributes []string
}

// Tables returns every table, sorted by logical id.
func (t *Template) Tables() ([]Table, error) {
	var out []Table
	for _, r := range t.ResourcesOfType(TypeTable) {
		tb, err := t.Table(r.LogicalID)
		if err != nil {
			return nil, err
		}
		out = append(out, tb)
	}
	return out, nil
}

// Table returns the table with the given logical id.
func (t *Template) Table(id string) (Table, error) {
	r, ok := t.Resources[id]
	if !ok || r.Type != TypeTable {
		return Table{}, fmt.Errorf("samtemplate: no table %s", id)
	}
	p := r.Properties
	tb := Table{LogicalID: id, Properties: p}
	tb.BillingMode, _ = p["BillingMode"].(string)
	for _, x := range asList(p["AttributeDefinitions"]) {
		m, _ := x.(map[string]any)
		name, _ := m["AttributeName"].(string)
		typ, _ := m["AttributeType"].(string)
		if name == "" || typ == "" {
			return Table{}, fmt.Errorf("samtemplate: table %s: bad attribute definition %v", id, x)
		}
		tb.AttributeDefinitions = append(tb.AttributeDefinitions, Attribute{Name: name, Type: typ})
	}
	ks, err := keySchema(p["KeySchema"])
	if err != nil {
		return Table{}, fmt.Errorf("samtemplate: table %s: %w", id, err)
	}
	tb.KeySchema = ks
	for _, section := range []string{"GlobalSecondaryIndexes", "LocalSecondaryIndexes"} {
		for _, x := range asList(p[section]) {
			m, _ := x.(map[string]any)
			ix := Index{}
			ix.Name, _ = m["IndexName"].(string)
			if ix.KeySchema, err = keySchema(m["KeySchema"]); err != nil {
				return Table{}, fmt.Errorf("samtemplate: table %s index %s: %w", id, ix.Name, err)
			}
			proj, _ := m["Projection"].(map[string]any)
			ix.ProjectionType, _ = proj["ProjectionType"].(string)
			for _, a := range asList(proj["NonKeyAttributes"]) {
				if s, ok := a.(string); ok {
					ix.NonKeyAttributes = append(ix.NonKeyAttributes, s)
				}
			}
			if section == "GlobalSecondaryIndexes" {
				tb.GSIs = append(tb.GSIs, ix)
			} else {
				tb.LSIs = append(tb.LSIs, ix)
			}
		}
	}
	if ttl, ok := p["TimeToLiveSpecification"].(map[string]any); ok && ttl["Enabled"] == true {
		tb.TTLAttribute, _ = ttl["AttributeName"].(string)
	}
	if pitr, ok := p["PointInTimeRecoverySpecification"].(map[string]any); ok {
		tb.PITR = pitr["PointInTimeRecoveryEnabled"] == true
	}
	if sse, ok := p["SSESpecification"].(map[string]any); ok {
		tb.SSE = sse["SSEEnabled"] == true
	}
	if st, ok := p["StreamSpecification"].(map[string]any); ok {
		tb.StreamViewType, _ = st["StreamViewType"].(string)
	}
	return tb, nil
}

func keySchema(v any) ([]Key, error) {
	var out []Key
	for _, x := range asList(v) {
		m, _ := x.(map[string]any)
		name, _ := m["AttributeName"].(string)
		kt, _ := m["KeyType"].(string)
		if name == "" || (kt != "HASH" && kt != "RANGE") {
			return nil, fmt.Errorf("bad key schema element %v", x)
		}
		out = append(out, Key{Name: name, KeyType: kt})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty key schema")
	}
	return out, nil
}

// Secret is an AWS::SecretsManager::Secret.
type Secret struct {
	LogicalID string
	// SecretString is the literal initial value ("" when generated or absent).
	SecretString string
	// Template is GenerateSecretString.SecretStringTemplate ("" when absent).
	Template    string
	Description string
	Properties  map[string]any
}

// Secrets returns every secret, sorted by logical id.
func (t *Template) Secrets() []Secret {
	var out []Secret
	for _, r := range t.ResourcesOfType(TypeSecret) {
		s := Secret{LogicalID: r.LogicalID, Properties: r.Properties}
		s.SecretString, _ = r.Properties["SecretString"].(string)
		s.Description, _ = r.Properties["Description"].(string)
		if g, ok := r.Properties["GenerateSecretString"].(map[string]any); ok {
			s.Template, _ = g["SecretStringTemplate"].(string)
		}
		out = append(out, s)
	}
	return out
}

// refTarget returns the logical id that v ({"Ref": id} or {"Fn::GetAtt": [id, attr]}) points at.
func refTarget(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return ""
	}
	if s, ok := m["Ref"].(string); ok {
		return s
	}
	if l, ok := m["Fn::GetAtt"].([]any); ok && len(l) == 2 {
		s, _ := l[0].(string)
		return s
	}
	return ""
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		return int(x), true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	}
	return 0, false
}
