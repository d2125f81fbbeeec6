package nowcerts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// DefaultRefreshWindow: the scheduled refresher renews a token with less than
// this left. It exceeds the schedule's period (30 minutes) plus the workers'
// skew (5 minutes), so workers do not find an expiring token themselves.
const DefaultRefreshWindow = 2 * time.Hour

// RefreshInput is what the token-refresher reads from its event: an EventBridge
// Scheduler event (whose fields are ignored), {} or, for an operator's manual
// invoke, {"force": true} and/or {"window": "6h"}.
type RefreshInput struct {
	Force  bool   `json:"force"`
	Window string `json:"window"`
}

// Refresher is the scheduled token-refresher's handler.
type Refresher struct {
	Tokens *TokenSource
	Window time.Duration // default DefaultRefreshWindow
	Logger *slog.Logger
}

// Handle reads the event, refreshes the stored token if it expires within the
// window (or is missing, or force is set) and returns a summary without
// secrets. Errors fail the invocation so the schedule's retries and the
// function's error metric see them.
func (r Refresher) Handle(ctx context.Context, event json.RawMessage) (RefreshSummary, error) {
	var in RefreshInput
	if len(event) > 0 && string(event) != "null" {
		if err := json.Unmarshal(event, &in); err != nil {
			// A scheduler event with other shapes of these names is not ours to
			// reject: use the defaults.
			in = RefreshInput{}
		}
	}
	window := r.Window
	if window <= 0 {
		window = DefaultRefreshWindow
	}
	if in.Window != "" {
		w, err := time.ParseDuration(in.Window)
		if err != nil || w <= 0 {
			return RefreshSummary{}, fmt.Errorf("token-refresher: window %q: want a positive Go duration such as \"2h\"", in.Window)
		}
		window = w
	}
	sum, err := r.Tokens.RefreshIfExpiring(ctx, window, in.Force)
	log := r.Logger
	if log == nil {
		log = r.Tokens.t.cfg.Logger
	}
	if err != nil {
		log.ErrorContext(ctx, "nowcerts token refresh failed", "error", err.Error(), "window", window.String(), "force", in.Force)
		return RefreshSummary{}, err
	}
	log.InfoContext(ctx, "nowcerts token checked", "refreshed", sum.Refreshed, "grant", sum.Grant, "reason", sum.Reason,
		"expiresAt", sum.ExpiresAt.Format(time.RFC3339), "window", window.String())
	return sum, nil
}
