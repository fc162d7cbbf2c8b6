package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Benchmarks run against the same server as the tests, on a schema of
// their own, with synchronous_commit back on: a write waits for its WAL
// flush, as in production.
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/metadata/postgres

// Fixtures are built in the parent benchmark, whose function runs once,
// not in the sub-benchmark, whose function runs again for every b.N.

// benchDSN returns the DSN of a fresh schema with synchronous_commit on.
func benchDSN(b *testing.B) string {
	b.Helper()
	dsn, err := withParam(newDSN(b), "synchronous_commit", "on")
	if err != nil {
		b.Fatal(err)
	}
	return dsn
}

// benchStore opens a Store with the given pool bounds.
func benchStore(b *testing.B, dsn string, maxConns int32) *Store {
	b.Helper()
	return openStore(b, Config{DSN: dsn, MaxConns: maxConns, MinConns: maxConns})
}

// seed bulk-loads a repository with nManifests manifests and nTags tags
// (tag i points at manifest i % nManifests) with COPY, bypassing
// PutManifest so that 100,000 tags take a second.
func seed(b *testing.B, s *Store, nManifests, nTags int) (repoID string) {
	b.Helper()
	ctx := context.Background()
	repo := metadata.Repository{ID: "bench-repo", Name: "bench", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := s.CreateRepository(ctx, repo); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMicro()
	ann := `{"org.opencontainers.image.created":"2025-01-01T00:00:00Z"}`
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"manifests"},
		[]string{"repo_id", "digest", "media_type", "size", "object_key", "annotations", "pushed_at"},
		pgx.CopyFromSlice(nManifests, func(i int) ([]any, error) {
			d := benchDigest(i)
			return []any{repo.ID, d, "application/vnd.oci.image.manifest.v1+json", int64(1234),
				"manifests/" + repo.ID + "/" + d, ann, now}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	_, err = s.pool.CopyFrom(ctx, pgx.Identifier{"tags"}, []string{"repo_id", "tag", "digest", "updated_at"},
		pgx.CopyFromSlice(nTags, func(i int) ([]any, error) {
			return []any{repo.ID, benchTag(i), benchDigest(i % nManifests), now}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	return repo.ID
}

func benchDigest(i int) string { return fmt.Sprintf("sha256:%064x", i) }
func benchTag(i int) string    { return fmt.Sprintf("v%07d", i) }

// BenchmarkResolveTag resolves random tags of 10,000 from many goroutines
// (RunParallel with 4 x GOMAXPROCS of them), with pools of several sizes.
func BenchmarkResolveTag(b *testing.B) {
	dsn := benchDSN(b)
	const n = 10_000
	repoID := seed(b, benchStore(b, dsn, 4), n, n)
	for _, conns := range []int32{1, 2, 4, 8, 16} {
		s := benchStore(b, dsn, conns)
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(4)
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
		})
	}
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

// BenchmarkPutManifest is one pusher: each push is one transaction of
// about 15 statements and one WAL flush.
func BenchmarkPutManifest(b *testing.B) {
	s := benchStore(b, benchDSN(b), 4)
	repoID := seed(b, s, 1000, 1000)
	layers := benchLayers(b, s, repoID)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchPut(b, s, repoID, layers, i)
		i++
	}
}

// BenchmarkPutManifestParallel has 16 pushers (on 8 connections) move the same tag: they
// queue on its row lock, and the server's group commit shares flushes.
// With distinct tags (the common case) they would not queue at all.
func BenchmarkPutManifestParallel(b *testing.B) {
	s := benchStore(b, benchDSN(b), 8)
	repoID := seed(b, s, 1000, 1000)
	layers := benchLayers(b, s, repoID)
	var next atomic.Int64
	for _, tag := range []string{"same", "distinct"} {
		b.Run("tag="+tag, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					m := metadata.Manifest{RepoID: repoID, Digest: fmt.Sprintf("sha256:%064x", 1<<40+i),
						MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1234,
						ObjectKey: fmt.Sprintf("manifests/%s/%d", repoID, i), PushedAt: time.Now()}
					t := "latest"
					if tag == "distinct" {
						t = fmt.Sprintf("t%d", i)
					}
					_, err := s.PutManifest(context.Background(), metadata.PutManifest{Manifest: m, Refs: layers, Tag: t})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkListTagsPage reads a page of 1,000 tags at a random offset of
// 100,000.
func BenchmarkListTagsPage(b *testing.B) {
	s := benchStore(b, benchDSN(b), 4)
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
