package testsupport

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// SQSSender is the part of an SQS client that publishers send through.
type SQSSender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// SQSSpy wraps the SQS client the code under test sends through and records,
// by queue URL, the bodies SQS accepted from it. It counts what the code
// enqueued: the SDK's retries happen inside the client and SQS's
// at-least-once copies after it, so neither shows here (a queue read back may
// hold a message twice; the spy never does).
type SQSSpy struct {
	SQSSender
	mu   sync.Mutex
	sent map[string][]string
}

// SendMessage sends through the wrapped client and records the body.
func (s *SQSSpy) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	out, err := s.SQSSender.SendMessage(ctx, in, opts...)
	if err == nil {
		s.record(aws.ToString(in.QueueUrl), aws.ToString(in.MessageBody))
	}
	return out, err
}

// SendMessageBatch sends through the wrapped client and records the bodies
// of the entries SQS accepted.
func (s *SQSSpy) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out, err := s.SQSSender.SendMessageBatch(ctx, in, opts...)
	if err == nil {
		ok := map[string]bool{}
		for _, e := range out.Successful {
			ok[aws.ToString(e.Id)] = true
		}
		for _, e := range in.Entries {
			if ok[aws.ToString(e.Id)] {
				s.record(aws.ToString(in.QueueUrl), aws.ToString(e.MessageBody))
			}
		}
	}
	return out, err
}

func (s *SQSSpy) record(url, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string][]string{}
	}
	s.sent[url] = append(s.sent[url], body)
}

// Take returns the bodies sent to url since the last Take of url.
func (s *SQSSpy) Take(url string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.sent[url]
	delete(s.sent, url)
	return b
}
