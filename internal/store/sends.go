package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Send statuses stored in a send record.
const (
	SendSending = "SENDING"
	SendSent    = "SENT"
	SendFailed  = "FAILED"
	SendUnknown = "UNKNOWN"
	// SendHeld: a hold waits for approval; only the approval may claim it.
	SendHeld = "HELD"
	// SendRejected: staff rejected the hold; never sent (a resend is refused).
	SendRejected = "REJECTED"
)

// Send is one send record: SEND#<id> / CLAIM. The same item is the exactly-once
// claim and the audit record of every attempt (History), so the happy path is
// one conditional write to claim and one to complete.
//
// Indexes: GSI1PK "CERT#<certificate id, lower case>", GSI1SK
// "SEND#<created>#<id>" (by certificate); GSI2PK "DAY#<yyyy-mm-dd of created,
// UTC>", GSI2SK "SEND#<created>#<id>" (by day).
type Send struct {
	ID            string `dynamodbav:"id"`
	CertificateID string `dynamodbav:"certificateId"`
	Revision      string `dynamodbav:"revision"`
	HolderID      string `dynamodbav:"holderId"`
	HolderName    string `dynamodbav:"holderName,omitempty"`
	// HolderEmail holds the recipient address(es), ", "-joined, in clear: the
	// audit log must say who received what. Never log it unmasked.
	HolderEmail  string `dynamodbav:"holderEmail,omitempty"`
	Fax          string `dynamodbav:"fax,omitempty"`
	Channel      string `dynamodbav:"channel"` // email | fax | email+fax
	AgencyID     string `dynamodbav:"agencyId,omitempty"`
	InsuredID    string `dynamodbav:"insuredId,omitempty"`
	InsuredName  string `dynamodbav:"insuredName,omitempty"`
	PolicyNumber string `dynamodbav:"policyNumber,omitempty"`
	Source       string `dynamodbav:"source,omitempty"`

	Status string `dynamodbav:"status"`
	// Owner is the random token of the attempt holding the claim.
	Owner string `dynamodbav:"owner,omitempty"`
	// LeaseUntil is when a SENDING claim is presumed dead (epoch milliseconds).
	LeaseUntil int64 `dynamodbav:"leaseUntil,omitempty"`
	// Retryable: a FAILED send that the next delivery may claim again.
	Retryable bool   `dynamodbav:"retryable,omitempty"`
	Attempts  int    `dynamodbav:"attempts"`
	RequestID string `dynamodbav:"requestId,omitempty"`
	EventID   string `dynamodbav:"eventId,omitempty"`
	Answer    string `dynamodbav:"answer,omitempty"` // NowCerts' answer (message)
	Error     string `dynamodbav:"error,omitempty"`

	ApprovedBy   string    `dynamodbav:"approvedBy,omitempty"`
	ApprovedAt   time.Time `dynamodbav:"approvedAt,omitempty"`
	HoldID       string    `dynamodbav:"holdId,omitempty"`
	ResendOf     string    `dynamodbav:"resendOf,omitempty"`
	ResendBy     string    `dynamodbav:"resendBy,omitempty"`
	ResendReason string    `dynamodbav:"resendReason,omitempty"`
	SupersededBy string    `dynamodbav:"supersededBy,omitempty"` // the resend of this send (ClaimResend)
	// ResendKey is the idempotency key of the request that resent this send
	// (as the caller keeps it; see ClaimResend).
	ResendKey  string    `dynamodbav:"resendKey,omitempty"`
	ReceivedAt time.Time `dynamodbav:"receivedAt,omitempty"` // webhook received (end-to-end latency)

	CreatedAt time.Time `dynamodbav:"createdAt"`
	UpdatedAt time.Time `dynamodbav:"updatedAt"`
	SentAt    time.Time `dynamodbav:"sentAt,omitempty"`
	History   []Attempt `dynamodbav:"history,omitempty"`
}

