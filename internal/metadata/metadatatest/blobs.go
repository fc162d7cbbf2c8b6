package metadatatest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

func blobTests() []testCase {
	return []testCase{
		{"Blobs/CommitBlob", testCommitBlob},
		{"Blobs/CommitBlobUnknownRepository", func(t *testing.T, s metadata.Store) {
			r := metadata.Repository{ID: uuid.NewString(), Domain: "aes256"}
			_, _, err := s.CommitBlob(t.Context(), r.ID, newBlob(r, "x"))
			wantErr(t, "commit blob to unknown repository", err, metadata.ErrRepositoryUnknown)
			_, err = s.GetBlob(t.Context(), "aes256", digestOf("x"))
			wantErr(t, "blob of failed commit", err, metadata.ErrNotFound)
		}},
		{"Blobs/Unknown", testBlobUnknown},
		{"Blobs/DomainsAreSeparate", testBlobDomains},
		{"Blobs/LinkBlob", testLinkBlob},
		{"Blobs/BlobRepositories", testBlobRepositories},
		{"Blobs/UnlinkBlob", testUnlinkBlob},
		{"Blobs/CommitUpload", testCommitUpload},
		{"Blobs/CommitUploadDedup", testCommitUploadDedup},
		{"Blobs/CommitUploadUnknown", func(t *testing.T, s metadata.Store) {
			r := aesRepo(t, s, "r")
			_, _, err := s.CommitUpload(t.Context(), uuid.NewString(), newBlob(r, "x"))
			wantErr(t, "commit unknown upload", err, metadata.ErrNotFound)
			_, err = s.GetBlob(t.Context(), r.Domain, digestOf("x"))
			wantErr(t, "blob of unknown upload", err, metadata.ErrNotFound)
		}},
	}
}

func testCommitBlob(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	b := newBlob(r, "content")
	stored, inserted, err := s.CommitBlob(ctx, r.ID, b)
	must(t, "commit", err)
	if !inserted {
		t.Error("first commit: inserted = false")
	}
	checkBlob(t, stored, b)
	got, err := s.GetBlob(ctx, r.Domain, b.Digest)
	must(t, "get", err)
	checkBlob(t, got, b)
	got, err = s.BlobLinked(ctx, r.ID, b.Digest)
	must(t, "linked", err)
	checkBlob(t, got, b)

	// Same digest again (a second upload of the same content): the first
	// object stays, the new one is the caller's to delete.
	dup := newBlob(r, "content")
	dup.CreatedAt = t0.Add(time.Hour)
	stored, inserted, err = s.CommitBlob(ctx, r.ID, dup)
	must(t, "commit duplicate", err)
	if inserted {
		t.Error("duplicate commit: inserted = true")
	}
	checkBlob(t, stored, b)

	// Another repository of the same domain: deduplicated, and linked.
	r2 := aesRepo(t, s, "r2")
	stored, inserted, err = s.CommitBlob(ctx, r2.ID, newBlob(r2, "content"))
	must(t, "commit in second repository", err)
	if inserted {
		t.Error("commit in second repository of the domain: inserted = true")
	}
	checkBlob(t, stored, b)
	got, err = s.BlobLinked(ctx, r2.ID, b.Digest)
	must(t, "linked in second repository", err)
	checkBlob(t, got, b)
}

func testBlobUnknown(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	_, err := s.GetBlob(ctx, "aes256", digestOf("none"))
	wantErr(t, "get unknown blob", err, metadata.ErrNotFound)
	_, err = s.BlobLinked(ctx, r.ID, digestOf("none"))
	wantErr(t, "unknown blob linked", err, metadata.ErrNotFound)

	// Present in the domain but linked elsewhere only: not linked here.
	other := aesRepo(t, s, "other")
	b := addBlob(t, s, other, "theirs")
	_, err = s.BlobLinked(ctx, r.ID, b.Digest)
	wantErr(t, "blob linked to another repository", err, metadata.ErrNotFound)
	_, err = s.BlobLinked(ctx, uuid.NewString(), b.Digest)
	wantErr(t, "blob linked to unknown repository", err, metadata.ErrNotFound)
}

