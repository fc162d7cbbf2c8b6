package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// GetBlob returns the committed blob (domain, digest), or ErrNotFound.
func (s *Store) GetBlob(ctx context.Context, domain, digest string) (metadata.Blob, error) {
	b, err := sqlstore.ScanBlob(s.queryRow(ctx, qGetBlob, domain, digest))
	if err != nil {
		return metadata.Blob{}, fmt.Errorf("get blob %s/%s: %w", domain, digest, notFound(err))
	}
	return b, nil
}

// BlobLinked returns the blob a repository's link names (the blob of the
// repository's domain), or ErrNotFound when the digest is not linked.
func (s *Store) BlobLinked(ctx context.Context, repoID, digest string) (metadata.Blob, error) {
	b, err := sqlstore.ScanBlob(s.queryRow(ctx, qBlobLinked, repoID, digest))
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
// repository is gone.
func (s *Store) LinkBlob(ctx context.Context, repoID, domain, digest string) (metadata.Blob, error) {
	return s.LinkBlobWithin(ctx, repoID, domain, digest, metadata.Quota{})
}

// LinkBlobWithin is LinkBlob refused with a *metadata.QuotaError when the
// new link takes the repository over q's byte limit.
func (s *Store) LinkBlobWithin(ctx context.Context, repoID, domain, digest string, q metadata.Quota) (metadata.Blob, error) {
	var b metadata.Blob
	err := s.write(ctx, func(tx *sql.Tx) error {
		repoDom, err := repoDomain(ctx, tx, repoID)
		if err != nil {
			return err
		}
		if repoDom != domain {
			return fmt.Errorf("%w: domain %q is not the repository's domain %q", metadata.ErrNotFound, domain, repoDom)
		}
		b, err = sqlstore.ScanBlob(tx.QueryRowContext(ctx, qGetBlob, domain, digest))
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
// period for unreferenced links starts again (UnreferencedLinks).
func link(ctx context.Context, tx *sql.Tx, repoID, digest string, q metadata.Quota) error {
	now := nowMicros()
	res, err := tx.ExecContext(ctx, `UPDATE repo_blobs SET linked_at = ? WHERE repo_id = ? AND digest = ?`, now, repoID, digest)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	res, err = tx.ExecContext(ctx, `INSERT INTO repo_blobs (repo_id, digest, linked_at)
		VALUES (?, ?, ?) ON CONFLICT (repo_id, digest) DO NOTHING`,
		repoID, digest, now)
	if err != nil || q.MaxBytes <= 0 {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	return checkQuota(ctx, tx, repoID, metadata.Quota{MaxBytes: q.MaxBytes})
}

// UnlinkBlob removes a repository's link; ErrNotFound if not linked. It
// does not look at manifests: like the OCI blob DELETE it is the caller's
// decision, and the blob row stays for GC.
func (s *Store) UnlinkBlob(ctx context.Context, repoID, digest string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM repo_blobs WHERE repo_id = ? AND digest = ?`, repoID, digest)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("unlink blob %s from %s: %w", digest, repoID, err)
	}
	return nil
}

// CommitUpload deletes the session, stores b unless its (domain, digest)
// exists, and links the digest to the session's repository, in one
// transaction. b.Domain must be the session's domain.
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		var repoID, domain string
		err := tx.QueryRowContext(ctx, `SELECT repo_id, domain FROM uploads WHERE id = ?`, uploadID).
			Scan(&repoID, &domain)
		if err != nil {
			return notFound(err)
		}
		if b.Domain != domain {
			return fmt.Errorf("blob domain %q is not the upload's domain %q", b.Domain, domain)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, uploadID); err != nil {
			return err
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		domain, err := repoDomain(ctx, tx, repoID)
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

func commitBlob(ctx context.Context, tx *sql.Tx, repoID string, b metadata.Blob, q metadata.Quota) (metadata.Blob, bool, error) {
	if b.Digest == "" || b.ObjectKey == "" {
		return metadata.Blob{}, false, errors.New("blob digest and object key are required")
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO blobs (`+sqlstore.BlobColumns+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (domain, digest) DO NOTHING`,
		b.Domain, b.Digest, b.Size, b.ObjectKey, micros(b.CreatedAt))
	if err != nil {
		return metadata.Blob{}, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return metadata.Blob{}, false, err
	}
	stored, err := sqlstore.ScanBlob(tx.QueryRowContext(ctx, qGetBlob, b.Domain, b.Digest))
	if err != nil {
		return metadata.Blob{}, false, err
	}
	if err := link(ctx, tx, repoID, b.Digest, q); err != nil {
		return metadata.Blob{}, false, err
	}
	return stored, n == 1, nil
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		domain, err := repoDomain(ctx, tx, u.RepoID)
		if err != nil {
			return err
		}
		if u.Domain != domain {
			return fmt.Errorf("upload domain %q is not the repository's domain %q", u.Domain, domain)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO uploads (`+sqlstore.UploadColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
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
	u, err := sqlstore.ScanUpload(s.queryRow(ctx, qGetUpload, id))
	if err != nil {
		return metadata.Upload{}, fmt.Errorf("get upload %s: %w", id, notFound(err))
	}
	return u, nil
}

// UpdateUpload replaces Size, Parts, HashState and UpdatedAt if the stored
// Size is expectedSize (compare-and-set); ErrConflict otherwise, ErrNotFound
// if the session is gone.
func (s *Store) UpdateUpload(ctx context.Context, u metadata.Upload, expectedSize int64) error {
	parts, err := sqlstore.EncodeParts(u.Parts)
	if err != nil {
		return fmt.Errorf("update upload %s: %w", u.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uploads SET size = ?, parts = ?, hash_state = ?, updated_at = ?
			WHERE id = ? AND size = ?`,
			u.Size, parts, u.HashState, micros(u.UpdatedAt), u.ID, expectedSize)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var size int64
		err = tx.QueryRowContext(ctx, `SELECT size FROM uploads WHERE id = ?`, u.ID).Scan(&size)
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = sqlstore.ScanUpload(tx.QueryRowContext(ctx, qGetUpload, id))
		if err != nil {
			return notFound(err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return metadata.Upload{}, fmt.Errorf("delete upload %s: %w", id, err)
	}
	return u, nil
}

// mustAffect returns ErrNotFound unless the statement changed a row.
func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return metadata.ErrNotFound
	}
	return nil
}