// setRecordFields sets a send record's descriptive fields, and on first write
// its creation time and index keys.
func setRecordFields(u *sendUpdate, rec Send, now time.Time) {
	created := auditTime(now) + "#" + rec.ID
	u.set("updatedAt", now)
	u.setIfMissing("createdAt", now)
	u.setIfMissing("GSI1PK", CertificateIndexKey(rec.CertificateID))
	u.setIfMissing("GSI1SK", "SEND#"+created)
	u.setIfMissing("GSI2PK", DayIndexKey(now))
	u.setIfMissing("GSI2SK", "SEND#"+created)
	u.set("id", rec.ID)
	u.set("certificateId", rec.CertificateID)
	u.sets = append(u.sets, u.name("revision")+" = "+u.val("revision", rec.Revision))
	u.sets = append(u.sets, u.name("holderId")+" = "+u.val("holderId", rec.HolderID))
	u.set("holderName", rec.HolderName)
	u.set("holderEmail", rec.HolderEmail)
	u.set("fax", rec.Fax)
	u.set("channel", rec.Channel)
	u.set("agencyId", rec.AgencyID)
	u.set("insuredId", rec.InsuredID)
	u.set("insuredName", rec.InsuredName)
	u.set("policyNumber", rec.PolicyNumber)
	u.set("source", rec.Source)
	u.set("requestId", rec.RequestID)
	u.set("eventId", rec.EventID)
	u.set("approvedBy", rec.ApprovedBy)
	u.set("approvedAt", rec.ApprovedAt)
	u.set("holdId", rec.HoldID)
	u.set("resendOf", rec.ResendOf)
	u.set("resendBy", rec.ResendBy)
	u.set("resendReason", rec.ResendReason)
	u.set("receivedAt", rec.ReceivedAt)
}

// EffectiveStatus is the record's status as staff should see it at now: a
// SENDING claim whose lease ran out is UNKNOWN even before a redelivery marks it.
func (r Send) EffectiveStatus(now time.Time) string {
	if r.Status == SendSending && r.LeaseUntil > 0 && r.LeaseUntil < now.UnixMilli() {
		return SendUnknown
	}
	return r.Status
}

// Attempt is one finished attempt of a send, appended to Send.History by the
// write that finishes it.
type Attempt struct {
	Owner     string    `dynamodbav:"owner"`
	RequestID string    `dynamodbav:"requestId,omitempty"`
	Status    string    `dynamodbav:"status"`
	Answer    string    `dynamodbav:"answer,omitempty"`
	Error     string    `dynamodbav:"error,omitempty"`
	At        time.Time `dynamodbav:"at"`
}

// Claim asks for the exclusive right to send one record.
type Claim struct {
	// Send carries the record's fields. Status, Owner, LeaseUntil, Attempts,
	// CreatedAt, UpdatedAt and History are set by ClaimSend.
	Send  Send
	Owner string
	Lease time.Duration
	// ReclaimUnknown lets the claim take over an UNKNOWN record (agency setting
	// resendUnknown). A retryable FAILED record is always re-claimable.
	ReclaimUnknown bool
	// ReclaimFailed lets the claim take over any FAILED record, retryable or
	// not; ReclaimHeld a HELD one (both: an explicit staff approval).
	ReclaimFailed bool
	ReclaimHeld   bool
	// Staff marks a claim made for staff (an approval or a resend). Only such
	// a claim may take over an existing record that belongs to a hold (has a
	// holdId): an automatic delivery never re-claims a hold's FAILED or
	// UNKNOWN record, whatever the rules say now.
	Staff bool
	// PolicyNumber, when set, makes the claim conditional on POLICY#<number>
	// not being CANCELLED, in the same transaction (no read).
	PolicyNumber string
	// Latest, when set, makes the claim conditional on Send.Revision being
	// the newest revision recorded for it (AdvanceRevision; none recorded
	// also passes), in the same transaction.
	Latest *RevisionKey
}

// ClaimConflictError says why a claim was refused: the record exists in a state
// that cannot be claimed (Existing), or the policy was reported cancelled.
type ClaimConflictError struct {
	ID              string
	Existing        Send
	Found           bool // Existing is valid
	PolicyCancelled bool
	// Superseded: a newer revision of the certificate is recorded for the
	// holder (Newer); the record itself was not looked at.
	Superseded bool
	Newer      RevisionMark
}

func (e *ClaimConflictError) Error() string {
	if e.PolicyCancelled {
		return "claim send " + e.ID + ": policy reported cancelled"
	}
	if e.Superseded {
		return "claim send " + e.ID + ": superseded by revision " + e.Newer.Revision + " (send " + e.Newer.SendID + ")"
	}
	if e.Found {
		return "claim send " + e.ID + ": already " + e.Existing.Status
	}
	return "claim send " + e.ID + ": conflict"
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ClaimConflictError) Unwrap() error { return ErrConflict }

