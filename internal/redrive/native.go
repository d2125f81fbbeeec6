package redrive

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// NativeAPI is the part of the SQS client MoveNative uses.
type NativeAPI interface {
	StartMessageMoveTask(ctx context.Context, in *sqs.StartMessageMoveTaskInput, opts ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
	ListMessageMoveTasks(ctx context.Context, in *sqs.ListMessageMoveTasksInput, opts ...func(*sqs.Options)) (*sqs.ListMessageMoveTasksOutput, error)
}

// Task statuses SQS reports.
const (
	TaskRunning    = "RUNNING"
	TaskCompleted  = "COMPLETED"
	TaskCancelling = "CANCELLING"
	TaskCancelled  = "CANCELLED"
	TaskFailed     = "FAILED"
)

// TaskStatus is a message move task's progress.
type TaskStatus struct {
	Handle string
	Status string
	Moved  int64
	// ToMove is SQS's estimate of the messages to move; -1 when not known yet.
	ToMove        int64
	FailureReason string
}

// NativeOptions tune MoveNative.
type NativeOptions struct {
	// PerSecond caps the move rate (0: SQS's default, as fast as it goes).
	PerSecond int
	// Poll is how often the task is checked. Default 2 s.
	Poll time.Duration
	// Progress, when set, is called after every check.
	Progress func(TaskStatus)
}

// MoveNative starts SQS's own message move task from r.DLQURL's queue to
// r.SourceARN and follows it until it ends. SQS moves every message; it keeps
// each message's body and attributes. When ctx ends first, MoveNative returns
// at once and the task goes on in SQS (the returned status has its handle).
// Local stand-ins (moto) do not implement message move tasks: use Move there.
func MoveNative(ctx context.Context, api NativeAPI, r Route, o NativeOptions) (TaskStatus, error) {
	if r.DLQARN == "" || r.SourceARN == "" {
		return TaskStatus{ToMove: -1}, fmt.Errorf("redrive: route without DLQ or source queue ARN")
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	in := &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(r.DLQARN), DestinationArn: aws.String(r.SourceARN)}
	if o.PerSecond > 0 {
		in.MaxNumberOfMessagesPerSecond = aws.Int32(int32(o.PerSecond))
	}
	// A task that ended before it was first seen is recognised by its start
	// time (allowing for clock skew).
	notBefore := time.Now().Add(-10 * time.Second).UnixMilli()
	out, err := api.StartMessageMoveTask(ctx, in)
	if err != nil {
		return TaskStatus{ToMove: -1}, fmt.Errorf("start message move task from %s: %w (local SQS stand-ins do not implement it: leave out --native)", r.DLQARN, err)
	}
	st := TaskStatus{Handle: aws.ToString(out.TaskHandle), Status: TaskRunning, ToMove: -1}
	var started int64 // the task's start time, which identifies it once it ended
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("message move task %s continues in SQS: %w", st.Handle, ctx.Err())
		case <-timer.C:
		}
		list, err := api.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: aws.String(r.DLQARN), MaxResults: aws.Int32(10)})
		if err != nil {
			return st, fmt.Errorf("message move task %s: %w", st.Handle, err)
		}
		if t, ok := ourTask(list.Results, st.Handle, started, notBefore); ok {
			started = t.StartedTimestamp
			st.Status, st.Moved, st.FailureReason = aws.ToString(t.Status), t.ApproximateNumberOfMessagesMoved, aws.ToString(t.FailureReason)
			if t.ApproximateNumberOfMessagesToMove != nil {
				st.ToMove = *t.ApproximateNumberOfMessagesToMove
			}
			if o.Progress != nil {
				o.Progress(st)
			}
			switch st.Status {
			case TaskCompleted:
				return st, nil
			case TaskFailed:
				return st, fmt.Errorf("message move task %s failed after %d messages: %s", st.Handle, st.Moved, st.FailureReason)
			case TaskCancelled:
				return st, fmt.Errorf("message move task %s was cancelled after %d messages", st.Handle, st.Moved)
			}
		}
		timer.Reset(o.Poll)
	}
}

// ourTask finds the task started with handle among SQS's list (newest first).
// SQS lists the handle only while a task runs, so an ended task is known by
// its start time, or, when it ended before it was first seen, as the newest
// task if that started after notBefore.
func ourTask(ts []types.ListMessageMoveTasksResultEntry, handle string, started, notBefore int64) (types.ListMessageMoveTasksResultEntry, bool) {
	for _, t := range ts {
		if aws.ToString(t.TaskHandle) == handle || (started != 0 && t.StartedTimestamp == started) {
			return t, true
		}
	}
	if started == 0 && len(ts) > 0 && ts[0].TaskHandle == nil && aws.ToString(ts[0].Status) != TaskRunning && ts[0].StartedTimestamp >= notBefore {
		return ts[0], true
	}
	return types.ListMessageMoveTasksResultEntry{}, false
}
