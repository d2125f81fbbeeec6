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

// QuarantineReplay records that a quarantined body was parsed again and its
// event enqueued (coiflow quarantine replay).
type QuarantineReplay struct {
	At time.Time `dynamodbav:"at"`
	// By is who replayed it (an operator name, user@host).
	By string `dynamodbav:"by"`
	// EventID is the id of the event the body parsed as.
	EventID string `dynamodbav:"eventId"`
	// Queues are the queues the event's jobs were put on (none when the event
	// routes nowhere).
	Queues []string `dynamodbav:"queues,omitempty"`
	// Forced is set when the record had been replayed before.
	Forced bool `dynamodbav:"forced,omitempty"`
}

// MarkQuarantineReplayed records r as the latest replay of quarantine record
// id, and appends it to the record's replay history ("replays"). Unless force,
// only a record that was never replayed is marked: ErrConflict otherwise, and
// ErrNotFound when there is no record. It returns the record as it is after
// the write.
func (s *Store) MarkQuarantineReplayed(ctx context.Context, id string, r QuarantineReplay, force bool) (Quarantined, error) {
	if id == "" {
		return Quarantined{}, fmt.Errorf("mark quarantine replayed: no id")
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	r.At = r.At.UTC()
	r.Forced = force
	av, err := attributevalue.Marshal(r)
	if err != nil {
		return Quarantined{}, fmt.Errorf("encode replay of quarantine %s: %w", id, err)
	}
	cond := "attribute_exists(PK)"
	if !force {
		cond += " AND attribute_not_exists(#replay)"
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 quarantineKey(id),
		UpdateExpression:    aws.String("SET #replay = :r, #replays = list_append(if_not_exists(#replays, :none), :one)"),
		ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: map[string]string{
			"#replay":  "replay",
			"#replays": "replays",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":r":    av,
			":none": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
			":one":  &types.AttributeValueMemberL{Value: []types.AttributeValue{av}},
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		if isConditionFailed(err) {
			return Quarantined{}, s.replayConflict(ctx, id)
		}
		return Quarantined{}, fmt.Errorf("mark quarantine %s replayed: %w", id, err)
	}
	var q Quarantined
	if err := attributevalue.UnmarshalMap(out.Attributes, &q); err != nil {
		return Quarantined{}, fmt.Errorf("decode quarantine %s: %w", id, err)
	}
	return q, nil
}

// replayConflict says why the conditional mark failed: no record, or one
// already replayed (by whom and when).
func (s *Store) replayConflict(ctx context.Context, id string) error {
	q, err := s.GetQuarantine(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("mark quarantine %s replayed: %w", id, err)
	case q.Replay == nil: // a concurrent writer; say what we know
		return fmt.Errorf("mark quarantine %s replayed: %w", id, ErrConflict)
	}
	return fmt.Errorf("mark quarantine %s replayed: %w: already replayed by %s at %s as %s",
		id, ErrConflict, q.Replay.By, q.Replay.At.Format(time.RFC3339), q.Replay.EventID)
}
