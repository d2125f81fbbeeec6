// Package provision creates a template's tables, queues and secrets on the
// local stack (DynamoDB Local, moto) from template.yaml's own definitions, seeds
// the secrets for local use, and computes each function's environment.
//
// Use (with a running services.Stack st):
//
//	t, _ := samtemplate.Load("template.yaml")
//	res, err := provision.Provision(ctx, t, provision.NewClients(st.AWSConfig()), provision.Options{
//		Prefix:     "coiflow-local",
//		Seed:       true,
//		Parameters: map[string]string{"NowCertsBaseUrl": sandboxURL},
//		AWSEnv:     st.Environ(),
//	})
//	fn, _ := t.Function("WebhookFunction")
//	env, err := res.FunctionEnv(fn)      // TABLE_NAME, CRM_QUEUE_URL, ... + AWS_*
//	res.Local.WebhookTokens["cowbell"][0] // "local-cowbell-token"
//
// The building blocks (CreateTable, CreateQueue, CreateSecret) serve tests that
// want one resource with a unique name. Everything is idempotent: running it
// again against the same stack reuses what exists (seeded secrets keep their
// values).
package provision

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/samtemplate"
)

// Clients are the AWS clients provisioning uses. Set SecretsManager to nil
// when the stack has none (services.Stack.RequireSecretsManager fails, i.e.
// moto_server is missing): provisioning secrets then fails with an error
// naming moto_server instead of a connection error.
type Clients struct {
	DynamoDB       *dynamodb.Client
	SQS            *sqs.Client
	SecretsManager *secretsmanager.Client
}

// NewClients builds the three clients from one configuration.
func NewClients(cfg aws.Config) Clients {
	return Clients{
		DynamoDB:       dynamodb.NewFromConfig(cfg),
		SQS:            sqs.NewFromConfig(cfg),
		SecretsManager: secretsmanager.NewFromConfig(cfg),
	}
}

// CreateTable creates table name from a template table definition (keys,
// GSIs, LSIs, billing mode, stream; then TTL), or reuses it when it exists.
// It returns the table's physical value (Ref: name; Arn, StreamArn).
func CreateTable(ctx context.Context, db *dynamodb.Client, tbl samtemplate.Table, name string) (samtemplate.Physical, error) {
	in := &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: ddbtypes.BillingModePayPerRequest}
	if tbl.BillingMode == string(ddbtypes.BillingModeProvisioned) {
		in.BillingMode = ddbtypes.BillingModeProvisioned
		in.ProvisionedThroughput = &ddbtypes.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(5), WriteCapacityUnits: aws.Int64(5)}
	}
	for _, a := range tbl.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
			AttributeName: aws.String(a.Name), AttributeType: ddbtypes.ScalarAttributeType(a.Type),
		})
	}
	in.KeySchema = keys(tbl.KeySchema)
	for _, ix := range tbl.GSIs {
		g := ddbtypes.GlobalSecondaryIndex{IndexName: aws.String(ix.Name), KeySchema: keys(ix.KeySchema), Projection: projection(ix)}
		if in.ProvisionedThroughput != nil {
			g.ProvisionedThroughput = in.ProvisionedThroughput
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, g)
	}
	for _, ix := range tbl.LSIs {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, ddbtypes.LocalSecondaryIndex{
			IndexName: aws.String(ix.Name), KeySchema: keys(ix.KeySchema), Projection: projection(ix),
		})
	}
	if tbl.StreamViewType != "" {
		in.StreamSpecification = &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewType(tbl.StreamViewType)}
	}
	if tbl.SSE {
		// DynamoDB Local accepts and ignores it; kept so the request matches AWS.
		in.SSESpecification = &ddbtypes.SSESpecification{Enabled: aws.Bool(true)}
	}
	_, err := db.CreateTable(ctx, in)
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return samtemplate.Physical{}, fmt.Errorf("provision: create table %s: %w", name, err)
	}
	desc, err := waitActive(ctx, db, name)
	if err != nil {
		return samtemplate.Physical{}, err
	}
	if tbl.TTLAttribute != "" {
		if err := enableTTL(ctx, db, name, tbl.TTLAttribute); err != nil {
			return samtemplate.Physical{}, err
		}
	}
	ph := samtemplate.Physical{Ref: name, Attrs: map[string]string{"Arn": aws.ToString(desc.TableArn)}}
	if desc.LatestStreamArn != nil {
		ph.Attrs["StreamArn"] = aws.ToString(desc.LatestStreamArn)
	}
	return ph, nil
}

