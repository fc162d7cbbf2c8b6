package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// Config configures the OCI handler.
type Config struct {
	Registry *registry.Registry
	Authn    auth.Authenticator
	Authz    auth.Authorizer
	// Realm is the Basic realm announced on 401 responses.
	Realm string
	// Limiter throttles repeated authentication failures per source
	// address; nil means no throttling.
	Limiter *auth.FailureLimiter
	Log     *slog.Logger
}

// Handler serves the OCI Distribution API v1.1 under /v2/.
type Handler struct {
	reg     *registry.Registry
	authn   auth.Authenticator
	authz   auth.Authorizer
	realm   string
	limiter *auth.FailureLimiter
	log     *slog.Logger
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Registry == nil || cfg.Authn == nil || cfg.Authz == nil {
		return nil, errors.New("oci: Registry, Authn and Authz are required")
	}
	h := &Handler{reg: cfg.Registry, authn: cfg.Authn, authz: cfg.Authz, realm: cfg.Realm, limiter: cfg.Limiter, log: cfg.Log}
	if h.realm == "" {
		h.realm = "coffer"
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// ServeHTTP implements http.Handler. The pipeline before it has set the
// request's auth.Info in the context.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err := h.serve(w, r); err != nil {
		e := toError(err)
		if e.Status >= 500 {
			h.log.ErrorContext(r.Context(), "request failed", "error", err)
		}
		if e.Status == http.StatusUnauthorized {
			if e.Header == nil {
				e.Header = http.Header{}
			}
			e.Header.Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", h.realm))
		}
		if info := auth.FromContext(r.Context()); info != nil {
			info.ErrorCode, info.ErrorMessage = e.Code, e.Message
		}
		writeError(w, r, e)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	rt, ok := parseRoute(r.URL.Path)
	if !ok {
		return ociErr(http.StatusNotFound, "NAME_UNKNOWN", "no such endpoint: "+r.URL.Path)
	}
	action, ok := rt.action(r.Method)
	if !ok {
		return ociErr(http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method+" is not supported on this endpoint")
	}
	info := auth.FromContext(r.Context())
	if info == nil {
		info = &auth.Info{}
	}
	if action != "" {
		info.Action = action
		info.EventName = action[len("ecr:"):]
	}
	ipSubject := "ip:" + info.SourceIP.String()
	if h.limiter.Throttled(ipSubject) {
		return ociErr(http.StatusTooManyRequests, "TOOMANYREQUESTS", "too many failed authentication attempts from this address; retry later")
	}
	p, err := h.authn.Authenticate(r)
	if err != nil {
		if r.Header.Get("Authorization") != "" {
			h.limiter.Fail(ipSubject) // a wrong credential, not a first challenge
		}
		return err
	}
	info.Principal = p
	if rt.kind == routeBase {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			io.WriteString(w, "{}")
		}
		return nil
	}
	resource := h.reg.RepositoryARN("*")
	var name registry.RepoName
	if rt.kind != routeCatalog {
		if name, err = registry.ParseRepoName(rt.name); err != nil {
			return err
		}
		resource = h.reg.RepositoryARN(string(name))
	}
	info.Resources = append(info.Resources, resource)
	if err := h.authz.Authorize(r.Context(), info, action, resource); err != nil {
		return err
	}
	ctx := r.Context()
	switch rt.kind {
	case routeCatalog:
		return h.catalog(w, r)
	case routeTags:
		return h.tags(ctx, w, r, name)
	case routeManifest:
		switch r.Method {
		case http.MethodPut:
			return h.putManifest(ctx, w, r, name, rt.ref)
		case http.MethodDelete:
			return h.deleteManifest(ctx, w, name, rt.ref)
		default:
			return h.getManifest(ctx, w, r, name, rt.ref)
		}
	case routeBlob:
		if r.Method == http.MethodDelete {
			return h.deleteBlob(ctx, w, name, rt.ref)
		}
		return h.getBlob(ctx, w, r, name, rt.ref)
	case routeUploadStart:
		return h.startUpload(ctx, w, r, info, name)
	case routeUpload:
		return h.upload(ctx, w, r, name, rt.ref)
	case routeReferrers:
		return h.referrers(ctx, w, r, name, rt.ref)
	}
	return ociErr(http.StatusNotFound, "NAME_UNKNOWN", "no such endpoint")
}

// mayCreate authorizes creating a repository on push (ecr:CreateRepository).
func (h *Handler) mayCreate(ctx context.Context, r *http.Request, name registry.RepoName) func() error {
	return func() error {
		info := auth.FromContext(ctx)
		if info == nil {
			info = &auth.Info{}
		}
		return h.authz.Authorize(ctx, info, "ecr:CreateRepository", h.reg.RepositoryARN(string(name)))
	}
}

