package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Hold statuses.
const (
	HoldPending   = "pending"
	HoldApproving = "approving"
	HoldApproved  = "approved"
	HoldRejected  = "rejected"
)

// Hold is a certificate held for approval: HOLD#<id> / HOLD. GSI1PK is
// "HOLDS#<pending|approved|rejected>" (an approving hold stays listed as
// pending), GSI1SK "<created>#<id>", so each status lists newest first.
type Hold struct {
	ID            string `dynamodbav:"id"`
	SendID        string `dynamodbav:"sendId"` // the send record approval will claim
	CertificateID string `dynamodbav:"certificateId"`
	Revision      string `dynamodbav:"revision"`
	HolderID      string `dynamodbav:"holderId"`
	HolderName    string `dynamodbav:"holderName,omitempty"`
	HolderEmail   string `dynamodbav:"holderEmail,omitempty"` // clear: needed to send; never log unmasked
	Fax           string `dynamodbav:"fax,omitempty"`
	// HistoricalIDs are HistoricalCertificateHolderList ids known when the hold
	// was made (master-certificate reissues): what NowCerts Approve takes.
	HistoricalIDs []string  `dynamodbav:"historicalIds,omitempty"`
	AgencyID      string    `dynamodbav:"agencyId,omitempty"`
	InsuredID     string    `dynamodbav:"insuredId,omitempty"`
	InsuredName   string    `dynamodbav:"insuredName,omitempty"`
	PolicyNumber  string    `dynamodbav:"policyNumber,omitempty"`
	Source        string    `dynamodbav:"source,omitempty"`
	Reasons       []string  `dynamodbav:"reasons"`
	Status        string    `dynamodbav:"status"`
	EventID       string    `dynamodbav:"eventId,omitempty"`
	RequestID     string    `dynamodbav:"requestId,omitempty"`
	ReceivedAt    time.Time `dynamodbav:"receivedAt,omitempty"`
	CreatedAt     time.Time `dynamodbav:"createdAt"`
	UpdatedAt     time.Time `dynamodbav:"updatedAt"`
	// ApprovingBy / ApprovingUntil: the approval in progress and when it is
	// presumed dead (epoch ms) so another approval may take over.
	ApprovingBy    string    `dynamodbav:"approvingBy,omitempty"`
	ApprovingUntil int64     `dynamodbav:"approvingUntil,omitempty"`
	DecidedBy      string    `dynamodbav:"decidedBy,omitempty"`
	DecidedAt      time.Time `dynamodbav:"decidedAt,omitempty"`
	Reason         string    `dynamodbav:"reason,omitempty"` // why rejected
	LastError      string    `dynamodbav:"lastError,omitempty"`
	SendIDs        []string  `dynamodbav:"sendIds,omitempty"`
	// RecipientsAt is the time (epoch ms) of the event the holder's name,
	// email and fax come from: a later event may correct them while the hold
	// is pending (UpdateHoldRecipients), an older one may not.
	RecipientsAt int64 `dynamodbav:"recipientsAt,omitempty"`
}

// HoldRecipients are a held certificate's recipients as an event gave them.
type HoldRecipients struct {
	Name, Email, Fax string
	Channel          string // of the send record: email | fax | email+fax
	At               time.Time
}