func keys(ks []samtemplate.Key) []ddbtypes.KeySchemaElement {
	out := make([]ddbtypes.KeySchemaElement, len(ks))
	for i, k := range ks {
		out[i] = ddbtypes.KeySchemaElement{AttributeName: aws.String(k.Name), KeyType: ddbtypes.KeyType(k.KeyType)}
	}
	return out
}

func projection(ix samtemplate.Index) *ddbtypes.Projection {
	p := &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(ix.ProjectionType)}
	if p.ProjectionType == "" {
		p.ProjectionType = ddbtypes.ProjectionTypeKeysOnly
	}
	if len(ix.NonKeyAttributes) > 0 {
		p.NonKeyAttributes = ix.NonKeyAttributes
	}
	return p
}

func waitActive(ctx context.Context, db *dynamodb.Client, name string) (*ddbtypes.TableDescription, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("provision: describe table %s: %w", name, err)
		}
		if out.Table.TableStatus == ddbtypes.TableStatusActive {
			return out.Table, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("provision: table %s is %s after 30s", name, out.Table.TableStatus)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("provision: table %s: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func enableTTL(ctx context.Context, db *dynamodb.Client, name, attr string) error {
	cur, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err == nil && cur.TimeToLiveDescription != nil &&
		cur.TimeToLiveDescription.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabled &&
		aws.ToString(cur.TimeToLiveDescription.AttributeName) == attr {
		return nil
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(attr), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("provision: enable TTL on %s.%s: %w", name, attr, err)
	}
	return nil
}

// DeleteTable deletes a table (no error when it is already gone).
func DeleteTable(ctx context.Context, db *dynamodb.Client, name string) error {
	_, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	var nf *ddbtypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("provision: delete table %s: %w", name, err)
	}
	return nil
}

// QueueAttributes maps a template queue's properties to SQS attributes,
// resolving intrinsics (the RedrivePolicy's target must resolve to an ARN, so
// its queue must already be in r.Resources).
func QueueAttributes(q samtemplate.Queue, r *samtemplate.Resolver) (map[string]string, error) {
	attrs := map[string]string{}
	for _, name := range []string{"VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
		"ReceiveMessageWaitTimeSeconds", "FifoQueue", "ContentBasedDeduplication", "SqsManagedSseEnabled",
		"KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "DeduplicationScope", "FifoThroughputLimit"} {
		v, ok := q.Properties[name]
		if !ok {
			continue
		}
		s, err := r.String(v)
		if err != nil {
			return nil, fmt.Errorf("provision: queue %s %s: %w", q.LogicalID, name, err)
		}
		attrs[name] = s
	}
	if q.DeadLetterTarget != nil {
		arn, err := r.String(q.DeadLetterTarget)
		if err != nil {
			return nil, fmt.Errorf("provision: queue %s dead-letter target: %w", q.LogicalID, err)
		}
		attrs["RedrivePolicy"] = RedrivePolicy(arn, q.MaxReceiveCount)
	}
	return attrs, nil
}

// RedrivePolicy is the RedrivePolicy attribute value for a DLQ ARN.
func RedrivePolicy(dlqARN string, maxReceiveCount int) string {
	b, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqARN, "maxReceiveCount": strconv.Itoa(maxReceiveCount)})
	return string(b)
}

// CreateQueue creates queue name with attrs, or reuses it (setting attrs) when
// it exists. It returns the physical value (Ref: URL; Arn, QueueName, QueueUrl).
func CreateQueue(ctx context.Context, c *sqs.Client, name string, attrs map[string]string) (samtemplate.Physical, error) {
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	var url string
	if err != nil {
		var exists *sqstypes.QueueNameExists
		if !errors.As(err, &exists) && !strings.Contains(err.Error(), "QueueAlreadyExists") {
			return samtemplate.Physical{}, fmt.Errorf("provision: create queue %s: %w", name, err)
		}
		got, gerr := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if gerr != nil {
			return samtemplate.Physical{}, fmt.Errorf("provision: queue %s exists but: %w", name, gerr)
		}
		url = aws.ToString(got.QueueUrl)
		if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: attrs}); err != nil {
			return samtemplate.Physical{}, fmt.Errorf("provision: update queue %s: %w", name, err)
		}
	} else {
		url = aws.ToString(out.QueueUrl)
	}
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return samtemplate.Physical{}, fmt.Errorf("provision: queue %s ARN: %w", name, err)
	}
	arn := a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		return samtemplate.Physical{}, fmt.Errorf("provision: queue %s has no QueueArn attribute", name)
	}
	return samtemplate.Physical{Ref: url, Attrs: map[string]string{"Arn": arn, "QueueName": name, "QueueUrl": url}}, nil
}

