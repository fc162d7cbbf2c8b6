package sqlstore

import (
	"fmt"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Scanner is what a row of either driver offers.
type Scanner interface {
	Scan(dest ...any) error
}

// ScanString reads a row of one string column.
func ScanString(sc Scanner) (string, error) {
	var v string
	err := sc.Scan(&v)
	return v, err
}

// Timestamps are INTEGER (SQLite) or BIGINT (PostgreSQL) unix microseconds
// UTC in both schemas.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// BlobColumns are the columns of the blobs table ScanBlob reads.
const BlobColumns = `domain, digest, size, object_key, created_at`

// ScanBlob reads a row of BlobColumns.
func ScanBlob(sc Scanner) (metadata.Blob, error) {
	var (
		b       metadata.Blob
		created int64
	)
	if err := sc.Scan(&b.Domain, &b.Digest, &b.Size, &b.ObjectKey, &created); err != nil {
		return metadata.Blob{}, err
	}
	b.CreatedAt = fromMicros(created)
	return b, nil
}

// UploadColumns are the columns of the uploads table ScanUpload reads.
const UploadColumns = `id, repo_id, domain, size, parts, hash_state, started_at, updated_at`

// ScanUpload reads a row of UploadColumns.
func ScanUpload(sc Scanner) (metadata.Upload, error) {
	var (
		u                metadata.Upload
		parts            string
		started, updated int64
	)
	if err := sc.Scan(&u.ID, &u.RepoID, &u.Domain, &u.Size, &parts, &u.HashState, &started, &updated); err != nil {
		return metadata.Upload{}, err
	}
	var err error
	if u.Parts, err = DecodeParts(parts); err != nil {
		return metadata.Upload{}, err
	}
	u.StartedAt = fromMicros(started)
	u.UpdatedAt = fromMicros(updated)
	return u, nil
}

// RepositoryColumns are the columns of the repositories table
// ScanRepository reads.
const RepositoryColumns = `id, name, domain, encryption_type, kms_key, tag_mutability,
	tag_exclusions, scan_on_push, created_at`

// ScanRepository reads a row of RepositoryColumns.
func ScanRepository(sc Scanner) (metadata.Repository, error) {
	var (
		r          metadata.Repository
		exclusions string
		created    int64
	)
	if err := sc.Scan(&r.ID, &r.Name, &r.Domain, &r.EncryptionType, &r.KMSKey,
		&r.TagMutability, &exclusions, &r.ScanOnPush, &created); err != nil {
		return metadata.Repository{}, err
	}
	ex, err := DecodeStrings(exclusions)
	if err != nil {
		return metadata.Repository{}, fmt.Errorf("repository %s: %w", r.Name, err)
	}
	r.TagMutabilityExclusions = ex
	r.CreatedAt = fromMicros(created)
	return r, nil
}

// CheckRepositoryUpdate fails with metadata.ErrImmutableField unless next
// differs from old only in what UpdateRepository may change: the tag
// mutability, its exclusions and scan-on-push.
func CheckRepositoryUpdate(old, next metadata.Repository) error {
	if next.ID != old.ID || next.Name != old.Name || next.Domain != old.Domain ||
		next.EncryptionType != old.EncryptionType || next.KMSKey != old.KMSKey ||
		!next.CreatedAt.Equal(old.CreatedAt) {
		return fmt.Errorf("%w: only the tag mutability, its exclusions and scan-on-push can change", metadata.ErrImmutableField)
	}
	return nil
}

// LinkColumns selects the blob links (repo_blobs aliased as l) with their
// repository (r) and blob (b, missing: size 0) that ScanLink reads; a
// query goes on with its WHERE clause.
const LinkColumns = `l.repo_id, r.name, r.domain, l.digest, COALESCE(b.size, 0), l.linked_at
	FROM repo_blobs l JOIN repositories r ON r.id = l.repo_id
	LEFT JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest`

// ScanLink reads a row of LinkColumns.
func ScanLink(sc Scanner) (metadata.Link, error) {
	var (
		l      metadata.Link
		linked int64
	)
	if err := sc.Scan(&l.RepoID, &l.Repository, &l.Domain, &l.Digest, &l.Size, &linked); err != nil {
		return metadata.Link{}, err
	}
	l.LinkedAt = fromMicros(linked)
	return l, nil
}

// NewPage returns the buffer for a page of at most limit entries (limit
// <= 0: no limit, nil), its capacity capped so that a huge limit does not
// allocate up front.
func NewPage[T any](limit int) []T {
	if limit <= 0 {
		return nil
	}
	return make([]T, 0, min(limit, 1024))
}

// TaggedManifest is one row of a manifest listing joined with the tags
// (LEFT JOIN tags ... ORDER BY digest, tag): a manifest and one of its
// tags, or Tagged false for a manifest without tags.
type TaggedManifest struct {
	Manifest metadata.Manifest
	Tag      string
	Tagged   bool
}

// AppendTagged appends rows, in digest order, to page as one manifest per
// digest, whose Tags are its rows' tags in row order.
func AppendTagged(page []metadata.Manifest, rows []TaggedManifest) []metadata.Manifest {
	for _, row := range rows {
		if n := len(page); n == 0 || page[n-1].Digest != row.Manifest.Digest {
			page = append(page, row.Manifest)
		}
		if row.Tagged {
			last := &page[len(page)-1]
			last.Tags = append(last.Tags, row.Tag)
		}
	}
	return page
}
