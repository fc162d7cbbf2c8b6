package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// GetBlob returns the committed blob (domain, digest), or ErrNotFound.
func (s *Store) GetBlob(ctx context.Context, domain, digest string) (metadata.Blob, error) {
	b, err := sqlstore.ScanBlob(s.pool.QueryRow(ctx, `SELECT `+sqlstore.BlobColumns+` FROM blobs WHERE domain = $1 AND digest = $2`,
		domain, digest))
	if err != nil {
		return metadata.Blob{}, fmt.Errorf("get blob %s/%s: %w", domain, digest, notFound(err))
	}
	return b, nil
}

// BlobLinked returns the blob a repository's link names (the blob of the
// repository's domain), or ErrNotFound when the digest is not linked.
func (s *Store) BlobLinked(ctx context.Context, repoID, digest string) (metadata.Blob, error) {
	b, err := sqlstore.ScanBlob(s.pool.QueryRow(ctx, `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at
		FROM repo_blobs l
		JOIN repositories r ON r.id = l.repo_id
		JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest
		WHERE l.repo_id = $1 AND l.digest = $2`, repoID, digest))
	if err != nil {
		return metadata.Blob{}, fmt.Errorf("blob %s linked to %s: %w", digest, repoID, notFound(err))
	}
	return b, nil
}

// LinkBlob links an existing blob of the repository's domain to the
// repository; linking twice is a no-op. ErrNotFound if the domain lacks the
// blob, or if domain is not the repository's domain (a link always means
// "this digest in my domain", so a foreign blob cannot be linked: the caller
// must re-encrypt it with CommitBlob). ErrRepositoryUnknown if the
// repository is gone. The repository row and the blob row are held FOR KEY
// SHARE until the link commits, so neither can be deleted in between.
func (s *Store) LinkBlob(ctx context.Context, repoID, domain, digest string) (metadata.Blob, error) {
	return s.LinkBlobWithin(ctx, repoID, domain, digest, metadata.Quota{})
}

// LinkBlobWithin is LinkBlob refused with a *metadata.QuotaError when the
// new link takes the repository over q's byte limit.
func (s *Store) LinkBlobWithin(ctx context.Context, repoID, domain, digest string, q metadata.Quota) (metadata.Blob, error) {
	var b metadata.Blob
	err := s.write(ctx, func(tx pgx.Tx) error {
		repoDom, err := lockRepositoryFor(ctx, tx, repoID, q)
		if err != nil {
			return err
		}
		if repoDom != domain {
			return fmt.Errorf("%w: domain %q is not the repository's domain %q", metadata.ErrNotFound, domain, repoDom)
		}
		b, err = sqlstore.ScanBlob(tx.QueryRow(ctx, `SELECT `+sqlstore.BlobColumns+` FROM blobs
			WHERE domain = $1 AND digest = $2 FOR KEY SHARE`, domain, digest))
		if err != nil {
			return notFound(err)
		}
		return link(ctx, tx, repoID, digest, q)
	})
	if err != nil {
		return metadata.Blob{}, fmt.Errorf("link blob %s/%s to %s: %w", domain, digest, repoID, err)
	}
	return b, nil
}

// link links digest to the repository unless it is linked already; a new
// link must keep the repository within q's byte limit (a blob adds no
// image). An existing link gets its linked_at refreshed: a push that
// uploads or mounts the blob again is about to reference it, so GC's grace
// period for unreferenced links starts again (UnreferencedLinks). The
// UPDATE takes FOR NO KEY UPDATE, which a PutManifest's FOR KEY SHARE of
// the link does not wait for.
func link(ctx context.Context, tx pgx.Tx, repoID, digest string, q metadata.Quota) error {
	now := nowMicros()
	res, err := tx.Exec(ctx, `UPDATE repo_blobs SET linked_at = $3 WHERE repo_id = $1 AND digest = $2`, repoID, digest, now)
	if err != nil || res.RowsAffected() == 1 {
		return err
	}
	res, err = tx.Exec(ctx, `INSERT INTO repo_blobs (repo_id, digest, linked_at)
		VALUES ($1, $2, $3) ON CONFLICT (repo_id, digest) DO NOTHING`,
		repoID, digest, now)
	if err != nil || q.MaxBytes <= 0 || res.RowsAffected() == 0 {
		return err
	}
	return checkQuota(ctx, tx, repoID, metadata.Quota{MaxBytes: q.MaxBytes})
}

