// Package metadatatest is the contract suite for metadata.Store: every
// implementation (SQLite, later PostgreSQL) runs the same tests, so the
// registry can rely on the semantics documented in package metadata rather
// than on one database's behaviour.
//
// Usage, from an implementation's tests:
//
//	func TestContract(t *testing.T) {
//		metadatatest.Run(t, func(t *testing.T) metadata.Store {
//			s := open(t)                  // a fresh, empty store
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
//	func TestReopen(t *testing.T) {
//		metadatatest.RunReopen(t, func(t *testing.T) func() (metadata.Store, error) {
//			path := filepath.Join(t.TempDir(), "db")   // one fresh backing database
//			return func() (metadata.Store, error) { return open(path) }
//		})
//	}
//
// The suite checks results, sentinels (with errors.Is) and the ordering and
// atomicity guarantees, including under concurrency; it never skips.
package metadatatest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Run runs the contract suite. newStore must return a new, empty Store for
// each call and arrange (t.Cleanup) for it to be closed; subtests run in
// parallel, each with its own store.
func Run(t *testing.T, newStore func(t *testing.T) metadata.Store) {
	t.Helper()
	groups := [][]testCase{
		basicTests(),
		repositoryTests(),
		repositoryUpdateTests(),
		blobTests(),
		uploadTests(),
		manifestTests(),
		tagTests(),
		concurrencyTests(),
		documentTests(),
		imageTests(),
		gcTests(),
		quotaTests(),
	}
	for _, g := range groups {
		for _, tc := range g {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.fn(t, newStore(t))
			})
		}
	}
}

type testCase struct {
	name string
	fn   func(t *testing.T, s metadata.Store)
}

// t0 is a timestamp with nanoseconds and a non-UTC zone: stores must return
// it in UTC with at least microsecond precision.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+5:30", 5*3600+1800))

// digestOf returns the sha256 digest string of s.
func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// checkTime fails unless got is want in UTC, to within a microsecond.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want zero", what, got)
		}
		return
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
	if d := got.Sub(want); d <= -time.Microsecond || d >= time.Microsecond {
		t.Errorf("%s = %v, want %v (within 1µs)", what, got, want.UTC())
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// aesRepo creates an AES256 repository (shared "aes256" domain).
func aesRepo(t *testing.T, s metadata.Store, name string) metadata.Repository {
	t.Helper()
	r := metadata.Repository{
		ID:             uuid.NewString(),
		Name:           name,
		Domain:         "aes256",
		EncryptionType: metadata.EncryptionAES256,
		TagMutability:  metadata.TagMutable,
		CreatedAt:      t0,
	}
	must(t, "create repository "+name, s.CreateRepository(t.Context(), r))
	return r
}

// kmsRepo creates a KMS repository, which owns its domain.
func kmsRepo(t *testing.T, s metadata.Store, name string) metadata.Repository {
	t.Helper()
	id := uuid.NewString()
	r := metadata.Repository{
		ID:             id,
		Name:           name,
		Domain:         id,
		EncryptionType: metadata.EncryptionKMS,
		KMSKey:         "arn:aws:kms:us-east-1:123456789012:key/" + uuid.NewString(),
		TagMutability:  metadata.TagImmutable,
		CreatedAt:      t0,
	}
	must(t, "create repository "+name, s.CreateRepository(t.Context(), r))
	return r
}

// newBlob returns an uncommitted blob of r's domain for content.
func newBlob(r metadata.Repository, content string) metadata.Blob {
	return metadata.Blob{
		Domain:    r.Domain,
		Digest:    digestOf(content),
		Size:      int64(len(content)),
		ObjectKey: "layers/" + r.Domain + "/" + uuid.NewString(),
		CreatedAt: t0,
	}
}

// addBlob commits a blob with content to r and returns it.
func addBlob(t *testing.T, s metadata.Store, r metadata.Repository, content string) metadata.Blob {
	t.Helper()
	b, _, err := s.CommitBlob(t.Context(), r.ID, newBlob(r, content))
	must(t, "commit blob "+content, err)
	return b
}

// newManifest returns a manifest of r for content.
func newManifest(r metadata.Repository, content string) metadata.Manifest {
	d := digestOf(content)
	return metadata.Manifest{
		RepoID:    r.ID,
		Digest:    d,
		MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size:      int64(len(content)),
		ObjectKey: "manifests/" + r.ID + "/" + d,
		PushedAt:  t0,
	}
}

// image pushes a manifest for content referencing one fresh layer blob, with
// an optional tag, and returns it.
func image(t *testing.T, s metadata.Store, r metadata.Repository, content, tag string) metadata.Manifest {
	t.Helper()
	layer := addBlob(t, s, r, "layer of "+content)
	m := newManifest(r, content)
	_, err := s.PutManifest(t.Context(), metadata.PutManifest{
		Manifest: m,
		Refs:     []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}},
		Tag:      tag,
	})
	must(t, "put manifest "+content, err)
	return m
}