// auditTimeLayout is fixed-width so sort keys order by time.
const auditTimeLayout = "2006-01-02T15:04:05.000000Z"

func auditTime(t time.Time) string { return t.UTC().Format(auditTimeLayout) }

func sendKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "SEND#" + id},
		"SK": &types.AttributeValueMemberS{Value: "CLAIM"},
	}
}

// CertificateIndexKey is the GSI1 partition of a certificate's sends.
func CertificateIndexKey(certificateID string) string {
	return "CERT#" + strings.ToLower(certificateID)
}

// DayIndexKey is the GSI2 partition of a day's sends (UTC).
func DayIndexKey(t time.Time) string { return "DAY#" + t.UTC().Format("2006-01-02") }

// sendUpdate accumulates an UpdateItem expression.
type sendUpdate struct {
	sets    []string
	removes []string
	names   map[string]string
	values  map[string]types.AttributeValue
	err     error
}

func newSendUpdate() *sendUpdate {
	return &sendUpdate{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

func (u *sendUpdate) name(attr string) string {
	n := "#" + attr
	u.names[n] = attr
	return n
}

func (u *sendUpdate) val(key string, v any) string {
	k := ":" + key
	av, err := attributevalue.Marshal(v)
	if err != nil && u.err == nil {
		u.err = fmt.Errorf("encode %s: %w", key, err)
	}
	u.values[k] = av
	return k
}

// set adds "attr = v"; empty strings and zero times are skipped (they would
// be written as nothing anyway).
func (u *sendUpdate) set(attr string, v any) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return
		}
	case time.Time:
		if x.IsZero() {
			return
		}
		v = x.UTC()
	}
	u.sets = append(u.sets, u.name(attr)+" = "+u.val(attr, v))
}

func (u *sendUpdate) setIfMissing(attr string, v any) {
	n := u.name(attr)
	u.sets = append(u.sets, n+" = if_not_exists("+n+", "+u.val(attr, v)+")")
}

func (u *sendUpdate) remove(attr string) { u.removes = append(u.removes, u.name(attr)) }

func (u *sendUpdate) expression() string {
	e := "SET " + strings.Join(u.sets, ", ")
	if len(u.removes) > 0 {
		e += " REMOVE " + strings.Join(u.removes, ", ")
	}
	return e
}

