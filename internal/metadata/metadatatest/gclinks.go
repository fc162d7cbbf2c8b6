package metadatatest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Tests of the GC of blob links no manifest references (UnreferencedLinks,
// UnlinkBlobIfUnreferenced). Link times are the store's clock (now), not
// t0: the tests take real timestamps between the steps.

func linkDigests(ls []metadata.Link) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Digest)
	}
	return out
}

// putImage pushes a manifest for content referencing the given blobs.
func putImage(t *testing.T, s metadata.Store, r metadata.Repository, content string, blobs ...metadata.Blob) metadata.Manifest {
	t.Helper()
	m := newManifest(r, content)
	var refs []metadata.Ref
	for _, b := range blobs {
		refs = append(refs, metadata.Ref{Digest: b.Digest, Kind: metadata.RefBlob})
	}
	_, err := s.PutManifest(t.Context(), metadata.PutManifest{Manifest: m, Refs: refs})
	must(t, "put manifest "+content, err)
	return m
}

// tick returns the time now, strictly after everything the store stamped
// before the call and strictly before everything it stamps after.
func tick() time.Time {
	time.Sleep(2 * time.Millisecond)
	now := time.Now()
	time.Sleep(2 * time.Millisecond)
	return now
}

func sortedDigests(ds ...string) []string {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds
}

func testUnreferencedLinks(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aesRepo(t, s, "a")
	other := aesRepo(t, s, "other")
	shared := addBlob(t, s, a, "shared layer")
	only1 := addBlob(t, s, a, "layer of one")
	only2 := addBlob(t, s, a, "layer of two")
	fresh := addBlob(t, s, a, "fresh upload") // linked, never referenced
	m1 := putImage(t, s, a, "image one", shared, only1)
	m2 := putImage(t, s, a, "image two", shared, only2)
	image(t, s, other, "other image", "v1") // another repository's links stay out of a's
	usageBefore, err := s.RepositoryUsage(ctx, a.ID)
	must(t, "usage", err)

	beforeDelete := tick()
	future := time.Now().Add(time.Hour)
	// Nothing is unreferenced but the fresh upload, and that only once it
	// is older than the grace period.
	got, err := s.UnreferencedLinks(ctx, beforeDelete, "", "", 0)
	must(t, "unreferenced links", err)
	if !slices.Equal(linkDigests(got), []string{fresh.Digest}) {
		t.Fatalf("unreferenced links = %v, want the fresh upload %s", linkDigests(got), fresh.Digest)
	}
	l := got[0]
	if l.RepoID != a.ID || l.Repository != a.Name || l.Domain != a.Domain || l.Size != fresh.Size || !l.LinkedAt.Before(beforeDelete) {
		t.Fatalf("link = %+v", l)
	}
	got, err = s.UnreferencedLinks(ctx, l.LinkedAt, "", "", 0)
	must(t, "unreferenced links before the upload", err)
	if len(got) != 0 {
		t.Fatalf("links younger than the grace period listed: %v", linkDigests(got))
	}
	_, deleted, err := s.UnlinkBlobIfUnreferenced(ctx, a.ID, fresh.Digest, l.LinkedAt)
	must(t, "unlink young upload", err)
	if deleted {
		t.Fatal("a fresh upload's link was removed inside the grace period")
	}

	// Deleting image one leaves its own layer unreferenced, as of the
	// deletion: the grace period counts from then, not from the link.
	_, err = s.DeleteImage(ctx, a.ID, m1.Digest, "")
	must(t, "delete image one", err)
	got, err = s.UnreferencedLinks(ctx, beforeDelete, "", "", 0)
	must(t, "unreferenced links after delete", err)
	if !slices.Equal(linkDigests(got), []string{fresh.Digest}) {
		t.Fatalf("unreferenced links (old) after delete = %v, want only %s", linkDigests(got), fresh.Digest)
	}
	_, deleted, err = s.UnlinkBlobIfUnreferenced(ctx, a.ID, only1.Digest, beforeDelete)
	must(t, "unlink just unreferenced", err)
	if deleted {
		t.Fatal("a link unreferenced a moment ago was removed inside the grace period")
	}
	got, err = s.UnreferencedLinks(ctx, future, "", "", 0)
	must(t, "unreferenced links (all)", err)
	if want := sortedDigests(fresh.Digest, only1.Digest); !slices.Equal(linkDigests(got), want) {
		t.Fatalf("unreferenced links = %v, want %v", linkDigests(got), want)
	}
	// Paging with the cursor.
	first, err := s.UnreferencedLinks(ctx, future, "", "", 1)
	must(t, "page 1", err)
	second, err := s.UnreferencedLinks(ctx, future, first[0].RepoID, first[0].Digest, 1)
	must(t, "page 2", err)
	if len(first) != 1 || len(second) != 1 || first[0].Digest != got[0].Digest || second[0].Digest != got[1].Digest {
		t.Fatalf("pages %v, %v; want %v", linkDigests(first), linkDigests(second), linkDigests(got))
	}

	// The layer image two still uses stays linked.
	_, deleted, err = s.UnlinkBlobIfUnreferenced(ctx, a.ID, shared.Digest, future)
	must(t, "unlink shared", err)
	if deleted {
		t.Fatal("a layer another image of the repository references was unlinked")
	}
	// Past the grace period the unshared layer goes, the blob stays for
	// the blob sweep, which now finds it.
	got1, deleted, err := s.UnlinkBlobIfUnreferenced(ctx, a.ID, only1.Digest, future)
	must(t, "unlink unreferenced", err)
	if !deleted || got1.Digest != only1.Digest || got1.Size != only1.Size || got1.Repository != a.Name {
		t.Fatalf("unlink = %+v, %v", got1, deleted)
	}
	_, err = s.BlobLinked(ctx, a.ID, only1.Digest)
	wantErr(t, "linked after unlink", err, metadata.ErrNotFound)
	_, deleted, err = s.UnlinkBlobIfUnreferenced(ctx, a.ID, only1.Digest, future)
	must(t, "unlink absent", err)
	if deleted {
		t.Fatal("absent link deleted")
	}
	blobs, err := s.UnreferencedBlobs(ctx, future, "", "", 0)
	must(t, "unreferenced blobs", err)
	if !slices.Equal(digests(blobs), []string{only1.Digest}) {
		t.Fatalf("unreferenced blobs = %v, want %s", digests(blobs), only1.Digest)
	}
	usage, err := s.RepositoryUsage(ctx, a.ID)
	must(t, "usage after unlink", err)
	if want := usageBefore.Bytes - only1.Size - m1.Size; usage.Bytes != want {
		t.Fatalf("usage after deleting image one and unlinking its layer = %d bytes, want %d", usage.Bytes, want)
	}

	// Committing a linked digest again (a push uploading or mounting it
	// once more) restarts its grace period.
	beforeRecommit := tick()
	_, _, err = s.CommitBlob(ctx, a.ID, newBlob(a, "fresh upload"))
	must(t, "recommit", err)
	_, deleted, err = s.UnlinkBlobIfUnreferenced(ctx, a.ID, fresh.Digest, beforeRecommit)
	must(t, "unlink recommitted", err)
	if deleted {
		t.Fatal("a link committed again a moment ago was removed inside the grace period")
	}
	_, err = s.LinkBlob(ctx, a.ID, a.Domain, fresh.Digest)
	must(t, "relink", err)
	got, err = s.UnreferencedLinks(ctx, tick(), "", "", 0)
	must(t, "unreferenced after relink", err)
	if !slices.Equal(linkDigests(got), []string{fresh.Digest}) {
		t.Fatalf("unreferenced links = %v, want %s", linkDigests(got), fresh.Digest)
	}

	// Deleting image two the OCI way (DeleteManifest) leaves both of its
	// layers unreferenced, again as of the deletion.
	beforeDelete2 := tick()
	_, err = s.DeleteManifest(ctx, a.ID, m2.Digest)
	must(t, "delete manifest two", err)
	got, err = s.UnreferencedLinks(ctx, beforeDelete2, "", "", 0)
	must(t, "unreferenced links after manifest delete", err)
	if slices.Contains(linkDigests(got), shared.Digest) || slices.Contains(linkDigests(got), only2.Digest) {
		t.Fatalf("links unreferenced a moment ago listed as old: %v", linkDigests(got))
	}
	got, err = s.UnreferencedLinks(ctx, future, "", "", 0)
	must(t, "unreferenced links after manifest delete (all)", err)
	if want := sortedDigests(fresh.Digest, shared.Digest, only2.Digest); !slices.Equal(linkDigests(got), want) {
		t.Fatalf("unreferenced links = %v, want %v", linkDigests(got), want)
	}
	// The other repository's image is untouched.
	for _, l := range got {
		if l.RepoID == other.ID {
			t.Fatalf("a referenced link of another repository listed: %+v", l)
		}
	}
}

