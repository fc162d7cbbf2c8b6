package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRepositoryUsage is the cost a quota adds to each checked write
// (the usage query, run inside the write transaction) for a repository of
// n images, each with one layer of its own plus a shared one.
func BenchmarkRepositoryUsage(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, _ := openTemp(b)
			repoID := seed(b, s, n, 0)
			ctx := context.Background()
			tx, err := s.w.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().UnixMicro()
			for i := range n + 1 {
				d := fmt.Sprintf("sha256:%064x", 1<<40+i)
				if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (domain, digest, size, object_key, created_at) VALUES ('aes256', ?, 4096, ?, ?)`,
					d, "layers/aes256/"+d, now); err != nil {
					b.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES (?, ?, ?)`, repoID, d, now); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				u, err := s.RepositoryUsage(ctx, repoID)
				if err != nil || u.Images != int64(n) {
					b.Fatalf("usage = %+v, %v", u, err)
				}
			}
		})
	}
}
