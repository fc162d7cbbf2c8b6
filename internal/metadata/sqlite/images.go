package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
)

// The ECR image queries. A page is one statement: the inner SELECT picks
// the page of manifests (a range scan of the covering index
// manifests_images; with a tag filter, at most a window of it, each row
// probing tags_digest), the outer join adds their tags, so page and tags
// are one snapshot. They select imageColumns only, so that no row of the
// table is read.
const (
	imageColumns = `m.repo_id, m.digest, m.media_type, m.size, m.artifact_type, m.subject,
		m.pushed_at, m.last_pulled_at, m.image_size`
	imagePage = `SELECT repo_id, digest, media_type, size, artifact_type, subject, pushed_at, last_pulled_at, image_size
		FROM manifests x WHERE x.repo_id = ? AND x.digest >= ?`
	qListImagesAny = `SELECT ` + imageColumns + `, t.tag
		FROM (` + imagePage + ` ORDER BY x.digest LIMIT ?) m
		LEFT JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest
		ORDER BY m.digest, t.tag`
	// The filtered queries take (repo, from, window, limit).
	qListImagesTagged = `SELECT ` + imageColumns + `, t.tag
		FROM (SELECT * FROM (` + imagePage + ` ORDER BY x.digest LIMIT ?) w
			WHERE EXISTS (SELECT 1 FROM tags y WHERE y.repo_id = w.repo_id AND y.digest = w.digest)
			ORDER BY w.digest LIMIT ?) m
		JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest
		ORDER BY m.digest, t.tag`
	qListImagesUntagged = `SELECT ` + imageColumns + `, NULL
		FROM (SELECT * FROM (` + imagePage + ` ORDER BY x.digest LIMIT ?) w
			WHERE NOT EXISTS (SELECT 1 FROM tags y WHERE y.repo_id = w.repo_id AND y.digest = w.digest)
			ORDER BY w.digest LIMIT ?) m
		ORDER BY m.digest`
	// qImageWindowEnd is the last digest of a window: (repo, from, window-1).
	qImageWindowEnd = `SELECT digest FROM manifests WHERE repo_id = ? AND digest >= ? ORDER BY digest LIMIT 1 OFFSET ?`
	qImageTags      = `SELECT tag FROM tags WHERE repo_id = ? AND digest = ? ORDER BY tag`
	qBlobReferenced = `SELECT 1 FROM manifest_refs WHERE repo_id = ? AND ref_digest = ? AND kind = 1 LIMIT 1`
)

// scanImage reads imageColumns (and extra).
func scanImage(sc scanner, extra ...any) (metadata.Manifest, error) {
	var (
		m       metadata.Manifest
		subject sql.NullString
		pushed  int64
		pulled  sql.NullInt64
	)
	dest := append([]any{&m.RepoID, &m.Digest, &m.MediaType, &m.Size, &m.ArtifactType, &subject,
		&pushed, &pulled, &m.ImageSize}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return metadata.Manifest{}, err
	}
	m.Subject = subject.String
	m.PushedAt = fromMicros(pushed)
	m.LastPulledAt = fromNullMicros(pulled)
	return m, nil
}

func init() {
	preparedQueries = append(preparedQueries, qListImagesAny, qListImagesTagged, qListImagesUntagged,
		qImageWindowEnd, qImageTags, qBlobReferenced)
}

// ListImages implements metadata.Store. A windowed page runs in one read
// transaction, so the page and the window's end are one snapshot.
func (s *Store) ListImages(ctx context.Context, repoID string, q metadata.ImageQuery) (metadata.ImagePage, error) {
	var page metadata.ImagePage
	err := s.listImages(ctx, repoID, q, &page)
	if err != nil {
		return metadata.ImagePage{}, fmt.Errorf("list images of %s from %s: %w", repoID, q.From, err)
	}
	return page, nil
}

func (s *Store) listImages(ctx context.Context, repoID string, q metadata.ImageQuery, page *metadata.ImagePage) error {
	if q.TagStatus == "" || q.TagStatus == metadata.TagStatusAny {
		rows, err := s.query(ctx, qListImagesAny, repoID, q.From, sqlLimit(q.Limit))
		if err != nil {
			return err
		}
		page.Images, err = scanImages(rows, q.Limit)
		return err
	}
	var query string
	switch q.TagStatus {
	case metadata.TagStatusTagged:
		query = qListImagesTagged
	case metadata.TagStatusUntagged:
		query = qListImagesUntagged
	default:
		return fmt.Errorf("unknown tag status %q", q.TagStatus)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.StmtContext(ctx, s.stmts[query]).QueryContext(ctx, repoID, q.From, sqlLimit(q.Window), sqlLimit(q.Limit))
	if err != nil {
		return err
	}
	if page.Images, err = scanImages(rows, q.Limit); err != nil {
		return err
	}
	if q.Window <= 0 || (q.Limit > 0 && len(page.Images) >= q.Limit) {
		return nil
	}
	err = tx.StmtContext(ctx, s.stmts[qImageWindowEnd]).QueryRowContext(ctx, repoID, q.From, q.Window-1).Scan(&page.ScannedTo)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // the window reached the end of the repository
	}
	return err
}

