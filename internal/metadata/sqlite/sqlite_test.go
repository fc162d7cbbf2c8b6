package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/metadatatest"
)

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "coffer.db")
	return openAt(t, path), path
}

func TestContract(t *testing.T) {
	metadatatest.Run(t, func(t *testing.T) metadata.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestReopen(t *testing.T) {
	metadatatest.RunReopen(t, func(t *testing.T) func() (metadata.Store, error) {
		path := filepath.Join(t.TempDir(), "coffer.db")
		return func() (metadata.Store, error) {
			return Open(t.Context(), Config{Path: path})
		}
	})
}

// appliedMigrations returns version -> applied_at.
func appliedMigrations(t *testing.T, s *Store) map[int]int64 {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		out[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Name != "0001_init.sql" {
		t.Fatalf("embedded migrations = %v", ms)
	}

	t.Run("Fresh", func(t *testing.T) {
		s, _ := openTemp(t)
		applied := appliedMigrations(t, s)
		if len(applied) != len(ms) {
			t.Fatalf("applied %v, want versions 1..%d", applied, len(ms))
		}
		for _, table := range []string{"settings", "repositories", "blobs", "repo_blobs", "uploads",
			"manifests", "manifest_refs", "tags"} {
			var n int
			err := s.r.QueryRowContext(t.Context(),
				`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n)
			if err != nil || n != 1 {
				t.Errorf("table %s: count %d, err %v", table, n, err)
			}
		}
	})

	t.Run("ReopenIsNoOp", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "coffer.db")
		s, err := Open(t.Context(), Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		before := appliedMigrations(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // a re-applied migration would get a new applied_at
		s = openAt(t, path)
		after := appliedMigrations(t, s)
		if len(after) != len(before) {
			t.Fatalf("migrations before %v, after reopen %v", before, after)
		}
		for v, at := range before {
			if after[v] != at {
				t.Errorf("migration %d re-applied (applied_at %d -> %d)", v, at, after[v])
			}
		}
	})

	t.Run("RefuseNewerSchema", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "coffer.db")
		s, err := Open(t.Context(), Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		future := len(ms) + 1
		if _, err := s.w.ExecContext(t.Context(),
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future.sql', 0)`, future); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = Open(t.Context(), Config{Path: path})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("open newer schema: err = %v, want ErrSchemaTooNew", err)
		}
		for _, want := range []string{path, fmt.Sprintf("version %d", future), fmt.Sprintf("up to %d", len(ms))} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Error("opened an empty path")
	}
	if _, err := Open(t.Context(), Config{Path: filepath.Join(t.TempDir(), "missing", "db")}); err == nil {
		t.Error("opened a path in a missing directory")
	}
	// Not a database: refuse rather than overwrite.
	path := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), Config{Path: path}); err == nil {
		t.Error("opened a file that is not a database")
	}
}

func TestPathNeedsEscaping(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%chars")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "coffer.db")
	s := openAt(t, path)
	if _, err := s.PutSettingIfAbsent(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
}

func TestFileModes(t *testing.T) {
	s, path := openTemp(t)
	if _, err := s.PutSettingIfAbsent(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

func TestPragmas(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	for _, c := range []struct {
		pragma, want string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
		{"journal_size_limit", "67108864"},
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := s.r.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('x', 'y')`); err == nil {
		t.Error("a read connection accepted a write")
	}
}

// TestReadersDoNotWaitForWriter holds the write lock with an open
// transaction and checks that reads proceed (seeing committed data only)
// while a second write queues.
func TestReadersDoNotWaitForWriter(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if _, err := s.PutSettingIfAbsent(ctx, "committed", "yes"); err != nil {
		t.Fatal(err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('pending', 'x')`); err != nil {
		t.Fatal(err)
	}

	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if v, err := s.GetSetting(rctx, "committed"); err != nil || v != "yes" {
		t.Errorf("read during write = %q, %v", v, err)
	}
	if _, err := s.GetSetting(rctx, "pending"); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("read saw an uncommitted write: %v", err)
	}

	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	if _, err := s.PutSettingIfAbsent(wctx, "second", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second write while the writer is held: err = %v, want deadline exceeded", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSetting(ctx, "pending"); err != nil || v != "x" {
		t.Errorf("read after commit = %q, %v", v, err)
	}
}

// TestQueryPlans checks that the hot queries are index searches: no full
// scan and no sort.
func TestQueryPlans(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	for name, q := range map[string]string{
		"GetSetting":       qGetSetting,
		"GetRepository":    qGetRepository,
		"ListRepositories": qListRepositories,
		"GetBlob":          qGetBlob,
		"BlobLinked":       qBlobLinked,
		"GetUpload":        qGetUpload,
		"GetManifest":      qGetManifest,
		"ResolveTag":       qResolveTag,
		"ListTags":         qListTags,
		"Referrers":        qReferrers,
		"ReferrersOfType":  qReferrersOfType,
		"TagsOfManifest":   `SELECT tag FROM tags WHERE repo_id = ? AND digest = ?`,
		"RefsToDigest":     `SELECT manifest_digest FROM manifest_refs WHERE repo_id = ? AND ref_digest = ?`,
		"UploadsOfRepo":    `SELECT parts FROM uploads WHERE repo_id = ?`,
		"ManifestsOfRepo":  `SELECT object_key FROM manifests WHERE repo_id = ?`,
		"BlobsOfDomain":    `SELECT object_key FROM blobs WHERE domain = ?`,
		"DeleteRepository": `DELETE FROM repositories WHERE id = ?`,
		"DeleteManifest":   `DELETE FROM manifests WHERE repo_id = ? AND digest = ?`,
	} {
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, "a", "b", "c")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN") || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("%s: plan step %q (plan %q)", name, step, plan)
			}
		}
	}
}

func TestDomainMismatch(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	r := metadata.Repository{ID: "r1", Name: "r", Domain: "aes256", EncryptionType: metadata.EncryptionAES256,
		TagMutability: metadata.TagMutable}
	if err := s.CreateRepository(ctx, r); err != nil {
		t.Fatal(err)
	}
	b := metadata.Blob{Domain: "other", Digest: "sha256:00", Size: 1, ObjectKey: "k"}
	if _, _, err := s.CommitBlob(ctx, r.ID, b); err == nil {
		t.Error("CommitBlob accepted a blob of another domain")
	}
	u := metadata.Upload{ID: "u1", RepoID: r.ID, Domain: "other"}
	if err := s.CreateUpload(ctx, u); err == nil {
		t.Error("CreateUpload accepted another domain")
	}
	u.Domain = "aes256"
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CommitUpload(ctx, u.ID, b); err == nil {
		t.Error("CommitUpload accepted a blob of another domain")
	}
	if _, err := s.GetUpload(ctx, u.ID); err != nil {
		t.Errorf("rejected commit deleted the upload: %v", err)
	}
}

// TestPanicInImmutable checks that a panicking Immutable func does not
// wedge the single writer connection.
func TestPanicInImmutable(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	r := metadata.Repository{ID: "r1", Name: "r", Domain: "aes256", EncryptionType: metadata.EncryptionAES256,
		TagMutability: metadata.TagMutable}
	if err := s.CreateRepository(ctx, r); err != nil {
		t.Fatal(err)
	}
	put := func(digest string, imm func(string) bool) error {
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: metadata.Manifest{RepoID: r.ID, Digest: digest,
			MediaType: "m", ObjectKey: "manifests/r1/" + digest}, Tag: "v1", Immutable: imm})
		return err
	}
	if err := put("sha256:01", nil); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Immutable's panic did not propagate")
			}
		}()
		_ = put("sha256:02", func(string) bool { panic("boom") })
	}()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.PutSettingIfAbsent(wctx, "after", "panic"); err != nil {
		t.Fatalf("write after a panic: %v", err)
	}
	if _, err := s.GetManifest(ctx, r.ID, "sha256:02"); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("manifest of the panicking put was committed: %v", err)
	}
}
