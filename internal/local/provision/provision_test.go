package provision_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/local/provision"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/local/tools"
	"github.com/coiflow/coiflow/internal/samtemplate"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

func repoTemplate(t *testing.T) *samtemplate.Template {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func provisionAll(t *testing.T, env *testenv.Env, tm *samtemplate.Template, prefix string) *provision.Result {
	t.Helper()
	res, err := provision.Provision(context.Background(), tm, provision.NewClients(env.AWS), provision.Options{
		Prefix:     prefix,
		Seed:       true,
		Parameters: map[string]string{"NowCertsBaseUrl": "http://127.0.0.1:9999"},
		AWSEnv:     env.Environ(),
		Getenv:     func(string) string { return "" },
	})
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return res
}

func TestProvisionTemplate(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	tm := repoTemplate(t)
	prefix := testenv.UniqueName(t, 40)
	res := provisionAll(t, env, tm, prefix)

	// Table from the template, with its GSIs.
	tbl := res.Resources["CoiflowTable"]
	if tbl.Ref != prefix+"-CoiflowTable" || !strings.HasPrefix(tbl.Attrs["Arn"], "arn:aws:dynamodb:") {
		t.Errorf("table physical value %+v", tbl)
	}
	d, err := env.DynamoDB().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tbl.Ref)})
	if err != nil {
		t.Fatalf("DescribeTable: %v", err)
	}
	if len(d.Table.GlobalSecondaryIndexes) != 2 {
		t.Errorf("table has %d GSIs, want 2", len(d.Table.GlobalSecondaryIndexes))
	}

	// Queues with their template attributes and redrive to their DLQs.
	for _, pair := range [][2]string{{"CrmJobsQueue", "CrmJobsDLQ"}, {"SendJobsQueue", "SendJobsDLQ"}} {
		q, dlq := res.Resources[pair[0]], res.Resources[pair[1]]
		a, err := env.SQS().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(q.Ref), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("%s attributes: %v", pair[0], err)
		}
		if a.Attributes["VisibilityTimeout"] != "360" {
			t.Errorf("%s VisibilityTimeout = %q, want 360 from the template", pair[0], a.Attributes["VisibilityTimeout"])
		}
		var rp struct {
			Target string `json:"deadLetterTargetArn"`
			Max    any    `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(a.Attributes["RedrivePolicy"]), &rp); err != nil {
			t.Fatalf("%s RedrivePolicy %q: %v", pair[0], a.Attributes["RedrivePolicy"], err)
		}
		if rp.Target != dlq.Attrs["Arn"] || !strings.Contains(strings.Trim(jsonString(rp.Max), `"`), "5") {
			t.Errorf("%s RedrivePolicy = %+v, want %s after 5", pair[0], rp, dlq.Attrs["Arn"])
		}
	}

	// Seeded secrets.
	if got := res.Local.WebhookTokens["cowbell"]; len(got) != 2 || got[0] != provision.LocalCowbellToken || got[1] == "" {
		t.Errorf("cowbell tokens = %v", got)
	}
	if got := res.Local.WebhookTokens["nowcerts"]; len(got) != 2 || got[0] != provision.LocalNowCertsToken {
		t.Errorf("nowcerts tokens = %v", got)
	}
	if res.Local.StaffToken == "" || res.Local.StaffSecretARN == "" {
		t.Errorf("staff = %+v", res.Local)
	}
	nc, err := env.SecretsManager().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(res.Resources["NowCertsSecret"].Ref)})
	if err != nil {
		t.Fatalf("NowCerts secret: %v", err)
	}
	var creds map[string]string
	if err := json.Unmarshal([]byte(aws.ToString(nc.SecretString)), &creds); err != nil || creds["username"] != provision.SandboxNowCertsUsername || creds["clientId"] != "ngAuthApp" {
		t.Errorf("NowCerts secret = %s (%v)", aws.ToString(nc.SecretString), err)
	}

	// Every function's environment resolves.
	fns, err := tm.Functions()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		fenv, err := res.FunctionEnv(fn)
		if err != nil {
			t.Errorf("FunctionEnv(%s): %v", fn.LogicalID, err)
			continue
		}
		if fenv["TABLE_NAME"] != tbl.Ref || fenv["AWS_REGION"] != "us-east-1" || fenv["AWS_ENDPOINT_URL_DYNAMODB"] != env.DynamoDBEndpoint {
			t.Errorf("%s env: TABLE_NAME=%q AWS_REGION=%q endpoint=%q", fn.LogicalID, fenv["TABLE_NAME"], fenv["AWS_REGION"], fenv["AWS_ENDPOINT_URL_DYNAMODB"])
		}
		if v, ok := fenv["CRM_QUEUE_URL"]; ok && v != res.Resources["CrmJobsQueue"].Ref {
			t.Errorf("%s CRM_QUEUE_URL = %q", fn.LogicalID, v)
		}
		if v, ok := fenv["NOWCERTS_BASE_URL"]; ok && v != "http://127.0.0.1:9999" {
			t.Errorf("%s NOWCERTS_BASE_URL = %q, want the parameter override", fn.LogicalID, v)
		}
		if _, ok := fenv["STAFF_AUTH"]; ok && (fenv["STAFF_AUTH"] != "token" || fenv["STAFF_SECRET_ARN"] != res.Local.StaffSecretARN) {
			t.Errorf("%s STAFF_AUTH=%q STAFF_SECRET_ARN=%q, want token and the local staff secret", fn.LogicalID, fenv["STAFF_AUTH"], fenv["STAFF_SECRET_ARN"])
		}
	}

	// Idempotent: a second run reuses everything and keeps seeded values.
	again := provisionAll(t, env, tm, prefix)
	for id, ph := range res.Resources {
		if again.Resources[id].Ref != ph.Ref {
			t.Errorf("second run: %s = %q, first %q", id, again.Resources[id].Ref, ph.Ref)
		}
	}
	if again.Local.StaffToken != res.Local.StaffToken || again.Local.WebhookTokens["cowbell"][1] != res.Local.WebhookTokens["cowbell"][1] {
		t.Error("second run changed the seeded tokens")
	}
}

