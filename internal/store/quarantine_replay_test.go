package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/store"
)

// TestMarkQuarantineReplayed runs against DynamoDB Local: a record is marked
// once; a second mark is refused (naming the first) unless forced; a forced
// mark replaces the latest and extends the history; a missing record is
// ErrNotFound.
func TestMarkQuarantineReplayed(t *testing.T) {
	env := testenv.Get(t)
	st := store.New(env.DynamoDB(), env.NewTable(t))
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)
	q := store.Quarantined{ID: "evt_qr1", Source: "cowbell", Reason: "unknown", ReceivedAt: t0, Body: []byte(`{"meta":{}}`)}
	if _, err := st.PutQuarantine(ctx, q); err != nil {
		t.Fatal(err)
	}

	first := store.QuarantineReplay{At: t0.Add(time.Hour), By: "ann@desk", EventID: "evt_1", Queues: []string{"crm-jobs", "send-jobs"}}
	got, err := st.MarkQuarantineReplayed(ctx, q.ID, first, false)
	if err != nil {
		t.Fatalf("first mark: %v", err)
	}
	if got.Replay == nil || got.Replay.By != "ann@desk" || got.Replay.EventID != "evt_1" || !got.Replay.At.Equal(first.At) ||
		len(got.Replay.Queues) != 2 || got.Replay.Forced || string(got.Body) != string(q.Body) {
		t.Fatalf("marked record = %+v (replay %+v)", got, got.Replay)
	}
	read, err := st.GetQuarantine(ctx, q.ID)
	if err != nil || read.Replay == nil || read.Replay.EventID != "evt_1" {
		t.Fatalf("GetQuarantine after mark = %+v, %v", read, err)
	}

	_, err = st.MarkQuarantineReplayed(ctx, q.ID, store.QuarantineReplay{By: "bob@desk", EventID: "evt_1"}, false)
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "already replayed by ann@desk at 2026-03-02T16:04:05Z as evt_1") {
		t.Fatalf("second mark = %v, want ErrConflict naming the first replay", err)
	}

	forced, err := st.MarkQuarantineReplayed(ctx, q.ID, store.QuarantineReplay{At: t0.Add(2 * time.Hour), By: "bob@desk", EventID: "evt_1"}, true)
	if err != nil || forced.Replay == nil || forced.Replay.By != "bob@desk" || !forced.Replay.Forced {
		t.Fatalf("forced mark = %+v, %v", forced.Replay, err)
	}
	raw, err := env.DynamoDB().GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(st.Table()), Key: map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "QUARANTINE#evt_qr1"}, "SK": &types.AttributeValueMemberS{Value: "QUARANTINE"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := raw.Item["replays"].(*types.AttributeValueMemberL); !ok || len(h.Value) != 2 {
		t.Fatalf("replay history = %#v, want two entries", raw.Item["replays"])
	}
	// The quarantine index and the TTL are untouched.
	if raw.Item["GSI1PK"].(*types.AttributeValueMemberS).Value != store.QuarantineIndexKey || raw.Item["ttl"] == nil {
		t.Fatalf("index keys / ttl changed: %v", raw.Item)
	}

	for _, force := range []bool{false, true} {
		if _, err := st.MarkQuarantineReplayed(ctx, "evt_missing", store.QuarantineReplay{By: "x", EventID: "e"}, force); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("mark missing (force %v) = %v, want ErrNotFound", force, err)
		}
	}
	// Nothing was created for the missing id.
	if _, err := st.GetQuarantine(ctx, "evt_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetQuarantine(evt_missing) = %v, want ErrNotFound", err)
	}
}
