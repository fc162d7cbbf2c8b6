package ecrapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/presign"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// Layers: the ECR API face of the blob store. Uploads use the registry's
// resumable sessions (the same as the OCI door's PATCH/PUT), so a layer
// pushed either way is the same sealed object.

var layerOps = map[string]op{
	"BatchCheckLayerAvailability": (*Handler).batchCheckLayerAvailability,
	"InitiateLayerUpload":         (*Handler).initiateLayerUpload,
	"UploadLayerPart":             (*Handler).uploadLayerPart,
	"CompleteLayerUpload":         (*Handler).completeLayerUpload,
	"GetDownloadUrlForLayer":      (*Handler).getDownloadURLForLayer,
}

func init() {
	opGroups = append(opGroups, layerOps)
	bodyLimits["UploadLayerPart"] = MaxLayerPartBody
}

const (
	// MaxLayerPart is ECR's LayerPartBlob limit (botocore model).
	MaxLayerPart = 20 << 20
	// MaxLayerPartBody bounds an UploadLayerPart request: the part in
	// base64 plus room for the other members. The SigV4 verifier must
	// accept bodies this large.
	MaxLayerPartBody = (MaxLayerPart+2)/3*4 + 64<<10
	// layerPartSize is the part size InitiateLayerUpload suggests.
	layerPartSize   = 10 << 20
	maxLayerDigests = 100
)

// LayerFailureCode values (botocore model).
const (
	failInvalidLayerDigest = "InvalidLayerDigest"
	failMissingLayerDigest = "MissingLayerDigest"
)

type layer struct {
	LayerDigest       string `json:"layerDigest"`
	LayerAvailability string `json:"layerAvailability"`
	LayerSize         int64  `json:"layerSize"`
}

type layerFailure struct {
	LayerDigest   string `json:"layerDigest"`
	FailureCode   string `json:"failureCode"`
	FailureReason string `json:"failureReason"`
}

type batchCheckLayerAvailabilityInput struct {
	RegistryID     string   `json:"registryId"`
	RepositoryName string   `json:"repositoryName"`
	LayerDigests   []string `json:"layerDigests"`
}

// batchCheckLayerAvailability reports which layers the repository holds. A
// layer it does not hold is a MissingLayerDigest failure, as ECR answers.
func (h *Handler) batchCheckLayerAvailability(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in batchCheckLayerAvailabilityInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:BatchCheckLayerAvailability", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if in.LayerDigests == nil {
		return nil, imgRequired("layerDigests")
	}
	if len(in.LayerDigests) < 1 || len(in.LayerDigests) > maxLayerDigests {
		return nil, imgParamErr("Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must have length between 1 and %d'", maxLayerDigests)
	}
	layers, failures := []layer{}, []layerFailure{}
	for _, s := range in.LayerDigests {
		if len(s) > 1000 {
			return nil, imgParamErr("Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must have length less than or equal to 1000'")
		}
		if s == "" {
			failures = append(failures, layerFailure{LayerDigest: s, FailureCode: failMissingLayerDigest, FailureReason: "Missing layer digest"})
			continue
		}
		d, err := registry.ParseDigest(s)
		if err != nil {
			failures = append(failures, layerFailure{LayerDigest: s, FailureCode: failInvalidLayerDigest, FailureReason: "Invalid layer digest"})
			continue
		}
		b, err := h.cfg.Registry.StatBlob(ctx, repo, d)
		if errors.Is(err, registry.ErrBlobUnknown) {
			failures = append(failures, layerFailure{LayerDigest: s, FailureCode: failMissingLayerDigest, FailureReason: "Could not find layer"})
			continue
		}
		if err != nil {
			return nil, err
		}
		layers = append(layers, layer{LayerDigest: b.Digest, LayerAvailability: "AVAILABLE", LayerSize: b.Size})
	}
	return map[string]any{"layers": layers, "failures": failures}, nil
}

// Upload IDs are the registry's 32-hex session IDs, shown in ECR's UUID
// form.
func formatUploadID(id string) string {
	if len(id) != 32 {
		return id
	}
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}

func parseUploadID(s string) (string, error) {
	bad := imgParamErr("Invalid parameter at 'uploadId' failed to satisfy constraint: 'must be a UUID'")
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", bad
	}
	id := strings.ToLower(strings.ReplaceAll(s, "-", ""))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", bad
	}
	return id, nil
}

type initiateLayerUploadInput struct {
	RegistryID     string `json:"registryId"`
	RepositoryName string `json:"repositoryName"`
}

func (h *Handler) initiateLayerUpload(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in initiateLayerUploadInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:InitiateLayerUpload", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	st, err := h.cfg.Registry.StartUpload(ctx, repo)
	if err != nil {
		return nil, err
	}
	return map[string]any{"uploadId": formatUploadID(st.ID), "partSize": layerPartSize}, nil
}

type uploadLayerPartInput struct {
	RegistryID     string  `json:"registryId"`
	RepositoryName string  `json:"repositoryName"`
	UploadID       string  `json:"uploadId"`
	PartFirstByte  *int64  `json:"partFirstByte"`
	PartLastByte   *int64  `json:"partLastByte"`
	LayerPartBlob  *[]byte `json:"layerPartBlob"`
}

