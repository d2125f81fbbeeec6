package obs

// Metric names coiflow emits. The dashboard and alarms in template.yaml may only
// name metrics listed here (a test checks).
const (
	// Webhook receiver (dimensions: Source; Reason on rejects; Queue on jobs).
	MetricWebhooksAccepted  = "WebhooksAccepted"
	MetricWebhooksRejected  = "WebhooksRejected"
	MetricEventsQuarantined = "EventsQuarantined"
	MetricJobsEnqueued      = "JobsEnqueued"

	// Send pipeline.
	MetricCertificatesSent    = "CertificatesSent"
	MetricSendFailed          = "SendFailed"
	MetricHeld                = "Held"
	MetricApproved            = "Approved"
	MetricRejected            = "Rejected"
	MetricDuplicateSuppressed = "DuplicateSuppressed"
	MetricSendUnknown         = "SendUnknown"
	MetricNowCertsLatency     = "NowCertsLatency"
	MetricEndToEndLatency     = "EndToEndLatency"
	MetricTokenRefreshed      = "NowCertsTokenRefreshed"

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
		MetricWebhooksAccepted, MetricWebhooksRejected, MetricEventsQuarantined, MetricJobsEnqueued,
		MetricCertificatesSent, MetricSendFailed, MetricHeld, MetricApproved, MetricRejected,
		MetricDuplicateSuppressed, MetricSendUnknown, MetricNowCertsLatency, MetricEndToEndLatency,
		MetricTokenRefreshed, MetricCRMUpserts, MetricCRMSkipped, MetricCRMStale, MetricCRMFailed, MetricCRMNotes,
	}
}
