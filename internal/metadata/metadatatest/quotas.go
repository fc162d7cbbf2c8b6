package metadatatest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

func quotaTests() []testCase {
	return []testCase{
		{"Quota/Usage", testQuotaUsage},
		{"Quota/Images", testQuotaImages},
		{"Quota/BytesOfBlobs", testQuotaBlobBytes},
		{"Quota/BytesOfManifests", testQuotaManifestBytes},
		{"Quota/ConcurrentBlobs", testQuotaConcurrentBlobs},
		{"Quota/ConcurrentImages", testQuotaConcurrentImages},
	}
}

func wantUsage(t *testing.T, s metadata.Store, r metadata.Repository, want metadata.Usage) {
	t.Helper()
	got, err := s.RepositoryUsage(t.Context(), r.ID)
	must(t, "usage", err)
	if got != want {
		t.Fatalf("usage of %s = %+v, want %+v", r.Name, got, want)
	}
}

// wantQuotaErr fails unless err is a *QuotaError for limit.
func wantQuotaErr(t *testing.T, what string, err error, limit string) {
	t.Helper()
	var qe *metadata.QuotaError
	if !errors.Is(err, metadata.ErrQuotaExceeded) || !errors.As(err, &qe) || qe.Limit != limit {
		t.Fatalf("%s: err = %v, want a quota error on %s", what, err, limit)
	}
}

// testQuotaUsage: images are manifests; bytes are distinct linked blobs
// (a layer two images share counts once, one no image uses counts too)
// plus manifests; a blob of another repository of the domain counts only
// where it is linked.
func testQuotaUsage(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	wantUsage(t, s, r, metadata.Usage{})
	_, err := s.RepositoryUsage(ctx, uuid.NewString())
	wantErr(t, "usage of unknown repository", err, metadata.ErrRepositoryUnknown)

	layer := addBlob(t, s, r, "shared layer")      // 12 bytes
	addBlob(t, s, other, "elsewhere only")         // not r's
	unused := addBlob(t, s, r, "pushed, no image") // 16 bytes
	for _, c := range []string{"one", "three"} {
		m := newManifest(r, c)
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}}})
		must(t, "put "+c, err)
	}
	wantUsage(t, s, r, metadata.Usage{Images: 2, Bytes: layer.Size + unused.Size + 3 + 5})
	wantUsage(t, s, other, metadata.Usage{Bytes: int64(len("elsewhere only"))})
	must(t, "unlink", s.UnlinkBlob(ctx, r.ID, unused.Digest))
	wantUsage(t, s, r, metadata.Usage{Images: 2, Bytes: layer.Size + 8})
}

func testQuotaImages(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	layer := addBlob(t, s, r, "layer")
	q := metadata.Quota{MaxImages: 2}
	put := func(content, tag string) (metadata.PutManifestResult, error) {
		return s.PutManifest(ctx, metadata.PutManifest{Manifest: newManifest(r, content), Tag: tag, Quota: q,
			Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}}})
	}
	for _, c := range []string{"a", "b"} {
		_, err := put(c, "latest")
		must(t, "put "+c, err)
	}
	_, err := put("c", "latest")
	wantQuotaErr(t, "third image", err, metadata.QuotaImages)
	var qe *metadata.QuotaError
	errors.As(err, &qe)
	if qe.Max != 2 || qe.Usage.Images != 3 {
		t.Errorf("quota error = %+v", qe)
	}
	// Nothing of the refused push is left, and the tag did not move.
	_, err = s.GetManifest(ctx, r.ID, digestOf("c"))
	wantErr(t, "refused manifest", err, metadata.ErrNotFound)
	m, err := s.ResolveTag(ctx, r.ID, "latest")
	must(t, "resolve", err)
	if m.Digest != digestOf("b") {
		t.Fatalf("latest moved to %s", m.Digest)
	}
	// An existing manifest adds nothing: its tag can still move.
	res, err := put("a", "latest")
	must(t, "re-put existing manifest at the limit", err)
	if res.Created || res.PreviousTag != digestOf("b") {
		t.Errorf("re-put = %+v", res)
	}
	// Without a quota (or with another repository's) nothing is refused.
	_, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: newManifest(r, "c"),
		Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}}})
	must(t, "put without quota", err)
	wantUsage(t, s, r, metadata.Usage{Images: 3, Bytes: layer.Size + 3})
	// Over the limit now (it was lowered, say): a new image is refused, a
	// deletion is not, and a blob (no image) is not refused for images.
	_, err = put("d", "")
	wantQuotaErr(t, "image over a lowered limit", err, metadata.QuotaImages)
	_, _, err = s.CommitBlobWithin(ctx, r.ID, newBlob(r, "more"), q)
	must(t, "blob while over the image limit", err)
	_, err = s.DeleteManifest(ctx, r.ID, digestOf("c"))
	must(t, "delete while over", err)
}