// testUnlinkRacesPutManifest: a manifest PUT referencing an unreferenced,
// old link and GC's unlink of it race; either the PUT wins (the link stays
// and the manifest is stored) or the unlink wins (the PUT fails with
// ErrBlobUnknown). Never a stored manifest whose layer is not linked.
func testUnlinkRacesPutManifest(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	future := time.Now().Add(time.Hour)
	wins := map[bool]int{}
	for i := range 20 {
		blob := addBlob(t, s, r, "race "+uuid.NewString())
		m := newManifest(r, "manifest "+uuid.NewString())
		var (
			wg              sync.WaitGroup
			putErr, linkErr error
			deleted         bool
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, putErr = s.PutManifest(ctx, metadata.PutManifest{Manifest: m,
				Refs: []metadata.Ref{{Digest: blob.Digest, Kind: metadata.RefBlob}}})
		}()
		go func() {
			defer wg.Done()
			_, deleted, linkErr = s.UnlinkBlobIfUnreferenced(ctx, r.ID, blob.Digest, future)
		}()
		wg.Wait()
		must(t, "unlink", linkErr)
		_, linkedErr := s.BlobLinked(ctx, r.ID, blob.Digest)
		_, getErr := s.GetManifest(ctx, r.ID, m.Digest)
		switch {
		case deleted && putErr == nil:
			t.Fatalf("round %d: link removed although the manifest referencing it was stored", i)
		case deleted:
			if !errors.Is(putErr, metadata.ErrBlobUnknown) {
				t.Fatalf("round %d: put after unlink: %v, want ErrBlobUnknown", i, putErr)
			}
			wantErr(t, "linked after unlink", linkedErr, metadata.ErrNotFound)
			wantErr(t, "manifest after failed put", getErr, metadata.ErrNotFound)
		default:
			must(t, "put", putErr)
			must(t, "linked", linkedErr)
			must(t, "manifest", getErr)
		}
		wins[deleted]++
	}
	t.Logf("unlink won %d rounds, put won %d", wins[true], wins[false])
}
