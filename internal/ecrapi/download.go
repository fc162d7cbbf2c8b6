package ecrapi

import (
	"encoding/xml"
	"errors"
	"fmt"
	"github.com/cofferhq/coffer/internal/blobhttp"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/presign"
	"github.com/cofferhq/coffer/internal/registry"
)

// LayerDownloadPath is where Coffer serves the presigned layer URLs of
// GetDownloadUrlForLayer: LayerDownloadPath + <repository> + "/" + <digest>,
// with the presign query parameters.
const LayerDownloadPath = "/_coffer/layers/"

// layerDownloadEvent names a presigned download in the audit record; the
// action it is authorized as is ecr:GetDownloadUrlForLayer.
const layerDownloadEvent = "DownloadLayer"

// LayerDownloads returns the handler of presigned layer downloads, to be
// mounted at LayerDownloadPath behind the request pipeline (which fills in
// the request's auth.Info and audits it).
//
// A download is checked in this order: the signature (constant time) over
// repository, digest, expiry and principal; the expiry; then the embedded
// principal is authorized again for ecr:GetDownloadUrlForLayer on the
// repository, with this request's own context (source IP, TLS, time), so
// a URL never outlives a policy change, and a URL copied to a place where
// policy denies the principal does not work there. Only then is the layer
// looked up and served, decrypted on the fly, with Range support. Refusals
// are S3-style XML errors with status 403 (404 for a missing layer).
func (h *Handler) LayerDownloads() http.Handler {
	return http.HandlerFunc(h.serveLayerDownload)
}

func (h *Handler) serveLayerDownload(w http.ResponseWriter, r *http.Request) {
	info := auth.FromContext(r.Context())
	if info == nil {
		info = &auth.Info{}
	}
	info.Action = "ecr:GetDownloadUrlForLayer"
	info.EventName = layerDownloadEvent
	if err := h.layerDownload(w, r, info); err != nil {
		var de *downloadError
		if !errors.As(err, &de) {
			h.cfg.Log.ErrorContext(r.Context(), "layer download failed", "error", err)
			de = &downloadError{status: http.StatusInternalServerError, code: "InternalError", msg: "We encountered an internal error. Please try again."}
		}
		info.ErrorCode, info.ErrorMessage = de.code, de.msg
		writeDownloadError(w, r, info, de)
	}
}

// downloadError is an S3-style error of the download path.
type downloadError struct {
	status    int
	code, msg string
}

func (e *downloadError) Error() string { return e.code + ": " + e.msg }

func denied(msg string) *downloadError {
	return &downloadError{status: http.StatusForbidden, code: "AccessDenied", msg: msg}
}

func writeDownloadError(w http.ResponseWriter, r *http.Request, info *auth.Info, e *downloadError) {
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string   `xml:"Code"`
		Message   string   `xml:"Message"`
		RequestID string   `xml:"RequestId"`
	}{Code: e.code, Message: e.msg, RequestID: info.RequestID})
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(body)))
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		io.WriteString(w, xml.Header)
		w.Write(body)
	}
}

// splitLayerPath splits <repository>/<digest> after LayerDownloadPath.
func splitLayerPath(path string) (registry.RepoName, registry.Digest, bool) {
	rest, ok := strings.CutPrefix(path, LayerDownloadPath)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	name, err := registry.ParseRepoName(rest[:i])
	if err != nil {
		return "", "", false
	}
	d, err := registry.ParseDigest(rest[i+1:])
	if err != nil {
		return "", "", false
	}
	return name, d, true
}

func (h *Handler) layerDownload(w http.ResponseWriter, r *http.Request, info *auth.Info) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return &downloadError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", msg: "The specified method is not allowed against this resource."}
	}
	name, d, ok := splitLayerPath(r.URL.Path)
	if !ok {
		return &downloadError{status: http.StatusNotFound, code: "NoSuchKey", msg: "The specified key does not exist."}
	}
	arn := h.cfg.Registry.RepositoryARN(string(name))
	info.Resources = append(info.Resources, arn)
	info.Params = map[string]any{"repositoryName": string(name), "layerDigest": string(d)}
	if h.cfg.Presign == nil {
		return denied("presigned layer URLs are not enabled on this server")
	}
	c, err := h.cfg.Presign.Verify(string(name), string(d), r.URL.Query(), h.now())
	switch {
	case errors.Is(err, presign.ErrExpired):
		return denied(fmt.Sprintf("Request has expired: the presigned URL was valid until %s", c.Expires.UTC().Format("2006-01-02T15:04:05Z")))
	case errors.Is(err, presign.ErrSignature):
		return &downloadError{status: http.StatusForbidden, code: "SignatureDoesNotMatch",
			msg: "The request signature we calculated does not match the signature you provided: the URL was altered or was not issued for this layer"}
	case err != nil:
		return denied("Query-string authentication requires the " + presign.ParamExpires + ", " + presign.ParamPrincipal + " and " + presign.ParamSignature + " parameters issued by GetDownloadUrlForLayer")
	}
	p := c.Principal
	info.Principal = auth.Principal{Type: p.Type, ARN: p.ARN, AccountID: p.AccountID, PrincipalID: p.PrincipalID,
		UserName: p.UserName, RoleARN: p.RoleARN, SessionName: p.SessionName}
	if p.Expires != 0 {
		info.Principal.Expires = timeUnix(p.Expires)
	}
	ctx := r.Context()
	if h.cfg.PrincipalExists != nil {
		ok, err := h.cfg.PrincipalExists(ctx, info.Principal)
		if err != nil {
			return err
		}
		if !ok {
			return denied("The principal that requested this URL no longer exists: " + info.Principal.ARN)
		}
	}
	if err := h.cfg.Authz.Authorize(ctx, info, "ecr:GetDownloadUrlForLayer", arn); err != nil {
		var de *auth.DeniedError
		if errors.As(err, &de) {
			return denied(de.Error())
		}
		return err
	}
	repo, err := h.cfg.Registry.Repository(ctx, name)
	if errors.Is(err, registry.ErrNameUnknown) {
		return &downloadError{status: http.StatusNotFound, code: "NoSuchKey", msg: "The specified key does not exist: the repository is gone."}
	}
	if err != nil {
		return err
	}
	b, err := h.cfg.Registry.StatBlob(ctx, repo, d)
	if errors.Is(err, registry.ErrBlobUnknown) {
		return &downloadError{status: http.StatusNotFound, code: "NoSuchKey", msg: "The specified key does not exist: the layer is not in the repository."}
	}
	if err != nil {
		return err
	}
	return blobhttp.Serve(w, r, blobhttp.Blob{
		Size:    b.Size,
		Open:    func(off, n int64) (io.ReadCloser, error) { return h.cfg.Registry.OpenBlob(ctx, repo, b, off, n) },
		Headers: func(hdr http.Header) { setLayerHeaders(hdr, b.Digest) },
		Unsatisfiable: func() error {
			return &downloadError{status: http.StatusRequestedRangeNotSatisfiable, code: "InvalidRange", msg: "The requested range is not satisfiable"}
		},
		Abort: func(err error) {
			h.cfg.Log.ErrorContext(ctx, "layer download failed mid-stream", "digest", b.Digest, "error", err)
		},
	})
}

func setLayerHeaders(hdr http.Header, digest string) {
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("ETag", `"`+digest+`"`)
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Cache-Control", "private, no-store")
}

func timeUnix(secs int64) time.Time { return time.Unix(secs, 0) }
