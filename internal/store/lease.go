package store

import (
	"context"
	"errors"
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
//
// A holder may leave a version note when it releases (ReleaseLeaseWithVersion):
// attributes version (string) and versionExpiresAt (epoch milliseconds), the
// version of the resource it wrote under the lease and until when that
// version is good. Acquiring and plain releases keep the last note, so
// whoever reads the lease later (LeaseVersion) can tell whether what it read
// elsewhere is older than what the last holder wrote.

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
// conditional update that succeeds when there is no lease, the lease has
// expired, or owner already holds it (then it is extended). It reports false,
// with no error, when someone else holds an unexpired lease. The version note
// left by the last holder is kept.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, fmt.Errorf("store: lease needs a name, an owner and a positive ttl")
	}
	now := s.now()
	until := now.Add(ttl)
	// An update rather than a put, so that the version note survives.
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 leaseKey(name),
		UpdateExpression:    aws.String("SET #owner = :owner, expiresAt = :until, #ttl = :ttl"),
		ConditionExpression: aws.String("attribute_not_exists(PK) OR expiresAt <= :now OR #owner = :owner"),
		ExpressionAttributeNames: map[string]string{
			"#owner": "owner",
			"#ttl":   "ttl",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now":   &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
			":owner": &types.AttributeValueMemberS{Value: owner},
			":until": &types.AttributeValueMemberN{Value: strconv.FormatInt(until.UnixMilli(), 10)},
			":ttl":   &types.AttributeValueMemberN{Value: strconv.FormatInt(until.Add(leaseKeep).Unix(), 10)},
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
// functions that refresh tokens are granted UpdateItem, not DeleteItem.) The
// version note is left as it was.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	return s.ReleaseLeaseWithVersion(ctx, name, owner, "", time.Time{})
}

// ReleaseLeaseWithVersion is ReleaseLease that also records, in the same
// conditional update, the version note: version of what owner wrote under
// the lease, good until expiresAt. An empty version records nothing (the
// previous note stays), like ReleaseLease.
func (s *Store) ReleaseLeaseWithVersion(ctx context.Context, name, owner, version string, expiresAt time.Time) error {
	update := "SET expiresAt = :zero"
	vals := map[string]types.AttributeValue{
		":zero":  &types.AttributeValueMemberN{Value: "0"},
		":owner": &types.AttributeValueMemberS{Value: owner},
	}
	names := map[string]string{"#owner": "owner"}
	if version != "" {
		update += ", #version = :version, versionExpiresAt = :vexp"
		names["#version"] = "version"
		vals[":version"] = &types.AttributeValueMemberS{Value: version}
		vals[":vexp"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(expiresAt.UnixMilli(), 10)}
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       leaseKey(name),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String("#owner = :owner"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
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
	// The version note of the last ReleaseLeaseWithVersion ("" and zero when
	// none was recorded).
	Version          string
	VersionExpiresAt time.Time
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
	if v, ok := out.Item["version"].(*types.AttributeValueMemberS); ok {
		l.Version = v.Value
	}
	for attr, dst := range map[string]*time.Time{"expiresAt": &l.ExpiresAt, "versionExpiresAt": &l.VersionExpiresAt} {
		v, ok := out.Item[attr].(*types.AttributeValueMemberN)
		if !ok {
			continue
		}
		ms, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return Lease{}, fmt.Errorf("store: lease %s: %s %q: %w", name, attr, v.Value, err)
		}
		*dst = time.UnixMilli(ms)
	}
	return l, nil
}

// LeaseVersion returns the version note of the lease name (a strongly
// consistent read): the version its last holder recorded and until when it is
// good. A lease never taken, or released without a note, gives "" and zero.
func (s *Store) LeaseVersion(ctx context.Context, name string) (version string, expiresAt time.Time, err error) {
	l, err := s.GetLease(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, err
	}
	return l.Version, l.VersionExpiresAt, nil
}
