package redrive

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// fakeTasks scripts SQS's answers to a message move task (moto does not
// implement these operations, so they are unit-tested only).
type fakeTasks struct {
	startErr error
	started  *sqs.StartMessageMoveTaskInput
	lists    [][]types.ListMessageMoveTasksResultEntry // one per ListMessageMoveTasks call
	calls    int
}

func (f *fakeTasks) StartMessageMoveTask(_ context.Context, in *sqs.StartMessageMoveTaskInput, _ ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error) {
	if f.startErr != nil {
		return nil, f.startErr
	}
	f.started = in
	return &sqs.StartMessageMoveTaskOutput{TaskHandle: aws.String("handle-1")}, nil
}

func (f *fakeTasks) ListMessageMoveTasks(_ context.Context, in *sqs.ListMessageMoveTasksInput, _ ...func(*sqs.Options)) (*sqs.ListMessageMoveTasksOutput, error) {
	l := f.lists[min(f.calls, len(f.lists)-1)]
	f.calls++
	return &sqs.ListMessageMoveTasksOutput{Results: l}, nil
}

func task(handle, status string, started, moved int64, toMove *int64, reason string) types.ListMessageMoveTasksResultEntry {
	e := types.ListMessageMoveTasksResultEntry{Status: aws.String(status), StartedTimestamp: started, ApproximateNumberOfMessagesMoved: moved, ApproximateNumberOfMessagesToMove: toMove}
	if handle != "" {
		e.TaskHandle = aws.String(handle)
	}
	if reason != "" {
		e.FailureReason = aws.String(reason)
	}
	return e
}

var route = Route{DLQURL: "u-dlq", DLQARN: "arn:aws:sqs:us-east-1:1:dlq", SourceURL: "u", SourceARN: "arn:aws:sqs:us-east-1:1:src"}

func TestMoveNativeFollowsTheTask(t *testing.T) {
	now := time.Now().UnixMilli()
	old := task("", TaskCompleted, now-86_400_000, 7, aws.Int64(7), "")
	f := &fakeTasks{lists: [][]types.ListMessageMoveTasksResultEntry{
		{task("handle-1", TaskRunning, now, 3, aws.Int64(10), ""), old},
		// Ended: SQS no longer lists the handle; the start time identifies it.
		{task("", TaskCompleted, now, 10, aws.Int64(10), ""), old},
	}}
	var seen []TaskStatus
	st, err := MoveNative(context.Background(), f, route, NativeOptions{PerSecond: 50, Poll: time.Millisecond, Progress: func(s TaskStatus) { seen = append(seen, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != TaskCompleted || st.Moved != 10 || st.ToMove != 10 || st.Handle != "handle-1" {
		t.Fatalf("status %+v", st)
	}
	if len(seen) != 2 || seen[0].Moved != 3 || seen[0].Status != TaskRunning {
		t.Fatalf("progress %+v", seen)
	}
	if aws.ToString(f.started.SourceArn) != route.DLQARN || aws.ToString(f.started.DestinationArn) != route.SourceARN || aws.ToInt32(f.started.MaxNumberOfMessagesPerSecond) != 50 {
		t.Fatalf("started %+v", f.started)
	}
}

func TestMoveNativeReportsFailure(t *testing.T) {
	now := time.Now().UnixMilli()
	// The task ended before the first check: the newest task, started after
	// the call, is it; an older one is not mistaken for it.
	f := &fakeTasks{lists: [][]types.ListMessageMoveTasksResultEntry{
		{task("", TaskFailed, now, 4, nil, "AWS.SimpleQueueService.NonExistentQueue"), task("", TaskCompleted, now-86_400_000, 9, nil, "")},
	}}
	st, err := MoveNative(context.Background(), f, route, NativeOptions{Poll: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "failed after 4 messages: AWS.SimpleQueueService.NonExistentQueue") || st.ToMove != -1 {
		t.Fatalf("MoveNative = %+v, %v; want the failure reason", st, err)
	}

	// Only an old ended task is listed (ours not visible yet): keep polling.
	f = &fakeTasks{lists: [][]types.ListMessageMoveTasksResultEntry{
		{task("", TaskCompleted, now-86_400_000, 9, nil, "")},
		{task("", TaskCompleted, now, 2, aws.Int64(2), "")},
	}}
	st, err = MoveNative(context.Background(), f, route, NativeOptions{Poll: time.Millisecond})
	if err != nil || st.Moved != 2 || f.calls != 2 {
		t.Fatalf("MoveNative = %+v, %v after %d checks; want the new task's 2 moved", st, err, f.calls)
	}
}

func TestMoveNativeUnsupported(t *testing.T) {
	f := &fakeTasks{startErr: errors.New("InvalidAction: StartMessageMoveTask")}
	_, err := MoveNative(context.Background(), f, route, NativeOptions{})
	if err == nil || !strings.Contains(err.Error(), "leave out --native") {
		t.Fatalf("MoveNative = %v, want the hint to leave out --native", err)
	}
}