// UpdateHoldRecipients replaces the recipients of pending hold id (and of its
// send record, HELD or FAILED after a failed approval) with r, in one
// transaction, when r comes from a later event than the current ones. It
// reports whether it did: false when the hold is not pending (being approved,
// decided) or r is not newer.
func (s *Store) UpdateHoldRecipients(ctx context.Context, id, sendID string, r HoldRecipients) (bool, error) {
	now := s.now().UTC()
	at := r.At.UnixMilli()
	hu := newSendUpdate()
	hu.set("updatedAt", now)
	hu.sets = append(hu.sets, hu.name("recipientsAt")+" = "+hu.val("at", at))
	su := newSendUpdate()
	su.set("updatedAt", now)
	for _, f := range []struct{ attr, v string }{{"holderName", r.Name}, {"holderEmail", r.Email}, {"fax", r.Fax}} {
		if f.v == "" {
			hu.remove(f.attr)
			su.remove(f.attr)
			continue
		}
		hu.set(f.attr, f.v)
		su.set(f.attr, f.v)
	}
	su.set("channel", r.Channel)
	hcond := hu.name("status") + " = " + hu.val("pending", HoldPending) + " AND (attribute_not_exists(" + hu.name("recipientsAt") + ") OR " +
		hu.name("recipientsAt") + " < " + hu.val("at", at) + ")"
	scond := "(" + su.name("status") + " = " + su.val("held", SendHeld) + " OR " + su.name("status") + " = " + su.val("failed", SendFailed) + ") AND " +
		su.name("holdId") + " = " + su.val("hold", id)
	if hu.err != nil || su.err != nil {
		return false, fmt.Errorf("update recipients of hold %s: %w", id, errors.Join(hu.err, su.err))
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{TableName: aws.String(s.table), Key: holdKey(id), UpdateExpression: aws.String(hu.expression()),
			ConditionExpression: aws.String(hcond), ExpressionAttributeNames: hu.names, ExpressionAttributeValues: hu.values}},
		{Update: &types.Update{TableName: aws.String(s.table), Key: sendKey(sendID), UpdateExpression: aws.String(su.expression()),
			ConditionExpression: aws.String(scond), ExpressionAttributeNames: su.names, ExpressionAttributeValues: su.values}},
	}})
	if err != nil {
		if isConditionFailed(err) {
			return false, nil
		}
		return false, fmt.Errorf("update recipients of hold %s: %w", id, err)
	}
	return true, nil
}

func holdKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "HOLD#" + id},
		"SK": &types.AttributeValueMemberS{Value: "HOLD"},
	}
}

func holdListKey(status string) string {
	if status == HoldApproving {
		status = HoldPending
	}
	return "HOLDS#" + status
}

// PutHold records a new pending hold h and, in the same transaction, marks its
// send record rec (h.SendID) HELD, so that nothing but the approval can claim
// it. It fails with ErrConflict when the hold exists (a redelivered event), or
// with a *ClaimConflictError when the send record exists in a state other than
// FAILED (already sent, being sent, unknown, held or rejected); nothing is
// written then.
func (s *Store) PutHold(ctx context.Context, h Hold, rec Send) error {
	return s.PutHoldOf(ctx, h, rec, nil)
}

