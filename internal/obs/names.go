package obs

// Metric names coiflow emits. The dashboard and alarms in template.yaml may only
// name metrics listed here (a test checks).
const (
	// Webhook receiver (dimensions: Source; Reason on rejects; Queue on jobs).
	MetricWebhooksAccepted  = "WebhooksAccepted"
	MetricWebhooksRejected  = "WebhooksRejected"
	MetricEventsQuarantined = "EventsQuarantined"
	MetricJobsEnqueued      = "JobsEnqueued"
	// MetricWebhooksFailed counts webhooks answered 503 because a dependency
	// (credentials, queue, quarantine table) failed (dimensions: Source, Reason).
	MetricWebhooksFailed = "WebhooksFailed"

	// Send pipeline.
	MetricCertificatesSent    = "CertificatesSent"
	MetricSendFailed          = "SendFailed"
	MetricHeld                = "Held"
	MetricApproved            = "Approved"
	MetricRejected            = "Rejected"
	MetricDuplicateSuppressed = "DuplicateSuppressed"
	MetricSendUnknown         = "SendUnknown"
	// MetricSendSuperseded counts sends, holds and approvals of a certificate
	// revision dropped because a newer revision was handled for the holder.
	MetricSendSuperseded  = "SendSuperseded"
	MetricNowCertsLatency = "NowCertsLatency"
	MetricEndToEndLatency = "EndToEndLatency"
	MetricTokenRefreshed  = "NowCertsTokenRefreshed"
	// MetricTimelineEnqueueFailed counts timeline jobs the send pipeline could
	// not put on the CRM queue (the send itself is unaffected).
	MetricTimelineEnqueueFailed = "TimelineEnqueueFailed"

	// Approval backlog, measured on a schedule (no dimensions): how many holds
	// wait for staff and how long the oldest has waited.
	MetricHoldsPending  = "HoldsPending"
	MetricOldestHoldAge = "OldestHoldAge"

	// CRM sync.
	MetricCRMUpserts = "CrmUpserts"
	MetricCRMSkipped = "CrmSkippedUnchanged"
	MetricCRMStale   = "CrmStaleIgnored"
	MetricCRMFailed  = "CrmFailed"
	MetricCRMNotes   = "CrmNotes"
)

// MetricNames lists every metric name above.
func MetricNames() []string {
	return []string{
		MetricWebhooksAccepted, MetricWebhooksRejected, MetricEventsQuarantined, MetricJobsEnqueued, MetricWebhooksFailed,
		MetricCertificatesSent, MetricSendFailed, MetricHeld, MetricApproved, MetricRejected,
		MetricDuplicateSuppressed, MetricSendUnknown, MetricSendSuperseded, MetricNowCertsLatency, MetricEndToEndLatency,
		MetricTokenRefreshed, MetricTimelineEnqueueFailed, MetricHoldsPending, MetricOldestHoldAge, MetricCRMUpserts, MetricCRMSkipped, MetricCRMStale, MetricCRMFailed, MetricCRMNotes,
	}
}
