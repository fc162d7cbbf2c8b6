package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Config configures Open.
type Config struct {
	// DSN is a libpq connection string or URL
	// (postgres://user@host:5432/db?sslmode=verify-full). Any setting pgx
	// understands may appear in it, search_path included: the tables live
	// in the first existing schema of the search path, and locks and
	// migrations are scoped to it, so several Coffer deployments can share
	// one database.
	DSN string
	// MaxConns bounds the pool; 0 means the DSN's pool_max_conns or else
	// pgxpool's default, max(4, number of CPUs). Every concurrent query
	// needs a connection of its own; see the package documentation for
	// sizing.
	MaxConns int32
	// MinConns connections are kept open even when idle, so their prepared
	// statements stay warm; 0 means the DSN's pool_min_conns or none.
	MinConns int32
	// LeaderPoll is how often Leader retries the lock while another process
	// holds it; 0 means 2s.
	LeaderPoll time.Duration
	// LeaderCheck bounds how long a leader may go without confirming that
	// its lock connection is alive; 0 means 2s. A backend terminated by the
	// server is noticed at once; a silent network partition within this
	// bound (plus the ping's own LeaderCheck timeout).
	LeaderCheck time.Duration
	// Logger receives the reconnects of Listen and the leadership changes
	// of Leader; nil discards them.
	Logger *slog.Logger
}

// Store is the PostgreSQL implementation of metadata.Store, plus
// cross-replica notifications (Notify, Listen) and leadership (Leader). It
// is safe for concurrent use; see the package documentation.
type Store struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // for the dedicated Listen and Leader connections
	schema  string          // current_schema() of the pool's connections
	docsKey int64           // advisory lock serializing document writes
	poll    time.Duration
	check   time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
	done   chan struct{}  // closed by Close: stops Listen and Leader
	wg     sync.WaitGroup // goroutines that own a dedicated connection
}

var _ metadata.Store = (*Store)(nil)

// ErrSchemaTooNew reports a database written by a newer Coffer: its schema
// has migrations this binary does not know, so it refuses to touch it.
var ErrSchemaTooNew = errors.New("postgres: database schema is newer than this binary")

// ErrClosed is returned by Listen and Leader on a closed Store.
var ErrClosed = errors.New("postgres: store closed")

// Open connects to cfg.DSN, applies pending migrations (once, under an
// advisory lock, however many replicas start at the same time) and returns
// a ready Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, errors.New("postgres: open: empty DSN")
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included: keep it out.
		return nil, errors.New("postgres: open: cannot parse DSN")
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pcfg.MinConns = min(cfg.MinConns, pcfg.MaxConns)
	}
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "coffer"
	}
	where := fmt.Sprintf("%s:%d/%s", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	s := &Store{
		pool:    pool,
		connCfg: pcfg.ConnConfig.Copy(),
		poll:    orDefault(cfg.LeaderPoll, 2*time.Second),
		check:   orDefault(cfg.LeaderCheck, 2*time.Second),
		log:     cfg.Logger,
		done:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.init(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// init reads the schema the tables live in, derives the lock keys from it,
// and migrates.
func (s *Store) init(ctx context.Context) error {
	var schema *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if schema == nil {
		return errors.New("no schema: the search_path names no existing schema")
	}
	s.schema = *schema
	var err error
	if s.docsKey, err = s.lockKey(ctx, "documents"); err != nil {
		return err
	}
	return s.migrate(ctx)
}

// lockKey maps a name to an advisory lock key, scoped to the schema so that
// deployments sharing a database do not share locks.
func (s *Store) lockKey(ctx context.Context, name string) (int64, error) {
	var k int64
	err := s.pool.QueryRow(ctx, `SELECT hashtextextended($1, 0)`, "coffer:"+s.schema+":"+name).Scan(&k)
	if err != nil {
		return 0, fmt.Errorf("lock key %q: %w", name, err)
	}
	return k, nil
}

// Close stops every Listen and Leader of the store (cancelling the
// contexts given to Leader's fn and closing their connections, which
// releases leadership at once) and then closes the pool. It waits for the
// store's own goroutines, not for fn to return.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	s.pool.Close()
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers a goroutine that owns a dedicated connection, unless the
// store is closed.
func (s *Store) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// bind returns a context that ends with ctx or, with cause ErrClosed, when
// the store closes. The caller must cancel it.
func (s *Store) bind(ctx context.Context) (context.Context, context.CancelCauseFunc) {
	c, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-s.done:
			cancel(ErrClosed)
		case <-c.Done():
		}
	}()
	return c, cancel
}

// connect opens a dedicated connection (not from the pool: it is held for
// long, and pgxpool.Close would wait for it).
func (s *Store) connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, s.connCfg.Copy())
}

// closeConn closes a dedicated connection, waiting at most a second for
// the server to take the goodbye: the socket closes either way, which is
// what ends the session (and its locks and subscriptions).
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// Ping reports whether the database answers a query (readiness).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Transactions. Every write runs in one READ COMMITTED transaction whose
// statements take the row locks the operation needs (see doc.go); the
// database reports a deadlock (40P01) or, under SERIALIZABLE, a
// serialization failure (40001) by aborting one transaction, which write
// then re-runs from the start.

const (
	maxAttempts = 10
	maxBackoff  = 50 * time.Millisecond
)

var (
	readCommitted = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	snapshot      = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
)

// write runs fn in a READ COMMITTED transaction, retried on deadlock or
// serialization failure.
func (s *Store) write(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.inTx(ctx, readCommitted, fn)
}

// inTx runs fn in one transaction with opts and commits it; an error from
// fn (or a panic) rolls it back. A retryable failure runs fn again (see
// retry); fn must therefore keep no state across attempts except what it
// resets itself.
func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	return retry(ctx, func() error { return pgx.BeginTxFunc(ctx, s.pool, opts, fn) })
}

// retry runs op until it succeeds, fails for a reason other than a
// deadlock or serialization failure, or has run maxAttempts times; between
// attempts it pauses for a random time that grows with the attempt (up to
// maxBackoff), so transactions that collided do not collide again in step.
// Giving up returns ErrConflict wrapping the last failure.
func retry(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("%w: gave up after %d attempts: %w", metadata.ErrConflict, attempt, err)
		}
		pause := time.Duration(rand.Int64N(int64(min(maxBackoff, time.Millisecond<<attempt)))) + 1
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying after: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// SQLSTATEs the store reacts to.
const (
	codeSerialization = "40001"
	codeDeadlock      = "40P01"
	codeUnique        = "23505"
	codeBadText       = "22021" // character_not_in_repertoire: NUL or invalid UTF-8
)

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func retryable(err error) bool {
	c := pgCode(err)
	return c == codeSerialization || c == codeDeadlock
}

func isUnique(err error) bool { return pgCode(err) == codeUnique }

// notFound maps pgx.ErrNoRows to metadata.ErrNotFound and leaves other
// errors alone, so callers can wrap either with context. A lookup by a key
// PostgreSQL cannot store (NUL or invalid UTF-8: SQLSTATE 22021) finds
// nothing too, as it would in SQLite.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return metadata.ErrNotFound
	}
	if pgCode(err) == codeBadText {
		return fmt.Errorf("%w (%w)", metadata.ErrNotFound, err)
	}
	return err
}
