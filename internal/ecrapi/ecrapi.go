// Package ecrapi serves Amazon ECR's control-plane API (AWS JSON 1.1,
// X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>, SigV4
// service "ecr") with the shapes and errors of the botocore model
// ecr/2015-09-21.
//
// The pipeline authenticates the request (SigV4) before it arrives here;
// every operation authorizes itself as its own ECR action. Operations of the
// model that Coffer has not built yet answer with an error naming them,
// never a fake success.
package ecrapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/presign"
	"github.com/cofferhq/coffer/internal/auth/token"
	"github.com/cofferhq/coffer/internal/kms"
	"github.com/cofferhq/coffer/internal/registry"
)

// TargetPrefix is the X-Amz-Target prefix of ECR operations.
const TargetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// maxBody bounds a request body (PutImage carries a manifest of up to
// 4 MiB, JSON-escaped).
const maxBody = 10 << 20

// Config configures the handler.
type Config struct {
	Registry *registry.Registry
	Authz    auth.Authorizer
	Tokens   *token.Key
	// Presign signs layer download URLs (GetDownloadUrlForLayer); without
	// it that operation answers UnsupportedOperationException.
	Presign *presign.Key
	// PrincipalExists reports whether the principal a presigned URL names
	// still exists (iam.Service.Exists): a URL outlives a deleted user or
	// role. Nil: every principal exists.
	PrincipalExists func(context.Context, auth.Principal) (bool, error)
	// KMS is the KMS of KMS-encrypted repositories (CreateRepository's
	// DescribeKey and CreateGrant, DeleteRepository's RetireGrant); without
	// it the KMS encryption types are refused.
	KMS kms.Client
	// DownloadBase returns the scheme and host that GetDownloadUrlForLayer
	// URLs name for a request: an endpoint serving presigned layer
	// downloads (the s3 service) in the caller's network. Nil, or ok
	// false: the request's own scheme and Host.
	DownloadBase func(r *http.Request) (scheme, host string, ok bool)
	Log          *slog.Logger
	Now          func() time.Time
}

// Handler serves the ECR API.
type Handler struct {
	cfg Config
	now func() time.Time
	ops map[string]op
}

type op func(h *Handler, r *http.Request, info *auth.Info, body []byte) (any, error)

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Registry == nil || cfg.Authz == nil || cfg.Tokens == nil {
		return nil, errors.New("ecrapi: Registry, Authz and Tokens are required")
	}
	h := &Handler{cfg: cfg, now: cfg.Now}
	if h.now == nil {
		h.now = time.Now
	}
	if h.cfg.Log == nil {
		h.cfg.Log = slog.New(slog.DiscardHandler)
	}
	h.ops = map[string]op{}
	for _, group := range opGroups {
		for name, fn := range group {
			if _, dup := h.ops[name]; dup {
				return nil, fmt.Errorf("ecrapi: operation %s registered twice", name)
			}
			h.ops[name] = fn
		}
	}
	return h, nil
}

// bodyLimits raise maxBody for operations that carry more (UploadLayerPart);
// their files set them.
var bodyLimits = map[string]int{}

// opGroups are the implemented operations, one table per file (tokenOps,
// and the repository, policy, image and layer tables as they land).
var opGroups = []map[string]op{tokenOps}

// ServeHTTP handles one authenticated ECR request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := auth.FromContext(r.Context())
	if info == nil {
		info = &auth.Info{}
	}
	name := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	info.EventName = name
	info.Action = "ecr:" + name
	resp, err := h.serve(r, info, name)
	if err != nil {
		h.writeError(w, r, info, err)
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}

func (h *Handler) serve(r *http.Request, info *auth.Info, name string) (any, error) {
	if !knownOperations[name] {
		return nil, &Error{Type: "UnknownOperationException", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Unknown operation %q for the ECR API", name)}
	}
	fn, ok := h.ops[name]
	if !ok {
		return nil, &Error{Type: "UnsupportedOperationException", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Coffer does not implement the ECR operation %s yet", name)}
	}
	limit := maxBody
	if n, ok := bodyLimits[name]; ok {
		limit = n
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, &Error{Type: "InvalidParameterException", Status: http.StatusBadRequest, Message: "could not read the request body"}
	}
	if len(body) > limit {
		return nil, &Error{Type: "InvalidParameterException", Status: http.StatusBadRequest, Message: "request body too large"}
	}
	return fn(h, r, info, body)
}

// decode parses a JSON request strictly into v; an empty body is {}.
func decode(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Type: "SerializationException", Status: http.StatusBadRequest, Message: "could not parse the request: " + err.Error()}
	}
	return nil
}