// uploadLayerPart appends one part. Parts must arrive in order: a part
// that does not start right after the bytes received so far is refused
// with InvalidLayerPartException naming the last valid byte (-1 before the
// first part), from which the client resumes.
func (h *Handler) uploadLayerPart(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in uploadLayerPartInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:UploadLayerPart", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	switch {
	case in.UploadID == "":
		return nil, imgRequired("uploadId")
	case in.PartFirstByte == nil:
		return nil, imgRequired("partFirstByte")
	case in.PartLastByte == nil:
		return nil, imgRequired("partLastByte")
	case in.LayerPartBlob == nil:
		return nil, imgRequired("layerPartBlob")
	case *in.PartFirstByte < 0 || *in.PartLastByte < 0:
		return nil, imgParamErr("Invalid parameter at 'partFirstByte' or 'partLastByte' failed to satisfy constraint: 'Member must have value greater than or equal to 0'")
	}
	id, err := parseUploadID(in.UploadID)
	if err != nil {
		return nil, err
	}
	info.Params["uploadId"] = in.UploadID
	st, err := h.cfg.Registry.GetUpload(ctx, repo, id)
	if err != nil {
		return nil, h.uploadErr(repo, in.UploadID, err)
	}
	blob := *in.LayerPartBlob
	first, last := *in.PartFirstByte, *in.PartLastByte
	partErr := func(size int64, format string, args ...any) error {
		return h.layerPartErr(repo, in.UploadID, size, fmt.Sprintf(format, args...))
	}
	switch {
	case len(blob) == 0:
		return nil, partErr(st.Size, "The layer part is empty")
	case len(blob) > MaxLayerPart:
		return nil, partErr(st.Size, "The layer part is %d bytes; a part may have at most %d", len(blob), MaxLayerPart)
	case last < first || last-first+1 != int64(len(blob)):
		return nil, partErr(st.Size, "The layer part has %d bytes but partFirstByte %d and partLastByte %d span %d", len(blob), first, last, last-first+1)
	case first != st.Size:
		return nil, partErr(st.Size, "The first byte of the part, %d, is not consecutive to the last byte received, %d", first, st.Size-1)
	}
	st, err = h.cfg.Registry.AppendUpload(ctx, repo, id, bytes.NewReader(blob), first, int64(len(blob)))
	if err != nil {
		var rng *registry.RangeError
		if errors.As(err, &rng) {
			return nil, partErr(rng.Size, "%s", rng.Msg)
		}
		return nil, h.uploadErr(repo, in.UploadID, err)
	}
	return map[string]any{
		"registryId":       h.cfg.Registry.AccountID(),
		"repositoryName":   repo.Name,
		"uploadId":         in.UploadID,
		"lastByteReceived": st.Size - 1,
	}, nil
}

func (h *Handler) layerPartErr(repo metadata.Repository, uploadID string, size int64, msg string) *Error {
	e := imgErr("InvalidLayerPartException", "%s", msg)
	e.Fields = map[string]any{
		"registryId":            h.cfg.Registry.AccountID(),
		"repositoryName":        repo.Name,
		"uploadId":              uploadID,
		"lastValidByteReceived": size - 1,
	}
	return e
}

// uploadErr maps an unknown session to UploadNotFoundException with ECR's
// words; other errors pass.
func (h *Handler) uploadErr(repo metadata.Repository, uploadID string, err error) error {
	if errors.Is(err, registry.ErrUploadUnknown) {
		return imgErr("UploadNotFoundException", "Upload with id '%s' is not found in the repository with name '%s' in the registry with id '%s'",
			uploadID, repo.Name, h.cfg.Registry.AccountID())
	}
	return err
}

type completeLayerUploadInput struct {
	RegistryID     string   `json:"registryId"`
	RepositoryName string   `json:"repositoryName"`
	UploadID       string   `json:"uploadId"`
	LayerDigests   []string `json:"layerDigests"`
}

