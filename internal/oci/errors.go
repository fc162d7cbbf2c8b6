package oci

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/registry"
)

// Error is an OCI distribution error: a code from the spec, its HTTP status
// and a message safe to show the client.
type Error struct {
	Status  int
	Code    string
	Message string
	// Header adds response headers (Range on 416, WWW-Authenticate on 401).
	Header http.Header
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func ociErr(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// errorTable maps registry sentinels to OCI codes; the one table of this API.
var errorTable = []struct {
	err    error
	status int
	code   string
}{
	{registry.ErrNameInvalid, http.StatusBadRequest, "NAME_INVALID"},
	{registry.ErrNameUnknown, http.StatusNotFound, "NAME_UNKNOWN"},
	{registry.ErrBlobUnknown, http.StatusNotFound, "BLOB_UNKNOWN"},
	{registry.ErrUploadUnknown, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
	{registry.ErrDigestInvalid, http.StatusBadRequest, "DIGEST_INVALID"},
	{registry.ErrSizeInvalid, http.StatusBadRequest, "SIZE_INVALID"},
	{registry.ErrManifestBlobUnknown, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN"},
	{registry.ErrManifestTooLarge, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID"},
	{registry.ErrManifestInvalid, http.StatusBadRequest, "MANIFEST_INVALID"},
	{registry.ErrManifestUnknown, http.StatusNotFound, "MANIFEST_UNKNOWN"},
	{registry.ErrTagImmutable, http.StatusBadRequest, "TAG_INVALID"},
	{registry.ErrQuotaExceeded, http.StatusTooManyRequests, "TOOMANYREQUESTS"},
	{registry.ErrUnsupported, http.StatusMethodNotAllowed, "UNSUPPORTED"},
	{registry.ErrNotBuilt, http.StatusNotImplemented, "UNSUPPORTED"},
	{registry.ErrCorrupt, http.StatusInternalServerError, "UNKNOWN"},
}

// toError maps any error to an *Error. Unknown errors become a 500 whose
// message hides the cause (the caller logs it).
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	// A KMS refusal for a KMS repository (a revoked grant, a disabled key,
	// a key pending deletion; it may wrap the key policy's AccessDenied)
	// carries the KMS reason, as ECR's KmsException does (SPEC GRANT-03).
	if errors.Is(err, registry.ErrKMS) {
		return ociErr(http.StatusForbidden, "DENIED", "KmsException: "+err.Error())
	}
	var denied *auth.DeniedError
	if errors.As(err, &denied) {
		return ociErr(http.StatusForbidden, "DENIED", denied.Error())
	}
	if errors.Is(err, auth.ErrUnauthenticated) {
		return ociErr(http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	}
	var rng *registry.RangeError
	if errors.As(err, &rng) {
		e := ociErr(http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", rng.Msg)
		e.Header = http.Header{"Range": {rangeHeader(rng.Size)}}
		return e
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			msg := err.Error()
			if row.err == registry.ErrCorrupt {
				msg = "stored content failed its integrity check and was not served; the operator has been told"
			}
			return ociErr(row.status, row.code, msg)
		}
	}
	return ociErr(http.StatusInternalServerError, "UNKNOWN", "internal server error")
}

type errorBody struct {
	Errors []errorItem `json:"errors"`
}

type errorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError writes e in the spec's JSON form.
func writeError(w http.ResponseWriter, r *http.Request, e *Error) {
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	body, _ := json.Marshal(errorBody{Errors: []errorItem{{Code: e.Code, Message: e.Message}}})
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// rangeHeader is the Range value for an upload holding size bytes.
func rangeHeader(size int64) string {
	end := size - 1
	if end < 0 {
		end = 0
	}
	return "0-" + strconv.FormatInt(end, 10)
}
