package metadatatest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

func repositoryTests() []testCase {
	return []testCase{
		{"Repositories/CreateGet", testRepositoryCreateGet},
		{"Repositories/DuplicateName", testRepositoryDuplicate},
		{"Repositories/GetUnknown", func(t *testing.T, s metadata.Store) {
			_, err := s.GetRepository(t.Context(), "nope")
			wantErr(t, "get unknown repository", err, metadata.ErrNotFound)
		}},
		{"Repositories/List500", testRepositoryList},
		{"Repositories/DeleteUnknown", func(t *testing.T, s metadata.Store) {
			_, err := s.DeleteRepository(t.Context(), "nope")
			wantErr(t, "delete unknown repository", err, metadata.ErrNotFound)
		}},
		{"Repositories/DeleteRemovesEverything", testRepositoryDeleteAll},
		{"Repositories/DeleteOrphansSharedDomain", testRepositoryDeleteShared},
		{"Repositories/DeleteOrphansOwnDomain", testRepositoryDeleteOwn},
	}
}

func testRepositoryCreateGet(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	id := uuid.NewString()
	want := metadata.Repository{
		ID:                      id,
		Name:                    "team/app",
		Domain:                  id,
		EncryptionType:          metadata.EncryptionKMSDSSE,
		KMSKey:                  "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/k",
		TagMutability:           metadata.TagImmutableWithExclusion,
		TagMutabilityExclusions: []string{"latest", "dev-*"},
		ScanOnPush:              true,
		CreatedAt:               t0,
	}
	must(t, "create", s.CreateRepository(ctx, want))
	got, err := s.GetRepository(ctx, "team/app")
	must(t, "get", err)
	checkRepository(t, got, want)

	plain := aesRepo(t, s, "plain")
	got, err = s.GetRepository(ctx, "plain")
	must(t, "get plain", err)
	checkRepository(t, got, plain)
	if len(got.TagMutabilityExclusions) != 0 || got.ScanOnPush || got.KMSKey != "" {
		t.Errorf("plain repository = %+v", got)
	}
}

func testRepositoryDuplicate(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	first := aesRepo(t, s, "dup")
	err := s.CreateRepository(ctx, metadata.Repository{
		ID: uuid.NewString(), Name: "dup", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: t0,
	})
	wantErr(t, "create duplicate name", err, metadata.ErrExists)
	got, err := s.GetRepository(ctx, "dup")
	must(t, "get", err)
	checkRepository(t, got, first)
}

func testRepositoryList(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	const n = 500
	// Names mix cases, digits, separators and lengths, inserted in random
	// order: listing must be byte-wise ("B" < "a", "a" < "a-" < "a/").
	var want []string
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		var name string
		switch i % 4 {
		case 0:
			name = fmt.Sprintf("ns%d/app-%03d", i%7, i)
		case 1:
			name = fmt.Sprintf("App%d", i)
		case 2:
			name = fmt.Sprintf("a%d_%d.x", r.IntN(1000), i)
		default:
			name = fmt.Sprintf("z/%d", i)
		}
		want = append(want, name)
	}
	for _, i := range r.Perm(n) {
		aesRepo(t, s, want[i])
	}
	slices.Sort(want)

	for _, limit := range []int{1, 7, 100, 499, 500, 1000} {
		var got []string
		after := ""
		for {
			page, err := s.ListRepositories(ctx, after, limit)
			must(t, "list repositories", err)
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			for _, r := range page {
				got = append(got, r.Name)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Name
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %d names, want %d in byte order; first difference at %d",
				limit, len(got), len(want), firstDiff(got, want))
		}
	}
	for _, limit := range []int{0, -1} {
		all, err := s.ListRepositories(ctx, "", limit)
		must(t, "list without limit", err)
		if len(all) != n {
			t.Errorf("limit %d: %d repositories, want %d", limit, len(all), n)
		}
	}
	rest, err := s.ListRepositories(ctx, want[n-3], 10)
	must(t, "list tail", err)
	if len(rest) != 2 || rest[0].Name != want[n-2] || rest[1].Name != want[n-1] {
		t.Errorf("tail after %q = %v", want[n-3], rest)
	}
	if rest[0].ID == "" || rest[0].Domain != "aes256" || rest[0].CreatedAt.IsZero() {
		t.Errorf("listed repository lacks fields: %+v", rest[0])
	}
	none, err := s.ListRepositories(ctx, want[n-1], 10)
	must(t, "list past end", err)
	if len(none) != 0 {
		t.Errorf("after last name: %v", none)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func testRepositoryDeleteAll(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "doomed")
	other := aesRepo(t, s, "survivor")
	m := image(t, s, r, "m1", "latest")
	om := image(t, s, other, "m1", "latest") // same digest, other repository
	layer := digestOf("layer of m1")
	up := metadata.Upload{ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, StartedAt: t0, UpdatedAt: t0}
	must(t, "create upload", s.CreateUpload(ctx, up))

	_, err := s.DeleteRepository(ctx, "doomed")
	must(t, "delete repository", err)

	_, err = s.GetRepository(ctx, "doomed")
	wantErr(t, "get deleted repository", err, metadata.ErrNotFound)
	_, err = s.GetManifest(ctx, r.ID, m.Digest)
	wantErr(t, "manifest of deleted repository", err, metadata.ErrNotFound)
	_, err = s.ResolveTag(ctx, r.ID, "latest")
	wantErr(t, "tag of deleted repository", err, metadata.ErrNotFound)
	_, err = s.BlobLinked(ctx, r.ID, layer)
	wantErr(t, "link of deleted repository", err, metadata.ErrNotFound)
	_, err = s.GetUpload(ctx, up.ID)
	wantErr(t, "upload of deleted repository", err, metadata.ErrNotFound)
	if tags, err := s.ListTags(ctx, r.ID, "", 0); err != nil || len(tags) != 0 {
		t.Errorf("tags of deleted repository = %v, %v", tags, err)
	}
	_, err = s.DeleteRepository(ctx, "doomed")
	wantErr(t, "delete twice", err, metadata.ErrNotFound)

	// The other repository is untouched, including the shared blob.
	got, err := s.ResolveTag(ctx, other.ID, "latest")
	must(t, "resolve in survivor", err)
	checkManifest(t, got, om)
	if _, err := s.BlobLinked(ctx, other.ID, layer); err != nil {
		t.Errorf("survivor lost its link: %v", err)
	}
	if _, err := s.GetBlob(ctx, "aes256", layer); err != nil {
		t.Errorf("shared blob deleted with a repository: %v", err)
	}

	// The name is free again and the new repository starts empty.
	again := aesRepo(t, s, "doomed")
	if tags, err := s.ListTags(ctx, again.ID, "", 0); err != nil || len(tags) != 0 {
		t.Errorf("tags of recreated repository = %v, %v", tags, err)
	}
	_, err = s.BlobLinked(ctx, again.ID, layer)
	wantErr(t, "link in recreated repository", err, metadata.ErrNotFound)
}

