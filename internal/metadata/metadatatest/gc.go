package metadatatest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

func gcTests() []testCase {
	return []testCase{
		{"GC/UnreferencedBlobs", testUnreferencedBlobs},
		{"GC/DeleteBlobIfUnreferenced", testDeleteBlobIfUnreferenced},
		{"GC/DeleteBlobRacesLink", testDeleteBlobRacesLink},
		{"GC/UnreferencedLinks", testUnreferencedLinks},
		{"GC/UnlinkRacesPutManifest", testUnlinkRacesPutManifest},
		{"GC/StaleUploads", testStaleUploads},
		{"GC/ObjectKeys", testObjectKeys},
	}
}

func digests(bs []metadata.Blob) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Digest)
	}
	return out
}

func testUnreferencedBlobs(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aesRepo(t, s, "a")
	b := aesRepo(t, s, "b")
	k := kmsRepo(t, s, "k")
	linked := addBlob(t, s, a, "linked")     // linked to a
	unlinked := addBlob(t, s, a, "unlinked") // link removed below
	shared := addBlob(t, s, a, "shared")     // linked to a and b
	image(t, s, b, "img", "v1")              // b's manifest; its layer is linked
	kmsOnly := addBlob(t, s, k, "kms")       // its own domain
	_, _, err := s.CommitBlob(ctx, b.ID, newBlob(b, "shared"))
	must(t, "link shared to b", err)
	must(t, "unlink", s.UnlinkBlob(ctx, a.ID, unlinked.Digest))
	must(t, "unlink shared from a", s.UnlinkBlob(ctx, a.ID, shared.Digest))
	must(t, "unlink kms", s.UnlinkBlob(ctx, k.ID, kmsOnly.Digest))
	_ = linked

	after := t0.Add(time.Second)
	got, err := s.UnreferencedBlobs(ctx, after, "", "", 0)
	must(t, "unreferenced", err)
	want := []string{unlinked.Digest}
	if k.Domain < "aes256" {
		want = append([]string{kmsOnly.Digest}, want...)
	} else {
		want = append(want, kmsOnly.Digest)
	}
	if !slices.Equal(digests(got), want) {
		t.Fatalf("unreferenced = %v, want %v", digests(got), want)
	}
	// Grace: nothing created at or after `before`.
	got, err = s.UnreferencedBlobs(ctx, t0, "", "", 0)
	must(t, "unreferenced before t0", err)
	if len(got) != 0 {
		t.Fatalf("unreferenced before t0 = %v", digests(got))
	}
	// Paging with the cursor.
	first, err := s.UnreferencedBlobs(ctx, after, "", "", 1)
	must(t, "page 1", err)
	second, err := s.UnreferencedBlobs(ctx, after, first[0].Domain, first[0].Digest, 1)
	must(t, "page 2", err)
	if len(first) != 1 || len(second) != 1 || first[0].Digest != want[0] || second[0].Digest != want[1] {
		t.Fatalf("pages %v, %v; want %v", digests(first), digests(second), want)
	}
	// A blob a manifest references is not collected even once its link is
	// removed (OCI blob DELETE).
	must(t, "unlink referenced layer", s.UnlinkBlob(ctx, b.ID, digestOf("layer of img")))
	got, err = s.UnreferencedBlobs(ctx, after, "", "", 0)
	must(t, "unreferenced again", err)
	if !slices.Equal(digests(got), want) {
		t.Fatalf("unreferenced after unlinking a referenced layer = %v, want %v", digests(got), want)
	}
	_, deleted, err := s.DeleteBlobIfUnreferenced(ctx, "aes256", digestOf("layer of img"), after)
	must(t, "delete referenced", err)
	if deleted {
		t.Fatal("a blob a manifest references was deleted")
	}
}

func testDeleteBlobIfUnreferenced(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aesRepo(t, s, "a")
	b := addBlob(t, s, a, "x")
	after := t0.Add(time.Second)
	_, deleted, err := s.DeleteBlobIfUnreferenced(ctx, b.Domain, b.Digest, after)
	must(t, "delete linked", err)
	if deleted {
		t.Fatal("a linked blob was deleted")
	}
	must(t, "unlink", s.UnlinkBlob(ctx, a.ID, b.Digest))
	_, deleted, err = s.DeleteBlobIfUnreferenced(ctx, b.Domain, b.Digest, t0)
	must(t, "delete young", err)
	if deleted {
		t.Fatal("a blob inside the grace period was deleted")
	}
	got, deleted, err := s.DeleteBlobIfUnreferenced(ctx, b.Domain, b.Digest, after)
	must(t, "delete", err)
	if !deleted || got.ObjectKey != b.ObjectKey {
		t.Fatalf("delete = %+v, %v", got, deleted)
	}
	_, err = s.GetBlob(ctx, b.Domain, b.Digest)
	wantErr(t, "get deleted blob", err, metadata.ErrNotFound)
	_, deleted, err = s.DeleteBlobIfUnreferenced(ctx, b.Domain, b.Digest, after)
	must(t, "delete absent", err)
	if deleted {
		t.Fatal("absent blob deleted")
	}
	// The digest can be committed again, with a new object.
	nb := newBlob(a, "x")
	stored, inserted, err := s.CommitBlob(ctx, a.ID, nb)
	must(t, "recommit", err)
	if !inserted || stored.ObjectKey != nb.ObjectKey {
		t.Fatalf("recommit = %+v, inserted %v", stored, inserted)
	}
}

