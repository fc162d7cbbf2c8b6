package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
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
	if err != nil {
		return nil, fmt.Errorf("unreferenced blobs: %w", err)
	}
	defer rows.Close()
	var out []metadata.Blob
	for rows.Next() {
		b, err := scanBlob(rows)
		if err != nil {
			return nil, fmt.Errorf("unreferenced blobs: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
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
		b, err = scanBlob(tx.QueryRowContext(ctx, `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at FROM blobs b
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
	rows, err := s.query(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE updated_at < ? AND id > ? ORDER BY id LIMIT ?`,
		micros(before), afterID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("stale uploads: %w", err)
	}
	defer rows.Close()
	var out []metadata.Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, fmt.Errorf("stale uploads: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
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
		u, err = scanUpload(tx.QueryRowContext(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = ? AND updated_at < ?`, id, micros(before)))
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
		var ps []metadata.Part
		if err := json.Unmarshal([]byte(parts.String), &ps); err != nil {
			return fmt.Errorf("object keys: decode parts: %w", err)
		}
		for _, p := range ps {
			if err := fn(p.ObjectKey); err != nil {
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
	if err != nil {
		return nil, fmt.Errorf("repositories linking %s: %w", digest, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("repositories linking %s: %w", digest, err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("repositories linking %s: %w", digest, err)
	}
	return out, nil
}
