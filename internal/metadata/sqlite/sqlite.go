package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cofferhq/coffer/internal/metadata"
)

// busyTimeoutMillis bounds how long a connection waits for a lock held by
// another connection (another process, or a checkpoint) before SQLITE_BUSY.
// Inside one Store writes never contend: they queue for the one writer
// connection instead.
const busyTimeoutMillis = 10_000

// Config configures Open.
type Config struct {
	// Path is the database file. It is created with mode 0600 when missing;
	// its directory must exist. The -wal and -shm files SQLite keeps next to
	// it inherit its mode.
	Path string
	// MaxReadConns bounds the pool of read-only connections; 0 or less means
	// max(4, GOMAXPROCS).
	MaxReadConns int
}

// Store is the SQLite implementation of metadata.Store. It is safe for
// concurrent use. See the package documentation for its concurrency model.
type Store struct {
	w     *sql.DB              // exactly one connection; every write transaction runs here
	r     *sql.DB              // read-only connections; never wait behind a writer (WAL)
	stmts map[string]*sql.Stmt // prepared read queries on r; read-only after Open
}

var _ metadata.Store = (*Store)(nil)

// ErrSchemaTooNew reports a database written by a newer Coffer: its schema
// has migrations this binary does not know, so it refuses to touch it.
var ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this binary")

// Open opens (creating if needed) the database at cfg.Path, applies pending
// migrations, and returns a ready Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	// SQLite would create the file with mode 0644 (less umask); create it
	// first so it, and the -wal and -shm files that copy its mode, are 0600.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	maxRead := cfg.MaxReadConns
	if maxRead <= 0 {
		maxRead = max(4, runtime.GOMAXPROCS(0))
	}

	busy := strconv.Itoa(busyTimeoutMillis)
	w, err := sql.Open("sqlite", fileURI(path, url.Values{
		"_busy_timeout": {busy},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
		// After a checkpoint resets the WAL, truncate the file to this size
		// so one burst of pushes does not leave a huge -wal behind forever.
		"_pragma": {"journal_size_limit(67108864)"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One connection, kept forever: writes queue in database/sql instead of
	// spinning on SQLITE_BUSY, and the connection that holds the WAL open is
	// never recycled under the readers.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// The readers open only now: mode=ro cannot switch the file to WAL, and
	// the schema they read must be the migrated one.
	r, err := sql.Open("sqlite", fileURI(path, url.Values{
		"mode":          {"ro"},
		"_busy_timeout": {busy},
	}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(maxRead)
	r.SetMaxIdleConns(maxRead) // opening a connection re-reads the schema; keep them
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	s.r = r
	if err := r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: read pool: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// fileURI returns a SQLite URI for an absolute path, escaping characters
// ('?', '#', '%') that would otherwise end or alter the file name.
func fileURI(path string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// Close closes both pools. The writer closes last, so the final connection
// checkpoints the WAL into the database file.
func (s *Store) Close() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Ping reports whether both the read pool and the writer answer. The writer
// check waits behind a write in progress, which is what readiness means for
// a registry that cannot accept pushes otherwise.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping readers: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	return nil
}

// write runs fn in one BEGIN IMMEDIATE transaction on the writer connection
// and commits it; any error from fn rolls everything back. With
// synchronous=FULL a nil return means the commit is on disk.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Deferred so that a panic in fn (say, in a caller's Immutable func)
	// cannot leave the one writer connection inside a transaction. After a
	// commit it is a no-op (sql.ErrTxDone); otherwise fn's error is the one
	// the caller needs, not the rollback's.
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// isUnique reports a UNIQUE or PRIMARY KEY constraint violation.
func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// notFound maps sql.ErrNoRows to metadata.ErrNotFound and leaves other
// errors alone, so callers can wrap either with context.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return metadata.ErrNotFound
	}
	return err
}
