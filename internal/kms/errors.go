package kms

import (
	"errors"
	"net/http"
)

// Error is a KMS API error: Code is the AWS exception name (the JSON
// protocol's __type, e.g. "NotFoundException") and Message its public text.
// Both implementations of Client return *Error, so callers test with
// errors.Is(err, kms.ErrNotFound) whatever is behind the seam. Err, when
// set, is the cause for the log; it never reaches the client.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's code: a sentinel is an
// *Error with a Code and no Message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// Status is the HTTP status the JSON protocol answers with: 500 for the
// model's server faults, 400 otherwise.
func (e *Error) Status() int {
	switch e.Code {
	case codeInternal, codeDependencyTimeout, codeKeyUnavailable:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// Codes, as the botocore model kms/2014-11-01 names its exceptions, plus the
// protocol-level AccessDeniedException, ValidationException and
// SerializationException every AWS JSON service answers with.
const (
	codeAccessDenied      = "AccessDeniedException"
	codeAlreadyExists     = "AlreadyExistsException"
	codeConflict          = "ConflictException"
	codeDependencyTimeout = "DependencyTimeoutException"
	codeDisabled          = "DisabledException"
	codeDryRun            = "DryRunOperationException"
	codeIncorrectKey      = "IncorrectKeyException"
	codeInvalidAliasName  = "InvalidAliasNameException"
	codeInvalidArn        = "InvalidArnException"
	codeInvalidCiphertext = "InvalidCiphertextException"
	codeInvalidGrantID    = "InvalidGrantIdException"
	codeInvalidGrantToken = "InvalidGrantTokenException"
	codeInvalidKeyUsage   = "InvalidKeyUsageException"
	codeInvalidMarker     = "InvalidMarkerException"
	codeInternal          = "KMSInternalException"
	codeInvalidState      = "KMSInvalidStateException"
	codeKeyUnavailable    = "KeyUnavailableException"
	codeLimitExceeded     = "LimitExceededException"
	codeMalformedPolicy   = "MalformedPolicyDocumentException"
	codeNotFound          = "NotFoundException"
	codeTag               = "TagException"
	codeUnsupported       = "UnsupportedOperationException"
	codeValidation        = "ValidationException"
	codeSerialization     = "SerializationException"
	codeUnknownOperation  = "UnknownOperationException"
)

// Sentinels, one per code, for errors.Is.
var (
	ErrAccessDenied      = &Error{Code: codeAccessDenied}
	ErrAlreadyExists     = &Error{Code: codeAlreadyExists}
	ErrDisabled          = &Error{Code: codeDisabled}
	ErrDryRun            = &Error{Code: codeDryRun}
	ErrIncorrectKey      = &Error{Code: codeIncorrectKey}
	ErrInvalidAliasName  = &Error{Code: codeInvalidAliasName}
	ErrInvalidArn        = &Error{Code: codeInvalidArn}
	ErrInvalidCiphertext = &Error{Code: codeInvalidCiphertext}
	ErrInvalidGrantID    = &Error{Code: codeInvalidGrantID}
	ErrInvalidGrantToken = &Error{Code: codeInvalidGrantToken}
	ErrInvalidKeyUsage   = &Error{Code: codeInvalidKeyUsage}
	ErrInvalidMarker     = &Error{Code: codeInvalidMarker}
	ErrInternal          = &Error{Code: codeInternal}
	ErrInvalidState      = &Error{Code: codeInvalidState}
	ErrLimitExceeded     = &Error{Code: codeLimitExceeded}
	ErrMalformedPolicy   = &Error{Code: codeMalformedPolicy}
	ErrNotFound          = &Error{Code: codeNotFound}
	ErrTag               = &Error{Code: codeTag}
	ErrUnsupported       = &Error{Code: codeUnsupported}
	ErrValidation        = &Error{Code: codeValidation}
)

// invalidCiphertextMessage is the one message of every decryption failure:
// a malformed blob, an unknown key or material version, a changed, missing
// or extra encryption context pair and a failed authentication tag all read
// the same (SPEC CTX-01).
const invalidCiphertextMessage = "The ciphertext is invalid, was not produced by this KMS, or its encryption context does not match."

func errorf(code, msg string) *Error { return &Error{Code: code, Message: msg} }

func internal(err error) *Error {
	return &Error{Code: codeInternal, Message: "An internal error occurred. Try the request again.", Err: err}
}

func invalidCiphertext() *Error {
	return &Error{Code: codeInvalidCiphertext, Message: invalidCiphertextMessage}
}

// asError converts any error to an *Error: an *Error passes through, anything
// else is an internal error whose cause stays in Err.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internal(err)
}
