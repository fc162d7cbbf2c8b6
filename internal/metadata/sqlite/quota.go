package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Quotas are checked inside the write transaction that adds the manifest
// or the blob link, after the row is in: the one writer connection
// serializes every write, so no concurrent push can slip in between the
// check and the commit. The check reads the repository's usage afresh (a
// scan of its manifests and links, by primary key prefix); there is no
// counter to drift.

// qRepositoryUsage computes metadata.Usage for a repository (its manifests,
// and the distinct blobs its links name in its domain) and whether it
// exists, in one statement.
const qRepositoryUsage = `SELECT
	(SELECT COUNT(*) FROM repositories WHERE id = ?1),
	(SELECT COUNT(*) FROM manifests WHERE repo_id = ?1),
	(SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repo_id = ?1) +
	(SELECT COALESCE(SUM(b.size), 0) FROM repo_blobs l
		JOIN repositories r ON r.id = l.repo_id
		JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest
		WHERE l.repo_id = ?1)`

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// repoUsage returns the repository's usage; ErrRepositoryUnknown if absent.
func repoUsage(ctx context.Context, q rowQuerier, repoID string) (metadata.Usage, error) {
	var (
		u      metadata.Usage
		exists int
	)
	if err := q.QueryRowContext(ctx, qRepositoryUsage, repoID).Scan(&exists, &u.Images, &u.Bytes); err != nil {
		return metadata.Usage{}, fmt.Errorf("usage of %s: %w", repoID, err)
	}
	if exists == 0 {
		return metadata.Usage{}, fmt.Errorf("usage of %s: %w", repoID, metadata.ErrRepositoryUnknown)
	}
	return u, nil
}

// checkQuota fails with a *metadata.QuotaError if the repository's usage,
// as this transaction sees it, is over q.
func checkQuota(ctx context.Context, tx *sql.Tx, repoID string, q metadata.Quota) error {
	if q.IsZero() {
		return nil
	}
	u, err := repoUsage(ctx, tx, repoID)
	if err != nil {
		return err
	}
	return q.Check(u)
}

// RepositoryUsage returns what the repository holds, as quotas count it,
// from one statement (one snapshot); ErrRepositoryUnknown if absent.
func (s *Store) RepositoryUsage(ctx context.Context, repoID string) (metadata.Usage, error) {
	return repoUsage(ctx, s.r, repoID)
}
