package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cofferhq/coffer/internal/lifecycle"
	"github.com/cofferhq/coffer/internal/metadata"
)

// DeleteRepository deletes a repository with everything in it: one metadata
// transaction removes its rows and, through guard, its documents; then the
// storage objects no row references any more (its manifests, its upload
// parts, the blobs of its own encryption domain) are deleted. Blobs of the
// shared AES256 domain stay for garbage collection.
//
// guard (if not nil) runs inside the transaction before anything is
// deleted, with whether the repository holds any image, and may refuse
// with an error (returned as is; nothing changes) or delete the
// repository's documents. An unknown repository is ErrNameUnknown. Objects
// that fail to delete are logged and left for garbage collection: the
// repository is gone either way.
func (r *Registry) DeleteRepository(ctx context.Context, name RepoName, guard func(repo metadata.Repository, hasImages bool, docs metadata.DocTx) error) (metadata.Repository, error) {
	called := false
	fn := func(repo metadata.Repository, has bool, tx metadata.DocTx) error {
		called = true
		if guard != nil {
			if err := guard(repo, has, tx); err != nil {
				return err
			}
		}
		// The lifecycle policy and its preview go with the repository.
		for _, kind := range []string{lifecycle.DocKind, lifecycle.PreviewDocKind} {
			if err := tx.Delete(kind, repo.Name); err != nil && !errors.Is(err, metadata.ErrNotFound) {
				return err
			}
		}
		return nil
	}
	repo, orphans, err := r.cfg.Store.DeleteRepositoryWith(ctx, string(name), fn)
	if errors.Is(err, metadata.ErrNotFound) && !called {
		return metadata.Repository{}, fmt.Errorf("%w: repository %s does not exist", ErrNameUnknown, name)
	}
	if err != nil {
		return metadata.Repository{}, err
	}
	r.deleteObjects(ctx, orphans...)
	r.log.InfoContext(ctx, "repository deleted", slog.String("repository", repo.Name), slog.Int("objects", len(orphans)))
	return repo, nil
}