// uploadWithParts creates an upload of r holding n part objects.
func uploadWithParts(t *testing.T, s metadata.Store, r metadata.Repository, n int) metadata.Upload {
	t.Helper()
	u := metadata.Upload{ID: uuid.NewString(), RepoID: r.ID, Domain: r.Domain, StartedAt: t0, UpdatedAt: t0}
	for i := range n {
		u.Parts = append(u.Parts, metadata.Part{ObjectKey: "layers/" + r.Domain + "/" + uuid.NewString(), Size: int64(10 + i)})
		u.Size += int64(10 + i)
	}
	must(t, "create upload", s.CreateUpload(t.Context(), u))
	return u
}

func testRepositoryDeleteShared(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "a")
	other := aesRepo(t, s, "b")
	m1 := image(t, s, r, "one", "v1")
	m2 := image(t, s, r, "two", "")
	shared := addBlob(t, s, r, "shared")
	if _, err := s.LinkBlob(ctx, other.ID, other.Domain, shared.Digest); err != nil {
		t.Fatal(err)
	}
	u1 := uploadWithParts(t, s, r, 2)
	u2 := uploadWithParts(t, s, r, 0)
	otherUpload := uploadWithParts(t, s, other, 1)

	orphans, err := s.DeleteRepository(ctx, "a")
	must(t, "delete", err)
	want := []string{m1.ObjectKey, m2.ObjectKey, u1.Parts[0].ObjectKey, u1.Parts[1].ObjectKey}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(orphans))
	if !slices.Equal(got, want) {
		t.Errorf("orphans = %v, want manifests and upload parts only %v", got, want)
	}
	// Blobs of the shared domain stay (GC decides), linked or not.
	for _, c := range []string{"shared", "layer of one", "layer of two"} {
		if _, err := s.GetBlob(ctx, "aes256", digestOf(c)); err != nil {
			t.Errorf("shared-domain blob %q: %v", c, err)
		}
	}
	_, err = s.GetUpload(ctx, u2.ID)
	wantErr(t, "upload without parts of the deleted repository", err, metadata.ErrNotFound)
	if _, err := s.GetUpload(ctx, otherUpload.ID); err != nil {
		t.Errorf("other repository's upload: %v", err)
	}
}

func testRepositoryDeleteOwn(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := kmsRepo(t, s, "kms")
	other := kmsRepo(t, s, "kms2")
	m := image(t, s, r, "one", "v1")
	idx := metadata.Manifest{
		RepoID: r.ID, Digest: digestOf("index"), MediaType: "application/vnd.oci.image.index.v1+json",
		Size: 5, ObjectKey: "manifests/" + r.ID + "/" + digestOf("index"), PushedAt: t0,
	}
	_, err := s.PutManifest(ctx, metadata.PutManifest{
		Manifest: idx, Refs: []metadata.Ref{{Digest: m.Digest, Kind: metadata.RefManifest}}, Tag: "multi",
	})
	must(t, "put index", err)
	layer, err := s.BlobLinked(ctx, r.ID, digestOf("layer of one"))
	must(t, "layer", err)
	unlinked := addBlob(t, s, r, "unlinked")
	must(t, "unlink", s.UnlinkBlob(ctx, r.ID, unlinked.Digest))
	u := uploadWithParts(t, s, r, 3)
	om := image(t, s, other, "one", "v1") // same content, other domain

	orphans, err := s.DeleteRepository(ctx, "kms")
	must(t, "delete", err)
	want := []string{m.ObjectKey, idx.ObjectKey, layer.ObjectKey, unlinked.ObjectKey,
		u.Parts[0].ObjectKey, u.Parts[1].ObjectKey, u.Parts[2].ObjectKey}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(orphans))
	if !slices.Equal(got, want) {
		t.Errorf("orphans = %v\nwant manifests, upload parts and every blob of the domain %v", got, want)
	}
	for _, d := range []string{layer.Digest, unlinked.Digest} {
		_, err := s.GetBlob(ctx, r.Domain, d)
		wantErr(t, "blob of the deleted repository's domain", err, metadata.ErrNotFound)
	}
	got2, err := s.ResolveTag(ctx, other.ID, "v1")
	must(t, "other KMS repository", err)
	checkManifest(t, got2, om)
	if _, err := s.GetBlob(ctx, other.Domain, digestOf("layer of one")); err != nil {
		t.Errorf("other domain's blob: %v", err)
	}
}
