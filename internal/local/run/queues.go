package run

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/coiflow/coiflow/internal/jobs"
)

// QueueSQS is the part of the SQS client the queue report uses.
type QueueSQS interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// QueueStatus is one work queue's depth and latest jobs.
type QueueStatus struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Consumer string `json:"consumer,omitempty"`
	Visible  int    `json:"visible"`
	InFlight int    `json:"inFlight"`
	Delayed  int    `json:"delayed"`
	DLQ      int    `json:"dlq"`
	// Jobs are the latest visible jobs, newest first (only with peeking).
	Jobs []JobSummary `json:"jobs,omitempty"`
	// DLQJobs are the latest jobs in the DLQ, newest first (only with peeking).
	DLQJobs []JobSummary `json:"dlqJobs,omitempty"`
}

// JobSummary is what the report shows of one message.
type JobSummary struct {
	MessageID string    `json:"messageId"`
	Sent      time.Time `json:"sent"`
	Receives  int       `json:"receives"`
	Kind      string    `json:"kind"`
	EventID   string    `json:"eventId,omitempty"`
	Source    string    `json:"source,omitempty"`
	Type      string    `json:"type,omitempty"`
	Entity    string    `json:"entity,omitempty"`
	// Problem is set when the body is not a job this version reads.
	Problem string `json:"problem,omitempty"`
}

// maxPeek bounds how many messages one peek looks at per queue.
const maxPeek = 100

// QueueReport reads each work queue's depth (visible / in flight / delayed /
// DLQ) and, when peek > 0, its latest `peek` jobs and DLQ jobs. SQS has no
// browse: peeking receives the visible messages (up to 100) and makes them
// visible again at once, without deleting them — which adds one to each
// message's receive count (and so counts toward the queue's maxReceiveCount).
func QueueReport(ctx context.Context, c QueueSQS, info Info, peek int) ([]QueueStatus, error) {
	var out []QueueStatus
	for _, name := range sortedKeys(info.Queues) {
		q := info.Queues[name]
		st := QueueStatus{Name: name, URL: q.URL, Consumer: q.Consumer}
		attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.URL), AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		}})
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", name, err)
		}
		st.Visible = atoi(attrs.Attributes["ApproximateNumberOfMessages"])
		st.InFlight = atoi(attrs.Attributes["ApproximateNumberOfMessagesNotVisible"])
		st.Delayed = atoi(attrs.Attributes["ApproximateNumberOfMessagesDelayed"])
		if q.DLQURL != "" {
			d, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.DLQURL), AttributeNames: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			}})
			if err != nil {
				return nil, fmt.Errorf("dlq of %s: %w", name, err)
			}
			st.DLQ = atoi(d.Attributes["ApproximateNumberOfMessages"]) + atoi(d.Attributes["ApproximateNumberOfMessagesNotVisible"])
		}
		if peek > 0 {
			if st.Visible > 0 {
				if st.Jobs, err = peekQueue(ctx, c, q.URL, peek); err != nil {
					return nil, fmt.Errorf("peek %s: %w", name, err)
				}
			}
			if st.DLQ > 0 {
				if st.DLQJobs, err = peekQueue(ctx, c, q.DLQURL, peek); err != nil {
					return nil, fmt.Errorf("peek dlq of %s: %w", name, err)
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// peekQueue receives up to maxPeek visible messages (hidden for 30 s while it
// pages through them), puts them back at once, and returns the newest n.
func peekQueue(ctx context.Context, c QueueSQS, url string, n int) ([]JobSummary, error) {
	var msgs []types.Message
	seen := map[string]bool{}
	defer func() {
		// Put everything back, even when a later receive failed.
		for i := 0; i < len(msgs); i += 10 {
			var entries []types.ChangeMessageVisibilityBatchRequestEntry
			for j, m := range msgs[i:min(i+10, len(msgs))] {
				entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
			}
			_, _ = c.ChangeMessageVisibilityBatch(context.WithoutCancel(ctx), &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: entries})
		}
	}()
	for len(msgs) < maxPeek {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 30, WaitTimeSeconds: 0,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, m := range out.Messages {
			if id := aws.ToString(m.MessageId); !seen[id] {
				seen[id] = true
				msgs = append(msgs, m)
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	jobsOut := make([]JobSummary, 0, len(msgs))
	for _, m := range msgs {
		jobsOut = append(jobsOut, summarize(m))
	}
	sort.SliceStable(jobsOut, func(i, j int) bool { return jobsOut[i].Sent.After(jobsOut[j].Sent) })
	if len(jobsOut) > n {
		jobsOut = jobsOut[:n]
	}
	return jobsOut, nil
}

func summarize(m types.Message) JobSummary {
	s := JobSummary{MessageID: aws.ToString(m.MessageId), Receives: atoi(m.Attributes["ApproximateReceiveCount"])}
	if ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64); err == nil {
		s.Sent = time.UnixMilli(ms).UTC()
	}
	j, err := jobs.Unmarshal(aws.ToString(m.Body))
	if err != nil {
		s.Kind = "?"
		s.Problem = err.Error()
		return s
	}
	s.Kind = string(j.Kind)
	switch j.Kind {
	case jobs.KindTimeline:
		s.Type = j.Timeline.Outcome
		s.Entity = "certificate " + j.Timeline.CertificateID
		s.Source = j.Timeline.Source
	default:
		s.EventID = j.Event.ID
		s.Source = string(j.Event.Source)
		s.Type = j.Event.Type
		s.Entity = strings.TrimSpace(string(j.Event.EntityKind) + " " + j.Event.EntityID)
	}
	return s
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// WriteQueueReport prints the report as a table.
func WriteQueueReport(w io.Writer, qs []QueueStatus, peeked bool) {
	fmt.Fprintf(w, "%-16s %-14s %8s %10s %8s %6s\n", "QUEUE", "CONSUMER", "VISIBLE", "IN FLIGHT", "DELAYED", "DLQ")
	for _, q := range qs {
		consumer := q.Consumer
		if consumer == "" {
			consumer = "-"
		}
		fmt.Fprintf(w, "%-16s %-14s %8d %10d %8d %6d\n", q.Name, consumer, q.Visible, q.InFlight, q.Delayed, q.DLQ)
	}
	if !peeked {
		return
	}
	for _, q := range qs {
		for _, sec := range []struct {
			title string
			jobs  []JobSummary
		}{{q.Name + ": latest jobs", q.Jobs}, {q.Name + " DLQ: latest jobs", q.DLQJobs}} {
			if len(sec.jobs) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n%s\n", sec.title)
			fmt.Fprintf(w, "  %-20s %-38s %-9s %-24s %-44s %s\n", "SENT", "EVENT", "SOURCE", "TYPE", "ENTITY", "RECEIVES")
			for _, j := range sec.jobs {
				ev := j.EventID
				if j.Problem != "" {
					ev = "(unreadable: " + j.Problem + ")"
				} else if j.Kind == string(jobs.KindTimeline) {
					ev = "(timeline)"
				}
				fmt.Fprintf(w, "  %-20s %-38s %-9s %-24s %-44s %d\n", j.Sent.Format("2006-01-02 15:04:05"), ev, j.Source, j.Type, j.Entity, j.Receives)
			}
		}
	}
	fmt.Fprintf(w, "\n(peeking receives the messages and puts them back: each peek adds one to a job's receive count)\n")
}
