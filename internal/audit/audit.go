// Package audit defines the audit hook every request passes through after
// its handler. The durable, CloudTrail-format, tamper-evident trail is issue
// #8; this package holds the seam and a structured-log sink so that every
// request already produces one record today.
//
// Audit is not logging: a Hook is told the outcome of every request, and a
// durable Hook will be able to fail the request (fail closed).
package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// Outcome is what happened to a request.
type Outcome struct {
	Status       int
	ErrorCode    string // protocol error code, "" on success
	ErrorMessage string
	Duration     time.Duration
}

// Hook receives one call per request.
type Hook interface {
	Record(ctx context.Context, info *auth.Info, out Outcome) error
}

// LogHook writes each event as one structured log line at info level. It
// never logs secrets: Info carries none.
type LogHook struct{ Log *slog.Logger }

// Record implements Hook.
func (h LogHook) Record(ctx context.Context, info *auth.Info, out Outcome) error {
	if h.Log == nil || info == nil {
		return nil
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.RequestID),
		slog.String("event_name", info.EventName),
		slog.String("principal", info.Principal.ARN),
		slog.String("principal_type", info.Principal.Type),
		slog.String("source_ip", info.SourceIP.String()),
		slog.Int("status", out.Status),
	}
	if len(info.Resources) > 0 {
		attrs = append(attrs, slog.Any("resources", info.Resources))
	}
	if out.ErrorCode != "" {
		attrs = append(attrs, slog.String("error_code", out.ErrorCode), slog.String("error_message", out.ErrorMessage))
	}
	h.Log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
	return nil
}
