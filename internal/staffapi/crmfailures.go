package staffapi

import (
	"context"
	"net/http"

	"github.com/coiflow/coiflow/internal/store"
)

// CRMFailureLister lists the permanent CRM failures the CRM worker recorded,
// newest first (store.Store satisfies it).
type CRMFailureLister interface {
	ListCRMFailures(ctx context.Context, limit int32) ([]store.CRMFailure, error)
}

// CRMFailureView is a permanent CRM failure as the API shows it: a write the
// CRM refused for good (recorded by the CRM worker, not retried).
type CRMFailureView struct {
	JobID      string `json:"jobId"`
	EventID    string `json:"eventId,omitempty"`
	ExternalID string `json:"externalId,omitempty"`
	// Op is the CRM operation that failed (e.g. "hubspot upsert contacts").
	Op string `json:"op,omitempty"`
	// Status is the CRM's HTTP status (omitted when there was none).
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	At      string `json:"at,omitempty"`
}

// CRMFailureList is GET /api/crm/failures.
type CRMFailureList struct {
	Failures []CRMFailureView `json:"failures"`
}

// NewCRMFailureView is the API's view of f.
func NewCRMFailureView(f store.CRMFailure) CRMFailureView {
	return CRMFailureView{
		JobID: f.JobID, EventID: f.EventID, ExternalID: f.ExternalID, Op: f.Op, Status: f.Status,
		Code: f.Code, Message: f.Message, At: stamp(f.At),
	}
}

// listCRMFailures serves GET /api/crm/failures?limit=N (1..500, default 50).
func (s *Server) listCRMFailures(ctx context.Context, r *request) (response, error) {
	if err := onlyParams(r, "limit"); err != nil {
		return response{}, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return response{}, err
	}
	if s.crmFailures == nil {
		return response{}, errorf(http.StatusNotImplemented, "CRM failures are not available in this deployment")
	}
	fs, err := s.crmFailures.ListCRMFailures(ctx, int32(limit)) // limit ≤ maxLimit
	if err != nil {
		return response{}, err
	}
	out := CRMFailureList{Failures: make([]CRMFailureView, 0, len(fs))}
	for _, f := range fs {
		out.Failures = append(out.Failures, NewCRMFailureView(f))
	}
	r.Log.DebugContext(ctx, "crm failures listed", "count", len(out.Failures))
	return jsonResponse(http.StatusOK, out)
}
