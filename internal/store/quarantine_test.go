package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

// TestQuarantine runs against DynamoDB Local with template.yaml's table.
func TestQuarantine(t *testing.T) {
	env := testenv.Get(t)
	st := store.New(env.DynamoDB(), env.NewTable(t))
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 15, 4, 5, 123456789, time.UTC)

	first := store.Quarantined{ID: "evt_q1", Source: "cowbell", Reason: "unknown event shape: meta.event \"claim.opened\" is not a Cowbell event",
		RequestID: "req-1", ContentType: "application/json", ReceivedAt: t0, Body: []byte(`{"meta":{"event":"claim.opened"},"data":{}}`)}
	created, err := st.PutQuarantine(ctx, first)
	if err != nil || !created {
		t.Fatalf("PutQuarantine = %v, %v; want created", created, err)
	}

	// A redelivery (same id, later) keeps the first record.
	again := first
	again.RequestID, again.ReceivedAt = "req-2", t0.Add(time.Hour)
	created, err = st.PutQuarantine(ctx, again)
	if err != nil || created {
		t.Fatalf("redelivery: PutQuarantine = %v, %v; want not created, no error", created, err)
	}
	got, err := st.GetQuarantine(ctx, "evt_q1")
	if err != nil {
		t.Fatal(err)
	}
	if got.RequestID != "req-1" || !got.ReceivedAt.Equal(t0) || string(got.Body) != string(first.Body) ||
		got.Source != "cowbell" || got.Reason != first.Reason || got.ContentType != "application/json" {
		t.Fatalf("GetQuarantine = %+v, want the first receipt %+v", got, first)
	}

	// The raw item carries the index keys and the TTL the table expects.
	raw, err := env.DynamoDB().GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(st.Table()), Key: map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "QUARANTINE#evt_q1"},
		"SK": &types.AttributeValueMemberS{Value: "QUARANTINE"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		GSI1PK, GSI1SK string
		TTL            int64  `dynamodbav:"ttl"`
		Body           []byte `dynamodbav:"body"`
	}
	if err := attributevalue.UnmarshalMap(raw.Item, &keys); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Item["body"].(*types.AttributeValueMemberB); !ok {
		t.Errorf("body is stored as %T, want binary", raw.Item["body"])
	}
	if keys.GSI1PK != store.QuarantineIndexKey || keys.GSI1SK != "2026-03-02T15:04:05.123456Z#evt_q1" {
		t.Errorf("GSI1 keys = %q, %q", keys.GSI1PK, keys.GSI1SK)
	}
	if want := t0.Add(store.QuarantineTTL).Unix(); keys.TTL != want {
		t.Errorf("ttl = %d, want %d", keys.TTL, want)
	}

	// Listing is newest first through GSI1.
	second := store.Quarantined{ID: "evt_q2", Source: "nowcerts", Reason: "no EventType", ReceivedAt: t0.Add(time.Minute), Body: []byte(`{"x":1}`)}
	if _, err := st.PutQuarantine(ctx, second); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListQuarantine(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "evt_q2" || list[1].ID != "evt_q1" {
		t.Fatalf("ListQuarantine = %+v, want evt_q2 then evt_q1", list)
	}

	if _, err := st.GetQuarantine(ctx, "evt_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetQuarantine(missing) = %v, want ErrNotFound", err)
	}
}
