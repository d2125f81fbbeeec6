// Package redrive moves messages from a dead-letter queue back to the queue
// they came from (coiflow redrive).
//
// Resolve finds the pair: a source queue names its DLQ in its RedrivePolicy;
// for a DLQ, the source queues are found with ListDeadLetterSourceQueues, the
// DLQ's RedriveAllowPolicy, or the RedrivePolicy of known queues — never from
// a hard-coded list.
//
// Move is the manual move that works on every SQS (AWS, moto, local-aws-sqs):
// it receives up to ten messages with a visibility timeout (so a concurrent
// redrive does not see them), sends them to the source queue with their body
// and message attributes, and deletes from the DLQ only the messages the
// source queue accepted. A message that cannot be sent stays in the DLQ; it is
// made visible again when the move ends. The move is at-least-once: a message
// whose send succeeded but whose delete failed is on the source queue and
// still in the DLQ (Stats.Undeleted), and a later redrive sends it again —
// coiflow's job ids make the workers absorb such duplicates.
//
// MoveNative starts SQS's own message move task instead (AWS only).
package redrive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// API is the part of the SQS client redrive uses.
type API interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	ListDeadLetterSourceQueues(ctx context.Context, in *sqs.ListDeadLetterSourceQueuesInput, opts ...func(*sqs.Options)) (*sqs.ListDeadLetterSourceQueuesOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Route is a dead-letter queue and the queue its messages go back to.
type Route struct {
	DLQURL, DLQARN       string
	SourceURL, SourceARN string
	// Via says how the pair was found (for the operator).
	Via string
}

// ErrNoSource is returned when no queue redrives into the DLQ.
var ErrNoSource = errors.New("no source queue found")

// ErrAmbiguous is returned when several queues redrive into the DLQ.
var ErrAmbiguous = errors.New("several source queues")

// Resolve returns the route for queueURL, which is either a source queue (its
// RedrivePolicy names the DLQ) or a DLQ. For a DLQ the source is, in order of
// trust: the queues SQS lists as its dead-letter sources, the queues its
// RedriveAllowPolicy names, and those of candidates (other known queue URLs)
// whose RedrivePolicy targets it. It fails with ErrNoSource when none does and
// ErrAmbiguous when more than one does (name the source queue instead).
func Resolve(ctx context.Context, api API, queueURL string, candidates []string) (Route, error) {
	a, err := queueAttrs(ctx, api, queueURL)
	if err != nil {
		return Route{}, err
	}
	if a.redrive.DeadLetterTargetArn != "" {
		dlqURL, err := urlOf(ctx, api, a.redrive.DeadLetterTargetArn)
		if err != nil {
			return Route{}, fmt.Errorf("dead-letter queue of %s: %w", queueURL, err)
		}
		return Route{DLQURL: dlqURL, DLQARN: a.redrive.DeadLetterTargetArn, SourceURL: queueURL, SourceARN: a.arn,
			Via: "the source queue's RedrivePolicy"}, nil
	}

	// queueURL has no RedrivePolicy: it is a DLQ, or a queue without one.
	type found struct{ url, via string }
	var sources []found
	add := func(url, via string) {
		if url != "" && url != queueURL && !slices.ContainsFunc(sources, func(f found) bool { return f.url == url }) {
			sources = append(sources, found{url, via})
		}
	}
	var notes []string
	if out, err := api.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(queueURL)}); err != nil {
		notes = append(notes, fmt.Sprintf("ListDeadLetterSourceQueues failed: %v", err))
	} else {
		for _, u := range out.QueueUrls {
			add(u, "ListDeadLetterSourceQueues")
		}
	}
	for _, arn := range a.allow.SourceQueueArns {
		u, err := urlOf(ctx, api, arn)
		if err != nil {
			notes = append(notes, fmt.Sprintf("RedriveAllowPolicy names %s: %v", arn, err))
			continue
		}
		add(u, "the DLQ's RedriveAllowPolicy")
	}
	for _, c := range candidates {
		if c == "" || c == queueURL {
			continue
		}
		ca, err := queueAttrs(ctx, api, c)
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		if ca.redrive.DeadLetterTargetArn == a.arn {
			add(c, "the source queue's RedrivePolicy")
		}
	}
	switch len(sources) {
	case 0:
		msg := fmt.Sprintf("%s: %v: no queue names it as its dead-letter queue", queueURL, ErrNoSource)
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		return Route{}, errors.New(msg + "; name the source queue instead")
	case 1:
	default:
		urls := make([]string, len(sources))
		for i, s := range sources {
			urls[i] = s.url
		}
		return Route{}, fmt.Errorf("%s: %w redrive into it (%s); name the one to move its messages to", queueURL, ErrAmbiguous, strings.Join(urls, ", "))
	}
	src, err := queueAttrs(ctx, api, sources[0].url)
	if err != nil {
		return Route{}, err
	}
	return Route{DLQURL: queueURL, DLQARN: a.arn, SourceURL: sources[0].url, SourceARN: src.arn, Via: sources[0].via}, nil
}

// Depth returns the DLQ's approximate number of visible and in-flight messages.
func Depth(ctx context.Context, api API, url string) (visible, inFlight int, err error) {
	out, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	}})
	if err != nil {
		return 0, 0, fmt.Errorf("depth of %s: %w", url, err)
	}
	return atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)]),
		atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]), nil
}

// attrs are the redrive-related attributes of a queue.
type attrs struct {
	arn     string
	redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	allow struct {
		RedrivePermission string   `json:"redrivePermission"`
		SourceQueueArns   []string `json:"sourceQueueArns"`
	}
}

func queueAttrs(ctx context.Context, api API, url string) (attrs, error) {
	// "All" rather than the three names: stand-ins that do not know
	// RedriveAllowPolicy (moto) refuse a request naming it.
	out, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameAll,
	}})
	if err != nil {
		return attrs{}, fmt.Errorf("queue %s: %w", url, err)
	}
	var a attrs
	a.arn = out.Attributes[string(types.QueueAttributeNameQueueArn)]
	if a.arn == "" {
		return attrs{}, fmt.Errorf("queue %s: SQS returned no QueueArn", url)
	}
	if p := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]; p != "" {
		if err := json.Unmarshal([]byte(p), &a.redrive); err != nil {
			return attrs{}, fmt.Errorf("queue %s: RedrivePolicy %q: %w", url, p, err)
		}
	}
	if p := out.Attributes[string(types.QueueAttributeNameRedriveAllowPolicy)]; p != "" {
		if err := json.Unmarshal([]byte(p), &a.allow); err != nil {
			return attrs{}, fmt.Errorf("queue %s: RedriveAllowPolicy %q: %w", url, p, err)
		}
		if !strings.EqualFold(a.allow.RedrivePermission, "byQueue") {
			a.allow.SourceQueueArns = nil
		}
	}
	return a, nil
}

// urlOf returns the URL of the queue arn (arn:aws:sqs:REGION:ACCOUNT:NAME).
func urlOf(ctx context.Context, api API, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", fmt.Errorf("%q is not an SQS queue ARN", arn)
	}
	in := &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5])}
	if parts[4] != "" {
		in.QueueOwnerAWSAccountId = aws.String(parts[4])
	}
	out, err := api.GetQueueUrl(ctx, in)
	if err != nil {
		return "", fmt.Errorf("url of %s: %w", arn, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
