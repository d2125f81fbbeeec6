package sending

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
)

// DefaultConcurrency is how many jobs of one SQS batch run at once.
const DefaultConcurrency = 4

// HandleSQS is the send-worker's Lambda handler: one SQS batch, reported with
// partial batch failures (ReportBatchItemFailures) so only the failed messages
// come back.
//
// A message that is not a job (jobs.ErrBadJob: bad JSON, unknown version or
// kind) or not a send job (ErrNotSendJob) is reported as failed: it can never
// succeed, so it goes through maxReceiveCount receives to the send DLQ, where
// the DLQ alarm fires and `coiflow redrive` can return it after a fix. Nothing
// is dropped. Its body is never logged (it carries holder emails).
//
// Policy-status jobs run first (a cancellation in the same batch as a
// certificate applies to it), then the rest, concurrency at a time.
func (s *Service) HandleSQS(ctx context.Context, batch events.SQSEvent) (events.SQSEventResponse, error) {
	return s.handleBatch(ctx, batch, DefaultConcurrency)
}

func (s *Service) handleBatch(ctx context.Context, batch events.SQSEvent, concurrency int) (events.SQSEventResponse, error) {
	invocation := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		invocation = lc.AwsRequestID
	}
	type item struct {
		msgID string
		job   jobs.Job
	}
	var first, rest []item
	var resp events.SQSEventResponse
	var mu sync.Mutex
	fail := func(id string) {
		mu.Lock()
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
		mu.Unlock()
	}
	for _, m := range batch.Records {
		j, err := jobs.Unmarshal(m.Body)
		if err != nil {
			s.log.Error("unreadable send job: left for the DLQ", "messageId", m.MessageId, "invocation", invocation,
				"receiveCount", m.Attributes["ApproximateReceiveCount"], errAttr(err))
			fail(m.MessageId)
			continue
		}
		it := item{msgID: m.MessageId, job: j}
		if j.Event.EntityKind == event.KindPolicy {
			first = append(first, it)
		} else {
			rest = append(rest, it)
		}
	}
	run := func(it item) {
		err := s.Handle(ctx, it.job)
		if err == nil {
			return
		}
		lvl := "job failed: SQS will retry it"
		if errors.Is(err, ErrNotSendJob) {
			lvl = "not a send job: left for the DLQ"
		}
		s.log.Error(lvl, "messageId", it.msgID, "jobId", it.job.ID, "eventId", it.job.Event.ID,
			"requestId", it.job.RequestID, "invocation", invocation, errAttr(err))
		fail(it.msgID)
	}
	for _, it := range first {
		run(it)
	}
	if concurrency < 1 {
		concurrency = 1
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, it := range rest {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			run(it)
		}()
	}
	wg.Wait()
	return resp, nil
}
