package oci

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/blobhttp"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

func (h *Handler) getBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, name registry.RepoName, ref string) error {
	repo, d, err := h.repoForBlob(ctx, name, ref)
	if err != nil {
		return err
	}
	b, err := h.reg.StatBlob(ctx, repo, d)
	if err != nil {
		return err
	}
	return blobhttp.Serve(w, r, blobhttp.Blob{
		Size:    b.Size,
		Open:    func(off, n int64) (io.ReadCloser, error) { return h.reg.OpenBlob(ctx, repo, b, off, n) },
		Headers: func(hdr http.Header) { setBlobHeaders(hdr, b.Digest) },
		Unsatisfiable: func() error {
			return ociErr(http.StatusRequestedRangeNotSatisfiable, "BLOB_UNKNOWN", "requested range is outside the blob")
		},
		Abort: func(err error) {
			h.log.ErrorContext(ctx, "blob read failed mid-stream", "digest", b.Digest, "error", err)
		},
	})
}

func setBlobHeaders(hdr http.Header, digest string) {
	hdr.Set("Docker-Content-Digest", digest)
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("ETag", `"`+digest+`"`)
	hdr.Set("Content-Type", "application/octet-stream")
}

func (h *Handler) deleteBlob(ctx context.Context, w http.ResponseWriter, name registry.RepoName, ref string) error {
	repo, d, err := h.repoForBlob(ctx, name, ref)
	if err != nil {
		return err
	}
	if err := h.reg.DeleteBlob(ctx, repo, d); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func uploadLocation(name registry.RepoName, id string) string {
	return "/v2/" + string(name) + "/blobs/uploads/" + id
}

func writeUploadStatus(w http.ResponseWriter, status int, st registry.UploadStatus) {
	w.Header().Set("Location", uploadLocation(st.Repo, st.ID))
	w.Header().Set("Range", rangeHeader(st.Size))
	w.Header().Set("Docker-Upload-UUID", st.ID)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

func writeBlobCreated(w http.ResponseWriter, name registry.RepoName, b metadata.Blob) {
	w.Header().Set("Location", "/v2/"+string(name)+"/blobs/"+b.Digest)
	w.Header().Set("Docker-Content-Digest", b.Digest)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (h *Handler) startUpload(ctx context.Context, w http.ResponseWriter, r *http.Request, info *auth.Info, name registry.RepoName) error {
	q := r.URL.Query()
	repo, err := h.reg.RepositoryForPush(ctx, name, h.mayCreate(ctx, r, name))
	if err != nil {
		return err
	}
	if mount := q.Get("mount"); mount != "" {
		d, err := registry.ParseDigest(mount)
		if err != nil {
			return err
		}
		if b, ok := h.tryMount(ctx, info, repo, d, q.Get("from")); ok {
			writeBlobCreated(w, name, b)
			return nil
		}
	}
	st, err := h.reg.StartUpload(ctx, repo)
	if err != nil {
		return err
	}
	if dq := q.Get("digest"); dq != "" { // monolithic upload in the POST
		d, err := registry.ParseDigest(dq)
		if err != nil {
			h.reg.CancelUpload(ctx, repo, st.ID)
			return err
		}
		b, err := h.reg.CompleteUpload(ctx, repo, st.ID, d, r.Body, 0, r.ContentLength)
		if err != nil {
			h.reg.CancelUpload(ctx, repo, st.ID)
			return err
		}
		writeBlobCreated(w, name, b)
		return nil
	}
	writeUploadStatus(w, http.StatusAccepted, st)
	return nil
}

// maxMountCandidates bounds how many repositories a mount without "from"
// tries.
const maxMountCandidates = 10

// tryMount mounts d from the repository named from when the caller may read
// it there. Without from, it mounts from any repository of the target's
// encryption domain that holds the blob and that the caller may read
// (OCI's automatic content discovery). Any failure falls back to a regular
// upload, as the spec says.
func (h *Handler) tryMount(ctx context.Context, info *auth.Info, repo metadata.Repository, d registry.Digest, from string) (metadata.Blob, bool) {
	if from == "" {
		names, err := h.reg.RepositoriesHolding(ctx, repo, d, maxMountCandidates)
		if err != nil {
			h.log.WarnContext(ctx, "mount without from: listing holders failed; falling back to upload", "digest", d, "error", err)
			return metadata.Blob{}, false
		}
		for _, n := range names {
			if n == repo.Name {
				continue
			}
			if b, ok := h.tryMount(ctx, info, repo, d, n); ok {
				return b, true
			}
		}
		return metadata.Blob{}, false
	}
	fromName, err := registry.ParseRepoName(from)
	if err != nil {
		return metadata.Blob{}, false
	}
	fromARN := h.reg.RepositoryARN(string(fromName))
	if err := h.authz.Authorize(ctx, info, "ecr:GetDownloadUrlForLayer", fromARN); err != nil {
		return metadata.Blob{}, false
	}
	fromRepo, err := h.reg.Repository(ctx, fromName)
	if err != nil {
		return metadata.Blob{}, false
	}
	b, err := h.reg.MountBlob(ctx, repo, fromRepo, d)
	if err != nil {
		if !errors.Is(err, registry.ErrBlobUnknown) {
			h.log.WarnContext(ctx, "cross-repository mount failed; falling back to upload", "digest", d, "error", err)
		}
		return metadata.Blob{}, false
	}
	info.Resources = append(info.Resources, fromARN)
	return b, true
}

// chunkRange returns the offset a chunk declares (-1: none) and its length
// (-1: unknown).
func chunkRange(r *http.Request) (start, length int64, err error) {
	start, length = -1, r.ContentLength
	if cr := r.Header.Get("Content-Range"); cr != "" {
		s, e, perr := parseContentRange(cr)
		if perr != nil {
			return 0, 0, ociErr(http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", perr.Error())
		}
		if length >= 0 && length != e-s+1 {
			return 0, 0, ociErr(http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "Content-Range and Content-Length disagree")
		}
		start, length = s, e-s+1
	}
	return start, length, nil
}

func (h *Handler) upload(ctx context.Context, w http.ResponseWriter, r *http.Request, name registry.RepoName, id string) error {
	repo, err := h.reg.Repository(ctx, name)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		st, err := h.reg.GetUpload(ctx, repo, id)
		if err != nil {
			return err
		}
		writeUploadStatus(w, http.StatusNoContent, st)
		return nil
	case http.MethodDelete:
		if err := h.reg.CancelUpload(ctx, repo, id); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch:
		start, length, err := chunkRange(r)
		if err != nil {
			if st, serr := h.reg.GetUpload(ctx, repo, id); serr == nil {
				err.(*Error).Header = http.Header{"Range": {rangeHeader(st.Size)}, "Location": {uploadLocation(name, id)}}
			}
			return err
		}
		st, err := h.reg.AppendUpload(ctx, repo, id, r.Body, start, length)
		if err != nil {
			var rng *registry.RangeError
			if errors.As(err, &rng) {
				e := toError(err)
				e.Header.Set("Location", uploadLocation(name, id))
				return e
			}
			return err
		}
		writeUploadStatus(w, http.StatusAccepted, st)
		return nil
	default: // PUT completes the upload
		dq := r.URL.Query().Get("digest")
		if dq == "" {
			return ociErr(http.StatusBadRequest, "DIGEST_INVALID", "the digest query parameter is required to complete an upload")
		}
		d, err := registry.ParseDigest(dq)
		if err != nil {
			return err
		}
		start, length, err := chunkRange(r)
		if err != nil {
			return err
		}
		var body io.Reader
		if length != 0 {
			body = r.Body
		}
		b, err := h.reg.CompleteUpload(ctx, repo, id, d, body, start, length)
		if err != nil {
			return err
		}
		writeBlobCreated(w, name, b)
		return nil
	}
}