func testBlobDomains(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aesRepo(t, s, "a")
	k := kmsRepo(t, s, "k")
	ba, ins1, err := s.CommitBlob(ctx, a.ID, newBlob(a, "same"))
	must(t, "commit aes", err)
	bk, ins2, err := s.CommitBlob(ctx, k.ID, newBlob(k, "same"))
	must(t, "commit kms", err)
	if !ins1 || !ins2 {
		t.Errorf("inserted = %v, %v; the same digest in two domains is two blobs", ins1, ins2)
	}
	if ba.ObjectKey == bk.ObjectKey || ba.Domain == bk.Domain {
		t.Errorf("blobs of two domains share a row: %+v %+v", ba, bk)
	}
	got, err := s.BlobLinked(ctx, k.ID, bk.Digest)
	must(t, "linked kms", err)
	checkBlob(t, got, bk)
	got, err = s.GetBlob(ctx, a.Domain, ba.Digest)
	must(t, "get aes", err)
	checkBlob(t, got, ba)
}

func testLinkBlob(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	src := aesRepo(t, s, "src")
	dst := aesRepo(t, s, "dst")
	b := addBlob(t, s, src, "layer")

	got, err := s.LinkBlob(ctx, dst.ID, dst.Domain, b.Digest)
	must(t, "link", err)
	checkBlob(t, got, b)
	got, err = s.LinkBlob(ctx, dst.ID, dst.Domain, b.Digest)
	must(t, "link again (idempotent)", err)
	checkBlob(t, got, b)
	got, err = s.BlobLinked(ctx, dst.ID, b.Digest)
	must(t, "linked", err)
	checkBlob(t, got, b)

	_, err = s.LinkBlob(ctx, dst.ID, dst.Domain, digestOf("missing"))
	wantErr(t, "link missing blob", err, metadata.ErrNotFound)
	_, err = s.BlobLinked(ctx, dst.ID, digestOf("missing"))
	wantErr(t, "missing blob linked", err, metadata.ErrNotFound)

	// A blob of another domain cannot be linked: it is encrypted for that
	// domain, and the caller must re-encrypt (CommitBlob) instead.
	k := kmsRepo(t, s, "k")
	kb := addBlob(t, s, k, "kms layer")
	if _, err := s.LinkBlob(ctx, dst.ID, k.Domain, kb.Digest); err == nil {
		t.Error("linked a blob of a foreign domain")
	}
	_, err = s.BlobLinked(ctx, dst.ID, kb.Digest)
	wantErr(t, "foreign blob linked", err, metadata.ErrNotFound)
	_, err = s.LinkBlob(ctx, dst.ID, dst.Domain, kb.Digest)
	wantErr(t, "link blob absent from own domain", err, metadata.ErrNotFound)
}

func testUnlinkBlob(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	b := addBlob(t, s, r, "layer")
	must(t, "unlink", s.UnlinkBlob(ctx, r.ID, b.Digest))
	_, err := s.BlobLinked(ctx, r.ID, b.Digest)
	wantErr(t, "unlinked blob", err, metadata.ErrNotFound)
	if _, err := s.GetBlob(ctx, r.Domain, b.Digest); err != nil {
		t.Errorf("unlink deleted the blob row: %v", err)
	}
	wantErr(t, "unlink twice", s.UnlinkBlob(ctx, r.ID, b.Digest), metadata.ErrNotFound)
	wantErr(t, "unlink never linked", s.UnlinkBlob(ctx, r.ID, digestOf("x")), metadata.ErrNotFound)

	// Relinking after an unlink works.
	_, err = s.LinkBlob(ctx, r.ID, r.Domain, b.Digest)
	must(t, "relink", err)
	// A manifest cannot reference an unlinked blob.
	must(t, "unlink again", s.UnlinkBlob(ctx, r.ID, b.Digest))
	_, err = s.PutManifest(ctx, metadata.PutManifest{
		Manifest: newManifest(r, "m"), Refs: []metadata.Ref{{Digest: b.Digest, Kind: metadata.RefBlob}},
	})
	wantErr(t, "manifest over unlinked blob", err, metadata.ErrBlobUnknown)
}

