package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// The read queries of the hot paths. Open prepares each once on the read
// pool; database/sql then keeps one compiled statement per connection, which
// saves the SQL parse that otherwise dominates a point lookup (~3x).
const (
	qGetSetting    = `SELECT value FROM settings WHERE key = ?`
	qGetRepository = `SELECT ` + repoColumns + ` FROM repositories WHERE name = ?`
	// LIMIT -1 means no limit in SQLite.
	qListRepositories = `SELECT ` + repoColumns + ` FROM repositories WHERE name > ? ORDER BY name LIMIT ?`
	qGetBlob          = `SELECT ` + blobColumns + ` FROM blobs WHERE domain = ? AND digest = ?`
	qBlobLinked       = `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at
		FROM repo_blobs l
		JOIN repositories r ON r.id = l.repo_id
		JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest
		WHERE l.repo_id = ? AND l.digest = ?`
	qGetUpload   = `SELECT ` + uploadColumns + ` FROM uploads WHERE id = ?`
	qGetManifest = `SELECT ` + manifestColumns + ` FROM manifests m WHERE m.repo_id = ? AND m.digest = ?`
	qResolveTag  = `SELECT ` + manifestColumns + `
		FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
		WHERE t.repo_id = ? AND t.tag = ?`
	qListTags  = `SELECT tag FROM tags WHERE repo_id = ? AND tag > ? ORDER BY tag LIMIT ?`
	qReferrers = `SELECT ` + manifestColumns + ` FROM manifests m
		WHERE m.repo_id = ? AND m.subject = ? ORDER BY m.digest`
	qReferrersOfType = `SELECT ` + manifestColumns + ` FROM manifests m
		WHERE m.repo_id = ? AND m.subject = ? AND m.artifact_type = ? ORDER BY m.digest`
)

var preparedQueries = []string{
	qGetSetting, qGetRepository, qListRepositories, qGetBlob, qBlobLinked, qGetUpload,
	qGetManifest, qResolveTag, qListTags, qReferrers, qReferrersOfType,
}

// prepare compiles preparedQueries on the read pool.
func (s *Store) prepare(ctx context.Context) error {
	s.stmts = make(map[string]*sql.Stmt, len(preparedQueries))
	for _, q := range preparedQueries {
		st, err := s.r.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.stmts[q] = st
	}
	return nil
}

// queryRow runs a read query on the read pool, prepared if it is one of
// preparedQueries.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st, ok := s.stmts[q]; ok {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, q, args...)
}

// query is queryRow for several rows.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st, ok := s.stmts[q]; ok {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, q, args...)
}

// sqlLimit maps the contract's "limit <= 0 means no limit" to SQLite's.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
