package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// CRM items (the CRM worker's bookkeeping):
//
//	CRM#<externalID> / STATE              what coiflow last decided about a CRM record (CRMState)
//	CRM#<contactExtID> / LINK#<companyExtID>  a contact ↔ company association made in the CRM
//	CRMNOTE#<jobID> / NOTE                a timeline note's claim and outcome
//	CRMFAIL#<jobID> / FAIL#<externalID>   a permanent CRM failure (GSI1PK "CRMFAIL", GSI1SK "<at>#<jobID>")
//
// The worker's write protocol on CRMState (versions are optimistic locks):
//
//  1. read the state; merge the event's fields (a field changes only when the
//     event's stamp is newer than the field's stamp);
//  2. write the merged state with version+1, conditional on the version read;
//  3. write the snapshot to the CRM;
//  4. set synced = version, conditional on the version still being the same.
//
// A crash between 2 and 4 leaves synced < version: the next delivery (of this
// event or any other for the record) writes the snapshot again — at most a
// redundant identical upsert. A lost condition in 4 means a newer version was
// claimed meanwhile; the worker then writes that newer snapshot itself, so the
// CRM never keeps an older snapshot than the newest claimed.

const (
	crmFailKeep = 90 * 24 * time.Hour
	crmNoteKeep = 90 * 24 * time.Hour
)

// CRMState is CRM#<externalID> / STATE.
type CRMState struct {
	ExternalID string `dynamodbav:"externalId"`
	ObjectType string `dynamodbav:"objectType"`
	// Fields is the snapshot written to the CRM (crm field names → values).
	Fields map[string]string `dynamodbav:"fields"`
	// Stamps holds, per field, the stamp of the event that set it:
	// "<UTC time, fixed width>#<event or job id>", so stamps compare as strings.
	Stamps map[string]string `dynamodbav:"stamps"`
	// Hash is the SHA-256 of Fields (sorted key=value lines).
	Hash    string `dynamodbav:"hash"`
	Version int64  `dynamodbav:"version"`
	// Synced is the version last confirmed written to the CRM.
	Synced  int64     `dynamodbav:"synced"`
	CRMKind string    `dynamodbav:"crmKind,omitempty"`
	CRMID   string    `dynamodbav:"crmId,omitempty"`
	Updated time.Time `dynamodbav:"updatedAt"`
}

// LastStamp returns the newest field stamp ("" when none).
func (s CRMState) LastStamp() string {
	last := ""
	for _, v := range s.Stamps {
		if v > last {
			last = v
		}
	}
	return last
}

func crmStateKey(externalID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "CRM#" + externalID},
		"SK": &types.AttributeValueMemberS{Value: "STATE"},
	}
}

// GetCRMState reads a record's state (strongly consistent); ErrNotFound when
// coiflow never wrote one.
func (s *Store) GetCRMState(ctx context.Context, externalID string) (CRMState, error) {
	return getItem(ctx, s, crmStateKey(externalID), "crm state "+externalID, CRMState{})
}

// PutCRMState writes st if the stored version is still prevVersion (0: no
// state yet); ErrConflict when someone else wrote first.
func (s *Store) PutCRMState(ctx context.Context, st CRMState, prevVersion int64) error {
	if st.ExternalID == "" || st.Version <= prevVersion {
		return fmt.Errorf("store: crm state needs an external id and a version above %d", prevVersion)
	}
	st.Updated = s.now().UTC()
	if st.Fields == nil {
		st.Fields = map[string]string{}
	}
	if st.Stamps == nil {
		st.Stamps = map[string]string{}
	}
	item, err := attributevalue.MarshalMap(st)
	if err != nil {
		return fmt.Errorf("store: encode crm state %s: %w", st.ExternalID, err)
	}
	for k, v := range crmStateKey(st.ExternalID) {
		item[k] = v
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}
	if prevVersion == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(PK)")
	} else {
		in.ConditionExpression = aws.String("version = :prev")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": crmN(prevVersion)}
	}
	if _, err := s.db.PutItem(ctx, in); err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("store: crm state %s moved past version %d: %w", st.ExternalID, prevVersion, ErrConflict)
		}
		return fmt.Errorf("store: put crm state %s: %w", st.ExternalID, err)
	}
	return nil
}