// checkManifest compares every stored field of a manifest.
func checkManifest(t *testing.T, got, want metadata.Manifest) {
	t.Helper()
	if got.RepoID != want.RepoID || got.Digest != want.Digest || got.MediaType != want.MediaType ||
		got.Size != want.Size || got.ObjectKey != want.ObjectKey || got.ArtifactType != want.ArtifactType ||
		got.Subject != want.Subject {
		t.Errorf("manifest = %+v, want %+v", got, want)
	}
	if !maps.Equal(got.Annotations, want.Annotations) {
		t.Errorf("manifest %s annotations = %v, want %v", want.Digest, got.Annotations, want.Annotations)
	}
	checkTime(t, "PushedAt", got.PushedAt, want.PushedAt)
	checkTime(t, "LastPulledAt", got.LastPulledAt, want.LastPulledAt)
}

func checkBlob(t *testing.T, got, want metadata.Blob) {
	t.Helper()
	if got.Domain != want.Domain || got.Digest != want.Digest || got.Size != want.Size || got.ObjectKey != want.ObjectKey {
		t.Errorf("blob = %+v, want %+v", got, want)
	}
	checkTime(t, "blob CreatedAt", got.CreatedAt, want.CreatedAt)
}

func checkRepository(t *testing.T, got, want metadata.Repository) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Domain != want.Domain ||
		got.EncryptionType != want.EncryptionType || got.KMSKey != want.KMSKey ||
		got.TagMutability != want.TagMutability || got.ScanOnPush != want.ScanOnPush ||
		!slices.Equal(got.TagMutabilityExclusions, want.TagMutabilityExclusions) {
		t.Errorf("repository = %+v, want %+v", got, want)
	}
	checkTime(t, "repository CreatedAt", got.CreatedAt, want.CreatedAt)
}

func basicTests() []testCase {
	return []testCase{
		{"Ping", func(t *testing.T, s metadata.Store) {
			must(t, "ping", s.Ping(t.Context()))
		}},
		{"Settings", testSettings},
	}
}

func testSettings(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	_, err := s.GetSetting(ctx, "registry-id")
	wantErr(t, "get missing setting", err, metadata.ErrNotFound)

	v, err := s.PutSettingIfAbsent(ctx, "registry-id", "first")
	must(t, "put setting", err)
	if v != "first" {
		t.Errorf("PutSettingIfAbsent = %q, want first", v)
	}
	v, err = s.PutSettingIfAbsent(ctx, "registry-id", "second")
	must(t, "put setting again", err)
	if v != "first" {
		t.Errorf("PutSettingIfAbsent over existing = %q, want first", v)
	}
	v, err = s.GetSetting(ctx, "registry-id")
	must(t, "get setting", err)
	if v != "first" {
		t.Errorf("GetSetting = %q, want first", v)
	}
	// Empty values and unusual keys are values like any other.
	v, err = s.PutSettingIfAbsent(ctx, "empty/ключ", "")
	must(t, "put empty setting", err)
	if v != "" {
		t.Errorf("PutSettingIfAbsent(empty) = %q", v)
	}
	if v, err := s.GetSetting(ctx, "empty/ключ"); err != nil || v != "" {
		t.Errorf("GetSetting(empty) = %q, %v", v, err)
	}
}
