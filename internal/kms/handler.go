package kms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/internal/auth"
)

// TargetPrefix is the X-Amz-Target prefix of KMS operations.
const TargetPrefix = "TrentService."

// maxBody bounds a request body: a 128 KiB policy, JSON-escaped, fits.
const maxBody = 1 << 20

// Handler serves the KMS JSON 1.1 API (X-Amz-Target: TrentService.<Op>) for
// requests the AWS door has already authenticated with SigV4 for service
// "kms": the request's auth.Info carries the Principal. Every operation
// authorizes itself.
type Handler struct {
	svc *Service
	log *slog.Logger
}

// NewHandler returns the HTTP handler of svc.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc, log: svc.log} }

// op decodes a request body and runs one operation.
type op func(ctx context.Context, s *Service, c Caller, body []byte) (any, error)

// handle adapts a typed operation to op.
func handle[In, Out any](fn func(*Service, context.Context, Caller, *In) (*Out, error)) op {
	return func(ctx context.Context, s *Service, c Caller, body []byte) (any, error) {
		in := new(In)
		if err := decodeRequest(body, in); err != nil {
			return nil, err
		}
		return fn(s, ctx, c, in)
	}
}

// operations are the implemented operations (SPEC 3.4 and issue #5).
var operations = map[string]op{
	"CreateKey":                       handle((*Service).CreateKey),
	"DescribeKey":                     handle((*Service).DescribeKey),
	"ListKeys":                        handle((*Service).ListKeys),
	"UpdateKeyDescription":            handle((*Service).UpdateKeyDescription),
	"EnableKey":                       handle((*Service).EnableKey),
	"DisableKey":                      handle((*Service).DisableKey),
	"ScheduleKeyDeletion":             handle((*Service).ScheduleKeyDeletion),
	"CancelKeyDeletion":               handle((*Service).CancelKeyDeletion),
	"GetKeyPolicy":                    handle((*Service).GetKeyPolicy),
	"PutKeyPolicy":                    handle((*Service).PutKeyPolicy),
	"ListKeyPolicies":                 handle((*Service).ListKeyPolicies),
	"TagResource":                     handle((*Service).TagResource),
	"UntagResource":                   handle((*Service).UntagResource),
	"ListResourceTags":                handle((*Service).ListResourceTags),
	"CreateAlias":                     handle((*Service).CreateAlias),
	"UpdateAlias":                     handle((*Service).UpdateAlias),
	"DeleteAlias":                     handle((*Service).DeleteAlias),
	"ListAliases":                     handle((*Service).ListAliases),
	"Encrypt":                         handle((*Service).Encrypt),
	"Decrypt":                         handle((*Service).Decrypt),
	"ReEncrypt":                       handle((*Service).ReEncrypt),
	"GenerateDataKey":                 handle((*Service).GenerateDataKey),
	"GenerateDataKeyWithoutPlaintext": handle(generateDataKeyWithoutPlaintext),
	"GenerateRandom":                  handle((*Service).GenerateRandom),
	"CreateGrant":                     handle((*Service).CreateGrant),
	"ListGrants":                      handle((*Service).ListGrants),
	"ListRetirableGrants":             handle((*Service).ListRetirableGrants),
	"RetireGrant":                     handle((*Service).RetireGrant),
	"RevokeGrant":                     handle((*Service).RevokeGrant),
	"EnableKeyRotation":               handle((*Service).EnableKeyRotation),
	"DisableKeyRotation":              handle((*Service).DisableKeyRotation),
	"GetKeyRotationStatus":            handle((*Service).GetKeyRotationStatus),
	"RotateKeyOnDemand":               handle((*Service).RotateKeyOnDemand),
	"ListKeyRotations":                handle((*Service).ListKeyRotations),
}

// gdkwpInput is GenerateDataKeyWithoutPlaintext's request, which has no
// Recipient member.
type gdkwpInput struct {
	KeyId             string
	EncryptionContext map[string]string
	NumberOfBytes     *int32
	KeySpec           string
	GrantTokens       []string
	DryRun            *bool
}

func generateDataKeyWithoutPlaintext(s *Service, ctx context.Context, c Caller, in *gdkwpInput) (*GenerateDataKeyOutput, error) {
	return s.GenerateDataKeyWithoutPlaintext(ctx, c, &GenerateDataKeyInput{KeyId: in.KeyId, EncryptionContext: in.EncryptionContext,
		NumberOfBytes: in.NumberOfBytes, KeySpec: in.KeySpec, GrantTokens: in.GrantTokens, DryRun: in.DryRun})
}

