package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver coffer's SQLite store uses
)

// The listing benchmark's repository (listing.go) is written straight into
// the metadata store's tables: a million tags through PutManifest would be a
// million transactions, hours of fsyncs. The rows are the ones PutManifest
// writes for an image pushed with its tag (ECR's view of it: digest, media
// type, sizes, times), without manifest_refs, blob rows or objects, which
// listing never reads; so the data directory is for listing only (fsck would
// report every manifest object missing).

// listingShape is the repository: tags tags over tagged manifests (two
// tags each, a CI build number and a commit tag), plus untagged manifests
// (a tenth as many: images whose tags moved on), at random digests.
type listingShape struct {
	Tags     int `json:"tags"`
	Tagged   int `json:"tagged_images"`
	Untagged int `json:"untagged_images"`
}

func newListingShape(tags int) listingShape {
	tagged := max((tags+1)/2, 1)
	return listingShape{Tags: tags, Tagged: tagged, Untagged: max(tagged/10, 1)}
}

func (s listingShape) images() int { return s.Tagged + s.Untagged }

// listingDigest is manifest i's digest; manifests 0..Tagged-1 are tagged.
func listingDigest(i int) string {
	h := sha256.Sum256([]byte("coffer-bench-listing-" + strconv.Itoa(i)))
	return "sha256:" + hex.EncodeToString(h[:])
}

// listingTag is tag j and the manifest it points at: build-NNNNNNN for the
// first Tagged tags, git-<12 hex> for the rest.
func (s listingShape) listingTag(j int) (tag string, manifest int) {
	if j < s.Tagged {
		return fmt.Sprintf("build-%07d", j), j
	}
	h := sha256.Sum256([]byte("coffer-bench-tag-" + strconv.Itoa(j)))
	return "git-" + hex.EncodeToString(h[:6]), (j - s.Tagged) % s.Tagged
}

// listingManifest is the row of manifest i: a plausible image, pushed at some
// time in the last year, pulled or not.
type listingManifest struct {
	digest     string
	size       int64
	objectKey  string
	pushedAt   int64 // µs
	pulledAt   *int64
	imageSize  int64
	updatedTag int64 // µs, the tags' updated_at
}

const listingMediaType = "application/vnd.oci.image.manifest.v1+json"

func (s listingShape) manifest(repoID string, i int, now time.Time) listingManifest {
	d := listingDigest(i)
	seed := int64(i)*7919 + 13
	pushed := now.Add(-time.Duration(seed%(365*24*3600)) * time.Second).UnixMicro()
	m := listingManifest{
		digest:     d,
		size:       800 + seed%2400,
		objectKey:  "manifests/" + repoID + "/" + d + "/bench-" + strconv.Itoa(i),
		pushedAt:   pushed,
		imageSize:  10<<20 + seed%(900<<20),
		updatedTag: pushed,
	}
	if i%2 == 0 {
		p := pushed + 3600e6
		m.pulledAt = &p
	}
	return m
}

// rows returns the manifests in digest order and the tags in tag order,
// the primary keys' orders, so that every insert appends to its B-tree.
func (s listingShape) rows(repoID string) ([]listingManifest, [][2]string) {
	now := time.Now()
	ms := make([]listingManifest, s.images())
	for i := range ms {
		ms[i] = s.manifest(repoID, i, now)
	}
	tags := make([][2]string, s.Tags)
	for j := range tags {
		t, i := s.listingTag(j)
		tags[j] = [2]string{t, ms[i].digest}
	}
	slices.SortFunc(ms, func(a, b listingManifest) int { return strings.Compare(a.digest, b.digest) })
	slices.SortFunc(tags, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return ms, tags
}

// loadSQLite writes the repository's rows into coffer's SQLite database at
// path while the server runs (WAL: its readers go on; its writer waits on
// the busy timeout), in transactions of 50,000 rows, and checkpoints.
func loadSQLite(ctx context.Context, path, repoName string, s listingShape) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var repoID string
	if err := db.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, repoName).Scan(&repoID); err != nil {
		return fmt.Errorf("repository %s: %w", repoName, err)
	}
	ms, tags := s.rows(repoID)
	const perStmt, perTx = 500, 50_000
	insert := func(table, cols string, ncols, n int, args func(i int) []any) error {
		for lo := 0; lo < n; lo += perTx {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			for b := lo; b < min(lo+perTx, n); b += perStmt {
				hi := min(b+perStmt, lo+perTx, n)
				row := "(" + strings.TrimSuffix(strings.Repeat("?,", ncols), ",") + ")"
				q := "INSERT INTO " + table + " (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", hi-b), ",")
				vals := make([]any, 0, (hi-b)*ncols)
				for i := b; i < hi; i++ {
					vals = append(vals, args(i)...)
				}
				if _, err := tx.ExecContext(ctx, q, vals...); err != nil {
					tx.Rollback()
					return fmt.Errorf("insert into %s: %w", table, err)
				}
			}
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		return nil
	}
	err = insert("manifests", "repo_id, digest, media_type, size, object_key, pushed_at, last_pulled_at, image_size", 8, len(ms), func(i int) []any {
		m := ms[i]
		var pulled any
		if m.pulledAt != nil {
			pulled = *m.pulledAt
		}
		return []any{repoID, m.digest, listingMediaType, m.size, m.objectKey, m.pushedAt, pulled, m.imageSize}
	})
	if err != nil {
		return err
	}
	now := time.Now().UnixMicro()
	err = insert("tags", "repo_id, tag, digest, updated_at", 4, len(tags), func(i int) []any {
		return []any{repoID, tags[i][0], tags[i][1], now}
	})
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// loadPostgres writes the repository's rows into coffer's PostgreSQL
// database with COPY, foreign-key triggers off for the session (the rows
// are consistent by construction), then VACUUM ANALYZEs the two tables:
// what autovacuum does on its own a little after a bulk insert, and what
// lets a page be an index-only scan.
func loadPostgres(ctx context.Context, dsn, repoName string, s listingShape) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var repoID string
	if err := conn.QueryRow(ctx, `SELECT id FROM repositories WHERE name = $1`, repoName).Scan(&repoID); err != nil {
		return fmt.Errorf("repository %s: %w", repoName, err)
	}
	ms, tags := s.rows(repoID)
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		return err
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"manifests"},
		[]string{"repo_id", "digest", "media_type", "size", "object_key", "pushed_at", "last_pulled_at", "image_size"},
		pgx.CopyFromSlice(len(ms), func(i int) ([]any, error) {
			m := ms[i]
			return []any{repoID, m.digest, listingMediaType, m.size, m.objectKey, m.pushedAt, m.pulledAt, m.imageSize}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy manifests: %w", err)
	}
	now := time.Now().UnixMicro()
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"tags"}, []string{"repo_id", "tag", "digest", "updated_at"},
		pgx.CopyFromSlice(len(tags), func(i int) ([]any, error) {
			return []any{repoID, tags[i][0], tags[i][1], now}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy tags: %w", err)
	}
	if _, err := conn.Exec(ctx, `RESET session_replication_role`); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `VACUUM ANALYZE manifests, tags`)
	return err
}
