package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/gc"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

// TestGCRacesPushes: workers push images that share layers into
// repositories they keep deleting and recreating (which leaves the shared
// layers unreferenced in the AES256 domain, so GC deletes them while other
// workers push the same digests), while GC runs in a loop with a short
// grace period. At the end every acknowledged image still stored pulls
// with its digests verified, and after a final GC no unreferenced object
// or blob row is left and no row names a missing object.
func TestGCRacesPushes(t *testing.T) {
	if testing.Short() {
		t.Skip("race test")
	}
	srv, app := newTestServer(t, nil)
	ctx := context.Background()
	drv, err := fs.New(fs.Config{Root: filepath.Join(app.cfg.DataDir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	const (
		workers  = 4
		rounds   = 12
		grace    = 1500 * time.Millisecond
		duration = 4 * time.Second
	)
	shared := make([]v1.Layer, 3)
	for i := range shared {
		if shared[i], err = random.Layer(64<<10, "application/vnd.oci.image.layer.v1.tar"); err != nil {
			t.Fatal(err)
		}
	}
	col, err := gc.New(gc.Config{Store: app.store, Driver: drv, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var gcRuns, gcBlobs, pushes atomic.Int64
	var gcWG sync.WaitGroup
	gcWG.Add(1)
	go func() {
		defer gcWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := col.Run(ctx, false)
			if err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			gcRuns.Add(1)
			gcBlobs.Add(int64(rep.Blobs))
			time.Sleep(5 * time.Millisecond)
		}
	}()

	type acked struct{ repo, digest string }
	var (
		mu   sync.Mutex
		live = map[acked]bool{}
	)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds || time.Now().Before(deadline); i++ {
				repo := fmt.Sprintf("gc/w%d-%d", w, i%2)
				own, err := random.Layer(8<<10, "application/vnd.oci.image.layer.v1.tar")
				if err != nil {
					t.Error(err)
					return
				}
				img, err := mutate.AppendLayers(empty.Image, shared[i%3], shared[(i+1)%3], own)
				if err != nil {
					t.Error(err)
					return
				}
				r := ref(t, srv, fmt.Sprintf("%s:t%d", repo, i))
				if err := remote.Write(r, img); err != nil {
					t.Errorf("push %s: %v", r, err)
					return
				}
				pushes.Add(1)
				// Pulled back at once, while GC runs, and again at the end
				// if its repository is still there.
				if err := pullVerified(ref(t, srv, fmt.Sprintf("%s:t%d", repo, i))); err != nil {
					t.Errorf("pull right after push: %v", err)
					return
				}
				d, _ := img.Digest()
				mu.Lock()
				live[acked{repo, d.String()}] = true
				mu.Unlock()
				if i%3 == 2 { // drop the repository: its links go, shared blobs may become garbage
					mu.Lock()
					for k := range live {
						if k.repo == repo {
							delete(live, k)
						}
					}
					mu.Unlock()
					if _, err := app.reg.DeleteRepository(ctx, registry.RepoName(repo), nil); err != nil {
						t.Errorf("delete %s: %v", repo, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	gcWG.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d GC runs reclaimed %d blobs during %d acknowledged pushes; %d images still stored (the rest went with their repositories)",
		gcRuns.Load(), gcBlobs.Load(), pushes.Load(), len(live))
	if gcBlobs.Load() == 0 {
		t.Error("GC never reclaimed a blob while pushes went on: the test did not race anything")
	}

	// Every acknowledged image still stored pulls, digests verified.
	for k := range live {
		if err := pullVerified(ref(t, srv, k.repo+"@"+k.digest)); err != nil {
			t.Fatal(err)
		}
	}

	// An abandoned upload, reclaimed once it is older than the upload TTL.
	repo, err := app.reg.RepositoryForPush(ctx, "gc/abandoned", func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	up, err := app.reg.StartUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.reg.AppendUpload(ctx, repo, up.ID, bytes.NewReader(make([]byte, 1000)), 0, 1000); err != nil {
		t.Fatal(err)
	}

	// Final collection with nothing writing: no grace needed.
	final, err := gc.New(gc.Config{Store: app.store, Driver: drv, Grace: -1, UploadTTL: time.Hour,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := final.Run(ctx, false)
	if err != nil || len(rep.Errors) > 0 {
		t.Fatalf("final gc: %v %v", err, rep.Errors)
	}
	t.Logf("final GC: %d blobs, %d uploads, %d orphans, %d bytes", rep.Blobs, rep.Uploads, rep.Orphans, rep.Bytes)
	if rep.Uploads != 1 {
		t.Errorf("final GC reclaimed %d uploads, want the abandoned one", rep.Uploads)
	}
	checkNoGarbage(t, app, drv)

	// And they still pull after it.
	for k := range live {
		if err := pullVerified(ref(t, srv, k.repo+"@"+k.digest)); err != nil {
			t.Fatalf("after the final GC: %v", err)
		}
	}
}

// checkNoGarbage walks the storage: every object is named by a row, every
// row names an existing object, and no blob row is unreferenced.
func checkNoGarbage(t *testing.T, app *App, drv storage.Driver) {
	t.Helper()
	ctx := context.Background()
	refs := map[string]bool{}
	if err := app.store.ObjectKeys(ctx, func(k string) error { refs[k] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, p := range []string{"layers/", "manifests/"} {
		err := drv.Walk(ctx, p, func(info storage.Info) error {
			stored[info.Key] = true
			if !refs[info.Key] {
				t.Errorf("unreferenced object left: %s", info.Key)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for k := range refs {
		if !stored[k] {
			t.Errorf("a row names a missing object: %s", k)
		}
	}
	bs, err := app.store.UnreferencedBlobs(ctx, time.Now().Add(time.Hour), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		t.Errorf("unreferenced blob row left: %s/%s", b.Domain, b.Digest)
	}
	t.Logf("storage holds %d objects, all referenced", len(stored))
}

// pullVerified pulls an image and reads every layer (ggcr verifies each
// digest, and the manifest's).
func pullVerified(r name.Reference) error {
	img, err := remote.Image(r)
	if err != nil {
		return fmt.Errorf("pull %s: %w", r, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("pull %s: %w", r, err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer of %s: %w", r, err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer of %s: %w", r, err)
		}
	}
	return nil
}
