package registry

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cofferhq/coffer/internal/metadata"
)

// StatBlob returns a blob linked to repo, or ErrBlobUnknown.
func (r *Registry) StatBlob(ctx context.Context, repo metadata.Repository, d Digest) (metadata.Blob, error) {
	b, err := r.cfg.Store.BlobLinked(ctx, repo.ID, string(d))
	if errors.Is(err, metadata.ErrNotFound) {
		return metadata.Blob{}, fmt.Errorf("%w: %s in %s", ErrBlobUnknown, d, repo.Name)
	}
	if err != nil {
		return metadata.Blob{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return b, nil
}

// OpenBlob returns the plaintext [off, off+n) of a blob (n < 0: to the end).
// The object is bound to the blob's digest (docs/envelope.md), so a read
// that reaches the end without ErrCorrupt has proven the digest; content
// that does not match fails the final Read instead of returning io.EOF.
func (r *Registry) OpenBlob(ctx context.Context, repo metadata.Repository, b metadata.Blob, off, n int64) (io.ReadCloser, error) {
	return r.openObject(ctx, repo, b.ObjectKey, b.Size, off, n, digestBinding(Digest(b.Digest)))
}

// DeleteBlob unlinks a blob from repo. The ciphertext stays while other
// repositories of its domain link it; garbage collection reclaims it after.
func (r *Registry) DeleteBlob(ctx context.Context, repo metadata.Repository, d Digest) error {
	err := r.cfg.Store.UnlinkBlob(ctx, repo.ID, string(d))
	if errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("%w: %s in %s", ErrBlobUnknown, d, repo.Name)
	}
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// MountBlob makes a blob of repository from available in repo. The caller
// must already have authorized reading from. Within one encryption domain
// this only adds a link; across domains the content is decrypted and
// re-encrypted under repo's keys, so dedup never crosses keys. ErrBlobUnknown
// when from does not hold the blob.
func (r *Registry) MountBlob(ctx context.Context, repo, from metadata.Repository, d Digest) (metadata.Blob, error) {
	src, err := r.StatBlob(ctx, from, d)
	if err != nil {
		return metadata.Blob{}, err
	}
	q := r.quota(repo)
	if from.Domain == repo.Domain {
		b, err := r.cfg.Store.LinkBlobWithin(ctx, repo.ID, repo.Domain, string(d), q)
		if err != nil {
			return metadata.Blob{}, fmt.Errorf("mount %s: %w", d, quotaErr(repo, err))
		}
		return b, nil
	}
	b, err := r.cfg.Store.LinkBlobWithin(ctx, repo.ID, repo.Domain, string(d), q)
	switch {
	case err == nil:
		return b, nil // the target domain already holds this content
	case errors.Is(err, metadata.ErrQuotaExceeded):
		return metadata.Blob{}, fmt.Errorf("mount %s: %w", d, quotaErr(repo, err))
	}
	rc, err := r.OpenBlob(ctx, from, src, 0, -1)
	if err != nil {
		return metadata.Blob{}, err
	}
	defer rc.Close()
	key := layerKey(repo.Domain)
	n, err := r.writeObject(ctx, repo, key, rc, nil, digestBinding(d))
	if err != nil {
		return metadata.Blob{}, err
	}
	if n != src.Size {
		r.deleteObjects(ctx, key)
		return metadata.Blob{}, fmt.Errorf("%w: re-encrypted %d bytes of %d", ErrCorrupt, n, src.Size)
	}
	stored, inserted, err := r.cfg.Store.CommitBlobWithin(ctx, repo.ID, metadata.Blob{
		Domain: repo.Domain, Digest: string(d), Size: n, ObjectKey: key, CreatedAt: r.now().UTC(),
	}, q)
	if err != nil {
		r.deleteObjects(ctx, key)
		return metadata.Blob{}, fmt.Errorf("commit mounted blob %s: %w", d, quotaErr(repo, err))
	}
	if !inserted {
		r.deleteObjects(ctx, key)
	}
	return stored, nil
}

// RepositoriesHolding returns up to limit names of repositories of repo's
// encryption domain that link digest d (candidates for a mount without
// "from"; the caller must still authorize reading from them).
func (r *Registry) RepositoriesHolding(ctx context.Context, repo metadata.Repository, d Digest, limit int) ([]string, error) {
	names, err := r.cfg.Store.BlobRepositories(ctx, repo.Domain, string(d), limit)
	if err != nil {
		return nil, fmt.Errorf("repositories holding %s: %w", d, err)
	}
	return names, nil
}
