package store_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

// lostAnswerDB applies the first claim write twice, as the SDK's retryer does
// when DynamoDB applied a write but its answer was lost (connection reset,
// HTTP 500): the caller sees the second try's answer, a failed condition on
// the item its own first try wrote.
type lostAnswerDB struct {
	store.DB
	done atomic.Bool
}

func (d *lostAnswerDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if in.ConditionExpression != nil && strings.Contains(*in.ConditionExpression, "attribute_not_exists(PK)") && d.done.CompareAndSwap(false, true) {
		if _, err := d.DB.UpdateItem(ctx, in, o...); err != nil {
			return nil, err
		}
	}
	return d.DB.UpdateItem(ctx, in, o...)
}

// TestClaimSendRetriedAfterLostAnswerKeepsTheClaim: a claim whose write landed
// but whose answer was lost, then retried, is this attempt's claim — not a
// duplicate of someone else's (which would leave the certificate unsent and,
// after the lease, wrongly UNKNOWN).
func TestClaimSendRetriedAfterLostAnswerKeepsTheClaim(t *testing.T) {
	env := testenv.Get(t)
	db := &lostAnswerDB{DB: env.DynamoDB()}
	st := store.New(db, env.NewTable(t))
	ctx := context.Background()
	rec, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_lost"), Owner: "o-lost", Lease: time.Minute})
	if err != nil {
		t.Fatalf("claim whose own earlier try landed: %v", err)
	}
	if !db.done.Load() {
		t.Fatal("the lost answer was not simulated")
	}
	if rec.Status != store.SendSending || rec.Owner != "o-lost" || rec.ID != "snd_lost" || rec.Attempts != 1 {
		t.Fatalf("claimed = %+v", rec)
	}
	if err := st.CompleteSend(ctx, "snd_lost", "o-lost", store.Completion{Status: store.SendSent, Answer: "ok"}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	// Someone else's live claim is still a conflict.
	if _, err := st.ClaimSend(ctx, store.Claim{Send: sampleSend("snd_lost"), Owner: "o-other", Lease: time.Minute}); err == nil {
		t.Fatal("a SENT record was claimed again")
	}
}