func TestProvisionWithoutSeedUsesTemplateValues(t *testing.T) {
	env := testenv.Get(t)
	tm := repoTemplate(t)
	res, err := provision.Provision(context.Background(), tm, provision.NewClients(env.AWS), provision.Options{Prefix: testenv.UniqueName(t, 40)})
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	v, err := env.SecretsManager().GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(res.Resources["WebhookSecret"].Ref)})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(v.SecretString)), &m); err != nil {
		t.Fatalf("webhook secret %q: %v", aws.ToString(v.SecretString), err)
	}
	if _, ok := m["generated"]; !ok {
		t.Errorf("webhook secret %v lacks the GenerateStringKey from the template", m)
	}
	if _, ok := res.Resources[provision.StaffSecretID]; ok {
		t.Error("staff secret created without Seed")
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCreateQueueAgainUpdatesAttributes(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	name := testenv.UniqueName(t, 80)
	first, err := provision.CreateQueue(ctx, env.SQS(), name, map[string]string{"VisibilityTimeout": "30"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = provision.DeleteQueue(context.Background(), env.SQS(), first.Ref) })
	second, err := provision.CreateQueue(ctx, env.SQS(), name, map[string]string{"VisibilityTimeout": "90"})
	if err != nil {
		t.Fatalf("CreateQueue with other attributes: %v", err)
	}
	if second.Ref != first.Ref || second.Attrs["Arn"] != first.Attrs["Arn"] {
		t.Errorf("second = %+v, first = %+v", second, first)
	}
	a, err := env.SQS().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(second.Ref), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameVisibilityTimeout}})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Attributes["VisibilityTimeout"]; got != "90" {
		t.Errorf("VisibilityTimeout = %s, want 90", got)
	}
}
