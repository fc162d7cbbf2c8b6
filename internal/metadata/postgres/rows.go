package postgres

import (
	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// scanner is what pgx.Row and pgx.Rows (pgx.CollectableRow) share.
type scanner = sqlstore.Scanner

// collect returns the rows of a query, each read by scan, in order; nil if
// there are none. err is the query's own error: a call site hands both
// results of the query on, gets back the one error that stopped it (the
// query's, a scan's or the iteration's) and wraps it once. The rows are
// closed.
func collect[T any](rows pgx.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	return appendRows[T](nil, rows, err, scan)
}

// appendRows is collect appending to page (sqlstore.NewPage), as
// pgx.AppendRows: nil, not a partial page, with an error.
func appendRows[T any](page []T, rows pgx.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return pgx.AppendRows(page, rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}
