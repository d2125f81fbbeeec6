package redrive

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// fakeQueues is an in-memory SQS metadata service for Resolve (unit tests; the
// integration tests run Resolve against moto). A stand-in without
// ListDeadLetterSourceQueues is modelled by listErr.
type fakeQueues struct {
	API                                  // nil: the message operations are not used here
	attrs   map[string]map[string]string // url -> attributes
	listErr error
}

func (f *fakeQueues) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	a, ok := f.attrs[aws.ToString(in.QueueUrl)]
	if !ok {
		return nil, errors.New("AWS.SimpleQueueService.NonExistentQueue")
	}
	return &sqs.GetQueueAttributesOutput{Attributes: a}, nil
}

func (f *fakeQueues) GetQueueUrl(_ context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	for url := range f.attrs {
		if strings.HasSuffix(url, "/"+aws.ToString(in.QueueOwnerAWSAccountId)+"/"+aws.ToString(in.QueueName)) {
			return &sqs.GetQueueUrlOutput{QueueUrl: aws.String(url)}, nil
		}
	}
	return nil, errors.New("AWS.SimpleQueueService.NonExistentQueue")
}

func (f *fakeQueues) ListDeadLetterSourceQueues(_ context.Context, in *sqs.ListDeadLetterSourceQueuesInput, _ ...func(*sqs.Options)) (*sqs.ListDeadLetterSourceQueuesOutput, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	dlqARN := f.attrs[aws.ToString(in.QueueUrl)]["QueueArn"]
	var out sqs.ListDeadLetterSourceQueuesOutput
	for url, a := range f.attrs {
		if strings.Contains(a["RedrivePolicy"], `"`+dlqARN+`"`) {
			out.QueueUrls = append(out.QueueUrls, url)
		}
	}
	return &out, nil
}

const host = "https://sqs.us-east-1.amazonaws.com/111122223333/"

func arn(name string) string { return "arn:aws:sqs:us-east-1:111122223333:" + name }

func queues(extra map[string]map[string]string) map[string]map[string]string {
	qs := map[string]map[string]string{
		host + "crm":     {"QueueArn": arn("crm"), "RedrivePolicy": `{"deadLetterTargetArn":"` + arn("crm-dlq") + `","maxReceiveCount":5}`},
		host + "crm-dlq": {"QueueArn": arn("crm-dlq")},
		host + "send":    {"QueueArn": arn("send"), "RedrivePolicy": `{"deadLetterTargetArn":"` + arn("send-dlq") + `","maxReceiveCount":5}`},
		host + "send-dlq": {"QueueArn": arn("send-dlq"),
			"RedriveAllowPolicy": `{"redrivePermission":"byQueue","sourceQueueArns":["` + arn("send") + `"]}`},
	}
	for k, v := range extra {
		qs[k] = v
	}
	return qs
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		f          *fakeQueues
		queue      string
		candidates []string
		want       Route
		err        string
	}{
		{name: "source queue", f: &fakeQueues{attrs: queues(nil)}, queue: host + "crm",
			want: Route{DLQURL: host + "crm-dlq", DLQARN: arn("crm-dlq"), SourceURL: host + "crm", SourceARN: arn("crm"), Via: "the source queue's RedrivePolicy"}},
		{name: "dlq listed by SQS", f: &fakeQueues{attrs: queues(nil)}, queue: host + "crm-dlq",
			want: Route{DLQURL: host + "crm-dlq", DLQARN: arn("crm-dlq"), SourceURL: host + "crm", SourceARN: arn("crm"), Via: "ListDeadLetterSourceQueues"}},
		{name: "dlq by redrive-allow policy", f: &fakeQueues{attrs: queues(nil), listErr: errors.New("InvalidAction")}, queue: host + "send-dlq",
			want: Route{DLQURL: host + "send-dlq", DLQARN: arn("send-dlq"), SourceURL: host + "send", SourceARN: arn("send"), Via: "the DLQ's RedriveAllowPolicy"}},
		{name: "dlq by a candidate's RedrivePolicy", f: &fakeQueues{attrs: queues(nil), listErr: errors.New("InvalidAction")}, queue: host + "crm-dlq",
			candidates: []string{host + "send", host + "crm"},
			want:       Route{DLQURL: host + "crm-dlq", DLQARN: arn("crm-dlq"), SourceURL: host + "crm", SourceARN: arn("crm"), Via: "the source queue's RedrivePolicy"}},
		{name: "dlq nothing points at", f: &fakeQueues{attrs: queues(nil), listErr: errors.New("InvalidAction")}, queue: host + "crm-dlq",
			candidates: []string{host + "send"}, err: "no source queue found: no queue names it as its dead-letter queue (ListDeadLetterSourceQueues failed: InvalidAction)"},
		{name: "shared dlq", f: &fakeQueues{attrs: queues(map[string]map[string]string{
			host + "crm2": {"QueueArn": arn("crm2"), "RedrivePolicy": `{"deadLetterTargetArn":"` + arn("crm-dlq") + `","maxReceiveCount":5}`},
		})}, queue: host + "crm-dlq", err: "several source queues redrive into it"},
		{name: "unknown queue", f: &fakeQueues{attrs: queues(nil)}, queue: host + "nope", err: "NonExistentQueue"},
		{name: "bad redrive policy", f: &fakeQueues{attrs: queues(map[string]map[string]string{
			host + "bad": {"QueueArn": arn("bad"), "RedrivePolicy": `{not json`},
		})}, queue: host + "bad", err: "RedrivePolicy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Resolve(ctx, c.f, c.queue, c.candidates)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Resolve = %+v, %v; want error containing %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Resolve = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