// testDeleteBlobRacesLink: a link (mount) and a GC delete of the same
// blob race; either the link wins (the blob stays and is linked) or the
// delete wins (the link fails with ErrNotFound). Never a link to a
// deleted blob.
func testDeleteBlobRacesLink(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aesRepo(t, s, "a")
	b := aesRepo(t, s, "b")
	after := t0.Add(time.Second)
	for i := range 20 {
		blob := addBlob(t, s, a, "race"+uuid.NewString())
		must(t, "unlink", s.UnlinkBlob(ctx, a.ID, blob.Digest))
		var (
			wg      sync.WaitGroup
			linkErr error
			deleted bool
			delErr  error
		)
		wg.Add(2)
		go func() { defer wg.Done(); _, linkErr = s.LinkBlob(ctx, b.ID, blob.Domain, blob.Digest) }()
		go func() {
			defer wg.Done()
			_, deleted, delErr = s.DeleteBlobIfUnreferenced(ctx, blob.Domain, blob.Digest, after)
		}()
		wg.Wait()
		must(t, "delete", delErr)
		_, linkedErr := s.BlobLinked(ctx, b.ID, blob.Digest)
		switch {
		case deleted && linkErr == nil:
			t.Fatalf("round %d: blob deleted although the link succeeded", i)
		case deleted:
			wantErr(t, "link to deleted blob", linkErr, metadata.ErrNotFound)
			wantErr(t, "linked after delete", linkedErr, metadata.ErrNotFound)
		default:
			must(t, "link", linkErr)
			must(t, "linked", linkedErr)
		}
	}
}

func testStaleUploads(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	mk := func(updated time.Time) metadata.Upload {
		u := metadata.Upload{ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, StartedAt: updated, UpdatedAt: updated,
			Parts: []metadata.Part{{ObjectKey: "layers/aes256/" + uuid.NewString(), Size: 1}}}
		must(t, "create upload", s.CreateUpload(ctx, u))
		return u
	}
	old1, old2 := mk(t0.Add(-2*time.Hour)), mk(t0.Add(-3*time.Hour))
	fresh := mk(t0)
	got, err := s.StaleUploads(ctx, t0.Add(-time.Hour), "", 0)
	must(t, "stale", err)
	want := []string{old1.ID, old2.ID}
	slices.Sort(want)
	var ids []string
	for _, u := range got {
		ids = append(ids, u.ID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("stale = %v, want %v", ids, want)
	}
	page, err := s.StaleUploads(ctx, t0.Add(-time.Hour), want[0], 0)
	must(t, "stale after cursor", err)
	if len(page) != 1 || page[0].ID != want[1] {
		t.Fatalf("stale after %s = %v", want[0], page)
	}
	// Refreshed meanwhile: not deleted.
	old1.UpdatedAt = t0
	old1.Size = 1
	must(t, "refresh", s.UpdateUpload(ctx, old1, 0))
	_, deleted, err := s.DeleteStaleUpload(ctx, old1.ID, t0.Add(-time.Hour))
	must(t, "delete refreshed", err)
	if deleted {
		t.Fatal("a refreshed upload was deleted")
	}
	u, deleted, err := s.DeleteStaleUpload(ctx, old2.ID, t0.Add(-time.Hour))
	must(t, "delete stale", err)
	if !deleted || len(u.Parts) != 1 || u.Parts[0] != old2.Parts[0] {
		t.Fatalf("delete stale = %+v, %v", u, deleted)
	}
	_, err = s.GetUpload(ctx, old2.ID)
	wantErr(t, "deleted upload", err, metadata.ErrNotFound)
	_, deleted, err = s.DeleteStaleUpload(ctx, fresh.ID, t0.Add(-time.Hour))
	must(t, "delete fresh", err)
	if deleted {
		t.Fatal("a fresh upload was deleted")
	}
	_, deleted, err = s.DeleteStaleUpload(ctx, uuid.NewString(), t0)
	must(t, "delete absent", err)
	if deleted {
		t.Fatal("absent upload deleted")
	}
}

func testObjectKeys(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	b := addBlob(t, s, r, "blob")
	m := image(t, s, r, "img", "v1")
	u := metadata.Upload{ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, StartedAt: t0, UpdatedAt: t0,
		Parts: []metadata.Part{{ObjectKey: "layers/aes256/p1", Size: 1}, {ObjectKey: "layers/aes256/p2", Size: 1}}}
	must(t, "create upload", s.CreateUpload(ctx, u))
	empty := metadata.Upload{ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, StartedAt: t0, UpdatedAt: t0}
	must(t, "create empty upload", s.CreateUpload(ctx, empty))
	seen := map[string]bool{}
	must(t, "object keys", s.ObjectKeys(ctx, func(k string) error { seen[k] = true; return nil }))
	for _, k := range []string{b.ObjectKey, m.ObjectKey, "layers/aes256/p1", "layers/aes256/p2"} {
		if !seen[k] {
			t.Errorf("ObjectKeys misses %s (saw %v)", k, seen)
		}
	}
	// image() adds one layer blob: blob, layer, manifest, two parts.
	if len(seen) != 5 {
		t.Errorf("ObjectKeys returned %d keys, want 5: %v", len(seen), seen)
	}
}
