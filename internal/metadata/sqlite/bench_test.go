package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// seed bulk-loads a repository with nManifests manifests and nTags tags
// (tag i points at manifest i % nManifests) in one transaction, bypassing
// PutManifest so that setting up 100,000 tags takes a second, not minutes
// of fsyncs.
func seed(b *testing.B, s *Store, nManifests, nTags int) (repoID string) {
	b.Helper()
	ctx := context.Background()
	repo := metadata.Repository{ID: "bench-repo", Name: "bench", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := s.CreateRepository(ctx, repo); err != nil {
		b.Fatal(err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	now := time.Now().UnixMicro()
	for i := range nManifests {
		d := benchDigest(i)
		if _, err := tx.ExecContext(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size, object_key,
				artifact_type, subject, annotations, pushed_at) VALUES (?, ?, ?, ?, ?, '', NULL, ?, ?)`,
			repo.ID, d, "application/vnd.oci.image.manifest.v1+json", 1234, "manifests/"+repo.ID+"/"+d,
			`{"org.opencontainers.image.created":"2025-01-01T00:00:00Z"}`, now); err != nil {
			b.Fatal(err)
		}
	}
	for i := range nTags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES (?, ?, ?, ?)`,
			repo.ID, benchTag(i), benchDigest(i%nManifests), now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return repo.ID
}

func benchDigest(i int) string { return fmt.Sprintf("sha256:%064x", i) }
func benchTag(i int) string    { return fmt.Sprintf("v%07d", i) }

func BenchmarkResolveTag(b *testing.B) {
	s, _ := openTemp(b)
	const n = 10_000
	repoID := seed(b, s, n, n)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 0))
		for pb.Next() {
			if _, err := s.ResolveTag(ctx, repoID, benchTag(r.IntN(n))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetManifest(b *testing.B) {
	s, _ := openTemp(b)
	const n = 10_000
	repoID := seed(b, s, n, 0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 0))
		for pb.Next() {
			if _, err := s.GetManifest(ctx, repoID, benchDigest(r.IntN(n))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchPut is one push: a manifest over 5 linked layers, moving "latest".
func benchPut(b *testing.B, s *Store, repoID string, layers []metadata.Ref, i int) {
	m := metadata.Manifest{RepoID: repoID, Digest: fmt.Sprintf("sha256:%064x", 1<<40+i),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1234,
		ObjectKey: fmt.Sprintf("manifests/%s/%d", repoID, i), PushedAt: time.Now()}
	_, err := s.PutManifest(context.Background(), metadata.PutManifest{Manifest: m, Refs: layers, Tag: "latest",
		Immutable: func(string) bool { return false }})
	if err != nil {
		b.Error(err)
	}
}

func benchLayers(b *testing.B, s *Store, repoID string) []metadata.Ref {
	var refs []metadata.Ref
	for i := range 5 {
		bl := metadata.Blob{Domain: "aes256", Digest: fmt.Sprintf("sha256:%064x", 1<<50+i), Size: 1 << 20,
			ObjectKey: fmt.Sprintf("layers/aes256/%d", i), CreatedAt: time.Now()}
		if _, _, err := s.CommitBlob(context.Background(), repoID, bl); err != nil {
			b.Fatal(err)
		}
		refs = append(refs, metadata.Ref{Digest: bl.Digest, Kind: metadata.RefBlob})
	}
	return refs
}

func BenchmarkPutManifest(b *testing.B) {
	s, _ := openTemp(b)
	repoID := seed(b, s, 1000, 1000)
	layers := benchLayers(b, s, repoID)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchPut(b, s, repoID, layers, i)
		i++
	}
}

// BenchmarkPutManifestParallel shows write throughput when pushes queue for
// the one writer connection.
func BenchmarkPutManifestParallel(b *testing.B) {
	s, _ := openTemp(b)
	repoID := seed(b, s, 1000, 1000)
	layers := benchLayers(b, s, repoID)
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchPut(b, s, repoID, layers, int(next.Add(1)))
		}
	})
}

func BenchmarkListTagsPage(b *testing.B) {
	s, _ := openTemp(b)
	const n, page = 100_000, 1_000
	repoID := seed(b, s, 100, n)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		last := benchTag(r.IntN(n - page))
		tags, err := s.ListTags(ctx, repoID, last, page)
		if err != nil || len(tags) != page {
			b.Fatalf("page after %s: %d tags, %v", last, len(tags), err)
		}
	}
}