// MarkCRMSynced records that version of the record is in the CRM under crmID,
// if version is still the current one; ErrConflict when a newer version was
// claimed meanwhile.
func (s *Store) MarkCRMSynced(ctx context.Context, externalID string, version int64, crmKind, crmID string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 crmStateKey(externalID),
		UpdateExpression:    aws.String("SET synced = :v, crmKind = :k, crmId = :id, updatedAt = :now"),
		ConditionExpression: aws.String("version = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":v": crmN(version), ":k": crmS(crmKind), ":id": crmS(crmID), ":now": crmS(s.now().UTC().Format(time.RFC3339Nano)),
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("store: crm state %s is past version %d: %w", externalID, version, ErrConflict)
		}
		return fmt.Errorf("store: mark crm state %s synced: %w", externalID, err)
	}
	return nil
}

// CRMLink is CRM#<contact> / LINK#<company>: the association as made in the CRM.
type CRMLink struct {
	CRMKind      string    `dynamodbav:"crmKind"`
	ContactCRMID string    `dynamodbav:"contactCrmId"`
	CompanyCRMID string    `dynamodbav:"companyCrmId"`
	At           time.Time `dynamodbav:"at"`
}

func crmLinkKey(contact, company string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "CRM#" + contact},
		"SK": &types.AttributeValueMemberS{Value: "LINK#" + company},
	}
}

// GetCRMLink reads a recorded association; ErrNotFound when there is none.
func (s *Store) GetCRMLink(ctx context.Context, contact, company string) (CRMLink, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: crmLinkKey(contact, company)})
	if err != nil {
		return CRMLink{}, fmt.Errorf("store: get crm link %s→%s: %w", contact, company, err)
	}
	if out.Item == nil {
		return CRMLink{}, fmt.Errorf("store: crm link %s→%s: %w", contact, company, ErrNotFound)
	}
	var l CRMLink
	if err := attributevalue.UnmarshalMap(out.Item, &l); err != nil {
		return CRMLink{}, fmt.Errorf("store: decode crm link: %w", err)
	}
	return l, nil
}

// PutCRMLink records an association made in the CRM (written after the CRM
// call: a crash before it only repeats the idempotent association).
func (s *Store) PutCRMLink(ctx context.Context, contact, company string, l CRMLink) error {
	l.At = s.now().UTC()
	item, err := attributevalue.MarshalMap(l)
	if err != nil {
		return fmt.Errorf("store: encode crm link: %w", err)
	}
	for k, v := range crmLinkKey(contact, company) {
		item[k] = v
	}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("store: put crm link %s→%s: %w", contact, company, err)
	}
	return nil
}

// Note claim states.
const (
	NoteClaimed   = "CLAIMED"   // an attempt is creating the note
	NoteUncertain = "UNCERTAIN" // an attempt failed without knowing whether the CRM created it
	NoteFree      = "FREE"      // an attempt failed and the CRM certainly did not create it
	NoteDone      = "DONE"      // the note exists in the CRM (CRMID)
)

// CRMNote is CRMNOTE#<jobID> / NOTE.
type CRMNote struct {
	State      string    `dynamodbav:"state"`
	Owner      string    `dynamodbav:"owner"`
	LeaseUntil int64     `dynamodbav:"leaseUntil"` // epoch ms: a CLAIMED note is presumed dead after it
	CRMID      string    `dynamodbav:"crmId,omitempty"`
	Attempts   int       `dynamodbav:"attempts"`
	Updated    time.Time `dynamodbav:"updatedAt"`
}

