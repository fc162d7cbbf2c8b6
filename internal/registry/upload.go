package registry

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Uploads are resumable and survive restarts: each PATCH (or the body of the
// final PUT) becomes one sealed part object, and the running SHA-256 state is
// kept in the session row, sealed under the root key because it holds up to
// 63 bytes of plaintext. An upload of one part (docker and crane stream the
// whole layer in one PATCH) commits without copying: the part becomes the
// blob object. Several parts are joined into one new object at commit.

// UploadStatus is the state of an upload session.
type UploadStatus struct {
	ID   string
	Repo RepoName
	Size int64
}

// StartUpload opens a new upload session in repo.
func (r *Registry) StartUpload(ctx context.Context, repo metadata.Repository) (UploadStatus, error) {
	now := r.now().UTC()
	u := metadata.Upload{ID: newID(), RepoID: repo.ID, Domain: repo.Domain, StartedAt: now, UpdatedAt: now}
	state, err := r.sealHash(u.ID, sha256.New())
	if err != nil {
		return UploadStatus{}, err
	}
	u.HashState = state
	if err := r.cfg.Store.CreateUpload(ctx, u); err != nil {
		return UploadStatus{}, fmt.Errorf("create upload: %w", err)
	}
	return UploadStatus{ID: u.ID, Repo: RepoName(repo.Name), Size: 0}, nil
}

// GetUpload returns the status of a session of repo.
func (r *Registry) GetUpload(ctx context.Context, repo metadata.Repository, id string) (UploadStatus, error) {
	u, err := r.upload(ctx, repo, id)
	if err != nil {
		return UploadStatus{}, err
	}
	return UploadStatus{ID: u.ID, Repo: RepoName(repo.Name), Size: u.Size}, nil
}

func (r *Registry) upload(ctx context.Context, repo metadata.Repository, id string) (metadata.Upload, error) {
	if len(id) != 32 || !isHex(id) {
		return metadata.Upload{}, fmt.Errorf("%w: %q is not an upload ID", ErrUploadUnknown, truncate(id))
	}
	u, err := r.cfg.Store.GetUpload(ctx, id)
	if errors.Is(err, metadata.ErrNotFound) || (err == nil && u.RepoID != repo.ID) {
		return metadata.Upload{}, fmt.Errorf("%w: upload %s", ErrUploadUnknown, id)
	}
	if err != nil {
		return metadata.Upload{}, fmt.Errorf("get upload %s: %w", id, err)
	}
	return u, nil
}

// AppendUpload adds src to the session. start is the offset the client says
// the chunk begins at (-1 when it does not say, e.g. a streamed PATCH); a
// chunk that does not begin where the session ends is a *RangeError. length
// is the declared chunk length, or -1.
func (r *Registry) AppendUpload(ctx context.Context, repo metadata.Repository, id string, src io.Reader, start, length int64) (UploadStatus, error) {
	u, err := r.upload(ctx, repo, id)
	if err != nil {
		return UploadStatus{}, err
	}
	u, err = r.appendPart(ctx, repo, u, src, start, length)
	if err != nil {
		return UploadStatus{}, err
	}
	return UploadStatus{ID: u.ID, Repo: RepoName(repo.Name), Size: u.Size}, nil
}

func (r *Registry) appendPart(ctx context.Context, repo metadata.Repository, u metadata.Upload, src io.Reader, start, length int64) (metadata.Upload, error) {
	if start >= 0 && start != u.Size {
		return u, rangeErr(u.Size, "chunk starts at %d but the upload holds %d bytes", start, u.Size)
	}
	if length >= 0 {
		if err := r.checkUploadRoom(ctx, repo, u.Size+length); err != nil {
			return u, err
		}
	}
	h, err := r.openHash(u.ID, u.HashState)
	if err != nil {
		return u, err
	}
	key := layerKey(u.Domain)
	n, err := r.writeObject(ctx, repo, key, src, h, nil)
	if errors.Is(err, ErrKMS) {
		return u, err // the KMS reason reaches the client (issue #6)
	}
	if err != nil {
		return u, fmt.Errorf("%w: %v", ErrUploadInvalid, err)
	}
	if length >= 0 && n != length {
		r.deleteObjects(ctx, key)
		return u, fmt.Errorf("%w: chunk declared %d bytes but carried %d", ErrSizeInvalid, length, n)
	}
	if n == 0 {
		r.deleteObjects(ctx, key)
		return u, nil
	}
	if length < 0 { // a streamed chunk: its size is known only now
		if err := r.checkUploadRoom(ctx, repo, u.Size+n); err != nil {
			r.deleteObjects(ctx, key)
			return u, err
		}
	}
	state, err := r.sealHash(u.ID, h)
	if err != nil {
		r.deleteObjects(ctx, key)
		return u, err
	}
	prev := u.Size
	u.Parts = append(u.Parts, metadata.Part{ObjectKey: key, Size: n, Binding: hex.EncodeToString(h.Sum(nil))})
	u.Size += n
	u.HashState = state
	u.UpdatedAt = r.now().UTC()
	if err := r.cfg.Store.UpdateUpload(ctx, u, prev); err != nil {
		r.deleteObjects(ctx, key)
		if errors.Is(err, metadata.ErrConflict) {
			return u, rangeErr(prev, "upload %s was modified concurrently", u.ID)
		}
		if errors.Is(err, metadata.ErrNotFound) {
			return u, fmt.Errorf("%w: upload %s", ErrUploadUnknown, u.ID)
		}
		return u, fmt.Errorf("update upload %s: %w", u.ID, err)
	}
	return u, nil
}

// CompleteUpload appends the final chunk src (may be empty), checks the
// content against want, and commits the blob to repo. On a digest mismatch
// the session is cancelled.
func (r *Registry) CompleteUpload(ctx context.Context, repo metadata.Repository, id string, want Digest, src io.Reader, start, length int64) (metadata.Blob, error) {
	u, err := r.upload(ctx, repo, id)
	if err != nil {
		return metadata.Blob{}, err
	}
	if src != nil {
		if u, err = r.appendPart(ctx, repo, u, src, start, length); err != nil {
			return metadata.Blob{}, err
		}
	}
	h, err := r.openHash(u.ID, u.HashState)
	if err != nil {
		return metadata.Blob{}, err
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got != string(want) {
		r.cancel(ctx, u.ID)
		return metadata.Blob{}, fmt.Errorf("%w: upload content has digest %s, not %s", ErrDigestInvalid, got, want)
	}
	key, err := r.joinParts(ctx, repo, u, want)
	if err != nil {
		return metadata.Blob{}, err
	}
	blob := metadata.Blob{Domain: u.Domain, Digest: string(want), Size: u.Size, ObjectKey: key, CreatedAt: r.now().UTC()}
	stored, inserted, err := r.cfg.Store.CommitUploadWithin(ctx, u.ID, blob, r.quota(repo))
	if err != nil {
		if len(u.Parts) != 1 {
			r.deleteObjects(ctx, key)
		}
		if errors.Is(err, metadata.ErrNotFound) {
			return metadata.Blob{}, fmt.Errorf("%w: upload %s", ErrUploadUnknown, u.ID)
		}
		if errors.Is(err, metadata.ErrQuotaExceeded) {
			// The session stays, so a retry (the AWS SDKs retry
			// LimitExceededException as throttling) is refused the same
			// way, and succeeds once room is made; GC's upload TTL
			// reclaims it otherwise.
			return metadata.Blob{}, quotaErr(repo, err)
		}
		return metadata.Blob{}, fmt.Errorf("commit upload %s: %w", u.ID, err)
	}
	// The session row is gone: its parts are ours to remove.
	var garbage []string
	if len(u.Parts) != 1 {
		for _, p := range u.Parts {
			garbage = append(garbage, p.ObjectKey)
		}
	}
	if !inserted && stored.ObjectKey != key {
		garbage = append(garbage, key) // identical content was already stored
	}
	r.deleteObjects(ctx, garbage...)
	return stored, nil
}

// joinParts returns the key of one object holding the whole upload: the
// single part itself, a new empty object, or a new object joining the parts.
func (r *Registry) joinParts(ctx context.Context, repo metadata.Repository, u metadata.Upload, d Digest) (string, error) {
	if len(u.Parts) == 1 {
		// The part was bound to the upload's running digest, which is d.
		return u.Parts[0].ObjectKey, nil
	}
	key := layerKey(u.Domain)
	pr, pw := io.Pipe()
	go func() {
		for _, p := range u.Parts {
			binding, err := hex.DecodeString(p.Binding)
			if err != nil {
				pw.CloseWithError(fmt.Errorf("%w: part %s has no valid binding", ErrCorrupt, p.ObjectKey))
				return
			}
			rc, err := r.openObject(ctx, repo, p.ObjectKey, p.Size, 0, -1, binding)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			_, err = io.Copy(pw, rc)
			rc.Close()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	n, err := r.writeObject(ctx, repo, key, pr, nil, digestBinding(d))
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return "", err
	}
	if n != u.Size {
		r.deleteObjects(ctx, key)
		return "", fmt.Errorf("%w: joined %d bytes, expected %d", ErrCorrupt, n, u.Size)
	}
	return key, nil
}

// CancelUpload deletes a session and its parts.
func (r *Registry) CancelUpload(ctx context.Context, repo metadata.Repository, id string) error {
	if _, err := r.upload(ctx, repo, id); err != nil {
		return err
	}
	r.cancel(ctx, id)
	return nil
}

func (r *Registry) cancel(ctx context.Context, id string) {
	u, err := r.cfg.Store.DeleteUpload(ctx, id)
	if err != nil {
		return
	}
	keys := make([]string, len(u.Parts))
	for i, p := range u.Parts {
		keys[i] = p.ObjectKey
	}
	r.deleteObjects(ctx, keys...)
}

// deleteObjects removes storage objects no metadata row references any
// more. Failures leave orphans for garbage collection, never dangling rows.
func (r *Registry) deleteObjects(ctx context.Context, keys ...string) {
	ctx = context.WithoutCancel(ctx)
	for _, k := range keys {
		if err := r.cfg.Driver.Delete(ctx, k); err != nil {
			r.log.WarnContext(ctx, "delete object failed; left for garbage collection", "key", k, "error", err)
		}
	}
}

func (r *Registry) sealHash(id string, h hash.Hash) ([]byte, error) {
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("save hash state: %w", err)
	}
	return r.cfg.Root.Wrap(state, map[string]string{"coffer:upload": id})
}

func (r *Registry) openHash(id string, sealed []byte) (hash.Hash, error) {
	state, err := r.cfg.Root.Unwrap(sealed, map[string]string{"coffer:upload": id})
	if err != nil {
		return nil, fmt.Errorf("%w: hash state of upload %s", ErrCorrupt, id)
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("%w: hash state of upload %s: %v", ErrCorrupt, id, err)
	}
	return h, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
