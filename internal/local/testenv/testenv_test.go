package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/logging"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func TestTableFromTemplateConditionalPut(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	table := env.NewTable(t)
	db := dynamodb.NewFromConfig(env.AWS) // plain client from the config, as app code builds it

	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("DescribeTable: %v", err)
	}
	var gsis []string
	for _, g := range desc.Table.GlobalSecondaryIndexes {
		gsis = append(gsis, aws.ToString(g.IndexName))
	}
	if strings.Join(gsis, ",") != "GSI1,GSI2" && strings.Join(gsis, ",") != "GSI2,GSI1" {
		t.Errorf("GSIs = %v, want GSI1 and GSI2 from template.yaml", gsis)
	}
	ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("DescribeTimeToLive: %v", err)
	}
	if ttl.TimeToLiveDescription.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "ttl" {
		t.Errorf("TTL = %+v, want enabled on ttl", ttl.TimeToLiveDescription)
	}

	put := func() error {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(table),
			Item: map[string]ddbtypes.AttributeValue{
				"PK": &ddbtypes.AttributeValueMemberS{Value: "CLAIM#1"},
				"SK": &ddbtypes.AttributeValueMemberS{Value: "CLAIM"},
			},
			ConditionExpression: aws.String("attribute_not_exists(PK)"),
		})
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	err = put()
	var ccf *ddbtypes.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		t.Fatalf("second conditional put = %v, want ConditionalCheckFailedException", err)
	}
}

func TestQueueRedrivesToDLQ(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	const maxReceive = 2
	url, dlqURL := env.NewQueue(t, maxReceive)
	if dlqURL == "" {
		t.Fatal("NewQueue with maxReceive > 0 returned no DLQ")
	}
	c := sqs.NewFromConfig(env.AWS)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"job":1}`)}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	// Receive maxReceive times without deleting, making the message visible
	// again each time; the next receive moves it to the DLQ. SQS is
	// at-least-once: should it hold the message twice, both copies take the
	// same way, so each receive takes (moto: all) visible messages and checks
	// every one.
	for i := 1; i <= maxReceive; i++ {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if len(out.Messages) == 0 {
			t.Fatalf("receive %d: no message", i)
		}
		for _, m := range out.Messages {
			if b := aws.ToString(m.Body); b != `{"job":1}` {
				t.Fatalf("receive %d: unexpected message %q", i, b)
			}
			if got := m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]; got != strconv.Itoa(i) {
				t.Errorf("receive %d: ApproximateReceiveCount = %q", i, got)
			}
			if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
				t.Fatalf("ChangeMessageVisibility: %v", err)
			}
		}
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatalf("receive after max: %v", err)
	}
	if len(out.Messages) != 0 {
		t.Fatalf("message still delivered from the source queue after %d receives", maxReceive)
	}
	dlq, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlqURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatalf("receive from DLQ: %v", err)
	}
	if len(dlq.Messages) == 0 {
		t.Fatal("the DLQ is empty, want the redriven message")
	}
	for _, m := range dlq.Messages {
		if b := aws.ToString(m.Body); b != `{"job":1}` {
			t.Fatalf("DLQ holds %q, want only the redriven message", b)
		}
	}
}

// TestRetryLogKeepsOnlyRetries: the clients' logger passes on the retry lines
// and drops the rest (unretryable errors, body-close warnings), so that a run
// without retries prints nothing.
func TestRetryLogKeepsOnlyRetries(t *testing.T) {
	var got []string
	l := retryLog{logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
		got = append(got, fmt.Sprintf(format, v...))
	})}
	l.Logf(logging.Debug, "retrying request %s/%s, attempt %d", "SQS", "SendMessage", 2)
	l.Logf(logging.Debug, "request failed with unretryable error %v", errors.New("ConditionalCheckFailedException"))
	l.Logf(logging.Warn, "failed to close HTTP response body, this may affect connection reuse: %v", errors.New("checksum"))
	l.Logf(logging.Debug, "max retry attempts exhausted, max %d", 3)
	if want := "retrying request SQS/SendMessage, attempt 2|max retry attempts exhausted, max 3"; strings.Join(got, "|") != want {
		t.Fatalf("logged %q, want %q", got, want)
	}
}

func TestQueueWithoutDLQ(t *testing.T) {
	t.Parallel()
	env := Get(t)
	url, dlqURL := env.NewQueue(t, 0)
	if dlqURL != "" {
		t.Errorf("NewQueue(0) returned DLQ %q", dlqURL)
	}
	a, err := env.SQS().GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	if rp, ok := a.Attributes["RedrivePolicy"]; ok {
		t.Errorf("queue without DLQ has RedrivePolicy %q", rp)
	}
}

func TestSecretRoundTrip(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	const value = `{"tokens":["a","b"]}`
	arn := env.NewSecret(t, value)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:") {
		t.Errorf("ARN %q", arn)
	}
	c := secretsmanager.NewFromConfig(env.AWS)
	got, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatalf("GetSecretValue: %v", err)
	}
	if aws.ToString(got.SecretString) != value {
		t.Fatalf("secret = %q, want %q", aws.ToString(got.SecretString), value)
	}
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(`{"tokens":["c"]}`)}); err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	got, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil || aws.ToString(got.SecretString) != `{"tokens":["c"]}` {
		t.Fatalf("after PutSecretValue: %q, %v", aws.ToString(got.SecretString), err)
	}
}

func TestUniqueNamesDiffer(t *testing.T) {
	a, b := UniqueName(t, 80), UniqueName(t, 80)
	if a == b {
		t.Fatalf("two unique names are both %q", a)
	}
	long := UniqueName(&namedTB{TB: t, name: strings.Repeat("x", 300)}, 80)
	if len(long) > 80 {
		t.Fatalf("name of %d characters, want at most 80", len(long))
	}
}

type namedTB struct {
	testing.TB
	name string
}

func (n *namedTB) Name() string { return n.name }