// pageParams reads the n and last query parameters; n < 0 means no limit.
func pageParams(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = -1
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			return 0, "", ociErr(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer")
		}
		n = min(v, 10000)
	}
	return n, q.Get("last"), nil
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, err = w.Write(body)
	return err
}

func setLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", path, q.Encode()))
}

func (h *Handler) catalog(w http.ResponseWriter, r *http.Request) error {
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	limit := n + 1
	if n < 0 {
		limit = 0
	}
	names, err := h.reg.ListRepositories(r.Context(), last, limit)
	if err != nil {
		return err
	}
	if n >= 0 && len(names) > n {
		names = names[:n]
		if n > 0 {
			setLink(w, "/v2/_catalog", n, names[n-1])
		}
	}
	return writeJSON(w, http.StatusOK, "application/json", map[string][]string{"repositories": names})
}

func (h *Handler) tags(ctx context.Context, w http.ResponseWriter, r *http.Request, name registry.RepoName) error {
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	repo, err := h.reg.Repository(ctx, name)
	if err != nil {
		return err
	}
	tags, more, err := h.reg.ListTags(ctx, repo, last, n)
	if err != nil {
		return err
	}
	if more && n > 0 {
		setLink(w, "/v2/"+string(name)+"/tags/list", n, tags[len(tags)-1])
	}
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, http.StatusOK, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{string(name), tags})
}

func (h *Handler) getManifest(ctx context.Context, w http.ResponseWriter, r *http.Request, name registry.RepoName, ref string) error {
	repo, err := h.reg.Repository(ctx, name)
	if err != nil {
		return err
	}
	m, err := h.reg.ResolveManifest(ctx, repo, ref)
	if err != nil {
		return err
	}
	var body []byte
	if r.Method != http.MethodHead {
		if body, err = h.reg.ReadManifest(ctx, repo, m); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", m.MediaType)
	w.Header().Set("Docker-Content-Digest", m.Digest)
	w.Header().Set("Content-Length", strconv.FormatInt(m.Size, 10))
	w.Header().Set("ETag", `"`+m.Digest+`"`)
	w.WriteHeader(http.StatusOK)
	if body != nil {
		w.Write(body)
	}
	return nil
}

func (h *Handler) putManifest(ctx context.Context, w http.ResponseWriter, r *http.Request, name registry.RepoName, ref string) error {
	if r.ContentLength > registry.MaxManifestSize {
		return fmt.Errorf("%w: %d bytes exceeds the %d byte limit", registry.ErrManifestTooLarge, r.ContentLength, registry.MaxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, registry.MaxManifestSize+1))
	if err != nil {
		return fmt.Errorf("%w: reading the manifest: %v", registry.ErrManifestInvalid, err)
	}
	if len(body) > registry.MaxManifestSize {
		return fmt.Errorf("%w: more than %d bytes", registry.ErrManifestTooLarge, registry.MaxManifestSize)
	}
	repo, err := h.reg.RepositoryForPush(ctx, name, h.mayCreate(ctx, r, name))
	if err != nil {
		return err
	}
	res, err := h.reg.PutManifest(ctx, repo, ref, r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	if res.Subject != "" {
		w.Header().Set("OCI-Subject", res.Subject)
	}
	w.Header().Set("Location", "/v2/"+string(name)+"/manifests/"+string(res.Digest))
	w.Header().Set("Docker-Content-Digest", string(res.Digest))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (h *Handler) deleteManifest(ctx context.Context, w http.ResponseWriter, name registry.RepoName, ref string) error {
	repo, err := h.reg.Repository(ctx, name)
	if err != nil {
		return err
	}
	if err := h.reg.DeleteManifest(ctx, repo, ref); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (h *Handler) referrers(ctx context.Context, w http.ResponseWriter, r *http.Request, name registry.RepoName, ref string) error {
	d, err := registry.ParseDigest(ref)
	if err != nil {
		return err
	}
	repo, err := h.reg.Repository(ctx, name)
	if err != nil {
		return err
	}
	artifactType := r.URL.Query().Get("artifactType")
	descs, err := h.reg.Referrers(ctx, repo, d, artifactType)
	if err != nil {
		return err
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	// No Docker-Content-Digest here: the response is generated, not stored.
	return writeJSON(w, http.StatusOK, registry.MediaTypeOCIIndex, struct {
		SchemaVersion int                   `json:"schemaVersion"`
		MediaType     string                `json:"mediaType"`
		Manifests     []registry.Descriptor `json:"manifests"`
	}{2, registry.MediaTypeOCIIndex, descs})
}

// repoForBlob resolves the repository of a blob request.
func (h *Handler) repoForBlob(ctx context.Context, name registry.RepoName, ref string) (metadata.Repository, registry.Digest, error) {
	d, err := registry.ParseDigest(ref)
	if err != nil {
		return metadata.Repository{}, "", err
	}
	repo, err := h.reg.Repository(ctx, name)
	return repo, d, err
}