// ClaimSend claims record c.Send.ID for one attempt (status SENDING, owner
// c.Owner, lease c.Lease) with one conditional write: it succeeds when the
// record does not exist, is FAILED and retryable (any FAILED with
// ReclaimFailed), or UNKNOWN (ReclaimUnknown), or HELD (ReclaimHeld); a FAILED
// or UNKNOWN record that belongs to a hold only for a Staff claim. Otherwise
// it returns a *ClaimConflictError carrying the existing record (taken from
// the failed write, no read). It returns the record as claimed (Attempts
// counts this attempt; 0 when the claim was a transaction, which returns no
// values: CompleteSendRecord returns the right count).
func (s *Store) ClaimSend(ctx context.Context, c Claim) (Send, error) {
	now := s.now().UTC()
	rec := c.Send
	if rec.ID == "" || rec.CertificateID == "" || c.Owner == "" {
		return Send{}, errors.New("claim send: id, certificate id and owner are required")
	}
	u := newSendUpdate()
	u.set("status", SendSending)
	u.set("owner", c.Owner)
	u.set("leaseUntil", now.Add(c.Lease).UnixMilli())
	u.sets = append(u.sets, u.name("attempts")+" = if_not_exists("+u.name("attempts")+", "+u.val("zero", 0)+") + "+u.val("one", 1))
	setRecordFields(u, rec, now)
	u.remove("error")
	u.remove("retryable")
	st := u.name("status")
	// notHeld keeps an automatic claim off records that belong to a hold;
	// notResent keeps every claim off a record staff resent (the resend is
	// the send now: the original going out again would be a second send).
	notResent := " AND attribute_not_exists(" + u.name("supersededBy") + ")"
	notHeld := func() string {
		if c.Staff {
			return notResent
		}
		return " AND attribute_not_exists(" + u.name("holdId") + ")" + notResent
	}
	conds := []string{"attribute_not_exists(PK)"}
	if c.ReclaimFailed {
		conds = append(conds, "("+st+" = "+u.val("failed", SendFailed)+notResent+")")
	} else {
		conds = append(conds, "("+st+" = "+u.val("failed", SendFailed)+" AND "+u.name("retryable")+" = "+u.val("true", true)+notHeld()+")")
	}
	if c.ReclaimUnknown {
		conds = append(conds, "("+st+" = "+u.val("unknown", SendUnknown)+notHeld()+")")
	}
	if c.ReclaimHeld {
		conds = append(conds, st+" = "+u.val("held", SendHeld))
	}
	cond := strings.Join(conds, " OR ")
	if u.err != nil {
		return Send{}, fmt.Errorf("claim send %s: %w", rec.ID, u.err)
	}
	upd := &types.Update{
		TableName:                           aws.String(s.table),
		Key:                                 sendKey(rec.ID),
		UpdateExpression:                    aws.String(u.expression()),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            u.names,
		ExpressionAttributeValues:           u.values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	var err error
	if c.PolicyNumber == "" && c.Latest == nil {
		var out *dynamodb.UpdateItemOutput
		out, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: upd.TableName, Key: upd.Key, UpdateExpression: upd.UpdateExpression,
			ConditionExpression: upd.ConditionExpression, ExpressionAttributeNames: upd.ExpressionAttributeNames,
			ExpressionAttributeValues:           upd.ExpressionAttributeValues,
			ReturnValues:                        types.ReturnValueUpdatedNew,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			if n, ok := out.Attributes["attempts"].(*types.AttributeValueMemberN); ok {
				rec.Attempts, _ = strconv.Atoi(n.Value)
			}
		}
		if err != nil {
			var ccf *types.ConditionalCheckFailedException
			if errors.As(err, &ccf) {
				return ownClaim(s.claimConflict(ctx, rec.ID, ccf.Item), c.Owner)
			}
			return Send{}, fmt.Errorf("claim send %s: %w", rec.ID, err)
		}
	} else {
		// The guards are condition checks in one transaction with the claim
		// (no reads); the cancellation reasons say which one failed.
		var items []types.TransactWriteItem
		policyAt, latestAt := -1, -1
		if c.PolicyNumber != "" {
			policyAt = len(items)
			items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
				TableName:                 aws.String(s.table),
				Key:                       policyKey(c.PolicyNumber),
				ConditionExpression:       aws.String("attribute_not_exists(PK) OR #pst <> :cancelled"),
				ExpressionAttributeNames:  map[string]string{"#pst": "status"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":cancelled": &types.AttributeValueMemberS{Value: PolicyCancelled}},
			}})
		}
		if c.Latest != nil {
			latestAt = len(items)
			items = append(items, types.TransactWriteItem{ConditionCheck: latestCheck(s.table, *c.Latest, rec.Revision)})
		}
		updAt := len(items)
		items = append(items, types.TransactWriteItem{Update: upd})
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err != nil {
			var tce *types.TransactionCanceledException
			if errors.As(err, &tce) && len(tce.CancellationReasons) == len(items) {
				r := tce.CancellationReasons
				switch {
				case latestAt >= 0 && isCCF(r[latestAt].Code):
					return Send{}, &ClaimConflictError{ID: rec.ID, Superseded: true, Newer: markFrom(*c.Latest, r[latestAt].Item)}
				case policyAt >= 0 && isCCF(r[policyAt].Code):
					return Send{}, &ClaimConflictError{ID: rec.ID, PolicyCancelled: true}
				case isCCF(r[updAt].Code):
					return ownClaim(s.claimConflict(ctx, rec.ID, r[updAt].Item), c.Owner)
				}
			}
			return Send{}, fmt.Errorf("claim send %s: %w", rec.ID, err)
		}
	}
	rec.Status, rec.Owner, rec.LeaseUntil = SendSending, c.Owner, now.Add(c.Lease).UnixMilli()
	rec.UpdatedAt = now
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now
	}
	return rec, nil
}

func isCCF(code *string) bool { return code != nil && *code == "ConditionalCheckFailed" }

// ownClaim turns a claim conflict into success when the record is SENDING
// under this very owner token: an earlier try of the same write (the SDK
// retries a write whose answer was lost) already claimed it. Owner tokens are
// random per claim, so nobody else can hold it.
func ownClaim(err error, owner string) (Send, error) {
	var ce *ClaimConflictError
	if errors.As(err, &ce) && ce.Found && ce.Existing.Status == SendSending && ce.Existing.Owner == owner {
		return ce.Existing, nil
	}
	return Send{}, err
}