// NoteClaim is the outcome of ClaimCRMNote.
type NoteClaim struct {
	// Done: the note exists already (CRMID); nothing to do.
	Done  bool
	CRMID string
	// Recover: an earlier attempt may have created the note: look for it in the
	// CRM before creating it.
	Recover bool
}

// ErrNoteBusy is returned when another attempt holds an unexpired claim on a note.
var ErrNoteBusy = errors.New("note claimed by another attempt")

func crmNoteKey(jobID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "CRMNOTE#" + jobID},
		"SK": &types.AttributeValueMemberS{Value: "NOTE"},
	}
}

// ClaimCRMNote claims the note of a timeline job for owner until leaseUntil:
// a new claim when there is none; a take-over of a FREE or UNCERTAIN note, or
// of a CLAIMED one whose lease ran out (Recover set unless FREE). It returns
// Done for a note already created, and an error wrapping ErrNoteBusy while
// another attempt holds the claim.
func (s *Store) ClaimCRMNote(ctx context.Context, jobID, owner string, leaseUntil time.Time) (NoteClaim, error) {
	now := s.now().UTC()
	n := CRMNote{State: NoteClaimed, Owner: owner, LeaseUntil: leaseUntil.UnixMilli(), Attempts: 1, Updated: now}
	item, err := attributevalue.MarshalMap(n)
	if err != nil {
		return NoteClaim{}, fmt.Errorf("store: encode note claim: %w", err)
	}
	for k, v := range crmNoteKey(jobID) {
		item[k] = v
	}
	item["ttl"] = crmN(now.Add(crmNoteKeep).Unix())
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")})
	if err == nil {
		return NoteClaim{}, nil
	}
	if !isConditionFailed(err) {
		return NoteClaim{}, fmt.Errorf("store: claim note %s: %w", jobID, err)
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: crmNoteKey(jobID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return NoteClaim{}, fmt.Errorf("store: read note claim %s: %w", jobID, err)
	}
	var cur CRMNote
	if out.Item == nil {
		return NoteClaim{}, fmt.Errorf("store: note claim %s vanished: %w", jobID, ErrConflict)
	}
	if err := attributevalue.UnmarshalMap(out.Item, &cur); err != nil {
		return NoteClaim{}, fmt.Errorf("store: decode note claim %s: %w", jobID, err)
	}
	switch {
	case cur.State == NoteDone:
		return NoteClaim{Done: true, CRMID: cur.CRMID}, nil
	case cur.State == NoteClaimed && cur.LeaseUntil > now.UnixMilli():
		return NoteClaim{}, fmt.Errorf("store: note %s until %s: %w", jobID, time.UnixMilli(cur.LeaseUntil).UTC().Format(time.RFC3339), ErrNoteBusy)
	}
	// Take over: conditional on the claim being exactly as read.
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 crmNoteKey(jobID),
		UpdateExpression:    aws.String("SET #state = :claimed, #owner = :me, leaseUntil = :until, updatedAt = :now ADD attempts :one"),
		ConditionExpression: aws.String("#state = :was AND #owner = :prev AND leaseUntil = :prevLease"),
		ExpressionAttributeNames: map[string]string{
			"#state": "state", "#owner": "owner",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":claimed": crmS(NoteClaimed), ":me": crmS(owner), ":until": crmN(leaseUntil.UnixMilli()), ":now": crmS(now.Format(time.RFC3339Nano)),
			":one": crmN(1), ":was": crmS(cur.State), ":prev": crmS(cur.Owner), ":prevLease": crmN(cur.LeaseUntil),
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return NoteClaim{}, fmt.Errorf("store: note %s taken over by another attempt: %w", jobID, ErrNoteBusy)
		}
		return NoteClaim{}, fmt.Errorf("store: take over note %s: %w", jobID, err)
	}
	return NoteClaim{Recover: cur.State != NoteFree}, nil
}

// CompleteCRMNote marks owner's claimed note as created (crmID); ErrConflict
// when the claim was taken over meanwhile.
func (s *Store) CompleteCRMNote(ctx context.Context, jobID, owner, crmID string) error {
	return s.setNote(ctx, jobID, owner, NoteDone, crmID)
}

