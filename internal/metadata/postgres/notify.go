package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Resync is the payload Listen hands fn after it had to reconnect:
// notifications sent while it was disconnected are lost, so a listener
// that caches must treat it as "anything may have changed". Notify refuses
// it as a payload, so it never means anything else.
const Resync = ""

// Notify sends payload on channel to every process listening on it in the
// same database (PostgreSQL NOTIFY: delivered once the sending statement
// commits, which here is at once; at most 8000 bytes). The payload must not
// be empty (Resync).
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if channel == "" || payload == Resync {
		return errors.New("postgres: notify: channel and payload must not be empty")
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("postgres: notify %q: %w", channel, err)
	}
	return nil
}

// Listen subscribes to channel on a dedicated connection and returns once
// the subscription is active, so a notification sent after Listen returns
// is delivered. fn then runs, on one goroutine of the store and in order,
// for every notification, until ctx ends or the store closes; it must be
// quick (a slow fn delays the next notifications, and Close waits for it).
//
// If the connection fails, Listen reconnects with a growing pause (up to
// 5s), subscribes again and then calls fn(Resync) once: notifications of
// the gap are lost, and a cache must be rebuilt. Notifications from this
// process's own Notify are delivered too.
//
// The DSN must reach PostgreSQL directly or through a session pooler: a
// transaction-pooling PgBouncer does not carry LISTEN.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if channel == "" {
		return errors.New("postgres: listen: empty channel")
	}
	if s.isClosed() {
		return ErrClosed
	}
	conn, err := s.subscribe(ctx, channel)
	if err != nil {
		return fmt.Errorf("postgres: listen %q: %w", channel, err)
	}
	if !s.track() {
		closeConn(conn)
		return ErrClosed
	}
	go func() {
		defer s.wg.Done()
		lctx, cancel := s.bind(ctx)
		defer cancel(nil)
		s.listen(lctx, channel, conn, fn)
	}()
	return nil
}

// subscribe connects and runs LISTEN.
func (s *Store) subscribe(ctx context.Context, channel string) (*pgx.Conn, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

// listen delivers notifications from conn until ctx ends, reconnecting as
// needed; it owns (and finally closes) the connection.
func (s *Store) listen(ctx context.Context, channel string, conn *pgx.Conn, fn func(string)) {
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			fn(n.Payload)
			continue
		}
		closeConn(conn)
		conn = nil
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres listener lost its connection; reconnecting", "channel", channel, "err", err)
		for pause := 100 * time.Millisecond; conn == nil; pause = min(2*pause, 5*time.Second) {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if conn, err = s.subscribe(ctx, channel); err != nil {
				s.log.Warn("postgres listener cannot reconnect", "channel", channel, "err", err)
			}
		}
		s.log.Info("postgres listener reconnected", "channel", channel)
		fn(Resync)
	}
}