// scanImages reads image rows with a tag column, one row per tag.
func scanImages(rows *sql.Rows, limit int) ([]metadata.Manifest, error) {
	defer rows.Close()
	var out []metadata.Manifest
	if limit > 0 {
		out = make([]metadata.Manifest, 0, min(limit, 1024))
	}
	for rows.Next() {
		var tag sql.NullString
		m, err := scanImage(rows, &tag)
		if err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].Digest != m.Digest {
			out = append(out, m)
		}
		if tag.Valid {
			last := &out[len(out)-1]
			last.Tags = append(last.Tags, tag.String)
		}
	}
	return out, rows.Err()
}

// ImageTags implements metadata.Store.
func (s *Store) ImageTags(ctx context.Context, repoID, digest string) ([]string, error) {
	rows, err := s.query(ctx, qImageTags, repoID, digest)
	if err != nil {
		return nil, fmt.Errorf("tags of %s in %s: %w", digest, repoID, err)
	}
	defer rows.Close()
	var tags []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("tags of %s in %s: %w", digest, repoID, err)
		}
		tags = append(tags, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tags of %s in %s: %w", digest, repoID, err)
	}
	return tags, nil
}

// BlobReferenced implements metadata.Store.
func (s *Store) BlobReferenced(ctx context.Context, repoID, digest string) (bool, error) {
	var one int
	err := s.queryRow(ctx, qBlobReferenced, repoID, digest).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("references to %s in %s: %w", digest, repoID, err)
	}
	return true, nil
}

// DeleteImage implements metadata.Store: every check and deletion runs in
// one write transaction, so a concurrent push cannot tag the manifest
// between the "no tags left" check and its deletion.
func (s *Store) DeleteImage(ctx context.Context, repoID, digest, tag string) (metadata.ImageDeletion, error) {
	var del metadata.ImageDeletion
	err := s.write(ctx, func(tx *sql.Tx) error {
		del = metadata.ImageDeletion{}
		if tag != "" {
			var cur string
			err := tx.QueryRowContext(ctx, `SELECT digest FROM tags WHERE repo_id = ? AND tag = ?`, repoID, tag).Scan(&cur)
			if err != nil {
				return notFound(err)
			}
			if digest != "" && digest != cur {
				return fmt.Errorf("%w: %q points at %s, not %s", metadata.ErrImageTagMismatch, tag, cur, digest)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM tags WHERE repo_id = ? AND tag = ?`, repoID, tag); err != nil {
				return err
			}
			del.Digest, del.Tags = cur, []string{tag}
			var one int
			err = tx.QueryRowContext(ctx, `SELECT 1 FROM tags WHERE repo_id = ? AND digest = ? LIMIT 1`, repoID, cur).Scan(&one)
			if err == nil {
				return nil // still tagged: the image stays
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if referenced, err := manifestReferenced(ctx, tx, repoID, cur); err != nil || referenced {
				return err // an index's child stays, untagged
			}
			key, err := deleteManifestRow(ctx, tx, repoID, cur)
			if err != nil {
				return err
			}
			del.ManifestDeleted, del.ObjectKey = true, key
			return nil
		}
		del.Digest = digest
		var key string
		err := tx.QueryRowContext(ctx, `SELECT object_key FROM manifests WHERE repo_id = ? AND digest = ?`,
			repoID, digest).Scan(&key)
		if err != nil {
			return notFound(err)
		}
		referenced, err := manifestReferenced(ctx, tx, repoID, digest)
		if err != nil {
			return err
		}
		if referenced {
			return fmt.Errorf("%w: %s", metadata.ErrImageReferenced, digest)
		}
		rows, err := tx.QueryContext(ctx, qImageTags, repoID, digest)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return err
			}
			del.Tags = append(del.Tags, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := deleteManifestRow(ctx, tx, repoID, digest); err != nil {
			return err
		}
		del.ManifestDeleted, del.ObjectKey = true, key
		return nil
	})
	if err != nil {
		return metadata.ImageDeletion{}, fmt.Errorf("delete image %s%s in %s: %w", digest, tagSuffix(tag), repoID, err)
	}
	return del, nil
}

// manifestReferenced reports whether another manifest of the repository
// (an index) lists digest as a child.
func manifestReferenced(ctx context.Context, tx *sql.Tx, repoID, digest string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM manifest_refs WHERE repo_id = ? AND ref_digest = ? AND kind = 2 LIMIT 1`,
		repoID, digest).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// deleteManifestRow deletes a manifest (its tags and references go by ON
// DELETE CASCADE; its blob links are touched first, see touchLinks) and
// returns its object key.
func deleteManifestRow(ctx context.Context, tx *sql.Tx, repoID, digest string) (string, error) {
	if err := touchLinks(ctx, tx, repoID, digest); err != nil {
		return "", err
	}
	var key string
	err := tx.QueryRowContext(ctx, `DELETE FROM manifests WHERE repo_id = ? AND digest = ? RETURNING object_key`,
		repoID, digest).Scan(&key)
	if err != nil {
		return "", notFound(err)
	}
	return key, nil
}

func tagSuffix(tag string) string {
	if tag == "" {
		return ""
	}
	return fmt.Sprintf(" (tag %q)", tag)
}
