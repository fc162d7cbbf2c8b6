package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// GetSetting returns a registry-wide setting or ErrNotFound.
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("get setting %q: %w", key, notFound(err))
	}
	return v, nil
}

// PutSettingIfAbsent stores value under key unless it exists and returns the
// value stored. The INSERT waits for a concurrent insert of the same key to
// finish, and the SELECT after it (a fresh READ COMMITTED snapshot) sees
// whichever row won.
func (s *Store) PutSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	var stored string
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
			key, value); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&stored)
	})
	if err != nil {
		return "", fmt.Errorf("put setting %q: %w", key, err)
	}
	return stored, nil
}

// CreateRepository inserts a repository; ErrExists if the name (or the ID)
// is taken.
func (s *Store) CreateRepository(ctx context.Context, r metadata.Repository) error {
	return s.CreateRepositoryWith(ctx, r, nil)
}

// CreateRepositoryWith inserts a repository and, in the same transaction,
// lets fn (if not nil) write its documents. The unique indexes decide a race
// for the name: the second INSERT waits for the first transaction and fails
// with a unique violation (ErrExists) if it commits.
func (s *Store) CreateRepositoryWith(ctx context.Context, r metadata.Repository, fn func(metadata.DocTx) error) error {
	if r.ID == "" || r.Name == "" || r.Domain == "" {
		return fmt.Errorf("create repository %q: ID, Name and Domain are required", r.Name)
	}
	ex, err := sqlstore.EncodeStrings(r.TagMutabilityExclusions)
	if err != nil {
		return fmt.Errorf("create repository %q: %w", r.Name, err)
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO repositories (`+sqlstore.RepositoryColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			r.ID, r.Name, r.Domain, r.EncryptionType, r.KMSKey, r.TagMutability,
			ex, r.ScanOnPush, micros(r.CreatedAt))
		if isUnique(err) {
			return metadata.ErrExists
		}
		if err != nil || fn == nil {
			return err
		}
		return s.withDocs(ctx, tx, fn)
	})
	if err != nil {
		return fmt.Errorf("create repository %q: %w", r.Name, err)
	}
	return nil
}

// UpdateRepository changes the mutable settings of a repository in one
// transaction; see metadata.Store. The row is read FOR NO KEY UPDATE, so
// concurrent updates of one repository queue (none is lost) while pushes,
// which only share-lock the key, go on.
func (s *Store) UpdateRepository(ctx context.Context, name string, fn func(*metadata.Repository) error) (metadata.Repository, error) {
	var out metadata.Repository
	err := s.write(ctx, func(tx pgx.Tx) error {
		old, err := sqlstore.ScanRepository(tx.QueryRow(ctx,
			`SELECT `+sqlstore.RepositoryColumns+` FROM repositories WHERE name = $1 FOR NO KEY UPDATE`, name))
		if err != nil {
			return notFound(err)
		}
		next := old
		next.TagMutabilityExclusions = slices.Clone(old.TagMutabilityExclusions)
		if err := fn(&next); err != nil {
			return err
		}
		if err := sqlstore.CheckRepositoryUpdate(old, next); err != nil {
			return err
		}
		ex, err := sqlstore.EncodeStrings(next.TagMutabilityExclusions)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`UPDATE repositories SET tag_mutability = $1, tag_exclusions = $2, scan_on_push = $3 WHERE id = $4`,
			next.TagMutability, ex, next.ScanOnPush, old.ID); err != nil {
			return err
		}
		// Return what a later GetRepository returns (an empty exclusion
		// list reads back as nil).
		next.TagMutabilityExclusions, err = sqlstore.DecodeStrings(ex)
		out = next
		return err
	})
	if err != nil {
		return metadata.Repository{}, fmt.Errorf("update repository %q: %w", name, err)
	}
	return out, nil
}

// UpdateRepositoryDocs runs fn with the documents in a write transaction in
// which the repository exists: its row is held FOR KEY SHARE, which a
// DeleteRepository (FOR UPDATE) must wait for.
func (s *Store) UpdateRepositoryDocs(ctx context.Context, name string, fn func(metadata.Repository, metadata.DocTx) error) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		r, err := sqlstore.ScanRepository(tx.QueryRow(ctx,
			`SELECT `+sqlstore.RepositoryColumns+` FROM repositories WHERE name = $1 FOR KEY SHARE`, name))
		if err != nil {
			return notFound(err)
		}
		return s.withDocs(ctx, tx, func(d metadata.DocTx) error { return fn(r, d) })
	})
	if err != nil {
		return fmt.Errorf("update documents of repository %q: %w", name, err)
	}
	return nil
}

// GetRepository returns a repository by name, or ErrNotFound.
func (s *Store) GetRepository(ctx context.Context, name string) (metadata.Repository, error) {
	r, err := sqlstore.ScanRepository(s.pool.QueryRow(ctx, `SELECT `+sqlstore.RepositoryColumns+` FROM repositories WHERE name = $1`, name))
	if err != nil {
		return metadata.Repository{}, fmt.Errorf("get repository %q: %w", name, notFound(err))
	}
	return r, nil
}

// ListRepositories returns up to limit repositories named after `after`, in
// byte-wise name order; limit <= 0 means no limit.
func (s *Store) ListRepositories(ctx context.Context, after string, limit int) ([]metadata.Repository, error) {
	bound, _ := pageStart(after)
	rows, err := s.pool.Query(ctx, `SELECT `+sqlstore.RepositoryColumns+` FROM repositories WHERE name > $1 ORDER BY name LIMIT $2`,
		bound, sqlLimit(limit))
	out, err := collect(rows, err, sqlstore.ScanRepository)
	if err != nil {
		return nil, fmt.Errorf("list repositories after %q: %w", after, err)
	}
	return out, nil
}

// DeleteRepository removes the repository and everything that belongs to
// it, and returns the storage keys no row references any more: its
// manifests' objects, its uploads' parts and, when the repository owns its
// encryption domain (Domain == ID, a KMS repository), the objects of every
// blob in that domain. Blobs of a shared domain stay; GC collects them once
// no repository links them.
func (s *Store) DeleteRepository(ctx context.Context, name string) ([]string, error) {
	_, orphans, err := s.DeleteRepositoryWith(ctx, name, nil)
	return orphans, err
}

// DeleteRepositoryWith is DeleteRepository guarded by fn (if not nil), which
// sees the repository, whether it holds a manifest, and the documents,
// inside the deleting transaction; see metadata.Store.
//
// The repository row is locked FOR UPDATE first. Every other write that
// adds rows under a repository (uploads, links, blobs of its own domain,
// manifests, tags) holds the row FOR KEY SHARE, so this waits for those in
// flight to commit and keeps new ones out; the collection queries after it
// (each a fresh READ COMMITTED snapshot) therefore see every row the
// cascade deletes.
func (s *Store) DeleteRepositoryWith(ctx context.Context, name string, fn func(metadata.Repository, bool, metadata.DocTx) error) (metadata.Repository, []string, error) {
	var (
		repo    metadata.Repository
		orphans []string
	)
	err := s.write(ctx, func(tx pgx.Tx) error {
		orphans = nil
		var err error
		repo, err = sqlstore.ScanRepository(tx.QueryRow(ctx,
			`SELECT `+sqlstore.RepositoryColumns+` FROM repositories WHERE name = $1 FOR UPDATE`, name))
		if err != nil {
			return notFound(err)
		}
		id, domain := repo.ID, repo.Domain
		if fn != nil {
			var hasManifests bool
			if err := tx.QueryRow(ctx,
				`SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = $1)`, id).Scan(&hasManifests); err != nil {
				return fmt.Errorf("count manifests: %w", err)
			}
			if err := s.withDocs(ctx, tx, func(d metadata.DocTx) error { return fn(repo, hasManifests, d) }); err != nil {
				return err
			}
		}
		keys, err := queryStrings(ctx, tx, `SELECT object_key FROM manifests WHERE repo_id = $1`, id)
		if err != nil {
			return fmt.Errorf("collect manifests: %w", err)
		}
		orphans = append(orphans, keys...)

		partLists, err := queryStrings(ctx, tx, `SELECT parts FROM uploads WHERE repo_id = $1`, id)
		if err != nil {
			return fmt.Errorf("collect uploads: %w", err)
		}
		for _, pl := range partLists {
			keys, err := sqlstore.PartKeys(pl)
			if err != nil {
				return fmt.Errorf("collect uploads: %w", err)
			}
			orphans = append(orphans, keys...)
		}

		if domain == id {
			keys, err := queryStrings(ctx, tx, `DELETE FROM blobs WHERE domain = $1 RETURNING object_key`, domain)
			if err != nil {
				return fmt.Errorf("delete blobs: %w", err)
			}
			orphans = append(orphans, keys...)
		}
		// Links, uploads, manifests, their refs and tags go by cascade.
		if _, err := tx.Exec(ctx, `DELETE FROM repositories WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		return nil
	})
	if err != nil {
		return metadata.Repository{}, nil, fmt.Errorf("delete repository %q: %w", name, err)
	}
	slices.Sort(orphans)
	return repo, slices.Compact(orphans), nil
}

// queryStrings returns the single string column of a query's rows.
func queryStrings(ctx context.Context, tx pgx.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, q, args...)
	return collect(rows, err, sqlstore.ScanString)
}

// lockRepository returns the domain of a repository and holds its row FOR
// KEY SHARE until the transaction ends, so the repository cannot be deleted
// under a write that adds rows to it; ErrRepositoryUnknown if it is gone.
// Taking this lock first is also what orders every writer's locks the same
// way as DeleteRepository's, which avoids deadlocks between them.
func lockRepository(ctx context.Context, tx pgx.Tx, repoID string) (string, error) {
	var domain string
	err := tx.QueryRow(ctx, `SELECT domain FROM repositories WHERE id = $1 FOR KEY SHARE`, repoID).Scan(&domain)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: %s", metadata.ErrRepositoryUnknown, repoID)
	}
	if err != nil {
		return "", fmt.Errorf("read repository %s: %w", repoID, err)
	}
	return domain, nil
}
