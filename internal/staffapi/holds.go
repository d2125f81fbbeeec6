package staffapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sending"
)

// maxReason bounds reasons and notes (they are stored with the audit record).
const maxReason = 2000

// holdStatuses are the values GET /api/holds?status= takes.
var holdStatuses = []string{sending.HoldPending, sending.HoldApproved, sending.HoldRejected}

// listHolds serves GET /api/holds?status=&limit=.
func (s *Server) listHolds(ctx context.Context, r *request) (response, error) {
	if err := onlyParams(r, "status", "limit"); err != nil {
		return response{}, err
	}
	status, err := oneOf(r, "status", holdStatuses, false)
	if err != nil {
		return response{}, err
	}
	if status == "" {
		status = sending.HoldPending
	}
	limit, err := limitParam(r)
	if err != nil {
		return response{}, err
	}
	holds, err := s.svc.ListHolds(ctx, sending.HoldQuery{Status: status, Limit: limit})
	if err != nil {
		return response{}, err
	}
	out := HoldList{Holds: make([]HoldView, 0, len(holds))}
	for _, h := range holds {
		out.Holds = append(out.Holds, NewHoldView(h))
	}
	r.Log.DebugContext(ctx, "holds listed", "holdStatus", status, "count", len(out.Holds))
	return jsonResponse(http.StatusOK, out)
}

// approveBody is POST /api/holds/{id}/approve's optional body.
type approveBody struct {
	Note string `json:"note"`
}

// approveHold serves POST /api/holds/{id}/approve. The approver is the
// authenticated principal. The pipeline records the approver, not the note: the
// note goes to the log line of the approval (with the request id).
func (s *Server) approveHold(ctx context.Context, r *request) (response, error) {
	id := r.Params["id"]
	var body approveBody
	if err := decodeJSON(r, &body, true); err != nil {
		return response{}, err
	}
	note := strings.TrimSpace(body.Note)
	if len(note) > maxReason {
		return response{}, badParam("note", "longer than %d bytes", maxReason)
	}
	out, err := s.svc.Approve(ctx, id, r.Principal)
	if err != nil {
		return response{}, outcomeError("approval not completed, the hold is pending again", out, err)
	}
	r.Log.InfoContext(ctx, "hold approved", "holdId", id, "note", obs.MaskEmails(note),
		"outcome", out.Status, "sendIds", out.SendIDs, "message", obs.MaskEmails(out.Message))
	return jsonResponse(http.StatusOK, ApproveResult{HoldID: id, ApprovedBy: r.Principal, Outcome: NewOutcomeView(out)})
}

// reasonBody is the required body of reject and resend.
type reasonBody struct {
	Reason string `json:"reason"`
}

// reason decodes {"reason": "..."}: required, non-blank, bounded.
func reason(r *request) (string, error) {
	var body reasonBody
	if err := decodeJSON(r, &body, false); err != nil {
		return "", err
	}
	why := strings.TrimSpace(body.Reason)
	if why == "" {
		return "", badParam("reason", "a non-empty reason is required")
	}
	if len(why) > maxReason {
		return "", badParam("reason", "longer than %d bytes", maxReason)
	}
	return why, nil
}

// rejectHold serves POST /api/holds/{id}/reject {"reason": "..."}.
func (s *Server) rejectHold(ctx context.Context, r *request) (response, error) {
	id := r.Params["id"]
	why, err := reason(r)
	if err != nil {
		return response{}, err
	}
	if err := s.svc.Reject(ctx, id, r.Principal, why); err != nil {
		return response{}, err
	}
	r.Log.InfoContext(ctx, "hold rejected", "holdId", id, "reason", obs.MaskEmails(why))
	return jsonResponse(http.StatusOK, RejectResult{HoldID: id, Status: sending.HoldRejected, RejectedBy: r.Principal, Reason: why})
}

// outcomeError turns the error of an approval or resend that came with an
// outcome (the pipeline got as far as NowCerts or the claim and failed) into a
// 502 (NowCerts refused, or the outcome is unknown) or 503 (unavailable, or a
// store failure: retry later). NowCerts' side of the story is shown (the
// outcome's message is written for staff); other causes only in the log.
// Errors without an outcome, and the pipeline's sentinels, pass through.
func outcomeError(what string, out sending.Outcome, err error) error {
	if out.Status == "" || errors.Is(err, sending.ErrNotFound) || errors.Is(err, sending.ErrConflict) ||
		errors.Is(err, sending.ErrInvalid) {
		return err
	}
	status, msg := http.StatusServiceUnavailable, "a temporary failure, retry later"
	switch {
	case errors.Is(err, nowcerts.ErrRejected), errors.Is(err, nowcerts.ErrAuth), errors.Is(err, nowcerts.ErrOutcomeUnknown):
		status, msg = http.StatusBadGateway, out.Message
	case errors.Is(err, nowcerts.ErrUnavailable):
		msg = out.Message
	}
	if msg == "" {
		msg = "the send did not complete"
	}
	return &apiError{status: status, msg: fmt.Sprintf("%s: %s (%s)", what, msg, out.Status), cause: err}
}
