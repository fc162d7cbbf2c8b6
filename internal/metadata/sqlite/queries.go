package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// The read queries of the hot paths. Open prepares each once on the read
// pool; database/sql then keeps one compiled statement per connection, which
// saves the SQL parse that otherwise dominates a point lookup (~3x).
const (
	qGetSetting    = `SELECT value FROM settings WHERE key = ?`
	qGetRepository = `SELECT ` + sqlstore.RepositoryColumns + ` FROM repositories WHERE name = ?`
	// LIMIT -1 means no limit in SQLite.
	qListRepositories = `SELECT ` + sqlstore.RepositoryColumns + ` FROM repositories WHERE name > ? ORDER BY name LIMIT ?`
	qGetBlob          = `SELECT ` + sqlstore.BlobColumns + ` FROM blobs WHERE domain = ? AND digest = ?`
	qBlobLinked       = `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at
		FROM repo_blobs l
		JOIN repositories r ON r.id = l.repo_id
		JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest
		WHERE l.repo_id = ? AND l.digest = ?`
	qGetUpload   = `SELECT ` + sqlstore.UploadColumns + ` FROM uploads WHERE id = ?`
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

// eachRow calls fn for every row of a query and closes the rows. err is
// the query's own error: a call site hands both results of the query on,
// gets back the one error that stopped it (the query's, fn's or the
// iteration's) and wraps it once.
func eachRow(rows *sql.Rows, err error, fn func(scanner) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// collect returns the rows of a query, each read by scan, in order; nil if
// there are none. Errors are as for eachRow.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	return appendRows[T](nil, rows, err, scan)
}

// appendRows is collect appending to page (sqlstore.NewPage). It returns
// nil, not a partial page, with an error.
func appendRows[T any](page []T, rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	err = eachRow(rows, err, func(sc scanner) error {
		v, err := scan(sc)
		if err != nil {
			return err
		}
		page = append(page, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// sqlLimit maps the contract's "limit <= 0 means no limit" to SQLite's.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