// modelOperations lists every operation of the botocore model
// kms/2014-11-01, implemented or not: the others answer
// UnsupportedOperationException naming them, never a fake success.
var modelOperations = []string{
	"CancelKeyDeletion", "ConnectCustomKeyStore", "CreateAlias", "CreateCustomKeyStore", "CreateGrant", "CreateKey",
	"Decrypt", "DeleteAlias", "DeleteCustomKeyStore", "DeleteImportedKeyMaterial", "DeriveSharedSecret",
	"DescribeCustomKeyStores", "DescribeKey", "DisableKey", "DisableKeyRotation", "DisconnectCustomKeyStore", "EnableKey",
	"EnableKeyRotation", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
	"GenerateDataKeyWithoutPlaintext", "GenerateMac", "GenerateRandom", "GetKeyLastUsage", "GetKeyPolicy",
	"GetKeyRotationStatus", "GetParametersForImport", "GetPublicKey", "ImportKeyMaterial", "ListAliases", "ListGrants",
	"ListKeyPolicies", "ListKeyRotations", "ListKeys", "ListResourceTags", "ListRetirableGrants", "PutKeyPolicy",
	"ReEncrypt", "ReplicateKey", "RetireGrant", "RevokeGrant", "RotateKeyOnDemand", "ScheduleKeyDeletion", "Sign",
	"TagResource", "UntagResource", "UpdateAlias", "UpdateCustomKeyStore", "UpdateKeyDescription", "UpdatePrimaryRegion",
	"Verify", "VerifyMac",
}

// ServeHTTP handles one authenticated KMS request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := auth.FromContext(r.Context())
	if info == nil {
		info = &auth.Info{Principal: auth.Anonymous}
	}
	name := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	info.EventName, info.Action = name, "kms:"+name
	rec := &recorder{}
	ctx := context.WithValue(r.Context(), recorderKey{}, rec)
	resp, err := h.serve(ctx, r, info, name)
	if rec.ev != nil {
		if rec.ev.KeyARN != "" {
			info.Resources = []string{rec.ev.KeyARN}
		}
		info.Params = rec.ev.RequestParameters
	}
	if err != nil {
		e := asError(err)
		if e.Status() >= 500 && rec.ev == nil {
			h.log.ErrorContext(ctx, "kms request failed", "operation", name, "error", err)
		}
		info.ErrorCode, info.ErrorMessage = e.Code, e.Message
		writeError(w, info, e)
		return
	}
	writeJSON(w, info, http.StatusOK, resp)
}

func (h *Handler) serve(ctx context.Context, r *http.Request, info *auth.Info, name string) (any, error) {
	fn, ok := operations[name]
	if !ok {
		for _, m := range modelOperations {
			if m == name {
				return nil, errorf(codeUnsupported, fmt.Sprintf("Coffer's KMS does not implement the operation %s.", name))
			}
		}
		return nil, errorf(codeUnknownOperation, fmt.Sprintf("Unknown operation %s for the KMS API.", clip(name)))
	}
	if r.Method != http.MethodPost {
		return nil, errorf(codeSerialization, "KMS requests are POST requests.")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, errorf(codeSerialization, "The request body could not be read.")
	}
	if len(body) > maxBody {
		return nil, errorf(codeSerialization, "The request body is larger than 1 MiB.")
	}
	return fn(ctx, h.svc, Caller{Principal: info.Principal}, body)
}

// decodeRequest parses a JSON request strictly into v (unknown members are
// refused); an empty body is {}.
func decodeRequest(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(codeSerialization, "The request could not be parsed: "+clip(err.Error()))
	}
	if dec.More() {
		return errorf(codeSerialization, "The request body holds more than one JSON value.")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, info *auth.Info, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"__type":"KMSInternalException","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if info.RequestID != "" {
		w.Header().Set("x-amzn-RequestId", info.RequestID)
	}
	w.WriteHeader(status)
	w.Write(body)
}

// writeError writes the AWS JSON protocol's error shape.
func writeError(w http.ResponseWriter, info *auth.Info, e *Error) {
	w.Header().Set("x-amzn-ErrorType", e.Code)
	writeJSON(w, info, e.Status(), map[string]string{"__type": e.Code, "message": e.Message})
}
