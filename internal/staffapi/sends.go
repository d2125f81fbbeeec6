package staffapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sendexport"
	"github.com/coiflow/coiflow/internal/sending"
)

// sendStatuses are the values GET /api/sends?status= takes (any case): every
// status the send pipeline filters on, HELD and REJECTED included.
var sendStatuses = sending.SendStatuses()

// maxCursor bounds the opaque paging cursor.
const maxCursor = 4096

// querySends serves GET /api/sends?certificateId=&holder=&from=&to=&status=&limit=&cursor=.
func (s *Server) querySends(ctx context.Context, r *request) (response, error) {
	if err := onlyParams(r, "certificateId", "holder", "from", "to", "status", "limit", "cursor"); err != nil {
		return response{}, err
	}
	q, err := sendQuery(r)
	if err != nil {
		return response{}, err
	}
	page, err := s.svc.QuerySends(ctx, q)
	if err != nil {
		return response{}, err
	}
	out := SendList{Sends: make([]SendView, 0, len(page.Sends)), Next: page.Next}
	for _, rec := range page.Sends {
		out.Sends = append(out.Sends, NewSendView(rec))
	}
	r.Log.DebugContext(ctx, "sends queried", "certificateId", q.CertificateID, "holder", obs.MaskEmails(q.Holder),
		"from", stamp(q.From), "to", stamp(q.To), "sendStatus", q.Status, "count", len(out.Sends))
	return jsonResponse(http.StatusOK, out)
}

// sendQuery reads and validates the query parameters of GET /api/sends.
func sendQuery(r *request) (sending.SendQuery, error) {
	var q sending.SendQuery
	var err error
	if q.CertificateID, err = single(r, "certificateId"); err != nil {
		return q, err
	}
	if q.Holder, err = single(r, "holder"); err != nil {
		return q, err
	}
	if q.From, err = timeParam(r, "from", false); err != nil {
		return q, err
	}
	if q.To, err = timeParam(r, "to", true); err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return q, badParam("to", "before from")
	}
	if q.Status, err = oneOf(r, "status", sendStatuses, true); err != nil {
		return q, err
	}
	q.Status = strings.ToUpper(q.Status)
	if q.Limit, err = limitParam(r); err != nil {
		return q, err
	}
	if q.Cursor, err = single(r, "cursor"); err != nil {
		return q, err
	}
	if len(q.Cursor) > maxCursor {
		return q, badParam("cursor", "too long")
	}
	return q, nil
}

// getSend serves GET /api/sends/{id}.
func (s *Server) getSend(ctx context.Context, r *request) (response, error) {
	if err := onlyParams(r); err != nil {
		return response{}, err
	}
	rec, err := s.svc.GetSend(ctx, r.Params["id"])
	if err != nil {
		return response{}, err
	}
	return jsonResponse(http.StatusOK, NewSendView(rec))
}

// resendSend serves POST /api/sends/{id}/resend {"reason": "..."}: an explicit
// resend by the authenticated principal, recorded and linked to the original.
// An Idempotency-Key header makes it repeatable (see sending.ResendRequest).
func (s *Server) resendSend(ctx context.Context, r *request) (response, error) {
	id := r.Params["id"]
	key, err := idempotencyKey(r)
	if err != nil {
		return response{}, err
	}
	why, err := reason(r)
	if err != nil {
		return response{}, err
	}
	out, err := s.svc.Resend(ctx, sending.ResendRequest{SendID: id, By: r.Principal, Reason: why, IdempotencyKey: key})
	if err != nil {
		return response{}, outcomeError("resend not completed", out, err)
	}
	r.Log.InfoContext(ctx, "resend requested", "sendId", id, "reason", obs.MaskEmails(why), "idempotencyKey", key != "",
		"repeat", out.Repeat, "outcome", out.Status, "sendIds", out.SendIDs, "message", obs.MaskEmails(out.Message))
	return jsonResponse(http.StatusOK, ResendResult{SendID: id, RequestedBy: r.Principal, Reason: why, Outcome: NewOutcomeView(out)})
}

// idempotencyKey reads the optional Idempotency-Key header: 1 to
// sending.MaxIdempotencyKey printable ASCII characters ("" when absent).
func idempotencyKey(r *request) (string, error) {
	v, ok := "", false
	for k, x := range r.Header {
		if strings.EqualFold(k, "idempotency-key") {
			v, ok = x, true
		}
	}
	if !ok {
		return "", nil
	}
	v = strings.TrimSpace(v)
	if v == "" || len(v) > sending.MaxIdempotencyKey {
		return "", errorf(http.StatusBadRequest, "invalid Idempotency-Key header: want 1 to %d characters", sending.MaxIdempotencyKey)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", errorf(http.StatusBadRequest, "invalid Idempotency-Key header: printable ASCII characters only")
		}
	}
	return v, nil
}

// timeParam reads an RFC3339 time or a YYYY-MM-DD date (a UTC day), as
// sendexport.ParseTime: a date given as the end of a range (endOfDay) stands
// for the last instant of that day, so to=2026-11-21 includes all of the 21st.
// Absent: the zero time.
func timeParam(r *request, name string, endOfDay bool) (time.Time, error) {
	v, err := single(r, name)
	if err != nil || v == "" {
		return time.Time{}, err
	}
	t, err := sendexport.ParseTime(v, endOfDay)
	if err != nil {
		return time.Time{}, badParam(name, "want RFC3339 (2026-11-21T15:04:05Z) or a date (2026-11-21)")
	}
	return t, nil
}
