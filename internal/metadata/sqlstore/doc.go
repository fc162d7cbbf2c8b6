// Package sqlstore holds the Go side of the SQL metadata stores that
// internal/metadata/sqlite and internal/metadata/postgres would otherwise
// each carry a copy of: how list and map columns are encoded as JSON text,
// how the rows of the tables whose columns both schemas spell the same
// (blobs, uploads, repositories, blob links) are read into metadata types,
// which repository fields an update may change, how a manifest listing
// joined with its tags is folded into one manifest per digest, and how a
// directory of numbered migrations is read.
//
// It trusts its callers' SQL: a Scan function reads exactly the columns of
// its Columns constant, in that order. It does no I/O but reading the
// migrations' file system it is given. It holds no SQL with placeholders
// (SQLite writes ?, PostgreSQL $1), no NULL handling of a particular
// driver (so the manifest scanners, which read nullable columns on the
// pull path, stay in each store with the driver's own NULL types), and
// nothing about transactions or locking; those stay in each store, where
// they differ.
//
// Both drivers' rows satisfy Scanner: *sql.Row and *sql.Rows of
// database/sql, pgx.Row and pgx.CollectableRow of pgx.
package sqlstore
