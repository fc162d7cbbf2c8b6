package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// blobUnreferenced is the condition, on a blobs row b, that no repository
// of its domain links it and no manifest of its domain references it.
const blobUnreferenced = `NOT EXISTS (SELECT 1 FROM repo_blobs l JOIN repositories r ON r.id = l.repo_id
		WHERE l.digest = b.digest AND r.domain = b.domain)
	AND NOT EXISTS (SELECT 1 FROM manifest_refs f JOIN repositories r ON r.id = f.repo_id
		WHERE f.ref_digest = b.digest AND r.domain = b.domain)`

// UnreferencedBlobs implements metadata.Store.
func (s *Store) UnreferencedBlobs(ctx context.Context, before time.Time, afterDomain, afterDigest string, limit int) ([]metadata.Blob, error) {
	rows, err := s.query(ctx, `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at FROM blobs b
		WHERE (b.domain, b.digest) > (?, ?) AND b.created_at < ? AND `+blobUnreferenced+`
		ORDER BY b.domain, b.digest LIMIT ?`, afterDomain, afterDigest, micros(before), sqlLimit(limit))
	out, err := collect(rows, err, sqlstore.ScanBlob)
	if err != nil {
		return nil, fmt.Errorf("unreferenced blobs: %w", err)
	}
	return out, nil
}