// PutHoldOf is PutHold that also requires rec.Revision to be the newest
// revision recorded for latest (when set), in the same transaction; that
// refusal is a *ClaimConflictError with Superseded set.
func (s *Store) PutHoldOf(ctx context.Context, h Hold, rec Send, latest *RevisionKey) error {
	now := s.now().UTC()
	h.Status = HoldPending
	if h.CreatedAt.IsZero() {
		h.CreatedAt = now
	}
	h.UpdatedAt = now
	if h.SendID == "" || rec.ID != h.SendID {
		return fmt.Errorf("put hold %s: send record id %q does not match the hold's %q", h.ID, rec.ID, h.SendID)
	}
	item, err := attributevalue.MarshalMap(h)
	if err != nil {
		return fmt.Errorf("encode hold %s: %w", h.ID, err)
	}
	for k, v := range holdKey(h.ID) {
		item[k] = v
	}
	item["GSI1PK"] = &types.AttributeValueMemberS{Value: holdListKey(HoldPending)}
	item["GSI1SK"] = &types.AttributeValueMemberS{Value: auditTime(h.CreatedAt) + "#" + h.ID}

	rec.HoldID = h.ID
	u := newSendUpdate()
	u.set("status", SendHeld)
	u.setIfMissing("attempts", 0)
	setRecordFields(u, rec, now)
	u.remove("owner")
	u.remove("leaseUntil")
	u.remove("retryable")
	cond := "attribute_not_exists(PK) OR " + u.name("status") + " = " + u.val("failed", SendFailed)
	if u.err != nil {
		return fmt.Errorf("put hold %s: %w", h.ID, u.err)
	}
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{Update: &types.Update{
			TableName: aws.String(s.table), Key: sendKey(rec.ID), UpdateExpression: aws.String(u.expression()),
			ConditionExpression: aws.String(cond), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}
	if latest != nil {
		items = append(items, types.TransactWriteItem{ConditionCheck: latestCheck(s.table, *latest, rec.Revision)})
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err != nil {
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) && len(tce.CancellationReasons) == len(items) {
			r := tce.CancellationReasons
			switch {
			case latest != nil && isCCF(r[2].Code):
				return &ClaimConflictError{ID: rec.ID, Superseded: true, Newer: markFrom(*latest, r[2].Item)}
			case isCCF(r[0].Code):
				return fmt.Errorf("put hold %s: %w", h.ID, ErrConflict)
			case isCCF(r[1].Code):
				return s.claimConflict(ctx, rec.ID, r[1].Item)
			}
		}
		return fmt.Errorf("put hold %s: %w", h.ID, err)
	}
	return nil
}

// GetHold reads one hold (strongly consistent).
func (s *Store) GetHold(ctx context.Context, id string) (Hold, error) {
	return getItem(ctx, s, holdKey(id), "hold "+id, Hold{})
}

// ListHolds returns up to limit holds with status (pending includes holds
// being approved), newest first, and the cursor of the next page.
func (s *Store) ListHolds(ctx context.Context, status string, limit int, cursor string) ([]Hold, string, error) {
	if limit <= 0 {
		limit = 50
	}
	var start map[string]types.AttributeValue
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		var k map[string]string
		if err != nil || json.Unmarshal(b, &k) != nil || len(k) == 0 {
			return nil, "", ErrBadCursor
		}
		start = map[string]types.AttributeValue{}
		for n, v := range k {
			start[n] = &types.AttributeValueMemberS{Value: v}
		}
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("GSI1PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: holdListKey(status)}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit)),
		ExclusiveStartKey:         start,
	})
	if err != nil {
		return nil, "", fmt.Errorf("list %s holds: %w", status, err)
	}
	holds := make([]Hold, 0, len(out.Items))
	for _, item := range out.Items {
		var h Hold
		if err := attributevalue.UnmarshalMap(item, &h); err != nil {
			return nil, "", fmt.Errorf("decode hold: %w", err)
		}
		holds = append(holds, h)
	}
	next := ""
	if len(out.LastEvaluatedKey) > 0 {
		k := map[string]string{}
		for n := range out.LastEvaluatedKey {
			k[n] = attrS(out.LastEvaluatedKey, n)
		}
		b, _ := json.Marshal(k)
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	return holds, next, nil
}

// holdDecision runs one conditional update on a hold, returning the hold after
// it. A failed condition is ErrNotFound when there is no such hold, otherwise a
// *HoldConflictError with the hold as it is.
func (s *Store) holdDecision(ctx context.Context, id, op string, u *sendUpdate, cond string) (Hold, error) {
	if u.err != nil {
		return Hold{}, fmt.Errorf("%s hold %s: %w", op, id, u.err)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table), Key: holdKey(id), UpdateExpression: aws.String(u.expression()),
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			item := ccf.Item
			if len(item) == 0 {
				h, gerr := s.GetHold(ctx, id)
				if gerr != nil {
					return Hold{}, fmt.Errorf("%s hold %s: %w", op, id, gerr)
				}
				return Hold{}, &HoldConflictError{Op: op, Hold: h}
			}
			var h Hold
			if derr := attributevalue.UnmarshalMap(item, &h); derr != nil {
				return Hold{}, fmt.Errorf("%s hold %s: decode: %w", op, id, derr)
			}
			return Hold{}, &HoldConflictError{Op: op, Hold: h}
		}
		return Hold{}, fmt.Errorf("%s hold %s: %w", op, id, err)
	}
	var h Hold
	if err := attributevalue.UnmarshalMap(out.Attributes, &h); err != nil {
		return Hold{}, fmt.Errorf("%s hold %s: decode: %w", op, id, err)
	}
	return h, nil
}

// HoldConflictError: the hold is not in a state that allows the operation.
type HoldConflictError struct {
	Op   string
	Hold Hold
}

func (e *HoldConflictError) Error() string {
	return e.Op + " hold " + e.Hold.ID + ": hold is " + e.Hold.Status
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *HoldConflictError) Unwrap() error { return ErrConflict }

// decidable is the condition for starting a decision: pending, or an approval
// whose lease ran out.
func decidable(u *sendUpdate, now time.Time) string {
	st := u.name("status")
	return "attribute_exists(PK) AND (" + st + " = " + u.val("pending", HoldPending) + " OR (" + st + " = " +
		u.val("approving", HoldApproving) + " AND " + u.name("approvingUntil") + " < " + u.val("nowms", now.UnixMilli()) + "))"
}