// Error is an AWS JSON protocol error.
type Error struct {
	Type    string
	Status  int
	Message string
	// Fields are further members of the error shape (e.g.
	// InvalidLayerPartException's lastValidByteReceived).
	Fields map[string]any
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// WriteJSON writes an AWS JSON 1.1 response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"__type":"ServerException","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	w.Write(body)
}

// WriteError writes err in the AWS JSON protocol's error shape
// ({"__type", "message"} and x-amzn-ErrorType).
func WriteError(w http.ResponseWriter, e *Error) {
	w.Header().Set("x-amzn-ErrorType", e.Type)
	body := map[string]any{"__type": e.Type, "message": e.Message}
	for k, v := range e.Fields {
		if _, taken := body[k]; !taken {
			body[k] = v
		}
	}
	WriteJSON(w, e.Status, body)
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, info *auth.Info, err error) {
	e := toError(err)
	if e.Status >= 500 {
		h.cfg.Log.ErrorContext(r.Context(), "ecr request failed", "operation", info.EventName, "error", err)
	}
	info.ErrorCode, info.ErrorMessage = e.Type, e.Message
	WriteError(w, e)
}

// errorTable maps registry sentinels to ECR exceptions: the one table of
// this API. Messages are the wrapped error's text, which the registry
// writes for clients.
var errorTable = []struct {
	err  error
	typ  string
	code int
}{
	{registry.ErrNameInvalid, "InvalidParameterException", http.StatusBadRequest},
	{registry.ErrNameUnknown, "RepositoryNotFoundException", http.StatusBadRequest},
	{registry.ErrManifestUnknown, "ImageNotFoundException", http.StatusBadRequest},
	{registry.ErrTagImmutable, "ImageTagAlreadyExistsException", http.StatusBadRequest},
	{registry.ErrManifestBlobUnknown, "LayersNotFoundException", http.StatusBadRequest},
	{registry.ErrManifestTooLarge, "InvalidParameterException", http.StatusBadRequest},
	{registry.ErrManifestInvalid, "InvalidParameterException", http.StatusBadRequest},
	{registry.ErrDigestInvalid, "InvalidParameterException", http.StatusBadRequest},
	{registry.ErrBlobUnknown, "LayersNotFoundException", http.StatusBadRequest},
	{registry.ErrUploadUnknown, "UploadNotFoundException", http.StatusBadRequest},
	{registry.ErrUploadInvalid, "InvalidLayerPartException", http.StatusBadRequest},
	{registry.ErrSizeInvalid, "InvalidLayerPartException", http.StatusBadRequest},
	{registry.ErrNotBuilt, "UnsupportedOperationException", http.StatusBadRequest},
	{registry.ErrUnsupported, "UnsupportedOperationException", http.StatusBadRequest},
	// A quota is Coffer's; the model declares LimitExceededException for
	// PutImage and UploadLayerPart, not CompleteLayerUpload (docs/quotas.md).
	{registry.ErrQuotaExceeded, "LimitExceededException", http.StatusBadRequest},
}

func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	// A KMS refusal (it may wrap an AccessDenied of the KMS key policy) is
	// ECR's KmsException with the KMS reason (SPEC GRANT-03).
	if errors.Is(err, registry.ErrKMS) {
		return kmsException(err.Error(), err)
	}
	var denied *auth.DeniedError
	if errors.As(err, &denied) {
		return &Error{Type: "AccessDeniedException", Status: http.StatusBadRequest, Message: denied.Error()}
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return &Error{Type: row.typ, Status: row.code, Message: err.Error()}
		}
	}
	return &Error{Type: "ServerException", Status: http.StatusInternalServerError, Message: "internal server error"}
}
