package registry

import (
	"context"
	"fmt"
	"io"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Verification of stored objects (coffer fsck). Both read the whole object
// through the envelope reader, which authenticates every segment and, at
// the end, the content digest; neither records a pull.

// VerifyManifest reads a stored manifest and returns the digests of the
// blobs it references (config and layers; none for an index). An object
// that fails authentication is ErrCorrupt; a KMS refusal is ErrKMS.
func (r *Registry) VerifyManifest(ctx context.Context, repo metadata.Repository, m metadata.Manifest) ([]string, error) {
	body, err := r.readManifest(ctx, repo, m)
	if err != nil {
		return nil, err
	}
	p, err := parseManifest(m.MediaType, body)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest %s no longer parses: %v", ErrCorrupt, m.Digest, err)
	}
	var blobs []string
	for _, ref := range p.refs {
		if ref.Kind == metadata.RefBlob {
			blobs = append(blobs, ref.Digest)
		}
	}
	return blobs, nil
}

// VerifyBlob reads a whole blob, which proves its ciphertext and digest.
func (r *Registry) VerifyBlob(ctx context.Context, repo metadata.Repository, b metadata.Blob) error {
	rc, err := r.OpenBlob(ctx, repo, b, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