// BeginApproval moves a pending hold to approving for approver, for at most
// lease. It returns the hold as approving.
func (s *Store) BeginApproval(ctx context.Context, id, approver string, lease time.Duration) (Hold, error) {
	now := s.now().UTC()
	u := newSendUpdate()
	u.set("status", HoldApproving)
	u.set("approvingBy", approver)
	u.set("approvingUntil", now.Add(lease).UnixMilli())
	u.set("updatedAt", now)
	return s.holdDecision(ctx, id, "approve", u, decidable(u, now))
}

// EndApproval finishes an approval begun by approver: approved (with the sends
// it made) when ok, else back to pending with lastError.
func (s *Store) EndApproval(ctx context.Context, id, approver string, ok bool, sendIDs []string, lastError string) (Hold, error) {
	now := s.now().UTC()
	u := newSendUpdate()
	if ok {
		u.set("status", HoldApproved)
		u.set("GSI1PK", holdListKey(HoldApproved))
		u.set("decidedBy", approver)
		u.set("decidedAt", now)
		u.remove("lastError")
	} else {
		u.set("status", HoldPending)
		u.set("lastError", lastError)
	}
	if len(sendIDs) > 0 {
		u.set("sendIds", sendIDs)
	}
	u.set("updatedAt", now)
	u.remove("approvingUntil")
	u.remove("approvingBy")
	cond := u.name("status") + " = " + u.val("approving", HoldApproving) + " AND " + u.name("approvingBy") + " = " + u.val("by", approver)
	return s.holdDecision(ctx, id, "finish approval of", u, cond)
}

// RejectHold closes a pending hold without sending, recording by and reason,
// and marks its send record REJECTED in the same transaction (from HELD, or
// FAILED after a failed approval). It returns the hold as rejected.
func (s *Store) RejectHold(ctx context.Context, id, by, reason string) (Hold, error) {
	cur, err := s.GetHold(ctx, id)
	if err != nil {
		return Hold{}, err
	}
	now := s.now().UTC()
	u := newSendUpdate()
	u.set("status", HoldRejected)
	u.set("GSI1PK", holdListKey(HoldRejected))
	u.set("decidedBy", by)
	u.set("decidedAt", now)
	u.set("reason", reason)
	u.set("updatedAt", now)
	u.remove("approvingUntil")
	u.remove("approvingBy")
	cond := decidable(u, now)
	if u.err != nil {
		return Hold{}, fmt.Errorf("reject hold %s: %w", id, u.err)
	}
	items := []types.TransactWriteItem{{Update: &types.Update{
		TableName: aws.String(s.table), Key: holdKey(id), UpdateExpression: aws.String(u.expression()),
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
	}}}
	if cur.SendID != "" {
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName: aws.String(s.table), Key: sendKey(cur.SendID),
			UpdateExpression:         aws.String("SET #st = :rejected, updatedAt = :now"),
			ConditionExpression:      aws.String("#st IN (:held, :failed)"),
			ExpressionAttributeNames: map[string]string{"#st": "status"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":rejected": &types.AttributeValueMemberS{Value: SendRejected}, ":held": &types.AttributeValueMemberS{Value: SendHeld},
				":failed": &types.AttributeValueMemberS{Value: SendFailed}, ":now": &types.AttributeValueMemberS{Value: now.Format(time.RFC3339Nano)},
			},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	}
	if _, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) && len(tce.CancellationReasons) == len(items) {
			if isCCF(tce.CancellationReasons[0].Code) {
				h, gerr := s.GetHold(ctx, id)
				if gerr != nil {
					return Hold{}, fmt.Errorf("reject hold %s: %w", id, gerr)
				}
				return Hold{}, &HoldConflictError{Op: "reject", Hold: h}
			}
			if len(items) == 2 && isCCF(tce.CancellationReasons[1].Code) {
				return Hold{}, fmt.Errorf("reject hold %s: its send %s: %w", id, cur.SendID, s.claimConflict(ctx, cur.SendID, tce.CancellationReasons[1].Item))
			}
		}
		return Hold{}, fmt.Errorf("reject hold %s: %w", id, err)
	}
	h, err := s.GetHold(ctx, id)
	if err != nil {
		return Hold{}, fmt.Errorf("reject hold %s: %w", id, err)
	}
	return h, nil
}

// PolicyCancelled is the normalised status of a policy the carrier cancelled.
const PolicyCancelled = "CANCELLED"

