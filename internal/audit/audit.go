package audit

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// Outcome is what happened to a request, known when its status line is
// about to be sent.
type Outcome struct {
	Status int
	// ErrorCode and ErrorMessage are the protocol error ("" on success);
	// when empty, the record falls back to info.ErrorCode and
	// info.ErrorMessage.
	ErrorCode    string
	ErrorMessage string
	Duration     time.Duration
}

// Hook receives one call per request. A Hook that returns an error makes
// the request fail (the pipeline answers 503): no record, no success.
type Hook interface {
	Record(ctx context.Context, info *auth.Info, out Outcome) error
}

// Multi returns a Hook that calls every hook in order and fails if any
// fails; all are called even so.
func Multi(hooks ...Hook) Hook { return multi(hooks) }

type multi []Hook

func (m multi) Record(ctx context.Context, info *auth.Info, out Outcome) error {
	var errs []error
	for _, h := range m {
		if err := h.Record(ctx, info, out); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LogHook writes each event as one structured log line at info level. It
// never logs secrets: Info carries none. It is not durable; Store is.
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
	code, msg := out.ErrorCode, out.ErrorMessage
	if code == "" {
		code, msg = info.ErrorCode, info.ErrorMessage
	}
	if code != "" {
		attrs = append(attrs, slog.String("error_code", code), slog.String("error_message", msg))
	}
	h.Log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
	return nil
}