// claimConflict builds the conflict error from the item a failed write returned,
// reading it (consistently) only when the database did not return it.
func (s *Store) claimConflict(ctx context.Context, id string, item map[string]types.AttributeValue) error {
	ce := &ClaimConflictError{ID: id}
	if len(item) == 0 {
		got, err := s.GetSend(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("claim send %s: conflict, then %w", id, err)
		}
		if err == nil {
			ce.Existing, ce.Found = got, true
		}
		return ce
	}
	if err := attributevalue.UnmarshalMap(item, &ce.Existing); err != nil {
		return fmt.Errorf("claim send %s: decode existing: %w", id, err)
	}
	ce.Found = true
	return ce
}

// Completion is how an attempt ended.
type Completion struct {
	Status    string // SENT, FAILED or UNKNOWN
	Answer    string
	Error     string
	Retryable bool // FAILED only: the next delivery may claim again
	RequestID string
}

// CompleteSend records the end of the attempt that owns record id (owner): one
// update conditional on the owner (and on the record still being SENDING, or
// UNKNOWN because its lease ran out while this attempt was still running: the
// attempt knows better). ErrConflict when the attempt no longer owns it.
func (s *Store) CompleteSend(ctx context.Context, id, owner string, c Completion) error {
	_, err := s.CompleteSendRecord(ctx, id, owner, c)
	return err
}

// CompleteSendRecord is CompleteSend returning the record as completed (the
// same write; DynamoDB returns it without consuming read capacity). Its
// Attempts is right whichever way the claim was made (a claim made in a
// transaction cannot return it).
func (s *Store) CompleteSendRecord(ctx context.Context, id, owner string, c Completion) (Send, error) {
	now := s.now().UTC()
	u := newSendUpdate()
	u.set("status", c.Status)
	u.set("updatedAt", now)
	u.set("answer", c.Answer)
	u.set("error", c.Error)
	if c.Status == SendSent {
		u.set("sentAt", now)
	}
	if c.Status == SendFailed && c.Retryable {
		u.set("retryable", true)
	}
	hist := u.name("history")
	u.sets = append(u.sets, hist+" = list_append(if_not_exists("+hist+", "+u.val("empty", []Attempt{})+"), "+
		u.val("attempt", []Attempt{{Owner: owner, RequestID: c.RequestID, Status: c.Status, Answer: c.Answer, Error: c.Error, At: now}})+")")
	u.remove("leaseUntil")
	cond := "attribute_exists(PK) AND " + u.name("owner") + " = " + u.val("owner", owner) + " AND (" +
		u.name("status") + " = " + u.val("sending", SendSending) + " OR " + u.name("status") + " = " + u.val("unknown", SendUnknown) + ")"
	if u.err != nil {
		return Send{}, fmt.Errorf("complete send %s: %w", id, u.err)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table), Key: sendKey(id), UpdateExpression: aws.String(u.expression()),
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		if isConditionFailed(err) {
			return Send{}, fmt.Errorf("complete send %s: %w", id, ErrConflict)
		}
		return Send{}, fmt.Errorf("complete send %s: %w", id, err)
	}
	var rec Send
	if err := attributevalue.UnmarshalMap(out.Attributes, &rec); err != nil {
		return Send{}, fmt.Errorf("complete send %s: decode: %w", id, err)
	}
	return rec, nil
}

// MarkSendUnknown turns a SENDING record whose lease ran out (owned by owner)
// into UNKNOWN: the attempt may or may not have reached NowCerts. ErrConflict
// when the record changed meanwhile (completed, or claimed by someone else).
func (s *Store) MarkSendUnknown(ctx context.Context, id, owner, reason string) error {
	now := s.now().UTC()
	u := newSendUpdate()
	u.set("status", SendUnknown)
	u.set("updatedAt", now)
	u.set("error", reason)
	hist := u.name("history")
	u.sets = append(u.sets, hist+" = list_append(if_not_exists("+hist+", "+u.val("empty", []Attempt{})+"), "+
		u.val("attempt", []Attempt{{Owner: owner, Status: SendUnknown, Error: reason, At: now}})+")")
	cond := u.name("status") + " = " + u.val("sending", SendSending) + " AND " + u.name("owner") + " = " + u.val("owner", owner) +
		" AND " + u.name("leaseUntil") + " < " + u.val("now", now.UnixMilli())
	if u.err != nil {
		return fmt.Errorf("mark send %s unknown: %w", id, u.err)
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table), Key: sendKey(id), UpdateExpression: aws.String(u.expression()),
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("mark send %s unknown: %w", id, ErrConflict)
		}
		return fmt.Errorf("mark send %s unknown: %w", id, err)
	}
	return nil
}

