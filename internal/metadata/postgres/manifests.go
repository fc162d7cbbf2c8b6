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

// manifestColumns are selected from manifests aliased as m.
const manifestColumns = `m.repo_id, m.digest, m.media_type, m.size, m.object_key,
	m.artifact_type, m.subject, m.annotations, m.pushed_at, m.last_pulled_at, m.image_size`

func scanManifest(sc scanner, extra ...any) (metadata.Manifest, error) {
	var (
		m           metadata.Manifest
		subject     *string
		annotations *string
		pushed      int64
		pulled      *int64
	)
	dest := append([]any{&m.RepoID, &m.Digest, &m.MediaType, &m.Size, &m.ObjectKey,
		&m.ArtifactType, &subject, &annotations, &pushed, &pulled, &m.ImageSize}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return metadata.Manifest{}, err
	}
	ann, err := parseMap(annotations)
	if err != nil {
		return metadata.Manifest{}, fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	m.Subject = deref(subject)
	m.Annotations = ann
	m.PushedAt = fromMicros(pushed)
	m.LastPulledAt = fromNullMicros(pulled)
	return m, nil
}

// PutManifest checks every reference, inserts the manifest unless it exists
// (same digest, same content: the first row stays), records its references
// and moves the tag, all in one transaction; see metadata.PutManifest.
//
// Locks, in order: the repository row FOR KEY SHARE (no concurrent delete;
// FOR NO KEY UPDATE under p.Quota, so quota checks queue, quota.go),
// each referenced link and blob row or child manifest FOR KEY SHARE (an
// UnlinkBlob, DeleteManifest or DeleteImage of them waits for this push to
// commit), the manifest row (inserted, or the existing one FOR KEY SHARE),
// and last the tag row FOR UPDATE: pushes that move one tag queue there, and
// each one reads the digest the previous one committed, which is what makes
// PreviousTag a chain and the immutability check race-free.
//
// p.Immutable runs while the transaction holds the tag's row lock: it must
// be quick and must not call the Store. It runs again if the database
// aborts the transaction for a deadlock and the store retries it.
func (s *Store) PutManifest(ctx context.Context, p metadata.PutManifest) (metadata.PutManifestResult, error) {
	m := p.Manifest
	if m.Digest == "" || m.ObjectKey == "" {
		return metadata.PutManifestResult{}, fmt.Errorf("put manifest %q: digest and object key are required", m.Digest)
	}
	ann, err := jsonMap(m.Annotations)
	if err != nil {
		return metadata.PutManifestResult{}, fmt.Errorf("put manifest %s: %w", m.Digest, err)
	}
	var res metadata.PutManifestResult
	err = s.write(ctx, func(tx pgx.Tx) error {
		res = metadata.PutManifestResult{}
		if _, err := lockRepositoryFor(ctx, tx, m.RepoID, p.Quota); err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, m.RepoID, p.Refs); err != nil {
			return err
		}
		created, err := insertManifest(ctx, tx, m, ann)
		if err != nil {
			return err
		}
		res.Created = created
		if created {
			if err := checkQuota(ctx, tx, m.RepoID, p.Quota); err != nil {
				return err
			}
			for _, ref := range p.Refs {
				if _, err := tx.Exec(ctx, `INSERT INTO manifest_refs (repo_id, manifest_digest, ref_digest, kind)
					VALUES ($1, $2, $3, $4) ON CONFLICT (repo_id, manifest_digest, ref_digest) DO NOTHING`,
					m.RepoID, m.Digest, ref.Digest, int(ref.Kind)); err != nil {
					return fmt.Errorf("record reference %s: %w", ref.Digest, err)
				}
			}
		}
		if p.Tag == "" {
			return nil
		}
		prev, err := moveTag(ctx, tx, m.RepoID, p.Tag, m.Digest, p.Immutable)
		res.PreviousTag = prev
		return err
	})
	if err != nil {
		return metadata.PutManifestResult{}, fmt.Errorf("put manifest %s: %w", m.Digest, err)
	}
	return res, nil
}

