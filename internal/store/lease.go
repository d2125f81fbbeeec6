package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Leases: LEASE#<name> / LEASE, attributes owner (string), expiresAt (epoch
// milliseconds) and ttl. A lease is a lock with a deadline shared by every
// container: one owner at a time; an expired lease can be taken over, so a
// holder that dies blocks the others for at most its TTL.

// leaseKeep is how long DynamoDB keeps an expired lease item before its TTL
// deletes it (it is rewritten on every acquisition, so this only cleans up
// names no longer used).
const leaseKeep = 7 * 24 * time.Hour

func leaseKey(name string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "LEASE#" + name},
		"SK": &types.AttributeValueMemberS{Value: "LEASE"},
	}
}

// AcquireLease takes the lease name for owner until now+ttl: with one
// conditional put that succeeds when there is no lease, the lease has expired,
// or owner already holds it (then it is extended). It reports false, with no
// error, when someone else holds an unexpired lease.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, fmt.Errorf("store: lease needs a name, an owner and a positive ttl")
	}
	now := s.now()
	until := now.Add(ttl)
	item := leaseKey(name)
	item["owner"] = &types.AttributeValueMemberS{Value: owner}
	item["expiresAt"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(until.UnixMilli(), 10)}
	item["ttl"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(until.Add(leaseKeep).Unix(), 10)}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(PK) OR expiresAt <= :now OR #owner = :owner"),
		ExpressionAttributeNames: map[string]string{
			"#owner": "owner",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now":   &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
			":owner": &types.AttributeValueMemberS{Value: owner},
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return false, nil
		}
		return false, fmt.Errorf("store: acquire lease %s: %w", name, err)
	}
	return true, nil
}

// ReleaseLease ends owner's lease name at once (its expiry is set to the
// past), so the next acquirer need not wait for the TTL. It is conditional on
// owner: a lease that expired and was taken over is left to its new owner, and
// an error wrapping ErrConflict is returned. (An update, not a delete: the
// functions that refresh tokens are granted UpdateItem, not DeleteItem.)
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 leaseKey(name),
		UpdateExpression:    aws.String("SET expiresAt = :zero"),
		ConditionExpression: aws.String("#owner = :owner"),
		ExpressionAttributeNames: map[string]string{
			"#owner": "owner",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":zero":  &types.AttributeValueMemberN{Value: "0"},
			":owner": &types.AttributeValueMemberS{Value: owner},
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("store: release lease %s: %w (not held by this owner)", name, ErrConflict)
		}
		return fmt.Errorf("store: release lease %s: %w", name, err)
	}
	return nil
}

// Lease is a lease as stored.
type Lease struct {
	Name      string
	Owner     string
	ExpiresAt time.Time
}

// GetLease reads the lease name (ErrNotFound when it was never taken).
func (s *Store) GetLease(ctx context.Context, name string) (Lease, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: leaseKey(name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Lease{}, fmt.Errorf("store: get lease %s: %w", name, err)
	}
	if out.Item == nil {
		return Lease{}, fmt.Errorf("store: lease %s: %w", name, ErrNotFound)
	}
	l := Lease{Name: name}
	if v, ok := out.Item["owner"].(*types.AttributeValueMemberS); ok {
		l.Owner = v.Value
	}
	if v, ok := out.Item["expiresAt"].(*types.AttributeValueMemberN); ok {
		ms, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return Lease{}, fmt.Errorf("store: lease %s: expiresAt %q: %w", name, v.Value, err)
		}
		l.ExpiresAt = time.UnixMilli(ms)
	}
	return l, nil
}