// PolicyStatus is a carrier-reported policy status: POLICY#<number> / STATUS.
type PolicyStatus struct {
	Number     string    `dynamodbav:"number"`
	Status     string    `dynamodbav:"status"` // normalised upper case; CANCELED reads as CANCELLED
	RawStatus  string    `dynamodbav:"rawStatus,omitempty"`
	OccurredAt time.Time `dynamodbav:"occurredAt"`
	EventTime  int64     `dynamodbav:"eventTime"` // OccurredAt in epoch ms (the ordering guard)
	EventID    string    `dynamodbav:"eventId,omitempty"`
	UpdatedAt  time.Time `dynamodbav:"updatedAt"`
}

// NormalisePolicyNumber is how policy numbers are keyed.
func NormalisePolicyNumber(n string) string { return strings.ToUpper(strings.TrimSpace(n)) }

// NormalisePolicyStatus upper-cases a status and reads CANCELED as CANCELLED.
func NormalisePolicyStatus(st string) string {
	st = strings.ToUpper(strings.TrimSpace(st))
	if st == "CANCELED" {
		return PolicyCancelled
	}
	return st
}

func policyKey(number string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "POLICY#" + NormalisePolicyNumber(number)},
		"SK": &types.AttributeValueMemberS{Value: "STATUS"},
	}
}

// PutPolicyStatus records p unless a status from a later (or the same) event
// time is already stored: then ErrConflict, and nothing changes.
func (s *Store) PutPolicyStatus(ctx context.Context, p PolicyStatus) error {
	p.Number = NormalisePolicyNumber(p.Number)
	if p.Number == "" {
		return errors.New("put policy status: no policy number")
	}
	p.RawStatus = p.Status
	p.Status = NormalisePolicyStatus(p.Status)
	p.OccurredAt = p.OccurredAt.UTC()
	p.EventTime = p.OccurredAt.UnixMilli()
	p.UpdatedAt = s.now().UTC()
	item, err := attributevalue.MarshalMap(p)
	if err != nil {
		return fmt.Errorf("encode policy %s status: %w", p.Number, err)
	}
	for k, v := range policyKey(p.Number) {
		item[k] = v
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(PK) OR eventTime < :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberN{Value: fmt.Sprint(p.EventTime)}},
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("put policy %s status: %w", p.Number, ErrConflict)
		}
		return fmt.Errorf("put policy %s status: %w", p.Number, err)
	}
	return nil
}

// GetPolicyStatus reads a policy's status; ErrNotFound when none was reported.
func (s *Store) GetPolicyStatus(ctx context.Context, number string) (PolicyStatus, error) {
	return getItem(ctx, s, policyKey(number), "policy "+number+" status", PolicyStatus{})
}

// HoldBacklog is the approval backlog: holds waiting for staff.
type HoldBacklog struct {
	Pending int
	// Oldest is when the longest-waiting pending hold was made (zero when
	// there is none).
	Oldest time.Time
}

// CountPendingHolds counts the pending holds (including those being
// approved) on the index, page by page, and finds the oldest. It reads keys
// only: one Query with Select COUNT per 1 MB of index, plus one item.
func (s *Store) CountPendingHolds(ctx context.Context) (HoldBacklog, error) {
	pk := map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: holdListKey(HoldPending)}}
	var b HoldBacklog
	var start map[string]types.AttributeValue
	for {
		in := &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(GSI1),
			KeyConditionExpression:    aws.String("GSI1PK = :pk"),
			ExpressionAttributeValues: pk,
			Select:                    types.SelectCount,
			ExclusiveStartKey:         start,
		}
		if s.countPage > 0 {
			in.Limit = aws.Int32(s.countPage)
		}
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return HoldBacklog{}, fmt.Errorf("count pending holds: %w", err)
		}
		b.Pending += int(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	if b.Pending == 0 {
		return b, nil
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("GSI1PK = :pk"),
		ExpressionAttributeValues: pk,
		ScanIndexForward:          aws.Bool(true),
		Limit:                     aws.Int32(1),
		ProjectionExpression:      aws.String("GSI1SK"),
	})
	if err != nil {
		return HoldBacklog{}, fmt.Errorf("find the oldest pending hold: %w", err)
	}
	if len(out.Items) == 1 {
		sk := attrS(out.Items[0], "GSI1SK")
		created, _, _ := strings.Cut(sk, "#")
		t, err := time.Parse(auditTimeLayout, created)
		if err != nil {
			return HoldBacklog{}, fmt.Errorf("oldest pending hold: index key %q: %w", sk, err)
		}
		b.Oldest = t
	}
	return b, nil
}