// completeLayerUpload checks the uploaded bytes against the one digest
// given and commits the layer. A digest mismatch cancels the session
// (InvalidLayerException); a layer the repository already holds is
// LayerAlreadyExistsException, as in ECR, and the session is dropped.
func (h *Handler) completeLayerUpload(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in completeLayerUploadInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:CompleteLayerUpload", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	switch {
	case in.UploadID == "":
		return nil, imgRequired("uploadId")
	case in.LayerDigests == nil:
		return nil, imgRequired("layerDigests")
	case len(in.LayerDigests) != 1:
		return nil, imgParamErr("Invalid parameter at 'layerDigests': Coffer takes exactly one digest, the sha256 digest of the whole layer")
	}
	id, err := parseUploadID(in.UploadID)
	if err != nil {
		return nil, err
	}
	info.Params["uploadId"] = in.UploadID
	d, err := registry.ParseDigest(in.LayerDigests[0])
	if err != nil {
		return nil, imgParamErr("Invalid parameter at 'layerDigests' failed to satisfy constraint: %s", digestCause(err))
	}
	st, err := h.cfg.Registry.GetUpload(ctx, repo, id)
	if err != nil {
		return nil, h.uploadErr(repo, in.UploadID, err)
	}
	if st.Size == 0 {
		return nil, imgErr("EmptyUploadException", "The upload with id '%s' does not contain any layer parts", in.UploadID)
	}
	if _, err := h.cfg.Registry.StatBlob(ctx, repo, d); err == nil {
		_ = h.cfg.Registry.CancelUpload(ctx, repo, id)
		return nil, imgErr("LayerAlreadyExistsException", "The layer with digest '%s' already exists in the repository with name '%s' in registry with id '%s'",
			d, repo.Name, h.cfg.Registry.AccountID())
	}
	b, err := h.cfg.Registry.CompleteUpload(ctx, repo, id, d, nil, -1, -1)
	switch {
	case errors.Is(err, registry.ErrDigestInvalid):
		return nil, imgErr("InvalidLayerException", "The layer digest calculated for the upload does not match the digest specified: %s", digestCause(err))
	case err != nil:
		return nil, h.uploadErr(repo, in.UploadID, err)
	}
	return map[string]any{
		"registryId":     h.cfg.Registry.AccountID(),
		"repositoryName": repo.Name,
		"uploadId":       in.UploadID,
		"layerDigest":    b.Digest,
	}, nil
}

type getDownloadURLForLayerInput struct {
	RegistryID     string `json:"registryId"`
	RepositoryName string `json:"repositoryName"`
	LayerDigest    string `json:"layerDigest"`
}

// getDownloadURLForLayer hands out a presigned URL for a layer an image of
// the repository uses (ECR refuses unassociated layers). The URL points at
// Coffer itself (LayerDownloadPath) and is worth nothing on its own: each
// download authorizes the principal it names again (download.go).
func (h *Handler) getDownloadURLForLayer(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in getDownloadURLForLayerInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:GetDownloadUrlForLayer", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if in.LayerDigest == "" {
		return nil, imgRequired("layerDigest")
	}
	d, err := registry.ParseDigest(in.LayerDigest)
	if err != nil {
		return nil, imgParamErr("Invalid parameter at 'layerDigest' failed to satisfy constraint: %s", digestCause(err))
	}
	info.Params["layerDigest"] = string(d)
	if h.cfg.Presign == nil {
		return nil, &Error{Type: "UnsupportedOperationException", Status: http.StatusBadRequest,
			Message: "this Coffer has no key for presigned layer URLs"}
	}
	if err := h.layerDownloadable(ctx, repo, d); err != nil {
		return nil, err
	}
	u, err := h.layerURL(r, repo, d, info.Principal)
	if err != nil {
		return nil, err
	}
	return map[string]any{"downloadUrl": u, "layerDigest": string(d)}, nil
}

// layerDownloadable is ECR's rule: the layer is in the repository and an
// image there uses it.
func (h *Handler) layerDownloadable(ctx context.Context, repo metadata.Repository, d registry.Digest) error {
	_, err := h.cfg.Registry.StatBlob(ctx, repo, d)
	if errors.Is(err, registry.ErrBlobUnknown) {
		return imgErr("LayersNotFoundException", "The layer with digest '%s' does not exist in the repository with name '%s' in the registry with id '%s'",
			d, repo.Name, h.cfg.Registry.AccountID())
	}
	if err != nil {
		return err
	}
	used, err := h.cfg.Registry.LayerReferenced(ctx, repo, d)
	if err != nil {
		return err
	}
	if !used {
		return imgErr("LayerInaccessibleException", "The layer with digest '%s' is not associated with an image in the repository with name '%s'; unassociated layers may be cleaned up at any time",
			d, repo.Name)
	}
	return nil
}

// layerURL signs a download URL for d valid for presign.Lifetime, or until
// the principal's temporary credentials expire if sooner. It points at the
// host the caller reached (the endpoints issue #7 adds a separate blob
// listener, SPEC STO-03).
func (h *Handler) layerURL(r *http.Request, repo metadata.Repository, d registry.Digest, p auth.Principal) (string, error) {
	exp := h.now().Add(presign.Lifetime)
	var pexp int64
	if !p.Expires.IsZero() {
		pexp = p.Expires.Unix()
		if p.Expires.Before(exp) {
			exp = p.Expires
		}
	}
	q, err := h.cfg.Presign.Sign(presign.Claims{
		Repository: repo.Name,
		Digest:     string(d),
		Principal: presign.Principal{Type: p.Type, ARN: p.ARN, AccountID: p.AccountID, PrincipalID: p.PrincipalID,
			UserName: p.UserName, RoleARN: p.RoleARN, SessionName: p.SessionName, Expires: pexp},
		Expires: exp,
	})
	if err != nil {
		return "", err
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if h.cfg.DownloadBase != nil {
		if s, hst, ok := h.cfg.DownloadBase(r); ok {
			scheme, host = s, hst
		}
	}
	u := url.URL{Scheme: scheme, Host: host, Path: LayerDownloadPath + repo.Name + "/" + string(d), RawQuery: q.Encode()}
	return u.String(), nil
}
