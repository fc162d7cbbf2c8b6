package server

import (
	"context"
	"sync"
	"time"
)

// Backend outages (issue #9). When the metadata database or the object
// store cannot be reached, handlers fail with an internal error; the
// pipeline then asks the readiness probe whether a backend is down and, if
// so, answers the door's own 503 with Retry-After instead of a 500, so
// clients retry rather than give up. Nothing is half-written by such a
// failure: every flow commits its metadata in one transaction after its
// objects are durable (ARCHITECTURE.md), and an object whose transaction
// never came is an orphan for gc. The stores reconnect by themselves
// (pgxpool, the S3 client), so service resumes when the backend returns.

// backendUnavailable is the public message of such a 503.
const backendUnavailable = "The registry's database or object store cannot be reached right now; retry later"

const (
	// probeTimeout bounds one readiness probe made for a failed request.
	probeTimeout = 2 * time.Second
	// probeTTL is how long a probe's answer serves later failures, so an
	// outage costs one probe a second, not one per request.
	probeTTL = time.Second
)

// backendProbe remembers the last answer of a readiness check.
type backendProbe struct {
	ping func(context.Context) error // nil: backends are never down

	mu  sync.Mutex
	at  time.Time
	err error
}

// down returns why a backend cannot be reached, or nil if every one
// answers.
func (b *backendProbe) down(ctx context.Context) error {
	if b == nil || b.ping == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.at.IsZero() && time.Since(b.at) < probeTTL {
		return b.err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	defer cancel()
	b.err, b.at = b.ping(pctx), time.Now()
	return b.err
}
