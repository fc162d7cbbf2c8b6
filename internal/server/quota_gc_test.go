package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cofferhq/coffer/internal/gc"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

// TestQuotaFreedByGC: deleting an image frees its manifest's bytes at once
// and, once GC has unlinked the layers no manifest of the repository
// references any more (after the grace period), its layers' bytes too, so
// a push refused over the byte limit fits afterwards. (Layers another
// image still uses stay: internal/gc and the metadata contract suite.)
func TestQuotaFreedByGC(t *testing.T) {
	t.Parallel()
	srv, app := quotaServer(t)
	ctx := context.Background()
	const repo = "q/bytes-gc"
	layer := func(n int) v1.Layer { return static.NewLayer(randomBytes(t, n), types.OCILayer) }
	base := layer(50 << 10)
	old, err := mutate.AppendLayers(empty.Image, base, layer(200<<10))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, repo+":old"), old, noRetry); err != nil {
		t.Fatal(err)
	}
	next, _ := mutate.AppendLayers(empty.Image, base, layer(150<<10))
	want429(t, "push over the byte limit", remote.Write(ref(t, srv, repo+":next"), next, noRetry), repo, "300KiB")

	id := mustRepo(t, app, repo).ID
	before, err := app.store.RepositoryUsage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := old.Digest()
	if err := remote.Delete(ref(t, srv, repo+"@"+d.String())); err != nil {
		t.Fatal(err)
	}
	deleted, err := app.store.RepositoryUsage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if deleted.Bytes >= before.Bytes || deleted.Bytes < 250<<10 {
		t.Fatalf("usage after the delete = %d bytes (before %d): the layers should still count", deleted.Bytes, before.Bytes)
	}

	drv, err := fs.New(fs.Config{Root: filepath.Join(app.cfg.DataDir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	// Inside the grace period GC leaves the links alone.
	col, err := gc.New(gc.Config{Store: app.store, Driver: drv, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := col.Run(ctx, false); err != nil || rep.Links != 0 {
		t.Fatalf("gc inside the grace period: %+v, %v", rep, err)
	}
	// Past it, the deleted image's layers and config are unlinked and
	// reclaimed, and the bytes are free.
	col, err = gc.New(gc.Config{Store: app.store, Driver: drv, Grace: time.Hour,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := col.Run(ctx, false)
	if err != nil || len(rep.Errors) > 0 {
		t.Fatalf("gc: %v %v", err, rep.Errors)
	}
	t.Logf("gc: %d links (%d bytes of usage), %d blobs (%d stored bytes)", rep.Links, rep.LinkBytes, rep.Blobs, rep.Bytes)
	if rep.Links < 3 || rep.Blobs < 3 {
		t.Fatalf("gc unlinked %d and reclaimed %d blobs, want the image's 2 layers and config", rep.Links, rep.Blobs)
	}
	freed, err := app.store.RepositoryUsage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if freed.Bytes != 0 {
		t.Fatalf("usage after delete + GC = %d bytes, want 0", freed.Bytes)
	}
	if err := remote.Write(ref(t, srv, repo+":next"), next, noRetry); err != nil {
		t.Fatalf("push after GC freed the bytes: %v", err)
	}
	// The new image's layers (the base one among them, pushed again) are
	// referenced: another collection keeps them.
	if rep, err := col.Run(ctx, false); err != nil || rep.Links != 0 {
		t.Fatalf("gc after the new push: %+v, %v", rep, err)
	}
	if _, err := remote.Image(ref(t, srv, repo+":next")); err != nil {
		t.Fatal(err)
	}
}
