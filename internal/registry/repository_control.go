package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cofferhq/coffer/internal/metadata"
)

// ErrRepositoryExists reports a CreateRepositoryWith for a name in use.
var ErrRepositoryExists = errors.New("repository already exists")

// repositoryDefaults fills in what a new repository gets unless the caller
// chose: a random ID, AES256 encryption (SPEC ENC-03) and its encryption
// domain, MUTABLE tags and the creation time. It mirrors CreateRepository.
func (r *Registry) repositoryDefaults(repo metadata.Repository) metadata.Repository {
	if repo.ID == "" {
		repo.ID = newID()
	}
	if repo.EncryptionType == "" {
		repo.EncryptionType = metadata.EncryptionAES256
	}
	if repo.EncryptionType == metadata.EncryptionAES256 {
		repo.Domain = DomainAES256
	} else {
		repo.Domain = repo.ID
	}
	if repo.TagMutability == "" {
		repo.TagMutability = metadata.TagMutable
	}
	if repo.CreatedAt.IsZero() {
		repo.CreatedAt = r.now().UTC()
	}
	return repo
}

// CreateRepositoryWith creates a repository with the defaults of
// CreateRepository and, in the same metadata transaction, lets docs (if not
// nil) write the documents that belong to it (its tags): both commit or
// neither does. A name in use is ErrRepositoryExists.
func (r *Registry) CreateRepositoryWith(ctx context.Context, repo metadata.Repository, docs func(metadata.DocTx) error) (metadata.Repository, error) {
	repo = r.repositoryDefaults(repo)
	err := r.cfg.Store.CreateRepositoryWith(ctx, repo, docs)
	if errors.Is(err, metadata.ErrExists) {
		return metadata.Repository{}, fmt.Errorf("%w: %s", ErrRepositoryExists, repo.Name)
	}
	if err != nil {
		return metadata.Repository{}, fmt.Errorf("create repository %s: %w", repo.Name, err)
	}
	r.log.InfoContext(ctx, "repository created", slog.String("repository", repo.Name), slog.String("encryption_type", repo.EncryptionType))
	return repo, nil
}

// UpdateRepository changes a repository's tag mutability and scanning
// settings in one transaction (metadata.Store.UpdateRepository): fn edits
// the stored repository or refuses with an error, returned as is. The
// encryption configuration cannot change (SPEC ENC-07). An unknown
// repository is ErrNameUnknown.
func (r *Registry) UpdateRepository(ctx context.Context, name RepoName, fn func(*metadata.Repository) error) (metadata.Repository, error) {
	called := false
	repo, err := r.cfg.Store.UpdateRepository(ctx, string(name), func(repo *metadata.Repository) error {
		called = true
		return fn(repo)
	})
	if errors.Is(err, metadata.ErrNotFound) && !called {
		return metadata.Repository{}, fmt.Errorf("%w: repository %s does not exist", ErrNameUnknown, name)
	}
	if err != nil {
		return metadata.Repository{}, err
	}
	return repo, nil
}

// UpdateRepositoryDocs runs fn on the metadata documents in one write
// transaction in which the repository exists, so the documents that belong
// to it (policy, tags) cannot outlive it. fn's error is returned as is; an
// unknown repository is ErrNameUnknown.
func (r *Registry) UpdateRepositoryDocs(ctx context.Context, name RepoName, fn func(metadata.Repository, metadata.DocTx) error) error {
	called := false
	err := r.cfg.Store.UpdateRepositoryDocs(ctx, string(name), func(repo metadata.Repository, tx metadata.DocTx) error {
		called = true
		return fn(repo, tx)
	})
	// fn's own ErrNotFound (a missing document) is not a missing repository.
	if errors.Is(err, metadata.ErrNotFound) && !called {
		return fmt.Errorf("%w: repository %s does not exist", ErrNameUnknown, name)
	}
	return err
}

// Docs returns the metadata document store, for registry-wide documents
// (the registry policy) and read-only views.
func (r *Registry) Docs() metadata.DocStore { return r.cfg.Store }

// Repositories returns up to n repositories named after `after`, in name
// order (ECR DescribeRepositories pages through it).
func (r *Registry) Repositories(ctx context.Context, after string, n int) ([]metadata.Repository, error) {
	repos, err := r.cfg.Store.ListRepositories(ctx, after, n)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return repos, nil
}
