package main

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/opstarget"
	"github.com/coiflow/coiflow/internal/progress"
	"github.com/coiflow/coiflow/internal/redrive"
)

func cmdRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("redrive", "redrive [--max N] [--dry-run] [--native] [--aws | --state FILE] QUEUE\n"+
		"  QUEUE: crm-jobs, send-jobs (or CrmJobsQueue, SendJobsQueue, their DLQs CrmJobsDLQ, SendJobsDLQ), or a queue URL (a work queue or its DLQ)", stderr)
	maxN := fs.Int("max", 0, "move at most N messages (0: until the DLQ is empty)")
	dryRun := fs.Bool("dry-run", false, "show the queues and how many messages would move; move nothing")
	native := fs.Bool("native", false, "use SQS's own message move task (AWS only: local stand-ins do not implement it)")
	visibility := fs.Duration("visibility", redrive.DefaultVisibility, "how long received messages stay hidden from other consumers while they are moved")
	queueURL := fs.String("queue-url", "", "the queue's URL, instead of QUEUE")
	tf := addTargetFlags(fs)
	if code, stop := parse(fs, args); stop {
		return code
	}
	name := *queueURL
	switch {
	case fs.NArg() == 1 && name == "":
		name = fs.Arg(0)
	case fs.NArg() == 0 && name != "":
	default:
		fmt.Fprintln(stderr, "coiflow redrive: want one QUEUE (or --queue-url)")
		fs.Usage()
		return exitUsage
	}
	if *maxN < 0 {
		fmt.Fprintln(stderr, "coiflow redrive: --max must be 0 or more")
		return exitUsage
	}
	if *native && *maxN > 0 {
		fmt.Fprintln(stderr, "coiflow redrive: --max cannot limit a --native move (SQS moves every message)")
		return exitUsage
	}

	t, err := tf.open(ctx, opstarget.IsAWSURL(name))
	if err != nil {
		return fail(stderr, "redrive", err)
	}
	url, err := t.QueueURL(name)
	if err != nil {
		return fail(stderr, "redrive", err)
	}
	api := sqs.NewFromConfig(t.AWS)
	route, err := redrive.Resolve(ctx, api, url, t.SourceQueueURLs())
	if err != nil {
		return fail(stderr, "redrive", err)
	}
	visible, inFlight, err := redrive.Depth(ctx, api, route.DLQURL)
	if err != nil {
		return fail(stderr, "redrive", err)
	}
	fmt.Fprintf(stderr, "coiflow redrive (%s): %s → %s (source found from %s); about %d messages in the DLQ, %d of them in flight\n",
		t.Where, route.DLQURL, route.SourceURL, route.Via, visible+inFlight, inFlight)

	if *dryRun {
		n := visible
		if *maxN > 0 {
			n = min(n, *maxN)
		}
		fmt.Fprintf(stdout, "dry run: would move %d of about %d visible messages from %s to %s (in flight, not movable now: %d)\n",
			n, visible, route.DLQURL, route.SourceURL, inFlight)
		return exitOK
	}

	line := progress.New(stderr)
	if *native {
		st, err := redrive.MoveNative(ctx, api, route, redrive.NativeOptions{Progress: func(s redrive.TaskStatus) {
			line.Update(nativeProgress(s))
		}})
		if st.Handle != "" {
			line.Done(nativeProgress(st))
		}
		if err != nil {
			return fail(stderr, "redrive", err)
		}
		fmt.Fprintf(stdout, "moved %d (SQS message move task %s)\n", st.Moved, st.Status)
		return exitOK
	}

	total := visible
	if *maxN > 0 {
		total = min(total, *maxN)
	}
	st, err := redrive.Move(ctx, api, route, redrive.Options{Max: *maxN, Visibility: *visibility, Progress: func(s redrive.Stats) {
		line.Update(moveProgress(s, total))
	}})
	line.Done(moveProgress(st, total))
	fmt.Fprintln(stdout, st)
	for _, f := range st.Failures {
		fmt.Fprintf(stderr, "  not moved: message %s: %s\n", f.MessageID, f.Reason)
	}
	if st.Failed > len(st.Failures) {
		fmt.Fprintf(stderr, "  … and %d more not moved\n", st.Failed-len(st.Failures))
	}
	if st.Undeleted > 0 {
		fmt.Fprintf(stderr, "  %d messages were moved but could not be deleted from the DLQ: a later redrive moves them again (job ids make the workers absorb the duplicates)\n", st.Undeleted)
	}
	if err != nil {
		return fail(stderr, "redrive", err)
	}
	if st.Failed > 0 {
		return exitFail
	}
	return exitOK
}

func moveProgress(s redrive.Stats, total int) string {
	return fmt.Sprintf("redrive: moved %d, failed %d (about %d to move)", s.Moved, s.Failed, total)
}

func nativeProgress(s redrive.TaskStatus) string {
	of := "?"
	if s.ToMove >= 0 {
		of = fmt.Sprint(s.ToMove)
	}
	return fmt.Sprintf("redrive (SQS task %s): %s, moved %d of %s", s.Handle, s.Status, s.Moved, of)
}