// UnlinkBlob removes a repository's link; ErrNotFound if not linked. It
// does not look at manifests: like the OCI blob DELETE it is the caller's
// decision, and the blob row stays for GC. A PutManifest that checked the
// link holds it FOR KEY SHARE, so the DELETE waits for that push to commit.
func (s *Store) UnlinkBlob(ctx context.Context, repoID, digest string) error {
	err := retry(ctx, func() error {
		res, err := s.pool.Exec(ctx, `DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2`, repoID, digest)
		if err == nil && res.RowsAffected() == 0 {
			err = metadata.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("unlink blob %s from %s: %w", digest, repoID, err)
	}
	return nil
}

// CommitUpload deletes the session, stores b unless its (domain, digest)
// exists, and links the digest to the session's repository, in one
// transaction. b.Domain must be the session's domain.
//
// Concurrent commits of one session: the DELETE locks the row, the second
// waits and then finds it gone (ErrNotFound). Concurrent commits of one
// digest: the blob INSERT ... ON CONFLICT DO NOTHING of the second waits for
// the first to commit, then does nothing and reads the winner's row.
func (s *Store) CommitUpload(ctx context.Context, uploadID string, b metadata.Blob) (metadata.Blob, bool, error) {
	return s.CommitUploadWithin(ctx, uploadID, b, metadata.Quota{})
}

// CommitUploadWithin is CommitUpload refused with a *metadata.QuotaError,
// the session left as it was, when the new link takes the repository over
// q's byte limit.
func (s *Store) CommitUploadWithin(ctx context.Context, uploadID string, b metadata.Blob, q metadata.Quota) (metadata.Blob, bool, error) {
	var (
		stored   metadata.Blob
		inserted bool
	)
	err := s.write(ctx, func(tx pgx.Tx) error {
		var repoID, domain string
		err := tx.QueryRow(ctx, `SELECT repo_id, domain FROM uploads WHERE id = $1`, uploadID).Scan(&repoID, &domain)
		if err != nil {
			return notFound(err)
		}
		if b.Domain != domain {
			return fmt.Errorf("blob domain %q is not the upload's domain %q", b.Domain, domain)
		}
		// Repository first (lock order), then the session.
		if _, err := lockRepositoryFor(ctx, tx, repoID, q); errors.Is(err, metadata.ErrRepositoryUnknown) {
			return metadata.ErrNotFound // deleted with its repository meanwhile
		} else if err != nil {
			return err
		}
		del, err := tx.Exec(ctx, `DELETE FROM uploads WHERE id = $1`, uploadID)
		if err != nil {
			return err
		}
		if del.RowsAffected() == 0 {
			return metadata.ErrNotFound // committed or deleted concurrently
		}
		stored, inserted, err = commitBlob(ctx, tx, repoID, b, q)
		return err
	})
	if err != nil {
		return metadata.Blob{}, false, fmt.Errorf("commit upload %s as %s: %w", uploadID, b.Digest, err)
	}
	return stored, inserted, nil
}

// CommitBlob stores b unless its (domain, digest) exists and links it to
// the repository; b.Domain must be the repository's domain.
// ErrRepositoryUnknown if the repository is gone.
func (s *Store) CommitBlob(ctx context.Context, repoID string, b metadata.Blob) (metadata.Blob, bool, error) {
	return s.CommitBlobWithin(ctx, repoID, b, metadata.Quota{})
}

// CommitBlobWithin is CommitBlob refused with a *metadata.QuotaError when
// the new link takes the repository over q's byte limit.
func (s *Store) CommitBlobWithin(ctx context.Context, repoID string, b metadata.Blob, q metadata.Quota) (metadata.Blob, bool, error) {
	var (
		stored   metadata.Blob
		inserted bool
	)
	err := s.write(ctx, func(tx pgx.Tx) error {
		domain, err := lockRepositoryFor(ctx, tx, repoID, q)
		if err != nil {
			return err
		}
		if b.Domain != domain {
			return fmt.Errorf("blob domain %q is not the repository's domain %q", b.Domain, domain)
		}
		stored, inserted, err = commitBlob(ctx, tx, repoID, b, q)
		return err
	})
	if err != nil {
		return metadata.Blob{}, false, fmt.Errorf("commit blob %s to %s: %w", b.Digest, repoID, err)
	}
	return stored, inserted, nil
}

// commitBlob inserts b unless it exists, holds the stored row FOR KEY SHARE
// and links it. The loop covers a row deleted between a conflicting INSERT
// and the locking read (a concurrent delete of the repository owning the
// domain, or GC): the INSERT is then simply tried again.
func commitBlob(ctx context.Context, tx pgx.Tx, repoID string, b metadata.Blob, q metadata.Quota) (metadata.Blob, bool, error) {
	if b.Digest == "" || b.ObjectKey == "" {
		return metadata.Blob{}, false, errors.New("blob digest and object key are required")
	}
	for range 3 {
		ins, err := tx.Exec(ctx, `INSERT INTO blobs (`+sqlstore.BlobColumns+`) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (domain, digest) DO NOTHING`,
			b.Domain, b.Digest, b.Size, b.ObjectKey, micros(b.CreatedAt))
		if err != nil {
			return metadata.Blob{}, false, err
		}
		stored, err := sqlstore.ScanBlob(tx.QueryRow(ctx, `SELECT `+sqlstore.BlobColumns+` FROM blobs
			WHERE domain = $1 AND digest = $2 FOR KEY SHARE`, b.Domain, b.Digest))
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return metadata.Blob{}, false, err
		}
		if err := link(ctx, tx, repoID, b.Digest, q); err != nil {
			return metadata.Blob{}, false, err
		}
		return stored, ins.RowsAffected() == 1, nil
	}
	return metadata.Blob{}, false, fmt.Errorf("%w: blob %s deleted while being committed", metadata.ErrConflict, b.Digest)
}

// scanUpload is sqlstore.ScanUpload with an empty hash_state (bytea reads
// back as an empty, non-nil slice) read as nil.
func scanUpload(sc scanner) (metadata.Upload, error) {
	u, err := sqlstore.ScanUpload(sc)
	if len(u.HashState) == 0 {
		u.HashState = nil
	}
	return u, err
}

// CreateUpload inserts a new session. ErrExists if the ID is taken,
// ErrRepositoryUnknown if the repository is gone; u.Domain must be the
// repository's domain.
func (s *Store) CreateUpload(ctx context.Context, u metadata.Upload) error {
	if u.ID == "" {
		return errors.New("create upload: ID is required")
	}
	parts, err := sqlstore.EncodeParts(u.Parts)
	if err != nil {
		return fmt.Errorf("create upload %s: %w", u.ID, err)
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		domain, err := lockRepository(ctx, tx, u.RepoID)
		if err != nil {
			return err
		}
		if u.Domain != domain {
			return fmt.Errorf("upload domain %q is not the repository's domain %q", u.Domain, domain)
		}
		_, err = tx.Exec(ctx, `INSERT INTO uploads (`+sqlstore.UploadColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			u.ID, u.RepoID, u.Domain, u.Size, parts, u.HashState, micros(u.StartedAt), micros(u.UpdatedAt))
		if isUnique(err) {
			return metadata.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create upload %s: %w", u.ID, err)
	}
	return nil
}

// GetUpload returns a session or ErrNotFound.
func (s *Store) GetUpload(ctx context.Context, id string) (metadata.Upload, error) {
	u, err := scanUpload(s.pool.QueryRow(ctx, `SELECT `+sqlstore.UploadColumns+` FROM uploads WHERE id = $1`, id))
	if err != nil {
		return metadata.Upload{}, fmt.Errorf("get upload %s: %w", id, notFound(err))
	}
	return u, nil
}

// UpdateUpload replaces Size, Parts, HashState and UpdatedAt if the stored
// Size is expectedSize (compare-and-set); ErrConflict otherwise, ErrNotFound
// if the session is gone. The compare-and-set is the UPDATE's WHERE clause:
// an UPDATE that waited for a concurrent one re-evaluates it against the
// row that one committed, so exactly one update per size wins.
func (s *Store) UpdateUpload(ctx context.Context, u metadata.Upload, expectedSize int64) error {
	parts, err := sqlstore.EncodeParts(u.Parts)
	if err != nil {
		return fmt.Errorf("update upload %s: %w", u.ID, err)
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE uploads SET size = $1, parts = $2, hash_state = $3, updated_at = $4
			WHERE id = $5 AND size = $6`,
			u.Size, parts, u.HashState, micros(u.UpdatedAt), u.ID, expectedSize)
		if err != nil || res.RowsAffected() == 1 {
			return err
		}
		var size int64
		err = tx.QueryRow(ctx, `SELECT size FROM uploads WHERE id = $1`, u.ID).Scan(&size)
		if err != nil {
			return notFound(err)
		}
		return fmt.Errorf("%w: size is %d, expected %d", metadata.ErrConflict, size, expectedSize)
	})
	if err != nil {
		return fmt.Errorf("update upload %s: %w", u.ID, err)
	}
	return nil
}

// DeleteUpload removes a session and returns it; ErrNotFound if absent.
func (s *Store) DeleteUpload(ctx context.Context, id string) (metadata.Upload, error) {
	var u metadata.Upload
	err := retry(ctx, func() error {
		var err error
		u, err = scanUpload(s.pool.QueryRow(ctx, `DELETE FROM uploads WHERE id = $1 RETURNING `+sqlstore.UploadColumns, id))
		return err
	})
	if err != nil {
		return metadata.Upload{}, fmt.Errorf("delete upload %s: %w", id, notFound(err))
	}
	return u, nil
}
