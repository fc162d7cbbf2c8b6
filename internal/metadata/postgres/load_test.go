package postgres

import (
	"context"
	"errors"
	"testing"
)

// TestLoad: SQLite's spellings (integers for BOOLEAN, strings for BYTEA)
// load; a failing load leaves nothing; a store with rows refuses a load.
func TestLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	repo := []string{"id", "name", "domain", "encryption_type", "kms_key", "tag_mutability", "tag_exclusions", "scan_on_push", "created_at"}
	row := []any{"r1", "team/app", "aes256", "AES256", "", "MUTABLE", "[]", int64(1), int64(42)}
	boom := errors.New("boom")
	err := s.Load(ctx, func(put func(string, []string, []any) error) error {
		if err := put("repositories", repo, row); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing load: %v", err)
	}
	if n, err := s.CountRows(ctx, "repositories"); err != nil || n != 0 {
		t.Fatalf("after a failed load: %d rows, %v", n, err)
	}
	if err := s.Load(ctx, func(put func(string, []string, []any) error) error {
		return put("nope", []string{"a"}, []any{int64(1)})
	}); err == nil {
		t.Error("load into an unknown table succeeded")
	}
	err = s.Load(ctx, func(put func(string, []string, []any) error) error {
		if err := put("settings", []string{"key", "value"}, []any{"k", []byte("v")}); err != nil {
			return err
		}
		if err := put("documents", []string{"kind", "key", "data", "version"}, []any{"user", "ci", "{}", int64(3)}); err != nil {
			return err
		}
		return put("repositories", repo, row)
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	r, err := s.GetRepository(ctx, "team/app")
	if err != nil || !r.ScanOnPush || r.ID != "r1" {
		t.Errorf("loaded repository %+v, %v", r, err)
	}
	if v, err := s.GetSetting(ctx, "k"); err != nil || v != "v" {
		t.Errorf("loaded setting %q, %v", v, err)
	}
	err = s.Load(ctx, func(func(string, []string, []any) error) error { return nil })
	if !errors.Is(err, ErrNotEmpty) {
		t.Errorf("load into a store with rows: %v; want ErrNotEmpty", err)
	}
}
