package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// Export and CountRows serve `coffer migrate` (internal/migrate), which
// copies a single-node store into PostgreSQL table by table: the two
// schemas are the same (postgres.TestMigrationsMirrorSQLite).

// Tables returns the names of the schema's tables, sorted, without
// schema_migrations (a store's own bookkeeping, not data).
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name`)
	names, err := collect(rows, err, sqlstore.ScanString)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tables: %w", err)
	}
	return names, nil
}

// Export reads every row of tables, in the order given, inside one read
// transaction (one consistent snapshot), and calls fn for each row with
// the table's column names and the row's values: int64, float64, string,
// []byte, bool or nil, as the driver returns them. Every name must be one
// of Tables. An error from fn stops the export and is returned.
func (s *Store) Export(ctx context.Context, tables []string, fn func(table string, cols []string, vals []any) error) error {
	known, err := s.Tables(ctx)
	if err != nil {
		return err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: export: %w", err)
	}
	defer tx.Rollback()
	for _, t := range tables {
		if !slices.Contains(known, t) {
			return fmt.Errorf("sqlite: export: no table %q", t)
		}
		if err := exportTable(ctx, tx, t, fn); err != nil {
			return err
		}
	}
	return nil
}

func exportTable(ctx context.Context, tx *sql.Tx, table string, fn func(table string, cols []string, vals []any) error) error {
	rows, err := tx.QueryContext(ctx, `SELECT * FROM "`+table+`"`) // table is one of Tables
	if err != nil {
		return fmt.Errorf("sqlite: export %s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("sqlite: export %s: %w", table, err)
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("sqlite: export %s: %w", table, err)
		}
		if err := fn(table, cols, vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: export %s: %w", table, err)
	}
	return nil
}

// CountRows returns the number of rows in table, one of Tables.
func (s *Store) CountRows(ctx context.Context, table string) (int64, error) {
	known, err := s.Tables(ctx)
	if err != nil {
		return 0, err
	}
	if !slices.Contains(known, table) {
		return 0, fmt.Errorf("sqlite: count: no table %q", table)
	}
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM "`+table+`"`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count %s: %w", table, err)
	}
	return n, nil
}
