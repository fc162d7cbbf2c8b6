package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata"
)

// The ECR image queries. A page is one statement: the inner SELECT picks
// the page of manifests (an index-only range scan of the covering index
// manifests_images; with a tag filter, at most a window of it, each row
// probing tags_digest), the outer join adds their tags, so page and tags
// are one snapshot. They select imageColumns only, so that no row of the
// table is read.
const (
	imageColumns = `m.repo_id, m.digest, m.media_type, m.size, m.artifact_type, m.subject,
		m.pushed_at, m.last_pulled_at, m.image_size`
	// imagePage is the range of manifests from $2 on; the filtered queries
	// rewrite ">=" to ">" for a NUL bound (pageStart).
	imagePage = `SELECT repo_id, digest, media_type, size, artifact_type, subject, pushed_at, last_pulled_at, image_size
		FROM manifests x WHERE x.repo_id = $1 AND x.digest >= $2`
	qListImagesAny = `SELECT ` + imageColumns + `, t.tag
		FROM (` + imagePage + ` ORDER BY x.digest LIMIT $3) m
		LEFT JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest
		ORDER BY m.digest, t.tag`
	// The filtered queries take (repo, from, window, limit); a NULL window
	// or limit is no bound.
	qListImagesTagged = `SELECT ` + imageColumns + `, t.tag
		FROM (SELECT * FROM (` + imagePage + ` ORDER BY x.digest LIMIT $3) w
			WHERE EXISTS (SELECT 1 FROM tags y WHERE y.repo_id = w.repo_id AND y.digest = w.digest)
			ORDER BY w.digest LIMIT $4) m
		JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest
		ORDER BY m.digest, t.tag`
	qListImagesUntagged = `SELECT ` + imageColumns + `, NULL::text
		FROM (SELECT * FROM (` + imagePage + ` ORDER BY x.digest LIMIT $3) w
			WHERE NOT EXISTS (SELECT 1 FROM tags y WHERE y.repo_id = w.repo_id AND y.digest = w.digest)
			ORDER BY w.digest LIMIT $4) m
		ORDER BY m.digest`
	// qImageWindowEnd is the last digest of a window: (repo, from, window-1).
	qImageWindowEnd = `SELECT digest FROM manifests x WHERE x.repo_id = $1 AND x.digest >= $2
		ORDER BY x.digest LIMIT 1 OFFSET $3`
	qImageTags = `SELECT tag FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY tag`
)

// scanImage reads imageColumns (and extra).
func scanImage(sc scanner, extra ...any) (metadata.Manifest, error) {
	var (
		m       metadata.Manifest
		subject *string
		pushed  int64
		pulled  *int64
	)
	dest := append([]any{&m.RepoID, &m.Digest, &m.MediaType, &m.Size, &m.ArtifactType, &subject,
		&pushed, &pulled, &m.ImageSize}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return metadata.Manifest{}, err
	}
	m.Subject = deref(subject)
	m.PushedAt = fromMicros(pushed)
	m.LastPulledAt = fromNullMicros(pulled)
	return m, nil
}

// ListImages implements metadata.Store. An unfiltered page is one
// statement. A filtered page with a window runs its two statements (the
// page, then the window's end) in one REPEATABLE READ, READ ONLY
// transaction, so both see one snapshot.
func (s *Store) ListImages(ctx context.Context, repoID string, q metadata.ImageQuery) (metadata.ImagePage, error) {
	var page metadata.ImagePage
	if err := s.listImages(ctx, repoID, q, &page); err != nil {
		return metadata.ImagePage{}, fmt.Errorf("list images of %s from %s: %w", repoID, q.From, err)
	}
	return page, nil
}

func (s *Store) listImages(ctx context.Context, repoID string, q metadata.ImageQuery, page *metadata.ImagePage) error {
	from, strict := pageStart(q.From)
	bound := func(query string) string {
		if strict {
			return strings.Replace(query, "x.digest >= $2", "x.digest > $2", 1)
		}
		return query
	}
	if q.TagStatus == "" || q.TagStatus == metadata.TagStatusAny {
		rows, err := s.pool.Query(ctx, bound(qListImagesAny), repoID, from, sqlLimit(q.Limit))
		if err != nil {
			return err
		}
		page.Images, err = collectImages(rows, q.Limit)
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
	if q.Window <= 0 {
		rows, err := s.pool.Query(ctx, bound(query), repoID, from, nil, sqlLimit(q.Limit))
		if err != nil {
			return err
		}
		page.Images, err = collectImages(rows, q.Limit)
		return err
	}
	tx, err := s.pool.BeginTx(ctx, snapshot)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, bound(query), repoID, from, sqlLimit(q.Window), sqlLimit(q.Limit))
	if err != nil {
		return err
	}
	if page.Images, err = collectImages(rows, q.Limit); err != nil {
		return err
	}
	if q.Limit > 0 && len(page.Images) >= q.Limit {
		return nil
	}
	err = tx.QueryRow(ctx, bound(qImageWindowEnd), repoID, from, q.Window-1).Scan(&page.ScannedTo)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the window reached the end of the repository
	}
	return err
}

// collectImages reads image rows with a tag column, one row per tag,
// grouping consecutive rows of one digest into one manifest.
func collectImages(rows pgx.Rows, limit int) ([]metadata.Manifest, error) {
	defer rows.Close()
	var out []metadata.Manifest
	if limit > 0 {
		out = make([]metadata.Manifest, 0, min(limit, 1024))
	}
	for rows.Next() {
		var tag *string
		m, err := scanImage(rows, &tag)
		if err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].Digest != m.Digest {
			out = append(out, m)
		}
		if tag != nil {
			last := &out[len(out)-1]
			last.Tags = append(last.Tags, *tag)
		}
	}
	return out, rows.Err()
}

