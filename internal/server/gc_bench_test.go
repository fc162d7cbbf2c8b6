package server

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/metadata"
)

// Issue #11's performance target: a GC of 100,000 blobs with 10% garbage
// finishes within 60 s while push throughput drops by at most 20% during
// it. docs/benchmarks.md ("Push throughput during GC") has the method and
// the latest numbers.

const (
	gcBenchBlobs    = 100_000
	gcBenchGarbage  = 10 // every 10th seeded blob is garbage
	gcBenchRounds   = 5
	gcBenchPushers  = 4
	gcBenchBaseline = 10 * time.Second
)

// gcBenchEnv is a server over SQLite and the filesystem, as coffer serve
// runs by default (anonymous /v2/ on loopback, so the client costs no
// token round trips), with its data directory seeded directly.
type gcBenchEnv struct {
	b    *testing.B
	srv  *httptest.Server
	app  *App
	db   *sql.DB
	repo string // ID of the repository the live seeded blobs are linked to
	host string
	n    atomic.Int64 // images pushed, for unique tags
}

func newGCBenchEnv(b *testing.B) *gcBenchEnv {
	b.Helper()
	cfg := config.Defaults()
	cfg.DataDir = b.TempDir()
	cfg.CreateOnPush = true
	cfg.InsecureAllowAnonymous = true
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	srv, app := startApp(b, cfg, slog.New(slog.DiscardHandler))
	db, err := sql.Open("sqlite", "file:"+SQLitePath(cfg)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	repo, err := app.reg.CreateRepository(context.Background(), metadata.Repository{Name: "seed/app"}, false)
	if err != nil {
		b.Fatal(err)
	}
	return &gcBenchEnv{b: b, srv: srv, app: app, db: db, repo: repo.ID, host: strings.TrimPrefix(srv.URL, "http://")}
}

// seed inserts blob rows [from, to) of the AES256 domain, created two
// hours ago (past GC's grace), each with a 64-byte object: every
// gcBenchGarbage-th one unreferenced, the others linked to the seed
// repository and referenced by one of its manifests. With garbageOnly only the garbage ones are inserted (the
// next round's 10%). Rows go in with SQL in one transaction: through the
// Store each would be a transaction and an fsync of its own.
func (e *gcBenchEnv) seed(from, to int, garbageOnly bool) int {
	e.b.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		e.b.Fatal(err)
	}
	defer tx.Rollback()
	created := time.Now().Add(-2 * time.Hour).UnixMicro()
	dir := filepath.Join(e.app.cfg.DataDir, "blobs", "layers", "aes256")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.b.Fatal(err)
	}
	obj := make([]byte, 64)
	garbage := 0
	for i := from; i < to; i++ {
		g := i%gcBenchGarbage == 0
		if garbageOnly && !g {
			continue
		}
		key := fmt.Sprintf("layers/aes256/seed%08d", i)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(key)), obj, 0o600); err != nil {
			e.b.Fatal(err)
		}
		d := fmt.Sprintf("sha256:%064x", i)
		if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (domain, digest, size, object_key, created_at) VALUES ('aes256', ?, 64, ?, ?)`,
			d, key, created); err != nil {
			e.b.Fatal(err)
		}
		if g {
			garbage++
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES (?, ?, ?)`, e.repo, d, created); err != nil {
			e.b.Fatal(err)
		}
		// Live blobs are layers of images, 100 to a manifest (a link no
		// manifest references is garbage too).
		m := fmt.Sprintf("sha256:%064x", fmt.Sprintf("manifest%d", i/100))
		if _, err := tx.ExecContext(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size, object_key, pushed_at)
			VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', 1, ?, ?) ON CONFLICT DO NOTHING`,
			e.repo, m, "manifests/"+e.repo+"/"+m+"/seed", created); err != nil {
			e.b.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO manifest_refs (repo_id, manifest_digest, ref_digest, kind) VALUES (?, ?, ?, 1)`,
			e.repo, m, d); err != nil {
			e.b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		e.b.Fatal(err)
	}
	return garbage
}

// pushUntil pushes small images (two 2 KiB layers, a config and a
// manifest: four blob uploads and a manifest PUT each) from
// gcBenchPushers clients until done is closed, and returns images/s.
func (e *gcBenchEnv) pushUntil(done <-chan struct{}) float64 {
	e.b.Helper()
	var (
		wg     sync.WaitGroup
		pushed atomic.Int64
	)
	start := time.Now()
	for range gcBenchPushers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				img, err := random.Image(2048, 2)
				if err != nil {
					e.b.Error(err)
					return
				}
				r, err := name.ParseReference(fmt.Sprintf("%s/bench/push:i%d", e.host, e.n.Add(1)), name.Insecure)
				if err != nil {
					e.b.Error(err)
					return
				}
				if err := remote.Write(r, img); err != nil {
					e.b.Errorf("push: %v", err)
					return
				}
				pushed.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(pushed.Load()) / time.Since(start).Seconds()
}

// BenchmarkPushDuringGC measures, in one process and interleaved so that
// machine noise hits both alike, the push throughput of small images
// without GC (for gcBenchBaseline) and while a full collection (blobs,
// stale uploads, and the storage walk) runs over a store of 100,000 blobs
// of which 10% are garbage, for gcBenchRounds rounds; each round seeds
// the next 10,000 garbage blobs. Run it alone:
//
//	go test ./internal/server -run '^$' -bench PushDuringGC -benchtime 1x -timeout 30m
func BenchmarkPushDuringGC(b *testing.B) {
	e := newGCBenchEnv(b)
	ctx := context.Background()
	if g := e.seed(0, gcBenchBlobs, false); g != gcBenchBlobs/gcBenchGarbage {
		b.Fatalf("seeded %d garbage blobs", g)
	}
	// Warm up: the first pushes create the repository and fill caches.
	warm := make(chan struct{})
	time.AfterFunc(2*time.Second, func() { close(warm) })
	e.pushUntil(warm)

	var base, during, ratio, gcSecs []float64
	b.ResetTimer()
	for round := range gcBenchRounds {
		if round > 0 {
			b.StopTimer()
			// The next 10% of garbage, under new digests.
			lo := gcBenchBlobs * (round + 1)
			e.seed(lo, lo+gcBenchBlobs, true)
			b.StartTimer()
		}
		stop := make(chan struct{})
		time.AfterFunc(gcBenchBaseline, func() { close(stop) })
		r0 := e.pushUntil(stop)

		gcDone := make(chan struct{})
		var (
			rep   int
			gcDur time.Duration
			gcErr error
		)
		go func() {
			defer close(gcDone)
			t0 := time.Now()
			r, err := e.app.gc.Run(ctx, false)
			gcDur, rep, gcErr = time.Since(t0), r.Blobs, err
		}()
		r1 := e.pushUntil(gcDone)
		if gcErr != nil {
			b.Fatal(gcErr)
		}
		if rep != gcBenchBlobs/gcBenchGarbage {
			b.Fatalf("round %d: GC reclaimed %d blobs, want %d", round, rep, gcBenchBlobs/gcBenchGarbage)
		}
		base, during, gcSecs = append(base, r0), append(during, r1), append(gcSecs, gcDur.Seconds())
		ratio = append(ratio, r1/r0)
		b.Logf("round %d: %.1f images/s without GC, %.1f during GC (%.2f×); GC %.1f s", round, r0, r1, r1/r0, gcDur.Seconds())
	}
	b.StopTimer()
	med := func(xs []float64) (m, lo, hi float64) {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2], s[0], s[len(s)-1]
	}
	for _, f := range []struct {
		unit string
		xs   []float64
	}{{"images/s", base}, {"images/s-during-gc", during}, {"ratio", ratio}, {"gc-s", gcSecs}} {
		m, lo, hi := med(f.xs)
		b.ReportMetric(m, f.unit)
		b.Logf("%s: median %.2f (min %.2f, max %.2f) over %d rounds", f.unit, m, lo, hi, len(f.xs))
	}
}
