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

// manifestColumns are selected from manifests aliased as m.
const manifestColumns = `m.repo_id, m.digest, m.media_type, m.size, m.object_key,
	m.artifact_type, m.subject, m.annotations, m.pushed_at, m.last_pulled_at, m.image_size`

func scanManifest(sc scanner, extra ...any) (metadata.Manifest, error) {
	var (
		m           metadata.Manifest
		subject     sql.NullString
		annotations sql.NullString
		pushed      int64
		pulled      sql.NullInt64
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
	m.Subject = subject.String
	m.Annotations = ann
	m.PushedAt = fromMicros(pushed)
	m.LastPulledAt = fromNullMicros(pulled)
	return m, nil
}

// PutManifest checks every reference, inserts the manifest unless it exists
// (same digest, same content: the first row stays), records its references
// and moves the tag, all in one write transaction; see metadata.PutManifest.
//
// p.Immutable runs while the transaction holds the database's write lock:
// it must be quick and must not call the Store.
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := repoDomain(ctx, tx, m.RepoID); err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, m.RepoID, p.Refs); err != nil {
			return err
		}
		ins, err := tx.ExecContext(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size,
				object_key, artifact_type, subject, annotations, pushed_at, last_pulled_at, image_size)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (repo_id, digest) DO NOTHING`,
			m.RepoID, m.Digest, m.MediaType, m.Size, m.ObjectKey, m.ArtifactType,
			nullString(m.Subject), ann, micros(m.PushedAt), nullMicros(m.LastPulledAt), m.ImageSize)
		if err != nil {
			return err
		}
		n, err := ins.RowsAffected()
		if err != nil {
			return err
		}
		res.Created = n == 1
		if res.Created {
			if err := checkQuota(ctx, tx, m.RepoID, p.Quota); err != nil {
				return err
			}
			for _, ref := range p.Refs {
				if _, err := tx.ExecContext(ctx, `INSERT INTO manifest_refs (repo_id, manifest_digest, ref_digest, kind)
					VALUES (?, ?, ?, ?) ON CONFLICT (repo_id, manifest_digest, ref_digest) DO NOTHING`,
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

// checkRefs verifies, inside the write transaction, that every blob
// reference is linked to the repository (with its blob row present) and
// every manifest reference exists in it.
func checkRefs(ctx context.Context, tx *sql.Tx, repoID string, refs []metadata.Ref) error {
	for _, ref := range refs {
		var q string
		var sentinel error
		switch ref.Kind {
		case metadata.RefBlob:
			q = `SELECT 1 FROM repo_blobs l
				JOIN repositories r ON r.id = l.repo_id
				JOIN blobs b ON b.domain = r.domain AND b.digest = l.digest
				WHERE l.repo_id = ? AND l.digest = ?`
			sentinel = metadata.ErrBlobUnknown
		case metadata.RefManifest:
			q = `SELECT 1 FROM manifests WHERE repo_id = ? AND digest = ?`
			sentinel = metadata.ErrManifestUnknown
		default:
			return fmt.Errorf("reference %s: unknown kind %d", ref.Digest, ref.Kind)
		}
		var one int
		err := tx.QueryRowContext(ctx, q, repoID, ref.Digest).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
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
func moveTag(ctx context.Context, tx *sql.Tx, repoID, tag, digest string, immutable func(string) bool) (string, error) {
	var cur string
	err := tx.QueryRowContext(ctx, `SELECT digest FROM tags WHERE repo_id = ? AND tag = ?`, repoID, tag).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err := tx.ExecContext(ctx, `INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES (?, ?, ?, ?)`,
			repoID, tag, digest, nowMicros())
		if err != nil {
			return "", fmt.Errorf("tag %q: %w", tag, err)
		}
		return "", nil
	case err != nil:
		return "", fmt.Errorf("tag %q: %w", tag, err)
	case cur == digest:
		return "", nil
	}
	if immutable != nil && immutable(tag) {
		return "", fmt.Errorf("%w: %q points at %s", metadata.ErrTagImmutable, tag, cur)
	}
	_, err = tx.ExecContext(ctx, `UPDATE tags SET digest = ?, updated_at = ? WHERE repo_id = ? AND tag = ?`,
		digest, nowMicros(), repoID, tag)
	if err != nil {
		return "", fmt.Errorf("tag %q: %w", tag, err)
	}
	return cur, nil
}

// GetManifest returns a manifest by digest or ErrNotFound.
func (s *Store) GetManifest(ctx context.Context, repoID, digest string) (metadata.Manifest, error) {
	m, err := scanManifest(s.queryRow(ctx, qGetManifest, repoID, digest))
	if err != nil {
		return metadata.Manifest{}, fmt.Errorf("get manifest %s in %s: %w", digest, repoID, notFound(err))
	}
	return m, nil
}

// ResolveTag returns the manifest a tag points at, or ErrNotFound.
func (s *Store) ResolveTag(ctx context.Context, repoID, tag string) (metadata.Manifest, error) {
	m, err := scanManifest(s.queryRow(ctx, qResolveTag, repoID, tag))
	if err != nil {
		return metadata.Manifest{}, fmt.Errorf("resolve tag %q in %s: %w", tag, repoID, notFound(err))
	}
	return m, nil
}

// ListTags returns up to limit tags after last, in byte-wise order; limit
// <= 0 means no limit. An unknown repository has no tags.
func (s *Store) ListTags(ctx context.Context, repoID, last string, limit int) ([]string, error) {
	rows, err := s.query(ctx, qListTags, repoID, last, sqlLimit(limit))
	tags, err := appendRows(sqlstore.NewPage[string](limit), rows, err, sqlstore.ScanString)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s after %q: %w", repoID, last, err)
	}
	return tags, nil
}

// DeleteTag removes one tag; ErrNotFound if absent.
func (s *Store) DeleteTag(ctx context.Context, repoID, tag string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tags WHERE repo_id = ? AND tag = ?`, repoID, tag)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("delete tag %q in %s: %w", tag, repoID, err)
	}
	return nil
}