// DeleteQueue deletes a queue by URL (no error when it is already gone).
func DeleteQueue(ctx context.Context, c *sqs.Client, url string) error {
	_, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	var nf *sqstypes.QueueDoesNotExist
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("provision: delete queue %s: %w", url, err)
	}
	return nil
}

// CreateSecret creates secret name with value. When it exists and replace is
// false, it keeps the stored value; with replace it stores value as the new
// current version. It returns the physical value (Ref and Arn: the ARN) and
// the secret's current value.
func CreateSecret(ctx context.Context, c *secretsmanager.Client, name, value string, replace bool) (samtemplate.Physical, string, error) {
	if c == nil {
		return samtemplate.Physical{}, "", fmt.Errorf("provision: secret %s: Secrets Manager is unavailable (moto_server is missing)", name)
	}
	out, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	if err == nil {
		arn := aws.ToString(out.ARN)
		return samtemplate.Physical{Ref: arn, Attrs: map[string]string{"Arn": arn, "Id": arn}}, value, nil
	}
	var exists *smtypes.ResourceExistsException
	if !errors.As(err, &exists) {
		return samtemplate.Physical{}, "", fmt.Errorf("provision: create secret %s: %w", name, err)
	}
	if replace {
		if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)}); err != nil {
			return samtemplate.Physical{}, "", fmt.Errorf("provision: update secret %s: %w", name, err)
		}
	}
	cur, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		return samtemplate.Physical{}, "", fmt.Errorf("provision: read secret %s: %w", name, err)
	}
	arn := aws.ToString(cur.ARN)
	return samtemplate.Physical{Ref: arn, Attrs: map[string]string{"Arn": arn, "Id": arn}}, aws.ToString(cur.SecretString), nil
}

// DeleteSecret deletes a secret at once (no recovery window).
func DeleteSecret(ctx context.Context, c *secretsmanager.Client, arn string) error {
	_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(arn), ForceDeleteWithoutRecovery: aws.Bool(true)})
	var nf *smtypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("provision: delete secret %s: %w", arn, err)
	}
	return nil
}

// Options configure Provision.
type Options struct {
	// Prefix starts every physical name (default "coiflow-local"): tables
	// "<prefix>-<LogicalId>", queues "<prefix>-<LogicalId>", secrets
	// "<prefix>/<LogicalId>".
	Prefix string
	// Parameters override template parameter defaults (e.g. NowCertsBaseUrl).
	Parameters map[string]string
	// Seed writes local values into the secrets (webhook tokens, sandbox
	// credentials) and creates the local staff secret. Without it secrets get
	// the template's initial values.
	Seed bool
	// AWSEnv ("KEY=value", e.g. services.Stack.Environ()) is added to every
	// FunctionEnv.
	AWSEnv []string
	// Getenv reads NOWCERTS_USERNAME / NOWCERTS_PASSWORD for the seed
	// (default os.Getenv).
	Getenv func(string) string
}

// Result is what Provision created.
type Result struct {
	// Resources maps logical ids to physical values (the resolver's input).
	// The local staff secret appears as StaffSecretID.
	Resources map[string]samtemplate.Physical
	// Resolver evaluates template values against Resources and Parameters.
	Resolver *samtemplate.Resolver
	// Local holds the seeded values (zero without Seed).
	Local Local

	awsEnv map[string]string
}

// Local are the seeded local credentials.
type Local struct {
	// WebhookTokens by source ("nowcerts", "cowbell"): the first is the fixed
	// local token, the second a random one (rotation).
	WebhookTokens map[string][]string
	// StaffToken is a bearer token for the staff API (STAFF_AUTH=token).
	StaffToken string
	// StaffSecretARN is the local-only staff secret ({"tokens": [...]}).
	StaffSecretARN string
}

