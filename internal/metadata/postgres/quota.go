package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Quotas are checked inside the write transaction that adds the manifest
// or the blob link, after the row is in. Writers run in parallel here, so
// a writer under a quota locks the repository row FOR NO KEY UPDATE
// instead of FOR KEY SHARE (lockRepositoryFor): writers checking the same
// repository's quota queue on that lock, and each one's usage query, a
// fresh READ COMMITTED snapshot taken after the lock was granted, sees
// every row the previous one committed. Writers without a quota keep
// FOR KEY SHARE, which does not conflict, and check nothing.

// qRepositoryUsage computes metadata.Usage for a repository (its manifests,
// and the distinct blobs its links name in its domain) and whether it
// exists, in one statement.
const qRepositoryUsage = `SELECT
	EXISTS (SELECT 1 FROM repositories WHERE id = $1),
	(SELECT COUNT(*) FROM manifests WHERE repo_id = $1),
	(SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repo_id = $1) +
	(SELECT COALESCE(SUM(b.size), 0) FROM repo_blobs l
		JOIN repositories r ON r.id = l.repo_id
		JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest
		WHERE l.repo_id = $1)`

type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// repoUsage returns the repository's usage; ErrRepositoryUnknown if absent.
func repoUsage(ctx context.Context, q rowQuerier, repoID string) (metadata.Usage, error) {
	var (
		u      metadata.Usage
		exists bool
	)
	if err := q.QueryRow(ctx, qRepositoryUsage, repoID).Scan(&exists, &u.Images, &u.Bytes); err != nil {
		return metadata.Usage{}, fmt.Errorf("usage of %s: %w", repoID, err)
	}
	if !exists {
		return metadata.Usage{}, fmt.Errorf("usage of %s: %w", repoID, metadata.ErrRepositoryUnknown)
	}
	return u, nil
}

// checkQuota fails with a *metadata.QuotaError if the repository's usage,
// as this transaction sees it, is over q. The caller holds the repository
// row from lockRepositoryFor(q).
func checkQuota(ctx context.Context, tx pgx.Tx, repoID string, q metadata.Quota) error {
	if q.IsZero() {
		return nil
	}
	u, err := repoUsage(ctx, tx, repoID)
	if err != nil {
		return err
	}
	return q.Check(u)
}

// lockRepositoryFor is lockRepository for a writer under q: with a quota
// it takes the row FOR NO KEY UPDATE, so quota checks of one repository
// run one at a time.
func lockRepositoryFor(ctx context.Context, tx pgx.Tx, repoID string, q metadata.Quota) (string, error) {
	if q.IsZero() {
		return lockRepository(ctx, tx, repoID)
	}
	var domain string
	err := tx.QueryRow(ctx, `SELECT domain FROM repositories WHERE id = $1 FOR NO KEY UPDATE`, repoID).Scan(&domain)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: %s", metadata.ErrRepositoryUnknown, repoID)
	}
	if err != nil {
		return "", fmt.Errorf("read repository %s: %w", repoID, err)
	}
	return domain, nil
}

// RepositoryUsage returns what the repository holds, as quotas count it,
// from one statement (one snapshot); ErrRepositoryUnknown if absent.
func (s *Store) RepositoryUsage(ctx context.Context, repoID string) (metadata.Usage, error) {
	return repoUsage(ctx, s.pool, repoID)
}
