package gc

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

// manifest stores a manifest row of the env's repository referencing blobs.
func (e *env) manifest(tb testing.TB, name string, blobs ...metadata.Blob) metadata.Manifest {
	tb.Helper()
	return e.manifestIn(tb, e.repo, name, blobs...)
}

func (e *env) manifestIn(tb testing.TB, repo metadata.Repository, name string, blobs ...metadata.Blob) metadata.Manifest {
	tb.Helper()
	d := fmt.Sprintf("sha256:%064x", "manifest "+name)
	m := metadata.Manifest{RepoID: repo.ID, Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: 100, ObjectKey: "manifests/" + repo.ID + "/" + d + "/" + uuid.NewString(), PushedAt: time.Now()}
	var refs []metadata.Ref
	for _, b := range blobs {
		refs = append(refs, metadata.Ref{Digest: b.Digest, Kind: metadata.RefBlob})
	}
	if _, err := e.store.PutManifest(context.Background(), metadata.PutManifest{Manifest: m, Refs: refs, Tag: name}); err != nil {
		tb.Fatal(err)
	}
	return m
}

func itemNames(rep Report, kind string) []string {
	var out []string
	for _, it := range rep.Items {
		if it.Kind == kind {
			out = append(out, it.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestCollectDeletedImageLayers: deleting an image leaves its layers
// linked to the repository; GC unlinks those no other image of the
// repository references once they have been unreferenced for longer than
// the grace period, and then reclaims the blobs no repository links.
func TestCollectDeletedImageLayers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	other := metadata.Repository{ID: uuid.NewString(), Name: "other", Domain: "aes256", EncryptionType: metadata.EncryptionAES256,
		TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := e.store.CreateRepository(ctx, other); err != nil {
		t.Fatal(err)
	}
	shared := e.blob(t, "shared", 1000, 2*time.Hour) // in both images: stays
	only := e.blob(t, "only", 2000, 2*time.Hour)     // in the deleted image only: reclaimed
	crossed := e.blob(t, "crossed", 3000, 2*time.Hour)
	if _, err := e.store.LinkBlob(ctx, other.ID, "aes256", crossed.Digest); err != nil { // other uses it: blob stays
		t.Fatal(err)
	}
	e.manifestIn(t, other, "other", crossed)
	gone := e.manifest(t, "gone", shared, only, crossed)
	e.manifest(t, "kept", shared)
	usage0, err := e.store.RepositoryUsage(ctx, e.repo.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.DeleteImage(ctx, e.repo.ID, gone.Digest, ""); err != nil {
		t.Fatal(err)
	}
	fresh := e.blob(t, "fresh", 400, 0) // uploaded, its manifest not PUT yet

	// Right after the deletion, nothing is old enough: the grace period
	// counts from the moment the layers lost their last manifest, however
	// old the links are.
	now, err := New(Config{Store: e.store, Driver: e.drv, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := now.Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Links != 0 || rep.Blobs != 0 {
		t.Fatalf("inside the grace period: %+v", rep)
	}

	// Past it: the deleted image's own layers are unlinked (and the fresh
	// upload that never got a manifest), and the blobs no repository links
	// any more are reclaimed in the same run.
	later, err := New(Config{Store: e.store, Driver: e.drv, Grace: time.Hour,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	dry, err := later.Run(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	wantLinks := []string{"r@" + crossed.Digest, "r@" + fresh.Digest, "r@" + only.Digest}
	slices.Sort(wantLinks)
	wantBlobs := []string{"aes256/" + fresh.Digest, "aes256/" + only.Digest}
	slices.Sort(wantBlobs)
	if got := itemNames(dry, KindLink); !slices.Equal(got, wantLinks) || dry.LinkBytes != 2000+3000+400 {
		t.Fatalf("dry run links %v (%d bytes), want %v", got, dry.LinkBytes, wantLinks)
	}
	if got := itemNames(dry, KindBlob); !slices.Equal(got, wantBlobs) || dry.Bytes == 0 {
		t.Fatalf("dry run blobs %v (%d bytes), want %v", got, dry.Bytes, wantBlobs)
	}
	if _, err := e.store.BlobLinked(ctx, e.repo.ID, only.Digest); err != nil {
		t.Fatalf("dry run unlinked: %v", err)
	}
	rep, err = later.Run(ctx, false)
	if err != nil || len(rep.Errors) > 0 {
		t.Fatalf("run: %v %v", err, rep.Errors)
	}
	if !slices.Equal(itemNames(rep, KindLink), wantLinks) || !slices.Equal(itemNames(rep, KindBlob), wantBlobs) ||
		rep.Bytes != dry.Bytes || rep.LinkBytes != dry.LinkBytes {
		t.Fatalf("run %+v differs from dry run %+v", rep, dry)
	}
	for _, b := range []metadata.Blob{only, fresh} {
		if _, err := e.drv.Stat(ctx, b.ObjectKey); err == nil {
			t.Errorf("%s not reclaimed", b.Digest)
		}
		if _, err := e.store.GetBlob(ctx, "aes256", b.Digest); err == nil {
			t.Errorf("blob row %s left", b.Digest)
		}
	}
	for _, b := range []metadata.Blob{shared, crossed} {
		if _, err := e.drv.Stat(ctx, b.ObjectKey); err != nil {
			t.Errorf("%s reclaimed: %v", b.Digest, err)
		}
	}
	if _, err := e.store.BlobLinked(ctx, e.repo.ID, shared.Digest); err != nil {
		t.Errorf("layer of the kept image unlinked: %v", err)
	}
	if _, err := e.store.BlobLinked(ctx, other.ID, crossed.Digest); err != nil {
		t.Errorf("another repository's link removed: %v", err)
	}
	usage, err := e.store.RepositoryUsage(ctx, e.repo.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := usage0.Bytes - gone.Size - only.Size - crossed.Size; usage.Bytes != want {
		t.Errorf("repository usage after delete + GC = %d bytes, want %d", usage.Bytes, want)
	}
	again, err := later.Run(ctx, false)
	if err != nil || len(again.Items) != 0 {
		t.Fatalf("second run: %+v, %v", again, err)
	}
}