func testCommitUpload(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := kmsRepo(t, s, "r")
	u := uploadWithParts(t, s, r, 1)
	b := newBlob(r, "uploaded")
	b.ObjectKey = u.Parts[0].ObjectKey // single part becomes the blob
	stored, inserted, err := s.CommitUpload(ctx, u.ID, b)
	must(t, "commit upload", err)
	if !inserted {
		t.Error("inserted = false for a new blob")
	}
	checkBlob(t, stored, b)
	_, err = s.GetUpload(ctx, u.ID)
	wantErr(t, "committed upload", err, metadata.ErrNotFound)
	got, err := s.BlobLinked(ctx, r.ID, b.Digest)
	must(t, "linked", err)
	checkBlob(t, got, b)

	// The session is gone: committing it again does nothing at all.
	again := newBlob(r, "another")
	_, _, err = s.CommitUpload(ctx, u.ID, again)
	wantErr(t, "commit committed upload", err, metadata.ErrNotFound)
	_, err = s.GetBlob(ctx, r.Domain, again.Digest)
	wantErr(t, "blob of a second commit", err, metadata.ErrNotFound)
	_, err = s.BlobLinked(ctx, r.ID, again.Digest)
	wantErr(t, "link of a second commit", err, metadata.ErrNotFound)
}

func testCommitUploadDedup(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aesRepo(t, s, "a")
	b := aesRepo(t, s, "b")
	first := addBlob(t, s, a, "layer")
	u := uploadWithParts(t, s, b, 2)
	stored, inserted, err := s.CommitUpload(ctx, u.ID, newBlob(b, "layer"))
	must(t, "commit duplicate upload", err)
	if inserted {
		t.Error("inserted = true for a blob the domain has")
	}
	checkBlob(t, stored, first)
	got, err := s.BlobLinked(ctx, b.ID, first.Digest)
	must(t, "linked", err)
	checkBlob(t, got, first)
	_, err = s.GetUpload(ctx, u.ID)
	wantErr(t, "committed upload", err, metadata.ErrNotFound)
}

func uploadTests() []testCase {
	return []testCase{
		{"Uploads/CreateGet", testUploadRoundTrip},
		{"Uploads/CreateDuplicate", func(t *testing.T, s metadata.Store) {
			r := aesRepo(t, s, "r")
			u := uploadWithParts(t, s, r, 0)
			wantErr(t, "create duplicate upload", s.CreateUpload(t.Context(), u), metadata.ErrExists)
		}},
		{"Uploads/CreateUnknownRepository", func(t *testing.T, s metadata.Store) {
			u := metadata.Upload{ID: uuid.NewString(), RepoID: uuid.NewString(), Domain: "aes256", StartedAt: t0, UpdatedAt: t0}
			wantErr(t, "create upload in unknown repository", s.CreateUpload(t.Context(), u), metadata.ErrRepositoryUnknown)
			_, err := s.GetUpload(t.Context(), u.ID)
			wantErr(t, "get failed upload", err, metadata.ErrNotFound)
		}},
		{"Uploads/GetUnknown", func(t *testing.T, s metadata.Store) {
			_, err := s.GetUpload(t.Context(), uuid.NewString())
			wantErr(t, "get unknown upload", err, metadata.ErrNotFound)
		}},
		{"Uploads/UpdateCompareAndSet", testUploadUpdate},
		{"Uploads/Delete", testUploadDelete},
	}
}

