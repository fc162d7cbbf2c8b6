package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/metadatatest"
)

func TestContract(t *testing.T) {
	metadatatest.Run(t, func(t *testing.T) metadata.Store {
		s, _ := newStore(t)
		return s
	})
}

func TestReopen(t *testing.T) {
	metadatatest.RunReopen(t, func(t *testing.T) func() (metadata.Store, error) {
		dsn := newDSN(t)
		return func() (metadata.Store, error) {
			return Open(t.Context(), Config{DSN: dsn})
		}
	})
}

// appliedMigrations returns version -> applied_at.
func appliedMigrations(t *testing.T, s *Store) map[int]int64 {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
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

// TestMigrationsMirrorSQLite keeps the two migration directories in step:
// the same file names, so both stores reach the same logical schema at the
// same version.
func TestMigrationsMirrorSQLite(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, m := range ms {
		ours = append(ours, m.Name)
	}
	entries, err := os.ReadDir("../sqlite/migrations")
	if err != nil {
		t.Fatal(err)
	}
	var theirs []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			theirs = append(theirs, e.Name())
		}
	}
	if !slices.Equal(ours, theirs) {
		t.Fatalf("postgres migrations %v, sqlite migrations %v: add the PostgreSQL spelling of each", ours, theirs)
	}
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
		t.Parallel()
		s, _ := newStore(t)
		applied := appliedMigrations(t, s)
		if len(applied) != len(ms) {
			t.Fatalf("applied %v, want versions 1..%d", applied, len(ms))
		}
		for _, table := range []string{"settings", "repositories", "blobs", "repo_blobs", "uploads",
			"manifests", "manifest_refs", "tags", "documents"} {
			var ok bool
			err := s.pool.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok)
			if err != nil || !ok {
				t.Errorf("table %s: exists %v, err %v", table, ok, err)
			}
		}
	})

	t.Run("ReopenIsNoOp", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		s, err := Open(t.Context(), Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		before := appliedMigrations(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // a re-applied migration would get a new applied_at
		s = openStore(t, Config{DSN: dsn})
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
		t.Parallel()
		dsn := newDSN(t)
		s := openStore(t, Config{DSN: dsn})
		future := len(ms) + 1
		if _, err := s.pool.Exec(t.Context(),
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future.sql', 0)`, future); err != nil {
			t.Fatal(err)
		}
		_, err = Open(t.Context(), Config{DSN: dsn})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("open newer schema: err = %v, want ErrSchemaTooNew", err)
		}
		for _, want := range []string{fmt.Sprintf("version %d", future), fmt.Sprintf("up to %d", len(ms))} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})

	// Replicas starting together: every Open succeeds and each migration
	// is applied exactly once.
	t.Run("ConcurrentOpen", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		const n = 6
		stores := make([]*Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { stores[i], errs[i] = Open(t.Context(), Config{DSN: dsn, MaxConns: 2}) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				continue
			}
			t.Cleanup(func() { stores[i].Close() })
		}
		if t.Failed() {
			return
		}
		var rows, distinct int
		if err := stores[0].pool.QueryRow(t.Context(),
			`SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		if rows != len(ms) || distinct != len(ms) {
			t.Errorf("schema_migrations holds %d rows (%d versions), want %d", rows, distinct, len(ms))
		}
	})

	// A separate schema (search_path in the DSN) is a separate deployment:
	// its own tables and migrations.
	t.Run("SearchPath", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		s := openStore(t, Config{DSN: dsn})
		other := newDSN(t)
		o := openStore(t, Config{DSN: other})
		if o.schema == s.schema || !strings.HasPrefix(o.schema, "t_") {
			t.Fatalf("schemas %q and %q", s.schema, o.schema)
		}
		if _, err := o.PutSettingIfAbsent(t.Context(), "k", "other"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSetting(t.Context(), "k"); !errors.Is(err, metadata.ErrNotFound) {
			t.Errorf("setting of schema other visible in public: %v", err)
		}
		if s.docsKey == o.docsKey {
			t.Error("two schemas share the document lock")
		}
	})
}

// TestMissingServer: without server binaries the tests fail (never skip)
// with a message that says what to install.
func TestMissingServer(t *testing.T) {
	none := func(string) (string, error) { return "", errors.New("not found") }
	_, err := pgBinDir(filepath.Join(t.TempDir(), "*", "bin"), none)
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") || !strings.Contains(err.Error(), dsnEnv) {
		t.Errorf("error without binaries = %v", err)
	}
	if _, err := pgBinDir(debianBins, exec.LookPath); err != nil && os.Getenv(dsnEnv) == "" {
		t.Errorf("this machine runs the tests on a throwaway server, so it must have the binaries: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Error("opened an empty DSN")
	}
	const secret = "s3cr3t-pw"
	_, err := Open(t.Context(), Config{DSN: "postgres://u:" + secret + "@127.0.0.1:notaport/db"})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("bad DSN: err = %v (must fail without quoting the password)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Config{DSN: fmt.Sprintf("postgres://u:%s@127.0.0.1:%d/db?sslmode=disable&connect_timeout=2", secret, port)})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("unreachable server: err = %v (must fail without quoting the password)", err)
	}
}

// TestCollation checks that every column that is ordered or paged over is
// byte-wise (COLLATE "C") whatever the database default.
func TestCollation(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rows, err := s.pool.Query(t.Context(), `SELECT c.relname || '.' || a.attname, COALESCE(co.collname, '')
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_collation co ON co.oid = a.attcollation
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 AND a.atttypid = 'text'::regtype`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var col, coll string
		if err := rows.Scan(&col, &coll); err != nil {
			t.Fatal(err)
		}
		got[col] = coll
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"settings.key", "repositories.id", "repositories.name", "repositories.domain",
		"blobs.domain", "blobs.digest", "repo_blobs.repo_id", "repo_blobs.digest", "uploads.id", "uploads.repo_id",
		"manifests.repo_id", "manifests.digest", "manifests.subject", "manifests.artifact_type",
		"manifest_refs.repo_id", "manifest_refs.manifest_digest", "manifest_refs.ref_digest",
		"tags.repo_id", "tags.tag", "tags.digest", "documents.kind", "documents.key"} {
		if got[col] != "C" {
			t.Errorf("column %s collation %q, want C", col, got[col])
		}
	}
}

// TestQueryPlans checks that the hot queries use indexes: with sequential
// scans and sorts priced out, a plan still holding one has no index to use.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off; SET enable_sort = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), `RESET ALL`)
	for name, q := range map[string]string{
		"GetSetting":       `SELECT value FROM settings WHERE key = 'a'`,
		"GetRepository":    `SELECT * FROM repositories WHERE name = 'a'`,
		"ListRepositories": `SELECT * FROM repositories WHERE name > 'a' ORDER BY name LIMIT 10`,
		"GetBlob":          `SELECT * FROM blobs WHERE domain = 'a' AND digest = 'b'`,
		"BlobLinked": `SELECT b.* FROM repo_blobs l JOIN repositories r ON r.id = l.repo_id
			JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest WHERE l.repo_id = 'a' AND l.digest = 'b'`,
		"GetUpload":   `SELECT * FROM uploads WHERE id = 'a'`,
		"GetManifest": `SELECT * FROM manifests m WHERE m.repo_id = 'a' AND m.digest = 'b'`,
		"ResolveTag": `SELECT m.* FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
			WHERE t.repo_id = 'a' AND t.tag = 'b'`,
		"ListTags":        `SELECT tag FROM tags WHERE repo_id = 'a' AND tag > 'b' ORDER BY tag LIMIT 1000`,
		"Referrers":       `SELECT * FROM manifests m WHERE m.repo_id = 'a' AND m.subject = 'b' ORDER BY m.digest`,
		"TagsOfManifest":  `SELECT tag FROM tags WHERE repo_id = 'a' AND digest = 'b'`,
		"RefsToDigest":    `SELECT manifest_digest FROM manifest_refs WHERE repo_id = 'a' AND ref_digest = 'b'`,
		"UploadsOfRepo":   `SELECT parts FROM uploads WHERE repo_id = 'a'`,
		"ManifestsOfRepo": `SELECT object_key FROM manifests WHERE repo_id = 'a'`,
		"BlobsOfDomain":   `SELECT object_key FROM blobs WHERE domain = 'a'`,
		"ListManifests": `SELECT * FROM (SELECT * FROM manifests WHERE repo_id = 'a' AND digest > 'b' ORDER BY digest LIMIT 100) m
			LEFT JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest`,
		"DocumentsOfKind":    `SELECT key FROM documents WHERE kind = 'a' ORDER BY key`,
		"ImagesPage":         strings.NewReplacer("$1", "'a'", "$2", "'b'", "$3", "100").Replace(qListImagesAny),
		"ImagesPageTagged":   strings.NewReplacer("$1", "'a'", "$2", "'b'", "$3", "100").Replace(qListImagesTagged),
		"ImagesPageUntagged": strings.NewReplacer("$1", "'a'", "$2", "'b'", "$3", "1000", "$4", "100").Replace(qListImagesUntagged),
	} {
		rows, err := conn.Query(ctx, "EXPLAIN "+q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, step := range plan {
			if strings.Contains(step, "Seq Scan") || strings.Contains(step, "Sort  ") {
				t.Errorf("%s: plan step %q\n%s", name, step, strings.Join(plan, "\n"))
			}
		}
		if strings.HasPrefix(name, "ImagesPage") && !strings.Contains(strings.Join(plan, "\n"), "Index Only Scan using manifests_images") {
			t.Errorf("%s: not an index-only scan of manifests_images:\n%s", name, strings.Join(plan, "\n"))
		}
	}
}

func TestDomainMismatch(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
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

// TestPanicInImmutable checks that a panicking Immutable func rolls back
// and leaves the pool usable.
func TestPanicInImmutable(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	s := openStore(t, Config{DSN: dsn, MaxConns: 1}) // a leaked connection would block the next write
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

// TestRetry checks the retry loop: serialization failures and deadlocks
// re-run the transaction, other errors do not, and giving up reports
// ErrConflict.
func TestRetry(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	for _, c := range []struct {
		name     string
		err      error
		failures int
		calls    int
		want     error
	}{
		{"Serialization", &pgconn.PgError{Code: codeSerialization}, 2, 3, nil},
		{"Deadlock", &pgconn.PgError{Code: codeDeadlock}, 1, 2, nil},
		{"Other", &pgconn.PgError{Code: codeUnique}, 1, 1, &pgconn.PgError{}},
		{"GiveUp", &pgconn.PgError{Code: codeSerialization}, 100, maxAttempts, metadata.ErrConflict},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := s.write(ctx, func(tx pgx.Tx) error {
				calls++
				if calls <= c.failures {
					return c.err
				}
				return nil
			})
			if calls != c.calls {
				t.Errorf("fn ran %d times, want %d", calls, c.calls)
			}
			switch want := c.want.(type) {
			case nil:
				if err != nil {
					t.Errorf("err = %v", err)
				}
			case *pgconn.PgError:
				if !errors.As(err, &want) {
					t.Errorf("err = %v, want the PgError", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
		})
	}
}

// TestDeadlockRetried provokes a real deadlock (two transactions locking
// two rows in opposite orders); the database aborts one, and the store's
// retry makes both succeed.
func TestDeadlockRetried(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if _, err := s.PutSettingIfAbsent(ctx, k, "0"); err != nil {
			t.Fatal(err)
		}
	}
	var (
		first sync.WaitGroup // both hold their first lock
		wg    sync.WaitGroup
		mu    sync.Mutex
		runs  int
	)
	first.Add(2)
	errs := make([]error, 2)
	for i, order := range [][2]string{{"a", "b"}, {"b", "a"}} {
		wg.Go(func() {
			attempt := 0
			errs[i] = s.write(ctx, func(tx pgx.Tx) error {
				attempt++
				mu.Lock()
				runs++
				mu.Unlock()
				if _, err := tx.Exec(ctx, `UPDATE settings SET value = value || '+' WHERE key = $1`, order[0]); err != nil {
					return err
				}
				if attempt == 1 {
					first.Done()
					first.Wait()
				}
				_, err := tx.Exec(ctx, `UPDATE settings SET value = value || '+' WHERE key = $1`, order[1])
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	if runs < 3 {
		t.Errorf("%d transaction runs, want a retry (3 or more)", runs)
	}
	for _, k := range []string{"a", "b"} {
		if v, err := s.GetSetting(ctx, k); err != nil || v != "0++" {
			t.Errorf("setting %s = %q, %v; want both updates once", k, v, err)
		}
	}
}

// TestDeleteRepositoryRacesPushes deletes a KMS repository while pushes
// (blob commit, then manifest with tag) run against it. Every push either
// completes before the delete, and then the delete reports its objects as
// orphans, or fails with ErrRepositoryUnknown; nothing is left behind.
func TestDeleteRepositoryRacesPushes(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	r := metadata.Repository{ID: "kms-repo", Name: "doomed", Domain: "kms-repo",
		EncryptionType: metadata.EncryptionKMS, TagMutability: metadata.TagMutable}
	if err := s.CreateRepository(ctx, r); err != nil {
		t.Fatal(err)
	}
	const pushers, perPusher = 8, 6
	type push struct {
		blob, manifest string // object keys
		blobOK, manOK  bool
	}
	results := make([][]push, pushers)
	var orphans []string
	var delErr error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for p := range pushers {
		wg.Go(func() {
			<-start
			for i := range perPusher {
				d := fmt.Sprintf("sha256:%060x%02x%02x", 0, p, i)
				pr := push{blob: "layers/kms-repo/" + d, manifest: "manifests/kms-repo/m" + d}
				_, _, err := s.CommitBlob(ctx, r.ID, metadata.Blob{Domain: r.Domain, Digest: d, Size: 1, ObjectKey: pr.blob})
				if err != nil && !errors.Is(err, metadata.ErrRepositoryUnknown) {
					t.Errorf("commit blob: %v", err)
				}
				pr.blobOK = err == nil
				if pr.blobOK {
					_, err = s.PutManifest(ctx, metadata.PutManifest{
						Manifest: metadata.Manifest{RepoID: r.ID, Digest: "m" + d, MediaType: "m", ObjectKey: pr.manifest},
						Refs:     []metadata.Ref{{Digest: d, Kind: metadata.RefBlob}},
						Tag:      fmt.Sprintf("t%d", i),
					})
					if err != nil && !errors.Is(err, metadata.ErrRepositoryUnknown) {
						t.Errorf("put manifest: %v", err)
					}
					pr.manOK = err == nil
				}
				results[p] = append(results[p], pr)
			}
		})
	}
	wg.Go(func() {
		<-start
		time.Sleep(5 * time.Millisecond)
		orphans, delErr = s.DeleteRepository(ctx, r.Name)
	})
	close(start)
	wg.Wait()
	if delErr != nil {
		t.Fatal(delErr)
	}
	var ok int
	for _, rs := range results {
		for _, pr := range rs {
			if pr.blobOK && !slices.Contains(orphans, pr.blob) {
				t.Errorf("committed blob %s missing from the orphans", pr.blob)
			}
			if pr.manOK {
				ok++
				if !slices.Contains(orphans, pr.manifest) {
					t.Errorf("pushed manifest %s missing from the orphans", pr.manifest)
				}
			}
		}
	}
	t.Logf("%d of %d pushes completed before the delete; %d orphans", ok, pushers*perPusher, len(orphans))
	for _, table := range []string{"blobs WHERE domain = $1", "repo_blobs WHERE repo_id = $1",
		"manifests WHERE repo_id = $1", "tags WHERE repo_id = $1", "manifest_refs WHERE repo_id = $1"} {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM `+table, r.ID).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left, err %v", table, n, err)
		}
	}
}