// ClaimResend reserves the resend of record id, to be made as record newID:
// one conditional update setting supersededBy = newID (and resendKey = key,
// when set) on a record that was never resent. A send is resent at most once
// (a later resend is a resend of newID), so concurrent requests make one. It
// fails with ErrConflict when the record was resent already, is being sent
// (a live SENDING claim), or does not exist (read it to tell). It clears
// retryable: once resent, the original is never claimed again (ClaimSend).
func (s *Store) ClaimResend(ctx context.Context, id, newID, key string) error {
	return s.ClaimResendOf(ctx, id, newID, key, nil, "")
}

// ClaimResendOf is ClaimResend that also requires revision to be the newest
// recorded for latest (when set), in the same transaction: a resend of an
// older revision would send the newer content. That refusal is a
// *ClaimConflictError with Superseded set.
func (s *Store) ClaimResendOf(ctx context.Context, id, newID, key string, latest *RevisionKey, revision string) error {
	if id == "" || newID == "" {
		return fmt.Errorf("claim resend of %q: id and new id are required", id)
	}
	now := s.now().UTC()
	u := newSendUpdate()
	u.set("supersededBy", newID)
	u.set("resendKey", key)
	u.set("updatedAt", now)
	// The original can no longer be retried by its own job's redelivery.
	u.remove("retryable")
	// Not while an attempt holds the original's live claim: that attempt and
	// the resend would both send.
	cond := "attribute_exists(PK) AND attribute_not_exists(" + u.name("supersededBy") + ") AND (" +
		u.name("status") + " <> " + u.val("sending", SendSending) + " OR " + u.name("leaseUntil") + " < " + u.val("now", now.UnixMilli()) + ")"
	if u.err != nil {
		return fmt.Errorf("claim resend of %s: %w", id, u.err)
	}
	var err error
	if latest == nil {
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(s.table), Key: sendKey(id), UpdateExpression: aws.String(u.expression()),
			ConditionExpression: aws.String(cond), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
		})
	} else {
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{ConditionCheck: latestCheck(s.table, *latest, revision)},
			{Update: &types.Update{TableName: aws.String(s.table), Key: sendKey(id), UpdateExpression: aws.String(u.expression()),
				ConditionExpression: aws.String(cond), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values}},
		}})
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) && len(tce.CancellationReasons) == 2 && isCCF(tce.CancellationReasons[0].Code) {
			return &ClaimConflictError{ID: id, Superseded: true, Newer: markFrom(*latest, tce.CancellationReasons[0].Item)}
		}
	}
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("claim resend of %s: %w", id, ErrConflict)
		}
		return fmt.Errorf("claim resend of %s: %w", id, err)
	}
	return nil
}

// GetSend reads one send record (strongly consistent).
func (s *Store) GetSend(ctx context.Context, id string) (Send, error) {
	return getItem(ctx, s, sendKey(id), "send "+id, Send{})
}

// SendFilter selects send records for QuerySends.
type SendFilter struct {
	// CertificateID queries GSI1; otherwise the days From..To (UTC, inclusive)
	// are queried on GSI2, newest first.
	CertificateID string
	From, To      time.Time
	// Holder matches the holder id or any recipient email, case-insensitively.
	Holder string
	Status string
	Limit  int
	Cursor string
}

// MaxQueryDays bounds a day-range query.
const MaxQueryDays = 366

// ErrBadCursor is returned for a cursor QuerySends did not produce.
var ErrBadCursor = errors.New("bad cursor")

// sendCursor is where the next page starts: the day being read (day queries)
// and the last returned item's keys.
type sendCursor struct {
	Day string            `json:"d,omitempty"`
	Key map[string]string `json:"k,omitempty"`
}

