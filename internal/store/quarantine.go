package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// QuarantineTTL is how long a quarantined body is kept for review.
const QuarantineTTL = 30 * 24 * time.Hour

// QuarantineIndexKey is the GSI1PK of every quarantine record; GSI1SK is the
// received-at time (fixed width) and id, so the index lists newest first.
const QuarantineIndexKey = "QUARANTINE"

// Quarantined is a webhook body that was authenticated but could not be read as
// an event: QUARANTINE#<id> / QUARANTINE. It is kept raw for review.
type Quarantined struct {
	// ID is deterministic per (source, body) so a redelivery is one record.
	ID          string    `dynamodbav:"id"`
	Source      string    `dynamodbav:"source"`
	Reason      string    `dynamodbav:"reason"`
	RequestID   string    `dynamodbav:"requestId,omitempty"`
	ContentType string    `dynamodbav:"contentType,omitempty"`
	ReceivedAt  time.Time `dynamodbav:"receivedAt"`
	// Body is exactly as received (after base64 decoding).
	Body []byte `dynamodbav:"body"`
	// Replay is the latest replay of the record (nil: never replayed); see
	// MarkQuarantineReplayed in quarantine_replay.go.
	Replay *QuarantineReplay `dynamodbav:"replay,omitempty"`
}

func quarantineKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "QUARANTINE#" + id},
		"SK": &types.AttributeValueMemberS{Value: "QUARANTINE"},
	}
}

// PutQuarantine stores q, to expire QuarantineTTL after it was received. A record
// with the same ID is kept as it is (the first receipt wins) and created is false;
// that is not an error.
func (s *Store) PutQuarantine(ctx context.Context, q Quarantined) (created bool, err error) {
	if q.ID == "" {
		return false, fmt.Errorf("put quarantine: no id")
	}
	if q.ReceivedAt.IsZero() {
		q.ReceivedAt = s.now()
	}
	q.ReceivedAt = q.ReceivedAt.UTC()
	item, err := attributevalue.MarshalMap(q)
	if err != nil {
		return false, fmt.Errorf("encode quarantine %s: %w", q.ID, err)
	}
	for k, v := range quarantineKey(q.ID) {
		item[k] = v
	}
	item["GSI1PK"] = &types.AttributeValueMemberS{Value: QuarantineIndexKey}
	item["GSI1SK"] = &types.AttributeValueMemberS{Value: auditTime(q.ReceivedAt) + "#" + q.ID}
	item["ttl"] = &types.AttributeValueMemberN{Value: fmt.Sprint(q.ReceivedAt.Add(QuarantineTTL).Unix())}

	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if err != nil {
		if isConditionFailed(err) {
			return false, nil
		}
		return false, fmt.Errorf("put quarantine %s: %w", q.ID, err)
	}
	return true, nil
}

// GetQuarantine reads one quarantine record; ErrNotFound when there is none.
func (s *Store) GetQuarantine(ctx context.Context, id string) (Quarantined, error) {
	return getItem(ctx, s, quarantineKey(id), "quarantine "+id, Quarantined{})
}

// ListQuarantine returns up to limit quarantine records, newest first.
func (s *Store) ListQuarantine(ctx context.Context, limit int) ([]Quarantined, error) {
	if limit <= 0 {
		limit = 50
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("GSI1PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: QuarantineIndexKey}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit)),
	})
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	qs := make([]Quarantined, 0, len(out.Items))
	for _, item := range out.Items {
		var q Quarantined
		if err := attributevalue.UnmarshalMap(item, &q); err != nil {
			return nil, fmt.Errorf("decode quarantine: %w", err)
		}
		qs = append(qs, q)
	}
	return qs, nil
}
