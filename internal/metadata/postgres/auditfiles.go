package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The books of the shared audit trail (issue #9; migration 0007; the
// trail itself is internal/audit's shared.go): the log files the replicas
// published, and the head of the one digest chain that covers them.

// AuditFile is a log file published to the shared audit trail.
type AuditFile struct {
	Object, SHA256, Oldest, Newest, Replica string
	Events                                  int64
}

// AuditHead is the shared digest chain's newest digest; End is unix
// seconds.
type AuditHead struct {
	Object, SHA256, Signature string
	End                       int64
}

// auditDigestLock is the transaction-scoped advisory lock that makes one
// digest at a time (a leader whose term just ended and its successor
// cannot both chain to one head).
const auditDigestLock = 0x636f66666572_01 // "coffer" 01

// RegisterAuditFile records a published log file; registering the same
// object again does nothing.
func (s *Store) RegisterAuditFile(ctx context.Context, f AuditFile) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_files (object, sha256, oldest, newest, events, replica)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (object) DO NOTHING`,
		f.Object, f.SHA256, f.Oldest, f.Newest, f.Events, f.Replica)
	if err != nil {
		return fmt.Errorf("postgres: register audit file: %w", err)
	}
	return nil
}

// AuditHead returns the shared chain's head; zero before the first digest.
func (s *Store) AuditHead(ctx context.Context) (AuditHead, error) {
	h, err := auditHead(ctx, s.pool)
	if err != nil {
		return AuditHead{}, fmt.Errorf("postgres: audit head: %w", err)
	}
	return h, nil
}

func auditHead(ctx context.Context, q rowQuerier) (AuditHead, error) {
	var h AuditHead
	err := q.QueryRow(ctx, `SELECT object, sha256, signature, end_time FROM audit_head WHERE id = 1`).
		Scan(&h.Object, &h.SHA256, &h.Signature, &h.End)
	if errors.Is(err, pgx.ErrNoRows) {
		return AuditHead{}, nil
	}
	return h, err
}

// PendingAuditFiles returns the registered files no digest lists yet, in
// registration order.
func (s *Store) PendingAuditFiles(ctx context.Context) ([]AuditFile, error) {
	files, err := pendingAuditFiles(ctx, s.pool, 0)
	if err != nil {
		return nil, fmt.Errorf("postgres: pending audit files: %w", err)
	}
	return files, nil
}

// pendingAuditFiles is PendingAuditFiles on q, at most limit files (0: all).
func pendingAuditFiles(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, limit int) ([]AuditFile, error) {
	rows, err := q.Query(ctx, `SELECT object, sha256, oldest, newest, events, replica FROM audit_files
		WHERE digest IS NULL ORDER BY seq LIMIT $1`, sqlLimit(limit))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditFile, error) {
		var f AuditFile
		err := r.Scan(&f.Object, &f.SHA256, &f.Oldest, &f.Newest, &f.Events, &f.Replica)
		return f, err
	})
}

// DigestAuditFiles calls fn with the head and the registered files no
// digest lists yet (in registration order, at most limit), under an
// advisory lock; if fn succeeds, the files are marked as listed by fn's
// digest and the head replaced, in the same transaction.
func (s *Store) DigestAuditFiles(ctx context.Context, limit int, fn func(AuditHead, []AuditFile) (AuditHead, error)) error {
	// Not retried: fn writes the digest to the object store.
	return pgx.BeginTxFunc(ctx, s.pool, readCommitted, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(auditDigestLock)); err != nil {
			return err
		}
		h, err := auditHead(ctx, tx)
		if err != nil {
			return err
		}
		files, err := pendingAuditFiles(ctx, tx, limit)
		if err != nil {
			return err
		}
		next, err := fn(h, files)
		if err != nil {
			return err
		}
		objects := make([]string, len(files))
		for i, f := range files {
			objects[i] = f.Object
		}
		if _, err := tx.Exec(ctx, `UPDATE audit_files SET digest = $1 WHERE object = ANY($2)`, next.Object, objects); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_head (id, object, sha256, signature, end_time) VALUES (1, $1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET object = $1, sha256 = $2, signature = $3, end_time = $4`,
			next.Object, next.SHA256, next.Signature, next.End)
		return err
	})
}
