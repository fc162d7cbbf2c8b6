package server

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/loop"
	"github.com/cofferhq/coffer/internal/metadata/postgres"
)

// Replicas share the authentication-failure budget (issue #9): each
// counts failures in its own auth.FailureLimiter, which refuses from
// memory, and also adds them to the auth_failures table in the background
// (auth.FailureLimiter.Run). The replica whose batch takes a subject past
// the budget sends a NOTIFY on throttleChannel; every replica then refuses
// the subject until the shared window ends. A notification lost (a
// listener reconnecting) costs at most one more failure on each replica
// that missed it: its next failure of the subject returns the spent count.
// With SQLite nothing is shared: the single process counts alone.

const (
	// throttleChannel carries "<milliseconds left> <subject>" payloads.
	throttleChannel = "coffer_throttle"
	// sweepFailuresEvery paces the leader's deletion of old auth_failures
	// rows.
	sweepFailuresEvery = 5 * time.Minute
	// sweepFailuresAfter is how long a row outlives its window's start:
	// well past any window, so that no row still counting is deleted.
	sweepFailuresAfter = time.Hour
)

// sharedFailures is auth.SharedFailures on PostgreSQL.
type sharedFailures struct{ pg *postgres.Store }

func (s sharedFailures) AddFailures(ctx context.Context, window time.Duration, add map[string]int) (map[string]auth.SharedCount, error) {
	got, err := s.pg.AddAuthFailures(ctx, window, add)
	if err != nil {
		return nil, err
	}
	out := make(map[string]auth.SharedCount, len(got))
	for k, c := range got {
		out[k] = auth.SharedCount{Failures: c.Failures, Left: c.Left}
	}
	return out, nil
}

func (s sharedFailures) Spent(ctx context.Context, subject string, left time.Duration) error {
	return s.pg.Notify(ctx, throttleChannel, throttlePayload(subject, left))
}

func throttlePayload(subject string, left time.Duration) string {
	return strconv.FormatInt(left.Milliseconds(), 10) + " " + subject
}

func parseThrottle(payload string) (string, time.Duration, error) {
	ms, subject, ok := strings.Cut(payload, " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || n <= 0 || subject == "" {
		return "", 0, errors.New("malformed throttle notification")
	}
	return subject, time.Duration(n) * time.Millisecond, nil
}

// shareFailures makes l count failures across replicas on PostgreSQL;
// with SQLite it leaves l alone.
func (r *replicas) shareFailures(l *auth.FailureLimiter) {
	if r.pg != nil {
		l.Shared, l.Log = sharedFailures{pg: r.pg}, r.log
	}
}

// followThrottles subscribes to the other replicas' spent budgets, which
// l then refuses too, and runs l's sharing until ctx ends. It returns once
// the subscription is active; with SQLite it does nothing.
func (r *replicas) followThrottles(ctx context.Context, l *auth.FailureLimiter) error {
	if r.pg == nil {
		return nil
	}
	err := r.pg.Listen(ctx, throttleChannel, func(payload string) {
		if payload == postgres.Resync {
			return // lost ones heal at the subject's next failure here
		}
		subject, left, err := parseThrottle(payload)
		if err != nil {
			r.log.Warn("ignoring a throttle notification", "err", err)
			return
		}
		l.Throttle(subject, left)
	})
	if err != nil {
		return err
	}
	go l.Run(ctx)
	return nil
}

// sweepFailures deletes old auth_failures rows every sweepFailuresEvery
// until ctx ends (leader only); errors are logged and retried next time.
func (r *replicas) sweepFailures(ctx context.Context) {
	if r.pg == nil {
		return
	}
	loop.Every(ctx, sweepFailuresEvery, func(ctx context.Context) {
		n, err := r.pg.DeleteAuthFailures(ctx, sweepFailuresAfter)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("cannot delete old authentication failure counts", "err", err)
		case n > 0:
			r.log.Debug("deleted old authentication failure counts", "rows", n)
		}
	})
}
