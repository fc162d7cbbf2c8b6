package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
)

// The ECR image view of the registry: images are manifests with their tags,
// described, listed and deleted with ECR's semantics (internal/ecrapi).

// imageSize is ECR's imageSizeInBytes of a manifest being pushed: the sum of
// its stored layers' sizes as the registry measured them at upload (never
// the sizes the manifest claims), or for an index the largest size of its
// children. A reference that is missing counts 0: the metadata transaction
// rejects such a manifest anyway.
func (r *Registry) imageSize(ctx context.Context, repo metadata.Repository, p parsedManifest) int64 {
	var size int64
	if p.mediaType == MediaTypeOCIIndex || p.mediaType == MediaTypeDockerList {
		for _, ref := range p.refs {
			if ref.Kind != metadata.RefManifest {
				continue
			}
			if m, err := r.cfg.Store.GetManifest(ctx, repo.ID, ref.Digest); err == nil {
				size = max(size, m.ImageSize)
			}
		}
		return size
	}
	sizes := make(map[string]int64, len(p.layers))
	for _, d := range p.layers {
		n, ok := sizes[d]
		if !ok {
			if b, err := r.cfg.Store.BlobLinked(ctx, repo.ID, d); err == nil {
				n = b.Size
			}
			sizes[d] = n
		}
		size += n
	}
	return size
}

// ImageSize returns m's imageSizeInBytes: as recorded at push, or, for a
// manifest stored before sizes were recorded, computed now from its
// (decrypted) content.
func (r *Registry) ImageSize(ctx context.Context, repo metadata.Repository, m metadata.Manifest) (int64, error) {
	if m.ImageSize >= 0 {
		return m.ImageSize, nil
	}
	if m.ObjectKey == "" { // from ListImages, which leaves it out
		full, err := r.cfg.Store.GetManifest(ctx, repo.ID, m.Digest)
		if err != nil {
			return 0, fmt.Errorf("image size of %s: %w", m.Digest, err)
		}
		m = full
	}
	body, err := r.readManifest(ctx, repo, m)
	if err != nil {
		return 0, err
	}
	p, err := parseManifest(m.MediaType, body)
	if err != nil {
		return 0, fmt.Errorf("%w: stored manifest %s: %v", ErrCorrupt, m.Digest, err)
	}
	return r.imageSize(ctx, repo, p), nil
}

// ListImages returns a page of repo's images with their tags; see
// metadata.Store.ListImages.
func (r *Registry) ListImages(ctx context.Context, repo metadata.Repository, q metadata.ImageQuery) (metadata.ImagePage, error) {
	p, err := r.cfg.Store.ListImages(ctx, repo.ID, q)
	if err != nil {
		return metadata.ImagePage{}, fmt.Errorf("list images: %w", err)
	}
	return p, nil
}

// ImageTags returns the tags of the manifest with digest d, sorted.
func (r *Registry) ImageTags(ctx context.Context, repo metadata.Repository, d Digest) ([]string, error) {
	tags, err := r.cfg.Store.ImageTags(ctx, repo.ID, string(d))
	if err != nil {
		return nil, fmt.Errorf("image tags: %w", err)
	}
	return tags, nil
}

// DeleteImage deletes with ECR's BatchDeleteImage semantics. With a tag,
// the tag is removed (it must point at d when d is not ""), and the image
// as well once no tag is left, unless an index of the repository lists it.
// With only a digest, the image and all its tags are removed; an image an
// index lists is refused with ErrImageReferenced. ErrManifestUnknown when
// there is nothing to delete, ErrTagMismatch when tag points elsewhere.
func (r *Registry) DeleteImage(ctx context.Context, repo metadata.Repository, d Digest, tag string) (metadata.ImageDeletion, error) {
	del, err := r.cfg.Store.DeleteImage(ctx, repo.ID, string(d), tag)
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		return del, fmt.Errorf("%w: %s in %s", ErrManifestUnknown, truncate(string(d)+tag), repo.Name)
	case errors.Is(err, metadata.ErrImageTagMismatch):
		return del, fmt.Errorf("%w: %v", ErrTagMismatch, err)
	case errors.Is(err, metadata.ErrImageReferenced):
		return del, fmt.Errorf("%w: %s in %s", ErrImageReferenced, d, repo.Name)
	case err != nil:
		return del, fmt.Errorf("delete image: %w", err)
	}
	if del.ObjectKey != "" {
		r.deleteObjects(ctx, del.ObjectKey)
	}
	return del, nil
}

// LayerReferenced reports whether an image of repo uses the blob d (as a
// layer or config): ECR hands out download URLs only for those.
func (r *Registry) LayerReferenced(ctx context.Context, repo metadata.Repository, d Digest) (bool, error) {
	ok, err := r.cfg.Store.BlobReferenced(ctx, repo.ID, string(d))
	if err != nil {
		return false, fmt.Errorf("layer references: %w", err)
	}
	return ok, nil
}

// ManifestDigest returns the digest of a manifest body, as PutManifest
// computes it.
func ManifestDigest(body []byte) Digest {
	sum := sha256.Sum256(body)
	return Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// ManifestChildren returns, for every index of repo, the digests of the
// manifests it references.
func (r *Registry) ManifestChildren(ctx context.Context, repo metadata.Repository) (map[string][]string, error) {
	c, err := r.cfg.Store.ManifestChildren(ctx, repo.ID)
	if err != nil {
		return nil, fmt.Errorf("index children: %w", err)
	}
	return c, nil
}
