// Package store is coiflow's DynamoDB adapter: one table, conditional writes for
// every effect that must happen once.
//
// Key schema (single table, attribute names fixed by template.yaml):
//
//	PK, SK          primary key (strings)
//	GSI1PK, GSI1SK  index "GSI1": by certificate / by holder / by kind of record
//	GSI2PK, GSI2SK  index "GSI2": by day ("DAY#2026-11-21") for audit queries
//	ttl             epoch seconds; DynamoDB deletes the item after it
//
// Item families (each file of this package owns one):
//
//	QUARANTINE#<eventID> / QUARANTINE        quarantined webhook bodies (quarantine.go)
//	SEND#<sendID> / CLAIM                    send claim = audit record, every attempt in it (sends.go);
//	                                         sendID = hash(certID, holderID, rev), or hash(original sendID) for a resend
//	HOLD#<id> / HOLD                         held certificates awaiting approval (holds.go)
//	POLICY#<number> / STATUS                 carrier-reported policy status (holds.go)
//	CRM#<externalID> / STATE                 last event time and field hash per CRM entity (crm.go)
//	LEASE#<name> / LEASE                     leases (token refresh serialisation) (lease.go)
//	AGENCY#<id> / SETTINGS                   per-agency rules and settings (settings.go)
package store

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DB is the part of the DynamoDB client the store uses.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store reads and writes coiflow's table.
type Store struct {
	db    DB
	table string
	now   func() time.Time
	// countPage bounds the keys one counting Query reads (0: DynamoDB's 1 MB
	// page); tests lower it to exercise paging.
	countPage int32
}

// New returns a Store on table.
func New(db DB, table string) *Store { return &Store{db: db, table: table, now: time.Now} }

// WithClock returns a copy of s using now as its clock (tests).
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

// Table returns the table name.
func (s *Store) Table() string { return s.table }

// Index names.
const (
	GSI1 = "GSI1"
	GSI2 = "GSI2"
)

// ErrConflict is returned when a conditional write loses (the item exists, or is
// owned by someone else, or is newer).
var ErrConflict = errors.New("conditional write lost")

// ErrNotFound is returned when an item does not exist.
var ErrNotFound = errors.New("not found")

// isConditionFailed reports whether err is DynamoDB's conditional-check failure,
// alone or inside a cancelled transaction.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return true
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			if r.Code != nil && *r.Code == "ConditionalCheckFailed" {
				return true
			}
		}
	}
	return false
}

// ttlAfter returns the ttl attribute value for an item that lives for d.
func (s *Store) ttlAfter(d time.Duration) int64 { return s.now().Add(d).Unix() }