// ReleaseCRMNote gives up owner's claim after a failed attempt: UNCERTAIN when
// the CRM may have created the note (the next attempt looks for it first),
// FREE when it certainly did not.
func (s *Store) ReleaseCRMNote(ctx context.Context, jobID, owner string, uncertain bool) error {
	state := NoteFree
	if uncertain {
		state = NoteUncertain
	}
	return s.setNote(ctx, jobID, owner, state, "")
}

func (s *Store) setNote(ctx context.Context, jobID, owner, state, crmID string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 crmNoteKey(jobID),
		UpdateExpression:    aws.String("SET #state = :state, crmId = :id, leaseUntil = :zero, updatedAt = :now"),
		ConditionExpression: aws.String("#owner = :me AND #state = :claimed"),
		ExpressionAttributeNames: map[string]string{
			"#state": "state", "#owner": "owner",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":state": crmS(state), ":id": crmS(crmID), ":zero": crmN(0), ":now": crmS(s.now().UTC().Format(time.RFC3339Nano)),
			":me": crmS(owner), ":claimed": crmS(NoteClaimed),
		},
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("store: note %s is no longer claimed by this attempt: %w", jobID, ErrConflict)
		}
		return fmt.Errorf("store: set note %s %s: %w", jobID, state, err)
	}
	return nil
}

// GetCRMNote reads a note claim; ErrNotFound when there is none.
func (s *Store) GetCRMNote(ctx context.Context, jobID string) (CRMNote, error) {
	return getItem(ctx, s, crmNoteKey(jobID), "note "+jobID, CRMNote{})
}

// CRMFailure is a permanent CRM failure: recorded, logged, counted and not
// retried (CRMFAIL#<jobID> / FAIL#<externalID>).
type CRMFailure struct {
	JobID      string    `dynamodbav:"jobId"`
	EventID    string    `dynamodbav:"eventId,omitempty"`
	ExternalID string    `dynamodbav:"externalId,omitempty"`
	Op         string    `dynamodbav:"op,omitempty"`
	Status     int       `dynamodbav:"status,omitempty"`
	Code       string    `dynamodbav:"code,omitempty"`
	Message    string    `dynamodbav:"message"`
	At         time.Time `dynamodbav:"at"`
}

// RecordCRMFailure stores f (a redelivery overwrites the same item).
func (s *Store) RecordCRMFailure(ctx context.Context, f CRMFailure) error {
	if f.At.IsZero() {
		f.At = s.now().UTC()
	}
	item, err := attributevalue.MarshalMap(f)
	if err != nil {
		return fmt.Errorf("store: encode crm failure: %w", err)
	}
	ext := f.ExternalID
	if ext == "" {
		ext = "-"
	}
	item["PK"] = crmS("CRMFAIL#" + f.JobID)
	item["SK"] = crmS("FAIL#" + ext)
	item["GSI1PK"] = crmS("CRMFAIL")
	item["GSI1SK"] = crmS(f.At.UTC().Format(time.RFC3339Nano) + "#" + f.JobID)
	item["ttl"] = crmN(s.ttlAfter(crmFailKeep))
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("store: put crm failure %s: %w", f.JobID, err)
	}
	return nil
}

// ListCRMFailures returns the most recent permanent CRM failures, newest first.
func (s *Store) ListCRMFailures(ctx context.Context, limit int32) ([]CRMFailure, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("GSI1PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": crmS("CRMFAIL")},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(limit),
	})
	if err != nil {
		return nil, fmt.Errorf("store: list crm failures: %w", err)
	}
	var fs []CRMFailure
	if err := attributevalue.UnmarshalListOfMaps(out.Items, &fs); err != nil {
		return nil, fmt.Errorf("store: decode crm failures: %w", err)
	}
	return fs, nil
}

func crmN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func crmS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
