package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/postgres"
)

// Several replicas on one PostgreSQL database and one bucket (issue #9)
// coordinate through the database only:
//
//   - every invalidating write a replica makes through its read cache
//     (internal/metadata/cache: repositories, tags, any document: IAM,
//     KMS, policies) is followed, before the request that made it is
//     answered, by a Tick of the counter fenceCounter and a NOTIFY on
//     invalidateChannel carrying the replica's ID. To invalidate is to
//     drop what the replica caches of metadata-derived security state (the
//     read cache and everything keyed on its generation, IAM's identity
//     policies, KMS's key views and unwrapped material).
//   - the fence makes it hold at the next request: before each request a
//     replica reads the counter (one query) and invalidates if it moved
//     since the last request. Notifications alone arrive asynchronously,
//     a few milliseconds late, which a client alternating between
//     replicas can beat.
//   - the notification reaches what runs between requests (the leader's
//     background work reads through the same caches): every replica
//     LISTENs and invalidates for another replica's notification, and once
//     after the listener reconnects, since notifications of the gap are
//     lost.
//   - the background work that must run once (KMS key deletion and
//     rotation, lifecycle, garbage collection and upload cleanup) runs
//     only on the replica holding the advisory-lock leadership
//     leaderName; when that replica's session ends, another takes over
//     within the poll interval.
//
// With SQLite there is one process: nothing is sent and it always leads.

const (
	// invalidateChannel is the PostgreSQL notification channel of cache
	// invalidations; the payload is the sending replica's ID.
	invalidateChannel = "coffer_invalidate"
	// fenceCounter is the postgres counter every invalidating write ticks.
	fenceCounter = "invalidations"
	// fenceTimeout bounds the fence's read before a request; on a timeout
	// or an error the replica invalidates and serves the request anyway
	// (its own queries then meet the database's trouble).
	fenceTimeout = time.Second
	// leaderName names the leadership of the background work.
	leaderName = "background"
	// notifyTimeout bounds the NOTIFY that follows a write.
	notifyTimeout = 2 * time.Second
	// leaderRetry is the pause before campaigning again after Leader
	// failed (the database was unreachable when it started).
	leaderRetry = 5 * time.Second
)

// replicas is this process's side of the coordination above.
type replicas struct {
	pg   *postgres.Store // nil with SQLite
	id   string          // this replica's notification payload
	log  *slog.Logger
	seen atomic.Int64 // the fence counter before the last request
	// owed: a write could not advance the fence counter; retrying marks
	// it advances it later (retryTick), so the other replicas do not
	// keep serving from caches the write made stale.
	owed     atomic.Bool
	retrying atomic.Bool
}

// newReplicas returns the coordination for inner, the store under the
// read cache: PostgreSQL coordinates, anything else is a single process.
func newReplicas(inner metadata.Store, log *slog.Logger) *replicas {
	r := &replicas{log: log.With("log", "replicas")}
	if pg, ok := inner.(*postgres.Store); ok {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		r.pg, r.id = pg, hex.EncodeToString(b[:])
	}
	return r
}

// announce tells the other replicas that this one made an invalidating
// write; the read cache runs it after each (cache.Config.OnWrite). A
// failure is logged: the others then see the write within the cache TTL
// for what the read cache holds, and at their next listener reconnect
// for the rest.
func (r *replicas) announce() {
	if r.pg == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	if err := r.pg.Tick(ctx, fenceCounter); err != nil {
		r.log.Warn("cannot tell the other replicas of a write; retrying", "err", err)
		r.owed.Store(true)
		if r.retrying.CompareAndSwap(false, true) {
			go r.retryTick()
		}
	}
	if err := r.pg.Notify(ctx, invalidateChannel, r.id); err != nil {
		r.log.Warn("cannot notify the other replicas of a write", "err", err)
	}
}

// retryTick advances the fence counter until it succeeds once after the
// last failure (with backoff up to 5 s), for writes whose announce failed.
func (r *replicas) retryTick() {
	wait := 100 * time.Millisecond
	for {
		for r.owed.Load() {
			time.Sleep(wait)
			r.owed.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
			err := r.pg.Tick(ctx, fenceCounter)
			cancel()
			if err != nil {
				r.owed.Store(true)
				wait = min(2*wait, 5*time.Second)
				continue
			}
			r.log.Info("told the other replicas of a write after a failed attempt")
		}
		r.retrying.Store(false)
		// A failure between the loop's last check and the line above
		// found retrying set and left the retry to this goroutine.
		if !r.owed.Load() || !r.retrying.CompareAndSwap(false, true) {
			return
		}
	}
}

// fence returns next behind the fence: before each request (but the ops
// routes) it calls invalidate if any replica wrote since the previous
// request, or if it cannot tell. With SQLite it returns next.
func (r *replicas) fence(next http.Handler, invalidate func()) http.Handler {
	if r.pg == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !opsPaths[req.URL.Path] {
			r.check(req.Context(), invalidate)
		}
		next.ServeHTTP(w, req)
	})
}

// check reads the fence counter and calls invalidate if it moved (or
// cannot be read).
func (r *replicas) check(ctx context.Context, invalidate func()) {
	ctx, cancel := context.WithTimeout(ctx, fenceTimeout)
	defer cancel()
	n, err := r.pg.Count(ctx, fenceCounter)
	// Invalidate before recording n, so that no concurrent request takes
	// n as seen while the caches still hold what came before it.
	if err != nil || r.seen.Load() != n {
		invalidate()
		if err == nil {
			r.seen.Store(n)
		}
	}
}

// follow subscribes to the other replicas' notifications, calling
// invalidate for each and after each reconnect, until ctx ends or the
// store closes. It returns once the subscription is active, having called
// invalidate once (anything cached before then may be stale).
func (r *replicas) follow(ctx context.Context, invalidate func()) error {
	if r.pg == nil {
		return nil
	}
	err := r.pg.Listen(ctx, invalidateChannel, func(payload string) {
		if payload != r.id { // postgres.Resync included
			invalidate()
		}
	})
	if err != nil {
		return err
	}
	invalidate()
	return nil
}

// lead runs fn while this replica leads, again after each lost term, until
// ctx ends or the store closes; with SQLite it just runs fn. fn's context
// ends with the term; fn must return then.
func (r *replicas) lead(ctx context.Context, fn func(ctx context.Context)) {
	if r.pg == nil {
		fn(ctx)
		return
	}
	for {
		err := r.pg.Leader(ctx, leaderName, func(term context.Context) {
			r.log.Info("leading: background work runs here", "replica", r.id)
			fn(term)
		})
		if ctx.Err() != nil || errors.Is(err, postgres.ErrClosed) || err == nil {
			return
		}
		r.log.Warn("cannot campaign for leadership; retrying", "err", err)
		t := time.NewTimer(leaderRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
