package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLeadershipLost is the cause (context.Cause) of the context Leader
// gives fn when the connection holding the lock fails.
var ErrLeadershipLost = errors.New("postgres: leadership lost")

// errResigned ends a term because fn returned.
var errResigned = errors.New("postgres: leader returned")

// Leader runs fn while this process holds the leadership called name: a
// session-level PostgreSQL advisory lock (pg_try_advisory_lock, keyed by
// name and the schema) taken on a dedicated connection. At most one Store
// per database and schema holds it at a time; the others wait in Leader,
// trying again every Config.LeaderPoll.
//
// fn's context ends when leadership ends: when ctx ends, when the store
// closes (cause ErrClosed), or when the lock's connection fails (cause
// ErrLeadershipLost; Leader then campaigns again and calls fn anew once
// re-elected). fn should return promptly then. The lock is released by
// closing its connection: when fn returns, when ctx ends or the store
// closes (Close returns only after that), or by the server when the
// connection dies.
//
// A dead connection is noticed at once if the server ends the session, or
// within about 2 x LeaderCheck if the network goes silent. In the second
// case the server may have released the lock (another replica may lead)
// before this one's fn is told, so fn must tolerate a brief overlap, or
// fence its writes. Like Listen, the DSN must not go through a
// transaction-pooling PgBouncer.
//
// Leader returns nil when fn returns on its own (leadership then ends),
// ctx.Err() when ctx ends and ErrClosed when the store closes.
func (s *Store) Leader(ctx context.Context, name string, fn func(ctx context.Context)) error {
	if name == "" {
		return errors.New("postgres: leader: empty name")
	}
	if s.isClosed() {
		return ErrClosed
	}
	ctx, cancel := s.bind(ctx)
	defer cancel(nil)
	key, err := s.lockKey(ctx, "leader:"+name)
	if err != nil {
		return leaderErr(ctx, err)
	}
	for {
		conn, err := s.campaign(ctx, name, key)
		if err != nil {
			return leaderErr(ctx, err)
		}
		s.log.Info("postgres leadership acquired", "name", name)
		term, end := context.WithCancelCause(ctx)
		if !s.track() {
			closeConn(conn)
			end(ErrClosed)
			return ErrClosed
		}
		held := make(chan struct{})
		go func() {
			defer s.wg.Done()
			defer close(held)
			s.hold(term, end, conn)
		}()
		fn(term)
		end(errResigned)
		<-held
		cause := context.Cause(term)
		s.log.Info("postgres leadership ended", "name", name, "cause", cause)
		switch {
		case ctx.Err() != nil:
			return leaderErr(ctx, ctx.Err())
		case errors.Is(cause, ErrLeadershipLost):
			continue
		default:
			return nil
		}
	}
}

// leaderErr reports why Leader stops: ErrClosed for a closed store, else err.
func leaderErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), ErrClosed) {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("postgres: leader: %w", err)
}

// campaign returns a connection holding the lock key, trying every poll
// interval and reconnecting (with a growing pause) after a failure, until
// ctx ends.
func (s *Store) campaign(ctx context.Context, name string, key int64) (*pgx.Conn, error) {
	if !s.track() {
		return nil, ErrClosed
	}
	defer s.wg.Done()
	var conn *pgx.Conn
	pause := 100 * time.Millisecond
	for {
		wait := s.poll
		if conn == nil {
			c, err := s.connect(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("postgres leader cannot connect", "name", name, "err", err)
			}
			conn = c
		}
		if conn != nil {
			var got bool
			err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got)
			switch {
			case err == nil && got:
				return conn, nil
			case err == nil:
				pause = 100 * time.Millisecond
			default:
				// The lock may or may not have been taken: drop the
				// session, which drops the lock with it.
				closeConn(conn)
				conn = nil
				if ctx.Err() == nil {
					s.log.Warn("postgres leader lost its connection", "name", name, "err", err)
				}
			}
		}
		if conn == nil {
			wait, pause = pause, min(2*pause, 5*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if conn != nil {
				closeConn(conn)
			}
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// hold watches the lock's connection for one term and closes it (releasing
// the lock) when the term ends. It blocks reading from the connection, so a
// session the server terminates is noticed at once; every LeaderCheck
// without traffic it pings, so a silent network is noticed too. A failure
// ends the term with ErrLeadershipLost.
func (s *Store) hold(term context.Context, end context.CancelCauseFunc, conn *pgx.Conn) {
	defer closeConn(conn)
	for {
		wctx, cancel := context.WithTimeout(term, s.check)
		err := conn.PgConn().WaitForNotification(wctx)
		quiet := wctx.Err() == context.DeadlineExceeded
		cancel()
		if term.Err() != nil {
			return
		}
		if err == nil {
			continue // a notification; nobody LISTENs on this connection
		}
		if quiet {
			pctx, cancel := context.WithTimeout(term, s.check)
			err = conn.Ping(pctx)
			cancel()
			if term.Err() != nil {
				return
			}
		}
		if err != nil {
			end(fmt.Errorf("%w: %w", ErrLeadershipLost, err))
			return
		}
	}
}
