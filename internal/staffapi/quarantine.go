package staffapi

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/coiflow/coiflow/internal/store"
)

// QuarantineLister lists quarantined webhook bodies, newest first
// (store.Store satisfies it).
type QuarantineLister interface {
	ListQuarantine(ctx context.Context, limit int) ([]store.Quarantined, error)
}

// maxPreview bounds the body preview of a quarantined event in the API.
const maxPreview = 4096

// QuarantineView is a quarantined event as the API shows it: the body is a
// preview (valid UTF-8, at most maxPreview bytes; Truncated when cut).
type QuarantineView struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Reason      string `json:"reason"`
	RequestID   string `json:"requestId,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	ReceivedAt  string `json:"receivedAt,omitempty"`
	Size        int    `json:"size"`
	Preview     string `json:"preview"`
	Truncated   bool   `json:"truncated"`
}

// QuarantineList is GET /api/quarantine.
type QuarantineList struct {
	Events []QuarantineView `json:"events"`
}

// NewQuarantineView is the API's view of q.
func NewQuarantineView(q store.Quarantined) QuarantineView {
	body := q.Body
	truncated := false
	if len(body) > maxPreview {
		body, truncated = body[:maxPreview], true
		// Do not cut a UTF-8 sequence in two.
		for i := 0; i < utf8.UTFMax && len(body) > 0 && !utf8.Valid(body); i++ {
			body = body[:len(body)-1]
		}
	}
	return QuarantineView{
		ID: q.ID, Source: q.Source, Reason: q.Reason, RequestID: q.RequestID, ContentType: q.ContentType,
		ReceivedAt: stamp(q.ReceivedAt), Size: len(q.Body), Preview: strings.ToValidUTF8(string(body), "\uFFFD"),
		Truncated: truncated,
	}
}

// listQuarantine serves GET /api/quarantine?limit=N (1..500, default 50).
func (s *Server) listQuarantine(ctx context.Context, r *request) (response, error) {
	if err := onlyParams(r, "limit"); err != nil {
		return response{}, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return response{}, err
	}
	if s.quarantine == nil {
		return response{}, errorf(http.StatusNotImplemented, "the quarantine is not available in this deployment")
	}
	qs, err := s.quarantine.ListQuarantine(ctx, limit)
	if err != nil {
		return response{}, err
	}
	out := QuarantineList{Events: make([]QuarantineView, 0, len(qs))}
	for _, q := range qs {
		out.Events = append(out.Events, NewQuarantineView(q))
	}
	r.Log.DebugContext(ctx, "quarantine listed", "count", len(out.Events))
	return jsonResponse(http.StatusOK, out)
}
