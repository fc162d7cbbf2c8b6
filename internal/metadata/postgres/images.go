package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// The ECR image queries. A page is one statement, one row per manifest
// with its tags aggregated (imageTags), so page and tags are one snapshot.
// Every page is a keyset range scan: ANY and UNTAGGED an index-only scan of
// the covering index manifests_images from the bound (UNTAGGED at most a
// window of it, each row probing tags_digest); TAGGED an index-only scan of
// tags_digest itself, whose entries are the tagged digests in digest order,
// each page entry looked up in manifests_images, so a page costs the same
// however rare tagged images are. They select imageColumns only, so that
// no row of the table is read.
const (
	imageColumns = `m.repo_id, m.digest, m.media_type, m.size, m.artifact_type, m.subject,
		m.pushed_at, m.last_pulled_at, m.image_size`
	// imageTags is a manifest's tags, sorted, NULL if none: an index-only
	// scan of tags_digest.
	imageTags = `(SELECT array_agg(t.tag ORDER BY t.tag) FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)`
	// The range of every query is its first "digest >= $2"; listImages
	// rewrites it to ">" for a NUL bound (pageStart).
	//
	// (repo, from, limit)
	qListImagesAny = `SELECT ` + imageColumns + `, ` + imageTags + `
		FROM manifests m WHERE m.repo_id = $1 AND m.digest >= $2 ORDER BY m.digest LIMIT $3`
	// (repo, from, limit): GROUP BY walks tags_digest, keyed (repo_id,
	// digest, tag) since 0008, in order: one row per tagged digest with its
	// tags, from the index alone.
	qListImagesTagged = `SELECT ` + imageColumns + `, d.tags
		FROM (SELECT x.digest, array_agg(x.tag ORDER BY x.tag) AS tags FROM tags x WHERE x.repo_id = $1 AND x.digest >= $2
			GROUP BY x.digest ORDER BY x.digest LIMIT $3) d
		JOIN manifests m ON m.repo_id = $1 AND m.digest = d.digest
		ORDER BY m.digest`
	// (repo, from, window, limit); a NULL window or limit is no bound.
	qListImagesUntagged = `SELECT ` + imageColumns + `, NULL::text[]
		FROM (SELECT * FROM (SELECT repo_id, digest, media_type, size, artifact_type, subject, pushed_at, last_pulled_at, image_size
				FROM manifests x WHERE x.repo_id = $1 AND x.digest >= $2 ORDER BY x.digest LIMIT $3) w
			WHERE NOT EXISTS (SELECT 1 FROM tags y WHERE y.repo_id = w.repo_id AND y.digest = w.digest)
			ORDER BY w.digest LIMIT $4) m
		ORDER BY m.digest`
	// qImageWindow is the size and last digest of a window: (repo, from,
	// window); a range scan of the window, like the page's.
	qImageWindow = `SELECT count(*), max(x.digest) FROM
		(SELECT x.digest FROM manifests x WHERE x.repo_id = $1 AND x.digest >= $2 ORDER BY x.digest LIMIT $3) x`
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

// ListImages implements metadata.Store. A page is one statement, but for
// a windowed UNTAGGED page, whose two statements (the page, then the
// window's end) run in one REPEATABLE READ, READ ONLY transaction, so both
// see one snapshot. TAGGED pages need no window: they scan only tagged
// digests.
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
			return strings.Replace(query, "digest >= $2", "digest > $2", 1)
		}
		return query
	}
	switch q.TagStatus {
	case "", metadata.TagStatusAny, metadata.TagStatusTagged:
		query := qListImagesAny
		if q.TagStatus == metadata.TagStatusTagged {
			query = qListImagesTagged
		}
		rows, err := s.pool.Query(ctx, bound(query), repoID, from, sqlLimit(q.Limit))
		page.Images, err = collectImages(rows, err, q.Limit)
		return err
	case metadata.TagStatusUntagged:
	default:
		return fmt.Errorf("unknown tag status %q", q.TagStatus)
	}
	if q.Window <= 0 {
		rows, err := s.pool.Query(ctx, bound(qListImagesUntagged), repoID, from, nil, sqlLimit(q.Limit))
		page.Images, err = collectImages(rows, err, q.Limit)
		return err
	}
	tx, err := s.pool.BeginTx(ctx, snapshot)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, bound(qListImagesUntagged), repoID, from, sqlLimit(q.Window), sqlLimit(q.Limit))
	if page.Images, err = collectImages(rows, err, q.Limit); err != nil {
		return err
	}
	if q.Limit > 0 && len(page.Images) >= q.Limit {
		return nil
	}
	var n int
	var last *string
	if err := tx.QueryRow(ctx, bound(qImageWindow), repoID, from, q.Window).Scan(&n, &last); err != nil {
		return err
	}
	if n == q.Window && last != nil {
		page.ScannedTo = *last
	} // else the window reached the end of the repository
	return nil
}

// collectImages reads a page of image rows, one per manifest, with its
// sorted tags as one array column (NULL: none); err is the query's.
func collectImages(rows pgx.Rows, err error, limit int) ([]metadata.Manifest, error) {
	return appendRows(sqlstore.NewPage[metadata.Manifest](limit), rows, err, func(sc scanner) (metadata.Manifest, error) {
		var tags []string
		m, err := scanImage(sc, &tags)
		m.Tags = tags
		return m, err
	})
}

// ImageTags implements metadata.Store.
func (s *Store) ImageTags(ctx context.Context, repoID, digest string) ([]string, error) {
	rows, err := s.pool.Query(ctx, qImageTags, repoID, digest)
	tags, err := collect(rows, err, sqlstore.ScanString)
	if err != nil {
		return nil, fmt.Errorf("tags of %s in %s: %w", digest, repoID, err)
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
