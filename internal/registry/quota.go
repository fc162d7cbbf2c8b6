package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/quota"
)

// Quotas (docs/quotas.md) are enforced by the metadata store, inside the
// transaction that adds a manifest (images and bytes) or a blob link
// (bytes), so concurrent pushes cannot overshoot them together. Upload
// chunks get an earlier, advisory check (checkUploadRoom) so that a layer
// that cannot fit is refused before all of it is stored.

// quota returns repo's limits.
func (r *Registry) quota(repo metadata.Repository) metadata.Quota {
	if r.cfg.Quotas == nil {
		return metadata.Quota{}
	}
	return r.cfg.Quotas(repo.Name)
}

// quotaErr turns a store's *metadata.QuotaError into ErrQuotaExceeded with
// a message naming the repository, the limit and what the push would have
// made of it; other errors pass unchanged.
func quotaErr(repo metadata.Repository, err error) error {
	var qe *metadata.QuotaError
	if !errors.As(err, &qe) {
		return err
	}
	if qe.Limit == metadata.QuotaImages {
		return fmt.Errorf("%w: repository %s may hold at most %d images (manifests) and this push would make it %d; delete images or ask for a higher quota",
			ErrQuotaExceeded, repo.Name, qe.Max, qe.Usage.Images)
	}
	return fmt.Errorf("%w: repository %s may store at most %s (%d bytes) and this push would make it %d bytes; delete unused layers and images, or ask for a higher quota",
		ErrQuotaExceeded, repo.Name, quota.Size(qe.Max), qe.Max, qe.Usage.Bytes)
}

// checkUploadRoom refuses an upload that would hold size bytes when the
// repository could not take them as a new blob. It is advisory: it reads
// usage outside any transaction and counts the upload as new even if the
// repository already links the same content; CommitUploadWithin decides.
func (r *Registry) checkUploadRoom(ctx context.Context, repo metadata.Repository, size int64) error {
	q := r.quota(repo)
	if q.MaxBytes <= 0 {
		return nil
	}
	u, err := r.cfg.Store.RepositoryUsage(ctx, repo.ID)
	if err != nil {
		return fmt.Errorf("usage of %s: %w", repo.Name, err)
	}
	u.Bytes += size
	return quotaErr(repo, metadata.Quota{MaxBytes: q.MaxBytes}.Check(u))
}
