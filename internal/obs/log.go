// Package obs is coiflow's observability: structured JSON logs with redaction and
// CloudWatch Embedded Metric Format (EMF) metrics on stdout.
package obs

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// NewLogger returns a JSON slog logger writing to w at the given level ("debug",
// "info", "warn", "error"; default info). Attributes whose key names a secret
// (token, password, secret, authorization, signature) are replaced by "[redacted]";
// attributes whose key names an email are masked with MaskEmail.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: redact}))
}

var secretKeys = []string{"token", "password", "secret", "authorization", "signature", "credential", "documenturl"}

func redact(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return slog.String(a.Key, "[redacted]")
		}
	}
	if strings.Contains(k, "email") && a.Value.Kind() == slog.KindString {
		return slog.String(a.Key, MaskEmail(a.Value.String()))
	}
	return a
}

// MaskEmail keeps enough of an address to recognise it without revealing it:
// "jane.doe@acme.com" → "j***@a***.com". Several addresses separated by commas
// are masked one by one.
func MaskEmail(s string) string {
	if strings.Contains(s, ",") {
		parts := strings.Split(s, ",")
		for i, p := range parts {
			parts[i] = MaskEmail(strings.TrimSpace(p))
		}
		return strings.Join(parts, ", ")
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		if s == "" {
			return ""
		}
		return "***"
	}
	local, domain := s[:at], s[at+1:]
	tld := ""
	if dot := strings.LastIndexByte(domain, '.'); dot > 0 {
		tld = domain[dot:]
		domain = domain[:dot]
	}
	first := func(x string) string {
		if x == "" {
			return ""
		}
		return x[:1]
	}
	return first(local) + "***@" + first(domain) + "***" + tld
}

// emailRE finds things that look like email addresses in free text.
var emailRE = regexp.MustCompile(`[^\s<>(),;:"'\[\]]+@[^\s<>(),;:"'\[\]]+`)

// MaskEmails masks every email address in free text (reasons typed by staff,
// NowCerts' messages, errors quoting recipients) with MaskEmail, for logs.
func MaskEmails(s string) string { return emailRE.ReplaceAllStringFunc(s, MaskEmail) }

type loggerKey struct{}

// WithLogger returns ctx carrying l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Logger returns the logger in ctx, or slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
