package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/coiflow/coiflow/internal/local/services"
	"github.com/coiflow/coiflow/internal/samtemplate"
)

// schedule is one Schedule/ScheduleV2 event of a function with a rate().
type schedule struct {
	function string
	event    string // the event's name in template.yaml
	every    time.Duration
	timeout  time.Duration
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// parseRate reads "rate(30 minutes)"; cron() and at() are not emulated.
func parseRate(expr string) (time.Duration, error) {
	m := rateExpr.FindStringSubmatch(expr)
	if m == nil {
		return 0, fmt.Errorf("schedule %q: only rate(N minutes|hours|days) is emulated locally", expr)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("schedule %q: bad rate", expr)
	}
	unit := map[string]time.Duration{"minute": time.Minute, "minutes": time.Minute, "hour": time.Hour, "hours": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}

// schedulesOf returns fn's rate schedules (the template's Schedule and
// ScheduleV2 events). Expressions that cannot be emulated come back as errors
// to report, not to fail on.
func schedulesOf(t *samtemplate.Template, r *samtemplate.Resolver, fn samtemplate.Function, timeout time.Duration) ([]schedule, []error) {
	var out []schedule
	var errs []error
	evs, _ := t.Resources[fn.LogicalID].Properties["Events"].(map[string]any)
	for _, name := range sortedKeys(fn.OtherEvents) {
		typ := fn.OtherEvents[name]
		if typ != "Schedule" && typ != "ScheduleV2" {
			continue
		}
		ev, _ := evs[name].(map[string]any)
		props, _ := ev["Properties"].(map[string]any)
		if enabled, ok := props["Enabled"].(bool); ok && !enabled {
			continue
		}
		if state, ok := props["State"].(string); ok && state == "DISABLED" {
			continue
		}
		expr, err := r.String(props["ScheduleExpression"])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s event %s: %w", fn.LogicalID, name, err))
			continue
		}
		every, err := parseRate(expr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s event %s: %w", fn.LogicalID, name, err))
			continue
		}
		out = append(out, schedule{function: fn.Dir(), event: name, every: every, timeout: timeout})
	}
	return out, errs
}

// scheduledEvent is what EventBridge Scheduler sends a Lambda target.
func scheduledEvent(sc schedule, at time.Time) []byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	h := hex.EncodeToString(id[:])
	b, _ := json.Marshal(map[string]any{
		"version":     "0",
		"id":          h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:],
		"detail-type": "Scheduled Event",
		"source":      "aws.scheduler",
		"account":     services.AccountID,
		"time":        at.UTC().Format(time.RFC3339),
		"region":      services.Region,
		"resources":   []string{"arn:aws:scheduler:" + services.Region + ":" + services.AccountID + ":schedule/default/coiflow-local-" + sc.function + "-" + sc.event},
		"detail":      map[string]any{},
	})
	return b
}

// runSchedule invokes h every sc.every until ctx ends (the first time one
// period after start, as a new rate schedule does).
func runSchedule(ctx context.Context, sc schedule, h lambda.Handler, log *slog.Logger) {
	tick := time.NewTicker(sc.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case at := <-tick.C:
			ictx, cancel := context.WithTimeout(ctx, sc.timeout)
			ictx = lambdacontext.NewContext(ictx, &lambdacontext.LambdaContext{
				AwsRequestID:       "sched-" + strconv.FormatInt(at.UnixNano(), 36),
				InvokedFunctionArn: "arn:aws:lambda:" + services.Region + ":" + services.AccountID + ":function:" + sc.function,
			})
			if _, err := h.Invoke(ictx, scheduledEvent(sc, at)); err != nil {
				log.Error("scheduled invocation failed", "function", sc.function, "event", sc.event, "err", err)
			} else {
				log.Info("scheduled invocation", "function", sc.function, "event", sc.event)
			}
			cancel()
		}
	}
}
