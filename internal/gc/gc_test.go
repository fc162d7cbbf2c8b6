package gc

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

type env struct {
	store  metadata.Store
	drv    storage.Driver
	repo   metadata.Repository
	root   string
	dbPath string
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	root := filepath.Join(dir, "blobs")
	d, err := fs.New(fs.Config{Root: root})
	if err != nil {
		tb.Fatal(err)
	}
	r := metadata.Repository{ID: uuid.NewString(), Name: "r", Domain: "aes256", EncryptionType: metadata.EncryptionAES256,
		TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := s.CreateRepository(ctx, r); err != nil {
		tb.Fatal(err)
	}
	return &env{store: s, drv: d, repo: r, root: root, dbPath: filepath.Join(dir, "db")}
}

func (e *env) object(tb testing.TB, key string, size int, age time.Duration) {
	tb.Helper()
	ctx := context.Background()
	w, err := e.drv.Writer(ctx, key)
	if err != nil {
		tb.Fatal(err)
	}
	w.Write(make([]byte, size))
	if err := w.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	if age > 0 {
		t := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(e.root, key), t, t); err != nil {
			tb.Fatal(err)
		}
	}
}

// blob stores an object and commits a blob row for it, created age ago.
func (e *env) blob(tb testing.TB, name string, size int, age time.Duration) metadata.Blob {
	tb.Helper()
	key := "layers/aes256/" + uuid.NewString()
	e.object(tb, key, size, age)
	b := metadata.Blob{Domain: "aes256", Digest: fmt.Sprintf("sha256:%064x", name), Size: int64(size),
		ObjectKey: key, CreatedAt: time.Now().Add(-age)}
	if _, _, err := e.store.CommitBlob(context.Background(), e.repo.ID, b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestCollect(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keep := e.blob(t, "a", 100, 2*time.Hour)  // linked: stays
	gone := e.blob(t, "b", 200, 2*time.Hour)  // unlinked, old: reclaimed
	young := e.blob(t, "c", 300, time.Minute) // unlinked, young: stays
	for _, b := range []metadata.Blob{gone, young} {
		if err := e.store.UnlinkBlob(ctx, e.repo.ID, b.Digest); err != nil {
			t.Fatal(err)
		}
	}
	e.object(t, "layers/aes256/orphan-old", 50, 2*time.Hour)
	e.object(t, "layers/aes256/orphan-young", 60, 0)
	e.object(t, "manifests/x/sha256:1/orphan", 70, 3*time.Hour)
	// An abandoned upload with one part.
	part := "layers/aes256/part-" + uuid.NewString()
	e.object(t, part, 80, 0)
	old := time.Now().Add(-48 * time.Hour)
	if err := e.store.CreateUpload(ctx, metadata.Upload{ID: uuid.NewString(), RepoID: e.repo.ID, Domain: "aes256", Size: 80,
		Parts: []metadata.Part{{ObjectKey: part, Size: 80}}, StartedAt: old, UpdatedAt: old}); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Store: e.store, Driver: e.drv})
	if err != nil {
		t.Fatal(err)
	}
	dry, err := c.Run(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Blobs != 1 || dry.Uploads != 1 || dry.Orphans != 2 {
		t.Fatalf("dry run: %+v", dry)
	}
	if _, err := e.drv.Stat(ctx, gone.ObjectKey); err != nil {
		t.Fatal("dry run deleted an object")
	}
	rep, err := c.Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != dry.Blobs || rep.Uploads != dry.Uploads || rep.Orphans != dry.Orphans || rep.Bytes != dry.Bytes {
		t.Fatalf("run %+v differs from dry run %+v", rep, dry)
	}
	for _, k := range []string{gone.ObjectKey, "layers/aes256/orphan-old", "manifests/x/sha256:1/orphan", part} {
		if _, err := e.drv.Stat(ctx, k); err == nil {
			t.Errorf("%s not reclaimed", k)
		}
	}
	for _, k := range []string{keep.ObjectKey, young.ObjectKey, "layers/aes256/orphan-young"} {
		if _, err := e.drv.Stat(ctx, k); err != nil {
			t.Errorf("%s reclaimed: %v", k, err)
		}
	}
	if _, err := e.store.GetBlob(ctx, "aes256", gone.Digest); err == nil {
		t.Error("blob row of a reclaimed blob left")
	}
	again, err := c.Run(ctx, false)
	if err != nil || len(again.Items) != 0 {
		t.Fatalf("second run: %+v, %v", again, err)
	}
}

// seedRef records that the n-th seeded manifest of repoID references
// digest, inserting the manifest row first if needed.
func seedRef(ctx context.Context, tx *sql.Tx, repoID, digest string, n int, at int64) error {
	m := fmt.Sprintf("sha256:%064x", fmt.Sprintf("manifest%d", n))
	if _, err := tx.ExecContext(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size, object_key, pushed_at)
		VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', 1, ?, ?) ON CONFLICT DO NOTHING`,
		repoID, m, "manifests/"+repoID+"/"+m+"/seed", at); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO manifest_refs (repo_id, manifest_digest, ref_digest, kind) VALUES (?, ?, ?, 1)`,
		repoID, m, digest)
	return err
}

// BenchmarkCollect100k: one collection over a store of 100,000 blobs, of
// which 10% are unreferenced. The rows are inserted in bulk with SQL (the
// Store API commits, and fsyncs, one blob at a time); the collection
// itself goes through the Store and deletes every garbage blob in a
// transaction of its own, as it does online. Run with -benchtime=1x.
func BenchmarkCollect100k(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	db, err := sql.Open("sqlite", "file:"+e.dbPath)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const total, garbageEvery = 100_000, 10
	insert := func(garbageOnly bool) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		created := time.Now().Add(-2 * time.Hour).UnixMicro()
		for i := range total {
			garbage := i%garbageEvery == 0
			if garbageOnly && !garbage {
				continue
			}
			d := fmt.Sprintf("sha256:%064x", i)
			if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (domain, digest, size, object_key, created_at) VALUES ('aes256', ?, 1, ?, ?)`,
				d, fmt.Sprintf("layers/aes256/o%07d", i), created); err != nil {
				b.Fatal(err)
			}
			if !garbage {
				if _, err := tx.ExecContext(ctx, `INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES (?, ?, ?)`, e.repo.ID, d, created); err != nil {
					b.Fatal(err)
				}
				// Live blobs are layers of images (100 to a manifest):
				// a link no manifest references is garbage too.
				if err := seedRef(ctx, tx, e.repo.ID, d, i/100, created); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	insert(false)
	c, _ := New(Config{Store: e.store, Driver: e.drv})
	b.ResetTimer()
	for n := range b.N {
		if n > 0 {
			b.StopTimer()
			insert(true)
			b.StartTimer()
		}
		rep, err := c.Run(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Blobs != total/garbageEvery || rep.Links != 0 {
			b.Fatalf("reclaimed %d blobs, want %d", rep.Blobs, total/garbageEvery)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/collection")
}