// QuerySends returns up to f.Limit records matching f, newest first, and the
// cursor of the next page ("" when there is none).
func (s *Store) QuerySends(ctx context.Context, f SendFilter) ([]Send, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	var cur sendCursor
	if f.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil || json.Unmarshal(b, &cur) != nil {
			return nil, "", ErrBadCursor
		}
	}
	var parts []queryPart
	if f.CertificateID != "" {
		// A certificate's sends are few: read its index partition and apply any
		// from/to bounds as a filter (either may be open).
		parts = []queryPart{{index: GSI1, pk: "GSI1PK", sk: "GSI1SK", value: CertificateIndexKey(f.CertificateID), from: f.From.UTC(), to: f.To.UTC()}}
	} else {
		from, to := f.From.UTC(), f.To.UTC()
		if to.IsZero() {
			to = s.now().UTC()
		}
		if from.IsZero() {
			from = to.AddDate(0, 0, -7)
		}
		if from.After(to) {
			return nil, "", fmt.Errorf("query sends: from %s is after to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
		}
		first := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
		last := time.Date(to.Year(), to.Month(), to.Day(), 0, 0, 0, 0, time.UTC)
		if last.Sub(first) > MaxQueryDays*24*time.Hour {
			return nil, "", fmt.Errorf("query sends: more than %d days", MaxQueryDays)
		}
		for d := last; !d.Before(first); d = d.AddDate(0, 0, -1) {
			parts = append(parts, queryPart{index: GSI2, pk: "GSI2PK", sk: "GSI2SK", value: DayIndexKey(d), from: from, to: to})
		}
	}
	// Resume at the cursor's day.
	if cur.Day != "" {
		i := 0
		for i < len(parts) && parts[i].value != cur.Day {
			i++
		}
		if i == len(parts) {
			return nil, "", ErrBadCursor
		}
		parts = parts[i:]
	}
	var out []Send
	for pi, p := range parts {
		var start map[string]types.AttributeValue
		if pi == 0 && len(cur.Key) > 0 {
			start = map[string]types.AttributeValue{}
			for k, v := range cur.Key {
				start[k] = &types.AttributeValueMemberS{Value: v}
			}
		}
		for {
			in := &dynamodb.QueryInput{
				TableName:                 aws.String(s.table),
				IndexName:                 aws.String(p.index),
				KeyConditionExpression:    aws.String("#pk = :pk AND begins_with(#sk, :pre)"),
				ExpressionAttributeNames:  map[string]string{"#pk": p.pk, "#sk": p.sk},
				ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: p.value}, ":pre": &types.AttributeValueMemberS{Value: "SEND#"}},
				ScanIndexForward:          aws.Bool(false),
				ExclusiveStartKey:         start,
				Limit:                     aws.Int32(int32(min(max(limit*2, 25), 500))),
			}
			res, err := s.db.Query(ctx, in)
			if err != nil {
				return nil, "", fmt.Errorf("query sends %s: %w", p.value, err)
			}
			for _, item := range res.Items {
				var rec Send
				if err := attributevalue.UnmarshalMap(item, &rec); err != nil {
					return nil, "", fmt.Errorf("decode send: %w", err)
				}
				if (!p.from.IsZero() && rec.CreatedAt.Before(p.from)) || (!p.to.IsZero() && rec.CreatedAt.After(p.to)) {
					continue
				}
				if !sendMatches(rec, f, s.now()) {
					continue
				}
				out = append(out, rec)
				if len(out) == limit {
					next := sendCursor{Key: map[string]string{"PK": "SEND#" + rec.ID, "SK": "CLAIM", p.pk: attrS(item, p.pk), p.sk: attrS(item, p.sk)}}
					if f.CertificateID == "" {
						next.Day = p.value
					}
					b, _ := json.Marshal(next)
					return out, base64.RawURLEncoding.EncodeToString(b), nil
				}
			}
			if len(res.LastEvaluatedKey) == 0 {
				break
			}
			start = res.LastEvaluatedKey
		}
	}
	return out, "", nil
}

type queryPart struct {
	index, pk, sk, value string
	from, to             time.Time
}

func attrS(item map[string]types.AttributeValue, k string) string {
	if v, ok := item[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func sendMatches(rec Send, f SendFilter, now time.Time) bool {
	if f.Status != "" && !strings.EqualFold(rec.EffectiveStatus(now), f.Status) {
		return false
	}
	if f.CertificateID != "" && !strings.EqualFold(rec.CertificateID, f.CertificateID) {
		return false
	}
	if h := strings.TrimSpace(f.Holder); h != "" {
		if strings.EqualFold(rec.HolderID, h) {
			return true
		}
		for _, e := range strings.Split(rec.HolderEmail, ",") {
			if strings.EqualFold(strings.TrimSpace(e), h) {
				return true
			}
		}
		return false
	}
	return true
}
