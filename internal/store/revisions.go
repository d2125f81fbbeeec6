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

// RevisionKey names a certificate, normalised by the caller (the same
// certificate always gives the same string). It is per certificate, not per
// holder: SendCertificate sends the certificate's current content to whoever
// it is addressed to.
type RevisionKey struct {
	Certificate string
}

// RevisionMark is the newest revision seen of a certificate:
// LATEST#<certificate> / REV. NowCerts' SendCertificate always sends a
// certificate's current content, so only the newest revision may go out: an
// older one's send, hold approval or resend would deliver the newer content
// under the older record (and could release content that is itself held for
// approval).
type RevisionMark struct {
	RevisionKey
	Revision string
	// EventAt orders revisions: the time of the event that carried it.
	EventAt time.Time
	// Weak: the event had no time of its own (EventAt is when it arrived,
	// an upper bound of when it happened). Marks are ordered by EventAt
	// either way; the caller decides what an order that rests on an arrival
	// time may do (coiflow holds such a revision change for review).
	Weak bool
	// SendID is a send record made for this revision (the first recipient's).
	SendID string
	// UntimedChange: this revision replaced another on the word of an event
	// without a time (only its arrival said it was newer).
	UntimedChange bool
}

func revisionKey(k RevisionKey) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "LATEST#" + k.Certificate},
		"SK": &types.AttributeValueMemberS{Value: "REV"},
	}
}

// revisionNewer is the condition under which the mark with :rev at :at
// replaces the stored one: none stored, an earlier event, or (same instant)
// a revision that sorts after it.
const revisionNewer = "attribute_not_exists(PK) OR #at < :at OR (#at = :at AND #rev < :rev)"

// AdvanceRevision records m as the newest revision of its certificate, unless
// the stored mark is newer. current says whether m's revision is the newest
// now (it was recorded, or it is the stored one: a redelivery); prev is the
// mark as it was before (zero when there was none). When an untimed m changes
// the revision, the mark remembers it (UntimedChange) for every later
// handling of that revision.
func (s *Store) AdvanceRevision(ctx context.Context, m RevisionMark) (prev RevisionMark, current bool, err error) {
	if m.Certificate == "" || m.Revision == "" {
		return RevisionMark{}, false, errors.New("advance revision: certificate and revision are required")
	}
	if !m.Weak {
		return s.advance(ctx, m, revisionNewer, false)
	}
	// Untimed: a first mark is no change; replacing another revision is one,
	// recorded with the write (two conditions, so no read decides it).
	prev, current, err = s.advance(ctx, m, "attribute_not_exists(PK)", false)
	if err != nil || current || prev.Revision == "" {
		return prev, current, err
	}
	return s.advance(ctx, m, "#rev <> :rev AND ("+revisionNewer+")", true)
}

// advance writes m under cond; untimedChange marks the write as a revision
// change known only from arrival order.
func (s *Store) advance(ctx context.Context, m RevisionMark, cond string, untimedChange bool) (RevisionMark, bool, error) {
	names := map[string]string{"#rev": "revision", "#at": "eventAt", "#send": "sendId", "#upd": "updatedAt", "#weak": "weak"}
	values := map[string]types.AttributeValue{
		":rev":  &types.AttributeValueMemberS{Value: m.Revision},
		":at":   &types.AttributeValueMemberN{Value: strconv.FormatInt(m.EventAt.UnixMilli(), 10)},
		":send": &types.AttributeValueMemberS{Value: m.SendID},
		":upd":  &types.AttributeValueMemberS{Value: s.now().UTC().Format(time.RFC3339Nano)},
		":weak": &types.AttributeValueMemberBOOL{Value: m.Weak},
	}
	update := "SET #rev = :rev, #at = :at, #send = :send, #upd = :upd, #weak = :weak"
	if untimedChange {
		names["#uf"] = "untimedFor"
		update += ", #uf = :rev"
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 revisionKey(m.RevisionKey),
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllOld,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			stored := markFrom(m.RevisionKey, ccf.Item)
			if len(ccf.Item) == 0 {
				if stored, err = s.GetRevision(ctx, m.RevisionKey); err != nil {
					return RevisionMark{}, false, fmt.Errorf("advance revision: %w", err)
				}
			}
			return stored, stored.Revision == m.Revision, nil
		}
		return RevisionMark{}, false, fmt.Errorf("advance revision of %s: %w", m.Certificate, err)
	}
	return markFrom(m.RevisionKey, out.Attributes), true, nil
}

// GetRevision reads the newest revision recorded for certificate k (strongly consistent);
// ErrNotFound when none is.
func (s *Store) GetRevision(ctx context.Context, k RevisionKey) (RevisionMark, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: revisionKey(k), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return RevisionMark{}, fmt.Errorf("get revision of %s: %w", k.Certificate, err)
	}
	if len(out.Item) == 0 {
		return RevisionMark{}, fmt.Errorf("revision of %s: %w", k.Certificate, ErrNotFound)
	}
	return markFrom(k, out.Item), nil
}

func markFrom(k RevisionKey, item map[string]types.AttributeValue) RevisionMark {
	if len(item) == 0 {
		return RevisionMark{}
	}
	m := RevisionMark{RevisionKey: k, Revision: attrS(item, "revision"), SendID: attrS(item, "sendId")}
	if b, ok := item["weak"].(*types.AttributeValueMemberBOOL); ok {
		m.Weak = b.Value
	}
	m.UntimedChange = m.Revision != "" && attrS(item, "untimedFor") == m.Revision
	if n, ok := item["eventAt"].(*types.AttributeValueMemberN); ok {
		if ms, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			m.EventAt = time.UnixMilli(ms).UTC()
		}
	}
	return m
}

// latestCheck is the claim's condition that rev is the newest revision of k
// (or that none is recorded: records made before revision marks existed).
func latestCheck(table string, k RevisionKey, rev string) *types.ConditionCheck {
	return &types.ConditionCheck{
		TableName:                           aws.String(table),
		Key:                                 revisionKey(k),
		ConditionExpression:                 aws.String("attribute_not_exists(PK) OR #rev = :rev"),
		ExpressionAttributeNames:            map[string]string{"#rev": "revision"},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":rev": &types.AttributeValueMemberS{Value: rev}},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}
