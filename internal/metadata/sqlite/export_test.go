package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestExport: every row with its columns, SQLite's own values; unknown
// tables refused.
func TestExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.PutSettingIfAbsent(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	var got [][]any
	err = s.Export(ctx, []string{"settings", "tags"}, func(table string, cols []string, vals []any) error {
		if table != "settings" || len(cols) != 2 || cols[0] != "key" || cols[1] != "value" {
			t.Errorf("row of %s with columns %v", table, cols)
		}
		got = append(got, vals)
		return nil
	})
	if err != nil || len(got) != 1 || got[0][0] != "k" || got[0][1] != "v" {
		t.Errorf("export: %v, %v; want one settings row k=v", got, err)
	}
	if n, err := s.CountRows(ctx, "settings"); err != nil || n != 1 {
		t.Errorf("CountRows(settings) = %d, %v", n, err)
	}
	if err := s.Export(ctx, []string{"schema_migrations"}, func(string, []string, []any) error { return nil }); err == nil {
		t.Error("export of schema_migrations succeeded")
	}
	if _, err := s.CountRows(ctx, "x; DROP TABLE tags"); err == nil {
		t.Error("CountRows of an unknown table succeeded")
	}
}