// StaffSecretID is the logical id under which Result.Resources holds the
// local-only staff secret (not part of template.yaml).
const StaffSecretID = "LocalStaffSecret"

// Fixed local webhook tokens (the first of each source's two).
const (
	LocalNowCertsToken = "local-nowcerts-token"
	LocalCowbellToken  = "local-cowbell-token"
)

// Sandbox credentials seeded into the NowCerts and CRM secrets; the local
// sandboxes accept them (the NowCerts ones are the sandbox's own defaults).
const (
	SandboxNowCertsUsername = nowcertssandbox.DefaultUsername
	SandboxNowCertsPassword = nowcertssandbox.DefaultPassword
	SandboxHubSpotToken     = crmsandbox.DefaultToken
	SandboxHTTPToken        = "sandbox-http-token"
	SandboxSalesforceID     = "sandbox-salesforce-client"
	SandboxSalesforceSecret = "sandbox-salesforce-secret"
)

// Provision creates every table, queue (DLQs first) and secret of t.
func Provision(ctx context.Context, t *samtemplate.Template, c Clients, o Options) (*Result, error) {
	if o.Prefix == "" {
		o.Prefix = "coiflow-local"
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	r := samtemplate.NewResolver(t, nil)
	for k, v := range o.Parameters {
		r.Parameters[k] = v
	}
	res := &Result{Resources: r.Resources, Resolver: r, awsEnv: map[string]string{}}
	for _, kv := range o.AWSEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			res.awsEnv[k] = v
		}
	}

	tables, err := t.Tables()
	if err != nil {
		return nil, err
	}
	for _, tb := range tables {
		ph, err := CreateTable(ctx, c.DynamoDB, tb, o.Prefix+"-"+tb.LogicalID)
		if err != nil {
			return nil, err
		}
		r.Resources[tb.LogicalID] = ph
	}

	queues, err := t.Queues()
	if err != nil {
		return nil, err
	}
	if err := createQueues(ctx, c.SQS, queues, r, o.Prefix); err != nil {
		return nil, err
	}

	if err := provisionSecrets(ctx, t, c, o, res); err != nil {
		return nil, err
	}
	return res, nil
}

// createQueues creates queues whose dead-letter targets exist before the
// queues that use them.
func createQueues(ctx context.Context, c *sqs.Client, queues []samtemplate.Queue, r *samtemplate.Resolver, prefix string) error {
	pending := append([]samtemplate.Queue(nil), queues...)
	for len(pending) > 0 {
		var next []samtemplate.Queue
		for _, q := range pending {
			if q.DLQLogicalID != "" {
				if _, ready := r.Resources[q.DLQLogicalID]; !ready {
					next = append(next, q)
					continue
				}
			}
			attrs, err := QueueAttributes(q, r)
			if err != nil {
				return err
			}
			name := prefix + "-" + q.LogicalID
			if fifo := attrs["FifoQueue"]; fifo == "true" {
				name += ".fifo"
			}
			ph, err := CreateQueue(ctx, c, name, attrs)
			if err != nil {
				return err
			}
			r.Resources[q.LogicalID] = ph
		}
		if len(next) == len(pending) {
			ids := make([]string, len(next))
			for i, q := range next {
				ids[i] = q.LogicalID + "->" + q.DLQLogicalID
			}
			return fmt.Errorf("provision: queues with dead-letter targets that are not queues of the template: %s", strings.Join(ids, ", "))
		}
		pending = next
	}
	return nil
}

