package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// Tables, Load and CountRows serve `coffer migrate` (internal/migrate),
// which copies a single-node SQLite store into PostgreSQL table by table:
// the two schemas are the same (TestMigrationsMirrorSQLite).

// ErrNotEmpty reports that Load found rows in the target: it loads only
// into an empty store.
var ErrNotEmpty = errors.New("postgres: the database already holds Coffer data")

// loadBatch is how many rows one COPY carries.
const loadBatch = 1000

// Tables returns the names of the tables in the store's schema, sorted,
// without schema_migrations (a store's own bookkeeping, not data).
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
		ORDER BY table_name COLLATE "C"`, s.schema)
	names, err := collect(rows, err, sqlstore.ScanString)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tables: %w", err)
	}
	return names, nil
}

// CountRows returns the number of rows in table, one of Tables.
func (s *Store) CountRows(ctx context.Context, table string) (int64, error) {
	known, err := s.Tables(ctx)
	if err != nil {
		return 0, err
	}
	if !slices.Contains(known, table) {
		return 0, fmt.Errorf("postgres: count: no table %q", table)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count %s: %w", table, err)
	}
	return n, nil
}

// Load fills an empty store in one transaction: fn calls put for every row
// (a table's rows together, tables in foreign-key order: a row after the
// rows it references), and everything commits when fn returns nil, or
// nothing does. Values are converted to the target column's type where
// SQLite spells it differently (integers for BOOLEAN, text and bytes). If
// any table holds a row when Load starts it returns ErrNotEmpty; the check
// and the load share the transaction, which locks every table against
// writers, so a server starting meanwhile waits or finds the data.
func (s *Store) Load(ctx context.Context, fn func(put func(table string, cols []string, vals []any) error) error) error {
	tables, err := s.Tables(ctx)
	if err != nil {
		return err
	}
	types, err := s.columnTypes(ctx)
	if err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, s.pool, readCommitted, func(tx pgx.Tx) error {
		for _, t := range tables {
			id := pgx.Identifier{t}.Sanitize()
			if _, err := tx.Exec(ctx, `LOCK TABLE `+id+` IN EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("postgres: load: lock %s: %w", t, err)
			}
			var has bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+id+`)`).Scan(&has); err != nil {
				return fmt.Errorf("postgres: load: %s: %w", t, err)
			}
			if has {
				return fmt.Errorf("%w (table %s has rows)", ErrNotEmpty, t)
			}
		}
		l := &loader{tx: tx, tables: tables, types: types}
		if err := fn(func(table string, cols []string, vals []any) error { return l.put(ctx, table, cols, vals) }); err != nil {
			return err
		}
		return l.flush(ctx)
	})
}

// columnTypes maps table and column to information_schema's data_type.
func (s *Store) columnTypes(ctx context.Context) (map[string]map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1`, s.schema)
	if err != nil {
		return nil, fmt.Errorf("postgres: read columns: %w", err)
	}
	out := make(map[string]map[string]string)
	var t, c, typ string
	if _, err := pgx.ForEachRow(rows, []any{&t, &c, &typ}, func() error {
		if out[t] == nil {
			out[t] = make(map[string]string)
		}
		out[t][c] = typ
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres: read columns: %w", err)
	}
	return out, nil
}

// loader batches one table's rows into COPYs.
type loader struct {
	tx     pgx.Tx
	tables []string
	types  map[string]map[string]string
	table  string
	cols   []string
	rows   [][]any
}

func (l *loader) put(ctx context.Context, table string, cols []string, vals []any) error {
	if table != l.table || !slices.Equal(cols, l.cols) {
		if err := l.flush(ctx); err != nil {
			return err
		}
		if !slices.Contains(l.tables, table) {
			return fmt.Errorf("postgres: load: no table %q", table)
		}
		for _, c := range cols {
			if _, ok := l.types[table][c]; !ok {
				return fmt.Errorf("postgres: load: table %s has no column %q (schemas differ)", table, c)
			}
		}
		l.table, l.cols = table, slices.Clone(cols)
	}
	if len(vals) != len(cols) {
		return fmt.Errorf("postgres: load %s: %d values for %d columns", table, len(vals), len(cols))
	}
	row := make([]any, len(vals))
	for i, v := range vals {
		c, err := convert(l.types[table][cols[i]], v)
		if err != nil {
			return fmt.Errorf("postgres: load %s.%s: %w", table, cols[i], err)
		}
		row[i] = c
	}
	l.rows = append(l.rows, row)
	if len(l.rows) >= loadBatch {
		return l.flush(ctx)
	}
	return nil
}

func (l *loader) flush(ctx context.Context) error {
	if len(l.rows) == 0 {
		return nil
	}
	n, err := l.tx.CopyFrom(ctx, pgx.Identifier{l.table}, l.cols, pgx.CopyFromRows(l.rows))
	if err != nil {
		return fmt.Errorf("postgres: load %s: %w", l.table, err)
	}
	if n != int64(len(l.rows)) {
		return fmt.Errorf("postgres: load %s: copied %d of %d rows", l.table, n, len(l.rows))
	}
	l.rows = l.rows[:0]
	return nil
}

// convert adapts a SQLite value to a column of PostgreSQL type typ.
func convert(typ string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case "boolean":
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			return x != 0, nil
		}
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case "text":
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case "bigint", "integer", "smallint":
		switch x := v.(type) {
		case int64:
			return x, nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	default:
		return v, nil
	}
	return nil, fmt.Errorf("cannot store a %T in a %s column", v, typ)
}