// ImageTags implements metadata.Store.
func (s *Store) ImageTags(ctx context.Context, repoID, digest string) ([]string, error) {
	rows, err := s.pool.Query(ctx, qImageTags, repoID, digest)
	if err != nil {
		return nil, fmt.Errorf("tags of %s in %s: %w", digest, repoID, err)
	}
	tags, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("tags of %s in %s: %w", digest, repoID, err)
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
}

// BlobReferenced implements metadata.Store.
func (s *Store) BlobReferenced(ctx context.Context, repoID, digest string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM manifest_refs
		WHERE repo_id = $1 AND ref_digest = $2 AND kind = 1)`, repoID, digest).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("references to %s in %s: %w", digest, repoID, err)
	}
	return ok, nil
}

// DeleteImage implements metadata.Store in one transaction.
//
// The manifest row is locked FOR UPDATE before the "no tag left" and "no
// index references it" checks. A push that points a tag at the manifest
// (the tags foreign key) or lists it in an index (checkRefs) holds that row
// FOR KEY SHARE, so the lock waits for such pushes in flight to commit and
// keeps new ones out until this transaction ends; each check, a fresh READ
// COMMITTED snapshot taken after the lock, therefore sees every tag and
// reference that can exist when the row goes. With a tag, the tag row is
// locked after the manifest row, the order a push takes them in, so a
// delete and a re-push of the same image queue instead of deadlocking.
func (s *Store) DeleteImage(ctx context.Context, repoID, digest, tag string) (metadata.ImageDeletion, error) {
	var del metadata.ImageDeletion
	err := s.write(ctx, func(tx pgx.Tx) error {
		del = metadata.ImageDeletion{}
		if tag != "" {
			cur, err := lockTaggedManifest(ctx, tx, repoID, tag)
			if err != nil {
				return err
			}
			if digest != "" && digest != cur {
				return fmt.Errorf("%w: %q points at %s, not %s", metadata.ErrImageTagMismatch, tag, cur, digest)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM tags WHERE repo_id = $1 AND tag = $2`, repoID, tag); err != nil {
				return err
			}
			del.Digest, del.Tags = cur, []string{tag}
			var tagged bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tags WHERE repo_id = $1 AND digest = $2)`,
				repoID, cur).Scan(&tagged); err != nil || tagged {
				return err // still tagged: the image stays
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
		key, err := lockManifest(ctx, tx, repoID, digest)
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
		rows, err := tx.Query(ctx, qImageTags, repoID, digest)
		if err != nil {
			return err
		}
		if del.Tags, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if len(del.Tags) == 0 {
			del.Tags = nil
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

// lockTaggedManifest locks the manifest a tag points at, then the tag
// (FOR UPDATE both), and returns the digest; ErrNotFound if the tag is
// absent. The tag is read without a lock first to learn the digest; if it
// moved before it was locked, the next round locks the new target.
func lockTaggedManifest(ctx context.Context, tx pgx.Tx, repoID, tag string) (string, error) {
	for range 5 {
		var cur, locked string
		err := tx.QueryRow(ctx, `SELECT digest FROM tags WHERE repo_id = $1 AND tag = $2`, repoID, tag).Scan(&cur)
		if err != nil {
			return "", notFound(err)
		}
		if _, err := lockManifest(ctx, tx, repoID, cur); errors.Is(err, pgx.ErrNoRows) {
			continue // deleted meanwhile, and the tag with it (or moved)
		} else if err != nil {
			return "", err
		}
		err = tx.QueryRow(ctx, `SELECT digest FROM tags WHERE repo_id = $1 AND tag = $2 FOR UPDATE`,
			repoID, tag).Scan(&locked)
		if err != nil {
			return "", notFound(err)
		}
		if locked == cur {
			return cur, nil
		}
	}
	return "", fmt.Errorf("%w: tag %q keeps moving", metadata.ErrConflict, tag)
}

// lockManifest locks a manifest row FOR UPDATE and returns its object key;
// pgx.ErrNoRows if it does not exist.
func lockManifest(ctx context.Context, tx pgx.Tx, repoID, digest string) (string, error) {
	var key string
	err := tx.QueryRow(ctx, `SELECT object_key FROM manifests WHERE repo_id = $1 AND digest = $2 FOR UPDATE`,
		repoID, digest).Scan(&key)
	return key, err
}

// manifestReferenced reports whether another manifest of the repository
// (an index) lists digest as a child.
func manifestReferenced(ctx context.Context, tx pgx.Tx, repoID, digest string) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM manifest_refs
		WHERE repo_id = $1 AND ref_digest = $2 AND kind = 2)`, repoID, digest).Scan(&ok)
	return ok, err
}

// deleteManifestRow deletes a manifest (its tags and references go by ON
// DELETE CASCADE; its blob links are touched first, see touchLinks) and
// returns its object key.
func deleteManifestRow(ctx context.Context, tx pgx.Tx, repoID, digest string) (string, error) {
	if err := touchLinks(ctx, tx, repoID, digest); err != nil {
		return "", err
	}
	var key string
	err := tx.QueryRow(ctx, `DELETE FROM manifests WHERE repo_id = $1 AND digest = $2 RETURNING object_key`,
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