// insertManifest inserts the manifest row unless it exists and reports
// whether it did. An existing row is then held FOR KEY SHARE, so it cannot
// be deleted before the tag pointing at it commits; if a concurrent delete
// removed it between the two statements, the INSERT is tried again.
func insertManifest(ctx context.Context, tx pgx.Tx, m metadata.Manifest, ann *string) (bool, error) {
	for range 3 {
		ins, err := tx.Exec(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size,
				object_key, artifact_type, subject, annotations, pushed_at, last_pulled_at, image_size)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (repo_id, digest) DO NOTHING`,
			m.RepoID, m.Digest, m.MediaType, m.Size, m.ObjectKey, m.ArtifactType,
			nullString(m.Subject), ann, micros(m.PushedAt), nullMicros(m.LastPulledAt), m.ImageSize)
		if err != nil {
			return false, err
		}
		if ins.RowsAffected() == 1 {
			return true, nil
		}
		var one int
		err = tx.QueryRow(ctx, `SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR KEY SHARE`,
			m.RepoID, m.Digest).Scan(&one)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, err
		}
	}
	return false, fmt.Errorf("%w: manifest %s deleted while being pushed", metadata.ErrConflict, m.Digest)
}

// checkRefs verifies that every blob reference is linked to the repository
// (with its blob row present) and every manifest reference exists in it,
// and holds what it found FOR KEY SHARE until the transaction ends.
func checkRefs(ctx context.Context, tx pgx.Tx, repoID string, refs []metadata.Ref) error {
	for _, ref := range refs {
		var q string
		var sentinel error
		switch ref.Kind {
		case metadata.RefBlob:
			q = `SELECT 1 FROM repo_blobs l
				JOIN repositories r ON r.id = l.repo_id
				JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest
				WHERE l.repo_id = $1 AND l.digest = $2
				FOR KEY SHARE OF l, b`
			sentinel = metadata.ErrBlobUnknown
		case metadata.RefManifest:
			q = `SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR KEY SHARE`
			sentinel = metadata.ErrManifestUnknown
		default:
			return fmt.Errorf("reference %s: unknown kind %d", ref.Digest, ref.Kind)
		}
		var one int
		err := tx.QueryRow(ctx, q, repoID, ref.Digest).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", sentinel, ref.Digest)
		}
		if err != nil {
			return fmt.Errorf("check reference %s: %w", ref.Digest, err)
		}
	}
	return nil
}

// moveTag points tag at digest and returns the digest it pointed at before
// if that changed. immutable is consulted only for a real move.
//
// The tag row is read FOR UPDATE. A missing tag is inserted with ON
// CONFLICT DO NOTHING; if a concurrent push inserted it first, the INSERT
// waits for that push to commit and does nothing, and the loop reads (and
// locks) the row it committed.
func moveTag(ctx context.Context, tx pgx.Tx, repoID, tag, digest string, immutable func(string) bool) (string, error) {
	for range 3 {
		var cur string
		err := tx.QueryRow(ctx, `SELECT digest FROM tags WHERE repo_id = $1 AND tag = $2 FOR UPDATE`,
			repoID, tag).Scan(&cur)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			ins, err := tx.Exec(ctx, `INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (repo_id, tag) DO NOTHING`,
				repoID, tag, digest, nowMicros())
			if err != nil {
				return "", fmt.Errorf("tag %q: %w", tag, err)
			}
			if ins.RowsAffected() == 1 {
				return "", nil
			}
			continue
		case err != nil:
			return "", fmt.Errorf("tag %q: %w", tag, err)
		case cur == digest:
			return "", nil
		}
		if immutable != nil && immutable(tag) {
			return "", fmt.Errorf("%w: %q points at %s", metadata.ErrTagImmutable, tag, cur)
		}
		_, err = tx.Exec(ctx, `UPDATE tags SET digest = $1, updated_at = $2 WHERE repo_id = $3 AND tag = $4`,
			digest, nowMicros(), repoID, tag)
		if err != nil {
			return "", fmt.Errorf("tag %q: %w", tag, err)
		}
		return cur, nil
	}
	return "", fmt.Errorf("%w: tag %q created and deleted concurrently", metadata.ErrConflict, tag)
}

// GetManifest returns a manifest by digest or ErrNotFound.
func (s *Store) GetManifest(ctx context.Context, repoID, digest string) (metadata.Manifest, error) {
	m, err := scanManifest(s.pool.QueryRow(ctx, `SELECT `+manifestColumns+` FROM manifests m
		WHERE m.repo_id = $1 AND m.digest = $2`, repoID, digest))
	if err != nil {
		return metadata.Manifest{}, fmt.Errorf("get manifest %s in %s: %w", digest, repoID, notFound(err))
	}
	return m, nil
}

// ResolveTag returns the manifest a tag points at, or ErrNotFound. The
// join is one statement, so it reads one snapshot: never a tag without its
// manifest.
func (s *Store) ResolveTag(ctx context.Context, repoID, tag string) (metadata.Manifest, error) {
	m, err := scanManifest(s.pool.QueryRow(ctx, `SELECT `+manifestColumns+`
		FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
		WHERE t.repo_id = $1 AND t.tag = $2`, repoID, tag))
	if err != nil {
		return metadata.Manifest{}, fmt.Errorf("resolve tag %q in %s: %w", tag, repoID, notFound(err))
	}
	return m, nil
}

// ListTags returns up to limit tags after last, in byte-wise order; limit
// <= 0 means no limit. An unknown repository has no tags.
func (s *Store) ListTags(ctx context.Context, repoID, last string, limit int) ([]string, error) {
	bound, _ := pageStart(last)
	rows, err := s.pool.Query(ctx, `SELECT tag FROM tags WHERE repo_id = $1 AND tag > $2 ORDER BY tag LIMIT $3`,
		repoID, bound, sqlLimit(limit))
	tags, err := appendRows(sqlstore.NewPage[string](limit), rows, err, sqlstore.ScanString)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s after %q: %w", repoID, last, err)
	}
	return tags, nil
}

// DeleteTag removes one tag; ErrNotFound if absent. One statement.
func (s *Store) DeleteTag(ctx context.Context, repoID, tag string) error {
	err := retry(ctx, func() error {
		res, err := s.pool.Exec(ctx, `DELETE FROM tags WHERE repo_id = $1 AND tag = $2`, repoID, tag)
		if err == nil && res.RowsAffected() == 0 {
			err = metadata.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete tag %q in %s: %w", tag, repoID, err)
	}
	return nil
}

// DeleteManifest removes a manifest, its references and every tag pointing
// at it, and returns its object key: manifest objects are stored per
// repository and digest, so once the row is gone nothing references it.
// One transaction: the links of the blobs it references are touched
// (touchLinks, for GC's grace period), then the row goes; tags and
// references go by ON DELETE CASCADE, and the row lock the DELETE takes
// waits for pushes that hold the row FOR KEY SHARE (a tag being pointed at
// it, an index listing it) to commit first.
func (s *Store) DeleteManifest(ctx context.Context, repoID, digest string) (string, error) {
	var key string
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		key, err = deleteManifestRow(ctx, tx, repoID, digest)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("delete manifest %s in %s: %w", digest, repoID, notFound(err))
	}
	return key, nil
}

// Referrers returns the repository's manifests whose subject is the digest,
// only those of artifactType when it is not empty, in digest order.
func (s *Store) Referrers(ctx context.Context, repoID, subject, artifactType string) ([]metadata.Manifest, error) {
	q := `SELECT ` + manifestColumns + ` FROM manifests m
		WHERE m.repo_id = $1 AND m.subject = $2 ORDER BY m.digest`
	args := []any{repoID, subject}
	if artifactType != "" {
		q = `SELECT ` + manifestColumns + ` FROM manifests m
			WHERE m.repo_id = $1 AND m.subject = $2 AND m.artifact_type = $3 ORDER BY m.digest`
		args = append(args, artifactType)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	out, err := collect(rows, err, func(sc scanner) (metadata.Manifest, error) { return scanManifest(sc) })
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", subject, repoID, err)
	}
	return out, nil
}

// RecordPull sets LastPulledAt of a manifest. It is a direct UPDATE
// (autocommit), so each call is one durable write; a manifest that is gone
// is ignored (the contract allows batching, where absence could not be
// reported anyway).
func (s *Store) RecordPull(ctx context.Context, repoID, digest string, at time.Time) error {
	err := retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `UPDATE manifests SET last_pulled_at = $1 WHERE repo_id = $2 AND digest = $3`,
			micros(at), repoID, digest)
		return err
	})
	if err != nil {
		return fmt.Errorf("record pull of %s in %s: %w", digest, repoID, err)
	}
	return nil
}

// ListManifests returns up to limit manifests of the repository with
// digests after `after`, in digest order, each with its Tags (sorted);
// limit <= 0 means no limit. Page and tags come from one statement, so
// they are one consistent snapshot.
func (s *Store) ListManifests(ctx context.Context, repoID, after string, limit int) ([]metadata.Manifest, error) {
	bound, _ := pageStart(after)
	rows, err := s.pool.Query(ctx, `SELECT `+manifestColumns+`, t.tag
		FROM (SELECT * FROM manifests WHERE repo_id = $1 AND digest > $2 ORDER BY digest LIMIT $3) m
		LEFT JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest
		ORDER BY m.digest, t.tag`, repoID, bound, sqlLimit(limit))
	tagged, err := collect(rows, err, func(sc scanner) (sqlstore.TaggedManifest, error) {
		var tag *string
		m, err := scanManifest(sc, &tag)
		return sqlstore.TaggedManifest{Manifest: m, Tag: deref(tag), Tagged: tag != nil}, err
	})
	if err != nil {
		return nil, fmt.Errorf("list manifests of %s after %s: %w", repoID, after, err)
	}
	return sqlstore.AppendTagged(sqlstore.NewPage[metadata.Manifest](limit), tagged), nil
}

// ManifestChildren implements metadata.Store.
func (s *Store) ManifestChildren(ctx context.Context, repoID string) (map[string][]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT manifest_digest, ref_digest FROM manifest_refs WHERE repo_id = $1 AND kind = $2`,
		repoID, int(metadata.RefManifest))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	var parent, child string
	if _, err := pgx.ForEachRow(rows, []any{&parent, &child}, func() error {
		out[parent] = append(out[parent], child)
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}