func checkUpload(t *testing.T, got, want metadata.Upload) {
	t.Helper()
	if got.ID != want.ID || got.RepoID != want.RepoID || got.Domain != want.Domain || got.Size != want.Size ||
		!slices.Equal(got.Parts, want.Parts) || !bytes.Equal(got.HashState, want.HashState) {
		t.Errorf("upload = %+v, want %+v", got, want)
	}
	checkTime(t, "upload StartedAt", got.StartedAt, want.StartedAt)
	checkTime(t, "upload UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

func testUploadRoundTrip(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := kmsRepo(t, s, "r")
	u := metadata.Upload{
		ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, Size: 300,
		Parts: []metadata.Part{
			{ObjectKey: "layers/" + r.Domain + "/p1", Size: 100},
			{ObjectKey: "layers/" + r.Domain + "/p2", Size: 200},
		},
		HashState: []byte{0, 1, 2, 0xff, 0, 'x'}, // binary, with NULs
		StartedAt: t0,
		UpdatedAt: t0.Add(time.Second),
	}
	must(t, "create", s.CreateUpload(ctx, u))
	got, err := s.GetUpload(ctx, u.ID)
	must(t, "get", err)
	checkUpload(t, got, u)

	empty := uploadWithParts(t, s, r, 0)
	got, err = s.GetUpload(ctx, empty.ID)
	must(t, "get empty", err)
	checkUpload(t, got, empty)
	if len(got.Parts) != 0 || len(got.HashState) != 0 || got.Size != 0 {
		t.Errorf("empty upload = %+v", got)
	}
}

func testUploadUpdate(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	u := uploadWithParts(t, s, r, 1) // size 10
	next := u
	next.Size = 30
	next.Parts = append(slices.Clone(u.Parts), metadata.Part{ObjectKey: "layers/aes256/p2", Size: 20})
	next.HashState = []byte("state-2")
	next.UpdatedAt = t0.Add(time.Minute)
	must(t, "update", s.UpdateUpload(ctx, next, 10))
	got, err := s.GetUpload(ctx, u.ID)
	must(t, "get", err)
	checkUpload(t, got, next)

	stale := next
	stale.Size = 999
	stale.Parts = nil
	wantErr(t, "stale update", s.UpdateUpload(ctx, stale, 10), metadata.ErrConflict)
	got, err = s.GetUpload(ctx, u.ID)
	must(t, "get after conflict", err)
	checkUpload(t, got, next)

	gone := next
	gone.ID = uuid.NewString()
	wantErr(t, "update unknown", s.UpdateUpload(ctx, gone, 30), metadata.ErrNotFound)
	// StartedAt, RepoID and Domain are not the update's to change.
	moved := next
	moved.Size = 40
	moved.StartedAt = t0.Add(time.Hour)
	must(t, "update", s.UpdateUpload(ctx, moved, 30))
	got, err = s.GetUpload(ctx, u.ID)
	must(t, "get", err)
	checkTime(t, "StartedAt after update", got.StartedAt, u.StartedAt)
	if got.Size != 40 {
		t.Errorf("size = %d, want 40", got.Size)
	}
}

func testUploadDelete(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	u := uploadWithParts(t, s, r, 2)
	got, err := s.DeleteUpload(ctx, u.ID)
	must(t, "delete", err)
	checkUpload(t, got, u)
	_, err = s.GetUpload(ctx, u.ID)
	wantErr(t, "get deleted", err, metadata.ErrNotFound)
	_, err = s.DeleteUpload(ctx, u.ID)
	wantErr(t, "delete twice", err, metadata.ErrNotFound)
	wantErr(t, "update deleted", s.UpdateUpload(ctx, u, u.Size), metadata.ErrNotFound)
}

// BlobRepositories lists the repositories of a domain that link a digest.
func testBlobRepositories(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	b1, a1, other := aesRepo(t, s, "b1"), aesRepo(t, s, "a1"), aesRepo(t, s, "other")
	k := kmsRepo(t, s, "kms")
	blob := newBlob(a1, "shared")
	if _, _, err := s.CommitBlob(ctx, a1.ID, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LinkBlob(ctx, b1.ID, "aes256", blob.Digest); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CommitBlob(ctx, k.ID, newBlob(k, "shared")); err != nil {
		t.Fatal(err)
	}
	_ = other
	got, err := s.BlobRepositories(ctx, "aes256", blob.Digest, 10)
	if err != nil || len(got) != 2 || got[0] != "a1" || got[1] != "b1" {
		t.Fatalf("BlobRepositories = %v, %v; want [a1 b1] (not other, not the KMS domain)", got, err)
	}
	if got, _ := s.BlobRepositories(ctx, "aes256", blob.Digest, 1); len(got) != 1 || got[0] != "a1" {
		t.Fatalf("limit 1 = %v", got)
	}
	if got, _ := s.BlobRepositories(ctx, k.Domain, blob.Digest, 10); len(got) != 1 || got[0] != "kms" {
		t.Fatalf("KMS domain = %v", got)
	}
	if got, err := s.BlobRepositories(ctx, "aes256", digestOf("nothing"), 10); err != nil || len(got) != 0 {
		t.Fatalf("unknown digest = %v, %v", got, err)
	}
}