func testQuotaBlobBytes(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := kmsRepo(t, s, "r")
	q := metadata.Quota{MaxBytes: 10}
	first := newBlob(r, "0123456789") // exactly the limit
	_, _, err := s.CommitBlobWithin(ctx, r.ID, first, q)
	must(t, "blob up to the limit", err)

	over := newBlob(r, "x")
	_, _, err = s.CommitBlobWithin(ctx, r.ID, over, q)
	wantQuotaErr(t, "CommitBlobWithin over", err, metadata.QuotaBytes)
	var qe *metadata.QuotaError
	errors.As(err, &qe)
	if qe.Max != 10 || qe.Usage.Bytes != 11 {
		t.Errorf("quota error = %+v", qe)
	}
	_, err = s.GetBlob(ctx, r.Domain, over.Digest)
	wantErr(t, "blob row of a refused commit", err, metadata.ErrNotFound)

	u := metadata.Upload{ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, Size: 1, StartedAt: t0, UpdatedAt: t0,
		Parts: []metadata.Part{{ObjectKey: over.ObjectKey, Size: 1}}}
	must(t, "create upload", s.CreateUpload(ctx, u))
	_, _, err = s.CommitUploadWithin(ctx, u.ID, over, q)
	wantQuotaErr(t, "CommitUploadWithin over", err, metadata.QuotaBytes)
	if _, err := s.GetUpload(ctx, u.ID); err != nil {
		t.Fatalf("session after a refused commit: %v", err)
	}
	_, err = s.BlobLinked(ctx, r.ID, over.Digest)
	wantErr(t, "link of a refused commit", err, metadata.ErrNotFound)

	// Once the blob is in the domain (committed without a quota, then
	// unlinked), linking it is refused the same way.
	_, _, err = s.CommitBlob(ctx, r.ID, over)
	must(t, "commit without quota", err)
	must(t, "unlink", s.UnlinkBlob(ctx, r.ID, over.Digest))
	_, err = s.LinkBlobWithin(ctx, r.ID, r.Domain, over.Digest, q)
	wantQuotaErr(t, "LinkBlobWithin over", err, metadata.QuotaBytes)
	_, err = s.BlobLinked(ctx, r.ID, over.Digest)
	wantErr(t, "link refused", err, metadata.ErrNotFound)

	// A link that exists adds nothing and is never refused, even over.
	_, _, err = s.CommitBlobWithin(ctx, r.ID, first, metadata.Quota{MaxBytes: 1})
	must(t, "re-commit of a linked blob over the limit", err)
	_, err = s.LinkBlobWithin(ctx, r.ID, r.Domain, first.Digest, metadata.Quota{MaxBytes: 1})
	must(t, "re-link over the limit", err)
	// The session commits once room is made.
	must(t, "unlink first", s.UnlinkBlob(ctx, r.ID, first.Digest))
	_, _, err = s.CommitUploadWithin(ctx, u.ID, over, q)
	must(t, "commit after room was made", err)
	wantUsage(t, s, r, metadata.Usage{Bytes: 1})
}

func testQuotaManifestBytes(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	layer := addBlob(t, s, r, "layer") // 5 bytes
	put := func(content string, q metadata.Quota) error {
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: newManifest(r, content), Quota: q,
			Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}}})
		return err
	}
	must(t, "manifest up to the limit", put("12345", metadata.Quota{MaxBytes: 10}))
	wantQuotaErr(t, "manifest over", put("6", metadata.Quota{MaxBytes: 10, MaxImages: 5}), metadata.QuotaBytes)
	wantUsage(t, s, r, metadata.Usage{Images: 1, Bytes: 10})
}

// testQuotaConcurrentBlobs: 24 writers commit distinct 10-byte blobs into
// one repository with room for 10; exactly 10 may succeed.
func testQuotaConcurrentBlobs(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	q := metadata.Quota{MaxBytes: 100}
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			b := newBlob(r, fmt.Sprintf("blob-%04d", i)+"!") // 10 bytes
			var err error
			if i%2 == 0 {
				_, _, err = s.CommitBlobWithin(ctx, r.ID, b, q)
			} else {
				u := metadata.Upload{ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, StartedAt: t0, UpdatedAt: t0}
				if err := s.CreateUpload(ctx, u); err != nil {
					t.Error(err)
					return
				}
				_, _, err = s.CommitUploadWithin(ctx, u.ID, b, q)
			}
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, metadata.ErrQuotaExceeded):
				refused.Add(1)
			default:
				t.Errorf("commit %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 14 {
		t.Fatalf("%d commits succeeded and %d were refused; want 10 and 14", ok.Load(), refused.Load())
	}
	wantUsage(t, s, r, metadata.Usage{Bytes: 100})
}

// testQuotaConcurrentImages: 24 writers push distinct manifests into one
// repository with room for 5 images; exactly 5 may succeed.
func testQuotaConcurrentImages(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	layer := addBlob(t, s, r, "layer")
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: newManifest(r, fmt.Sprint("m", i)), Tag: fmt.Sprint("t", i),
				Quota: metadata.Quota{MaxImages: 5}, Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}}})
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, metadata.ErrQuotaExceeded):
				t.Errorf("put %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 {
		t.Fatalf("%d pushes succeeded; want 5", ok.Load())
	}
	u, err := s.RepositoryUsage(ctx, r.ID)
	must(t, "usage", err)
	if u.Images != 5 {
		t.Fatalf("usage = %+v", u)
	}
}