// DeleteBlobIfUnreferenced implements metadata.Store. The one writer
// connection serializes it with every link and push.
func (s *Store) DeleteBlobIfUnreferenced(ctx context.Context, domain, digest string, before time.Time) (metadata.Blob, bool, error) {
	var (
		b       metadata.Blob
		deleted bool
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		b, err = sqlstore.ScanBlob(tx.QueryRowContext(ctx, `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at FROM blobs b
			WHERE b.domain = ? AND b.digest = ? AND b.created_at < ? AND `+blobUnreferenced, domain, digest, micros(before)))
		if errors.Is(err, sql.ErrNoRows) {
			b = metadata.Blob{}
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE domain = ? AND digest = ?`, domain, digest); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if err != nil {
		return metadata.Blob{}, false, fmt.Errorf("delete unreferenced blob %s/%s: %w", domain, digest, err)
	}
	return b, deleted, nil
}

// StaleUploads implements metadata.Store.
func (s *Store) StaleUploads(ctx context.Context, before time.Time, afterID string, limit int) ([]metadata.Upload, error) {
	rows, err := s.query(ctx, `SELECT `+sqlstore.UploadColumns+` FROM uploads WHERE updated_at < ? AND id > ? ORDER BY id LIMIT ?`,
		micros(before), afterID, sqlLimit(limit))
	out, err := collect(rows, err, sqlstore.ScanUpload)
	if err != nil {
		return nil, fmt.Errorf("stale uploads: %w", err)
	}
	return out, nil
}

// DeleteStaleUpload implements metadata.Store.
func (s *Store) DeleteStaleUpload(ctx context.Context, id string, before time.Time) (metadata.Upload, bool, error) {
	var (
		u       metadata.Upload
		deleted bool
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = sqlstore.ScanUpload(tx.QueryRowContext(ctx, `SELECT `+sqlstore.UploadColumns+` FROM uploads WHERE id = ? AND updated_at < ?`, id, micros(before)))
		if errors.Is(err, sql.ErrNoRows) {
			u = metadata.Upload{}
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, id); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if err != nil {
		return metadata.Upload{}, false, fmt.Errorf("delete stale upload %s: %w", id, err)
	}
	return u, deleted, nil
}

// ObjectKeys implements metadata.Store, from one read transaction.
func (s *Store) ObjectKeys(ctx context.Context, fn func(string) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("object keys: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT object_key, NULL FROM blobs
		UNION ALL SELECT object_key, NULL FROM manifests
		UNION ALL SELECT NULL, parts FROM uploads`)
	if err != nil {
		return fmt.Errorf("object keys: %w", err)
	}
	// Not eachRow: fn's errors go back unwrapped.
	defer rows.Close()
	for rows.Next() {
		var key, parts sql.NullString
		if err := rows.Scan(&key, &parts); err != nil {
			return fmt.Errorf("object keys: %w", err)
		}
		if key.Valid {
			if err := fn(key.String); err != nil {
				return err
			}
			continue
		}
		keys, err := sqlstore.PartKeys(parts.String)
		if err != nil {
			return fmt.Errorf("object keys: %w", err)
		}
		for _, k := range keys {
			if err := fn(k); err != nil {
				return err
			}
		}
	}
	return rows.Err()
}

// BlobRepositories implements metadata.Store (repo_blobs_digest index).
func (s *Store) BlobRepositories(ctx context.Context, domain, digest string, limit int) ([]string, error) {
	rows, err := s.query(ctx, `SELECT r.name FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id
		WHERE rb.digest = ? AND r.domain = ? ORDER BY r.name LIMIT ?`, digest, domain, sqlLimit(limit))
	out, err := collect(rows, err, sqlstore.ScanString)
	if err != nil {
		return nil, fmt.Errorf("repositories linking %s: %w", digest, err)
	}
	return out, nil
}

// linkUnreferenced is the condition, on a repo_blobs row l, that no
// manifest of its repository references the digest (manifest_refs_ref).
const linkUnreferenced = `NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.repo_id = l.repo_id AND f.ref_digest = l.digest)`

// UnreferencedLinks implements metadata.Store.
func (s *Store) UnreferencedLinks(ctx context.Context, before time.Time, afterRepo, afterDigest string, limit int) ([]metadata.Link, error) {
	rows, err := s.query(ctx, `SELECT `+sqlstore.LinkColumns+`
		WHERE (l.repo_id, l.digest) > (?, ?) AND l.linked_at < ? AND `+linkUnreferenced+`
		ORDER BY l.repo_id, l.digest LIMIT ?`, afterRepo, afterDigest, micros(before), sqlLimit(limit))
	out, err := collect(rows, err, sqlstore.ScanLink)
	if err != nil {
		return nil, fmt.Errorf("unreferenced links: %w", err)
	}
	return out, nil
}

// UnlinkBlobIfUnreferenced implements metadata.Store. The one writer
// connection serializes it with every PutManifest, link and manifest
// deletion.
func (s *Store) UnlinkBlobIfUnreferenced(ctx context.Context, repoID, digest string, before time.Time) (metadata.Link, bool, error) {
	var (
		l       metadata.Link
		deleted bool
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		l, deleted = metadata.Link{}, false
		var err error
		l, err = sqlstore.ScanLink(tx.QueryRowContext(ctx, `SELECT `+sqlstore.LinkColumns+`
			WHERE l.repo_id = ? AND l.digest = ? AND l.linked_at < ? AND `+linkUnreferenced, repoID, digest, micros(before)))
		if errors.Is(err, sql.ErrNoRows) {
			l = metadata.Link{}
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM repo_blobs WHERE repo_id = ? AND digest = ?`, repoID, digest); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if err != nil {
		return metadata.Link{}, false, fmt.Errorf("unlink unreferenced blob %s from %s: %w", digest, repoID, err)
	}
	return l, deleted, nil
}

// touchLinks sets linked_at of the repository's links to the blobs the
// manifest references to now, before the manifest is deleted: the grace
// period of GC's unlinking counts from the moment a link lost a
// referencing manifest (metadata.Store.UnreferencedLinks).
func touchLinks(ctx context.Context, tx *sql.Tx, repoID, manifestDigest string) error {
	_, err := tx.ExecContext(ctx, `UPDATE repo_blobs SET linked_at = ? WHERE repo_id = ? AND digest IN
		(SELECT ref_digest FROM manifest_refs WHERE repo_id = ? AND manifest_digest = ? AND kind = ?)`,
		nowMicros(), repoID, repoID, manifestDigest, int(metadata.RefBlob))
	return err
}
