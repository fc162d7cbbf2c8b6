package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	rows, err := s.pool.Query(ctx, `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at FROM blobs b
		WHERE (b.domain, b.digest) > ($1, $2) AND b.created_at < $3 AND `+blobUnreferenced+`
		ORDER BY b.domain, b.digest LIMIT $4`, afterDomain, afterDigest, micros(before), sqlLimit(limit))
	out, err := collect(rows, err, sqlstore.ScanBlob)
	if err != nil {
		return nil, fmt.Errorf("unreferenced blobs: %w", err)
	}
	return out, nil
}

// DeleteBlobIfUnreferenced implements metadata.Store. The blob row is
// locked FOR UPDATE first: every writer that links the digest (LinkBlob,
// CommitUpload, CommitBlob) or pushes a manifest referencing it holds the
// row FOR KEY SHARE until it commits, so the lock waits for those in flight
// and the checks that follow (fresh snapshots under READ COMMITTED) see
// their links; writers that come later wait for this transaction and then
// find the row gone (commitBlob inserts it anew).
func (s *Store) DeleteBlobIfUnreferenced(ctx context.Context, domain, digest string, before time.Time) (metadata.Blob, bool, error) {
	var (
		b       metadata.Blob
		deleted bool
	)
	err := s.write(ctx, func(tx pgx.Tx) error {
		b, deleted = metadata.Blob{}, false
		var err error
		_, err = sqlstore.ScanBlob(tx.QueryRow(ctx, `SELECT `+sqlstore.BlobColumns+` FROM blobs
			WHERE domain = $1 AND digest = $2 FOR UPDATE`, domain, digest))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		b, err = sqlstore.ScanBlob(tx.QueryRow(ctx, `SELECT b.domain, b.digest, b.size, b.object_key, b.created_at FROM blobs b
			WHERE b.domain = $1 AND b.digest = $2 AND b.created_at < $3 AND `+blobUnreferenced, domain, digest, micros(before)))
		if errors.Is(err, pgx.ErrNoRows) {
			b = metadata.Blob{}
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM blobs WHERE domain = $1 AND digest = $2`, domain, digest); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if err != nil {
		return metadata.Blob{}, false, fmt.Errorf("delete unreferenced blob %s/%s: %w", domain, digest, notFound(err))
	}
	return b, deleted, nil
}

// StaleUploads implements metadata.Store.
func (s *Store) StaleUploads(ctx context.Context, before time.Time, afterID string, limit int) ([]metadata.Upload, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sqlstore.UploadColumns+` FROM uploads WHERE updated_at < $1 AND id > $2 ORDER BY id LIMIT $3`,
		micros(before), afterID, sqlLimit(limit))
	out, err := collect(rows, err, scanUpload)
	if err != nil {
		return nil, fmt.Errorf("stale uploads: %w", err)
	}
	return out, nil
}

// DeleteStaleUpload implements metadata.Store: one DELETE whose WHERE is
// re-evaluated against the committed row if it waited for an UpdateUpload.
func (s *Store) DeleteStaleUpload(ctx context.Context, id string, before time.Time) (metadata.Upload, bool, error) {
	var u metadata.Upload
	err := retry(ctx, func() error {
		var err error
		u, err = scanUpload(s.pool.QueryRow(ctx, `DELETE FROM uploads WHERE id = $1 AND updated_at < $2 RETURNING `+sqlstore.UploadColumns,
			id, micros(before)))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return metadata.Upload{}, false, nil
	}
	if err != nil {
		return metadata.Upload{}, false, fmt.Errorf("delete stale upload %s: %w", id, notFound(err))
	}
	return u, true, nil
}

// ObjectKeys implements metadata.Store, from one snapshot.
func (s *Store) ObjectKeys(ctx context.Context, fn func(string) error) error {
	return s.inTx(ctx, snapshot, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT object_key, NULL::text FROM blobs
			UNION ALL SELECT object_key, NULL FROM manifests
			UNION ALL SELECT NULL, parts FROM uploads`)
		if err != nil {
			return fmt.Errorf("object keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var key, parts *string
			if err := rows.Scan(&key, &parts); err != nil {
				return fmt.Errorf("object keys: %w", err)
			}
			if key != nil {
				if err := fn(*key); err != nil {
					return err
				}
				continue
			}
			if parts == nil {
				continue
			}
			keys, err := sqlstore.PartKeys(*parts)
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
	})
}

// BlobRepositories implements metadata.Store (repo_blobs_digest index).
func (s *Store) BlobRepositories(ctx context.Context, domain, digest string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.name FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id
		WHERE rb.digest = $1 AND r.domain = $2 ORDER BY r.name LIMIT $3`, digest, domain, sqlLimit(limit))
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
	rows, err := s.pool.Query(ctx, `SELECT `+sqlstore.LinkColumns+`
		WHERE (l.repo_id, l.digest) > ($1, $2) AND l.linked_at < $3 AND `+linkUnreferenced+`
		ORDER BY l.repo_id, l.digest LIMIT $4`, afterRepo, afterDigest, micros(before), sqlLimit(limit))
	out, err := collect(rows, err, sqlstore.ScanLink)
	if err != nil {
		return nil, fmt.Errorf("unreferenced links: %w", err)
	}
	return out, nil
}

// UnlinkBlobIfUnreferenced implements metadata.Store. The link row is
// locked FOR UPDATE first: a PutManifest that checked the link holds it FOR
// KEY SHARE until it commits, and a link refresh or a manifest deletion
// (touchLinks) holds it FOR NO KEY UPDATE, so the lock waits for those in
// flight and the check that follows (a fresh snapshot under READ
// COMMITTED) sees their references and their linked_at; a PutManifest that
// comes later waits for this transaction and then finds the link gone
// (ErrBlobUnknown).
func (s *Store) UnlinkBlobIfUnreferenced(ctx context.Context, repoID, digest string, before time.Time) (metadata.Link, bool, error) {
	var (
		l       metadata.Link
		deleted bool
	)
	err := s.write(ctx, func(tx pgx.Tx) error {
		l, deleted = metadata.Link{}, false
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM repo_blobs WHERE repo_id = $1 AND digest = $2 FOR UPDATE`, repoID, digest).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		l, err = sqlstore.ScanLink(tx.QueryRow(ctx, `SELECT `+sqlstore.LinkColumns+`
			WHERE l.repo_id = $1 AND l.digest = $2 AND l.linked_at < $3 AND `+linkUnreferenced, repoID, digest, micros(before)))
		if errors.Is(err, pgx.ErrNoRows) {
			l = metadata.Link{}
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2`, repoID, digest); err != nil {
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
// referencing manifest (metadata.Store.UnreferencedLinks). The rows are
// locked in digest order, so two deletions of images sharing layers do
// not deadlock.
func touchLinks(ctx context.Context, tx pgx.Tx, repoID, manifestDigest string) error {
	_, err := tx.Exec(ctx, `UPDATE repo_blobs l SET linked_at = $4
		FROM (SELECT digest FROM repo_blobs WHERE repo_id = $1 AND digest IN
			(SELECT ref_digest FROM manifest_refs WHERE repo_id = $1 AND manifest_digest = $2 AND kind = $3)
			ORDER BY digest FOR NO KEY UPDATE) t
		WHERE l.repo_id = $1 AND l.digest = t.digest`,
		repoID, manifestDigest, int(metadata.RefBlob), nowMicros())
	return err
}