func provisionSecrets(ctx context.Context, t *samtemplate.Template, c Clients, o Options, res *Result) error {
	secrets := t.Secrets()
	if len(secrets) == 0 && !o.Seed {
		return nil
	}
	if c.SecretsManager == nil {
		return fmt.Errorf("provision: the template has %d secrets but Secrets Manager is unavailable (moto_server is missing)", len(secrets))
	}
	for _, s := range secrets {
		value, err := initialValue(s)
		if err != nil {
			return err
		}
		if o.Seed {
			if seeded, ok, err := seedValue(s.LogicalID, o); err != nil {
				return err
			} else if ok {
				value = seeded
			}
		}
		ph, cur, err := CreateSecret(ctx, c.SecretsManager, o.Prefix+"/"+s.LogicalID, value, false)
		if err != nil {
			return err
		}
		res.Resources[s.LogicalID] = ph
		if o.Seed && s.LogicalID == "WebhookSecret" {
			res.Local.WebhookTokens = webhookTokens(cur)
		}
	}
	if !o.Seed {
		return nil
	}
	staff, err := json.Marshal(map[string][]string{"tokens": {"local-staff-" + randomToken()}})
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	ph, cur, err := CreateSecret(ctx, c.SecretsManager, o.Prefix+"/"+StaffSecretID, string(staff), false)
	if err != nil {
		return err
	}
	res.Resources[StaffSecretID] = ph
	res.Local.StaffSecretARN = ph.Ref
	var st struct {
		Tokens []string `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(cur), &st); err != nil || len(st.Tokens) == 0 {
		return fmt.Errorf("provision: staff secret %s holds no tokens", ph.Ref)
	}
	res.Local.StaffToken = st.Tokens[0]
	return nil
}

// initialValue is the secret's value as CloudFormation would create it.
func initialValue(s samtemplate.Secret) (string, error) {
	if s.SecretString != "" {
		return s.SecretString, nil
	}
	g, ok := s.Properties["GenerateSecretString"].(map[string]any)
	if !ok {
		return randomToken(), nil
	}
	key, _ := g["GenerateStringKey"].(string)
	if s.Template == "" || key == "" {
		return randomToken(), nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s.Template), &m); err != nil {
		return "", fmt.Errorf("provision: secret %s: SecretStringTemplate is not JSON: %w", s.LogicalID, err)
	}
	m[key] = randomToken()
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("provision: secret %s: %w", s.LogicalID, err)
	}
	return string(b), nil
}

// seedValue returns the local value of a template secret, by logical id.
func seedValue(id string, o Options) (string, bool, error) {
	var v any
	switch id {
	case "WebhookSecret":
		src := func(fixed string) map[string]any {
			return map[string]any{"tokens": []string{fixed, "local-" + randomToken()}, "signingSecrets": []string{}, "agencyIds": []string{}}
		}
		v = map[string]any{"nowcerts": src(LocalNowCertsToken), "cowbell": src(LocalCowbellToken)}
	case "NowCertsSecret":
		user, pass := o.Getenv("NOWCERTS_USERNAME"), o.Getenv("NOWCERTS_PASSWORD")
		if user == "" || pass == "" {
			user, pass = SandboxNowCertsUsername, SandboxNowCertsPassword
		}
		v = map[string]string{"username": user, "password": pass, "clientId": "ngAuthApp"}
	case "CrmSecret":
		v = map[string]string{
			"hubspotToken":           SandboxHubSpotToken,
			"httpToken":              SandboxHTTPToken,
			"salesforceClientId":     SandboxSalesforceID,
			"salesforceClientSecret": SandboxSalesforceSecret,
		}
	default:
		return "", false, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false, fmt.Errorf("provision: seed %s: %w", id, err)
	}
	return string(b), true, nil
}

func webhookTokens(secret string) map[string][]string {
	var m map[string]struct {
		Tokens []string `json:"tokens"`
	}
	out := map[string][]string{}
	if json.Unmarshal([]byte(secret), &m) != nil {
		return out
	}
	for src, v := range m {
		out[src] = v.Tokens
	}
	return out
}

// FunctionEnv returns fn's environment: the AWS variables from
// Options.AWSEnv, then the template's variables (Globals merged) resolved
// against the provisioned resources. With a seeded staff secret, a function
// whose template sets STAFF_AUTH gets STAFF_AUTH=token and STAFF_SECRET_ARN
// (staff use bearer tokens locally instead of the JWT authorizer).
func (r *Result) FunctionEnv(fn samtemplate.Function) (map[string]string, error) {
	env, err := r.Resolver.StringMap(fn.Environment)
	if err != nil {
		return nil, fmt.Errorf("provision: environment of %s: %w", fn.LogicalID, err)
	}
	for k, v := range r.awsEnv {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	if _, ok := env["STAFF_AUTH"]; ok && r.Local.StaffSecretARN != "" {
		env["STAFF_AUTH"] = "token"
		env["STAFF_SECRET_ARN"] = r.Local.StaffSecretARN
	}
	return env, nil
}

// Environ formats an environment map as sorted "KEY=value" strings.
func Environ(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// randomToken is 128 bits from crypto/rand, lower-case base32.
func randomToken() string { return strings.ToLower(rand.Text()) }
