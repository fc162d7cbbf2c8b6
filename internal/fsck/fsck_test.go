package fsck

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

// fakeVerifier answers from tables instead of reading envelopes.
type fakeVerifier struct {
	refs map[string][]string // manifest digest -> blob digests
	bad  map[string]error    // blob digest -> failure
}

func (f fakeVerifier) VerifyManifest(_ context.Context, _ metadata.Repository, m metadata.Manifest) ([]string, error) {
	return f.refs[m.Digest], nil
}

func (f fakeVerifier) VerifyBlob(_ context.Context, _ metadata.Repository, b metadata.Blob) error {
	return f.bad[b.Digest]
}

func digest(i int) string { return fmt.Sprintf("sha256:%064x", i) }

func put(t *testing.T, d storage.Driver, key string) {
	t.Helper()
	w, err := d.Writer(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("ciphertext"))
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckClassifies: a missing object, a blob whose KMS key refuses
// (undecryptable), a corrupt blob, a manifest blob the repository no
// longer links (dangling), and each verified blob read once.
func TestCheckClassifies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	drv, err := fs.New(fs.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	repo := metadata.Repository{ID: "11111111-2222-3333-4444-555555555555", Name: "app", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := store.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	var refs []metadata.Ref
	for i := 1; i <= 4; i++ {
		b := metadata.Blob{Domain: "aes256", Digest: digest(i), Size: 10, ObjectKey: fmt.Sprintf("layers/aes256/%032x", i), CreatedAt: time.Now()}
		if _, _, err := store.CommitBlob(ctx, repo.ID, b); err != nil {
			t.Fatal(err)
		}
		if i != 2 { // blob 2's object is missing
			put(t, drv, b.ObjectKey)
		}
		refs = append(refs, metadata.Ref{Digest: b.Digest, Kind: metadata.RefBlob})
	}
	m := metadata.Manifest{RepoID: repo.ID, Digest: digest(100), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: 10, ObjectKey: "manifests/" + repo.ID + "/" + digest(100) + "/x", PushedAt: time.Now()}
	if _, err := store.PutManifest(ctx, metadata.PutManifest{Manifest: m, Refs: refs, Tag: "v1"}); err != nil {
		t.Fatal(err)
	}
	put(t, drv, m.ObjectKey)
	v := fakeVerifier{
		refs: map[string][]string{digest(100): {digest(1), digest(2), digest(3), digest(4), digest(5), digest(1)}},
		bad: map[string]error{
			digest(3): fmt.Errorf("%w: key disabled", registry.ErrKMS),
			digest(4): fmt.Errorf("%w: segment 0", registry.ErrCorrupt),
		},
	}
	rep, err := Check(ctx, Config{Store: store, Driver: drv, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range rep.Problems {
		got = append(got, p.String())
	}
	want := []string{
		"corrupt layers/aes256/" + fmt.Sprintf("%032x", 4) + " (blob aes256/" + digest(4) + "): stored content failed its integrity check: segment 0",
		"dangling - (blob " + digest(5) + " of manifest app@" + digest(100) + "): the repository does not link it",
		"missing layers/aes256/" + fmt.Sprintf("%032x", 2) + " (layer object of domain aes256)",
		"undecryptable layers/aes256/" + fmt.Sprintf("%032x", 3) + " (blob aes256/" + digest(3) + "): " + registry.ErrKMS.Error() + ": key disabled",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.Objects != 5 || rep.Manifests != 1 || rep.Blobs != 3 {
		t.Errorf("checked %d objects, %d manifests, %d blobs; want 5, 1, 3", rep.Objects, rep.Manifests, rep.Blobs)
	}
	if _, err := Check(ctx, Config{Store: store, Driver: drv}); err == nil {
		t.Error("Check without a Verifier and without Quick succeeded")
	}
}