// DeleteManifest removes a manifest, its references and every tag pointing
// at it, and returns its object key: manifest objects are stored per
// repository and digest, so once the row is gone nothing references it.
func (s *Store) DeleteManifest(ctx context.Context, repoID, digest string) (string, error) {
	var key string
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT object_key FROM manifests WHERE repo_id = ? AND digest = ?`,
			repoID, digest).Scan(&key)
		if err != nil {
			return notFound(err)
		}
		if err := touchLinks(ctx, tx, repoID, digest); err != nil {
			return err
		}
		// Tags and manifest_refs rows go by ON DELETE CASCADE.
		_, err = tx.ExecContext(ctx, `DELETE FROM manifests WHERE repo_id = ? AND digest = ?`, repoID, digest)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("delete manifest %s in %s: %w", digest, repoID, err)
	}
	return key, nil
}

// Referrers returns the repository's manifests whose subject is the digest,
// only those of artifactType when it is not empty, in digest order.
func (s *Store) Referrers(ctx context.Context, repoID, subject, artifactType string) ([]metadata.Manifest, error) {
	q, args := qReferrers, []any{repoID, subject}
	if artifactType != "" {
		q, args = qReferrersOfType, append(args, artifactType)
	}
	rows, err := s.query(ctx, q, args...)
	out, err := collect(rows, err, func(sc scanner) (metadata.Manifest, error) { return scanManifest(sc) })
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", subject, repoID, err)
	}
	return out, nil
}

// RecordPull sets LastPulledAt of a manifest. It is a direct UPDATE, so
// each call is one durable write; a manifest that is gone is ignored (the
// contract allows batching, where absence could not be reported anyway).
func (s *Store) RecordPull(ctx context.Context, repoID, digest string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE manifests SET last_pulled_at = ? WHERE repo_id = ? AND digest = ?`,
		micros(at), repoID, digest)
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
	rows, err := s.query(ctx, `SELECT `+manifestColumns+`, t.tag
		FROM (SELECT * FROM manifests WHERE repo_id = ? AND digest > ? ORDER BY digest LIMIT ?) m
		LEFT JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest
		ORDER BY m.digest, t.tag`, repoID, after, sqlLimit(limit))
	tagged, err := collect(rows, err, func(sc scanner) (sqlstore.TaggedManifest, error) {
		var tag sql.NullString
		m, err := scanManifest(sc, &tag)
		return sqlstore.TaggedManifest{Manifest: m, Tag: tag.String, Tagged: tag.Valid}, err
	})
	if err != nil {
		return nil, fmt.Errorf("list manifests of %s after %s: %w", repoID, after, err)
	}
	return sqlstore.AppendTagged(nil, tagged), nil
}

// ManifestChildren implements metadata.Store.
func (s *Store) ManifestChildren(ctx context.Context, repoID string) (map[string][]string, error) {
	rows, err := s.query(ctx, `SELECT manifest_digest, ref_digest FROM manifest_refs WHERE repo_id = ? AND kind = ?`,
		repoID, int(metadata.RefManifest))
	out := map[string][]string{}
	err = eachRow(rows, err, func(sc scanner) error {
		var parent, child string
		if err := sc.Scan(&parent, &child); err != nil {
			return err
		}
		out[parent] = append(out[parent], child)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
