package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// The ECR image queries. A page is one statement, one row per manifest
// with its tags aggregated (imageTags), so page and tags are one snapshot.
// Every page is a keyset range scan: ANY and UNTAGGED scan the covering
// index manifests_images from the bound on (UNTAGGED at most a window of
// it, each row probing tags_digest); TAGGED scans tags_digest itself, whose
// entries are the tagged digests in digest order, and looks each page entry
// up in manifests_images, so a page costs the same however rare tagged
// images are. They select imageColumns only, so that no row of the table
// is read.
const (
	imageColumns = `m.repo_id, m.digest, m.media_type, m.size, m.artifact_type, m.subject,
		m.pushed_at, m.last_pulled_at, m.image_size`
	// imageTags is a manifest's tags joined by spaces (a tag never holds
	// one), in no particular order (scanTaggedImage sorts them), NULL if none.
	imageTags = `(SELECT group_concat(t.tag, ' ') FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)`
	// (repo, from, limit)
	qListImagesAny = `SELECT ` + imageColumns + `, ` + imageTags + `
		FROM manifests m WHERE m.repo_id = ?1 AND m.digest >= ?2 ORDER BY m.digest LIMIT ?3`
	// (repo, from, limit): GROUP BY walks tags_digest in order (its
	// entries hold the tag too: the table is WITHOUT ROWID, keyed on it),
	// one row per tagged digest with its tags. CROSS JOIN keeps that walk
	// the outer loop: without statistics, SQLite would rather scan the
	// repository's manifests and probe the page.
	qListImagesTagged = `SELECT ` + imageColumns + `, d.tags
		FROM (SELECT x.digest, group_concat(x.tag, ' ') AS tags FROM tags x WHERE x.repo_id = ?1 AND x.digest >= ?2
			GROUP BY x.digest ORDER BY x.digest LIMIT ?3) d
		CROSS JOIN manifests m INDEXED BY manifests_images ON m.repo_id = ?1 AND m.digest = d.digest
		ORDER BY d.digest`
	// (repo, from, window, limit)
	qListImagesUntagged = `SELECT ` + imageColumns + `, NULL
		FROM (SELECT * FROM (SELECT repo_id, digest, media_type, size, artifact_type, subject, pushed_at, last_pulled_at, image_size
				FROM manifests x WHERE x.repo_id = ? AND x.digest >= ? ORDER BY x.digest LIMIT ?) w
			WHERE NOT EXISTS (SELECT 1 FROM tags y WHERE y.repo_id = w.repo_id AND y.digest = w.digest)
			ORDER BY w.digest LIMIT ?) m
		ORDER BY m.digest`
	// qImageWindow is the size and last digest of a window: (repo, from,
	// window); a range scan of the window, like the page's.
	qImageWindow = `SELECT count(*), max(digest) FROM
		(SELECT digest FROM manifests WHERE repo_id = ? AND digest >= ? ORDER BY digest LIMIT ?)`
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
		qImageWindow, qImageTags, qBlobReferenced)
}

// ListImages implements metadata.Store. A windowed page runs in one read
// transaction, so the page and the window's end are one snapshot. TAGGED
// pages need no window: they scan only tagged digests.
func (s *Store) ListImages(ctx context.Context, repoID string, q metadata.ImageQuery) (metadata.ImagePage, error) {
	var page metadata.ImagePage
	err := s.listImages(ctx, repoID, q, &page)
	if err != nil {
		return metadata.ImagePage{}, fmt.Errorf("list images of %s from %s: %w", repoID, q.From, err)
	}
	return page, nil
}

func (s *Store) listImages(ctx context.Context, repoID string, q metadata.ImageQuery, page *metadata.ImagePage) error {
	switch q.TagStatus {
	case "", metadata.TagStatusAny, metadata.TagStatusTagged:
		query := qListImagesAny
		if q.TagStatus == metadata.TagStatusTagged {
			query = qListImagesTagged
		}
		rows, err := s.query(ctx, query, repoID, q.From, sqlLimit(q.Limit))
		page.Images, err = appendRows(sqlstore.NewPage[metadata.Manifest](q.Limit), rows, err, scanTaggedImage)
		return err
	case metadata.TagStatusUntagged:
	default:
		return fmt.Errorf("unknown tag status %q", q.TagStatus)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.StmtContext(ctx, s.stmts[qListImagesUntagged]).QueryContext(ctx, repoID, q.From, sqlLimit(q.Window), sqlLimit(q.Limit))
	if page.Images, err = appendRows(sqlstore.NewPage[metadata.Manifest](q.Limit), rows, err, scanTaggedImage); err != nil {
		return err
	}
	if q.Window <= 0 || (q.Limit > 0 && len(page.Images) >= q.Limit) {
		return nil
	}
	var n int
	var last sql.NullString
	if err := tx.StmtContext(ctx, s.stmts[qImageWindow]).QueryRowContext(ctx, repoID, q.From, q.Window).Scan(&n, &last); err != nil {
		return err
	}
	if n == q.Window {
		page.ScannedTo = last.String
	} // else the window reached the end of the repository
	return nil
}

// scanTaggedImage reads an image row, imageColumns and its tags as one
// space-separated column (NULL: none).
func scanTaggedImage(sc scanner) (metadata.Manifest, error) {
	var tags sql.NullString
	m, err := scanImage(sc, &tags)
	if err != nil {
		return metadata.Manifest{}, err
	}
	if tags.Valid {
		m.Tags = strings.Split(tags.String, " ")
		slices.Sort(m.Tags)
	}
	return m, nil
}

// ImageTags implements metadata.Store.
func (s *Store) ImageTags(ctx context.Context, repoID, digest string) ([]string, error) {
	rows, err := s.query(ctx, qImageTags, repoID, digest)
	tags, err := collect(rows, err, sqlstore.ScanString)
	if err != nil {
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
		if del.Tags, err = collect(rows, err, sqlstore.ScanString); err != nil {
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
