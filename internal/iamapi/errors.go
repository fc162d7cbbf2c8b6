package iamapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/iam"
)

// apiError is a Query-protocol error: the <Code>, the HTTP status and the
// public <Message>.
type apiError struct {
	code   string
	status int
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func newError(code string, status int, format string, args ...any) *apiError {
	return &apiError{code: code, status: status, msg: fmt.Sprintf(format, args...)}
}

// validationError is AWS's generic input-constraint error.
func validationError(format string, args ...any) *apiError {
	return newError("ValidationError", http.StatusBadRequest, format, args...)
}

// missing is the error for an absent required member, worded as AWS does.
func missing(member string) *apiError {
	return validationError("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", lowerFirst(member))
}

// unsupported rejects a parameter Coffer does not honour yet: silently
// ignoring it could grant more than the caller asked for.
func unsupported(code, action, param string) *apiError {
	return newError(code, http.StatusBadRequest, "Coffer does not support the %s parameter %s yet", action, param)
}

// sentinels maps the identity store's errors to their Query codes and
// statuses (the iam and sts models' error.code and httpStatusCode).
var sentinels = []struct {
	err    error
	code   string
	status int
}{
	{iam.ErrNoSuchEntity, "NoSuchEntity", http.StatusNotFound},
	{iam.ErrEntityExists, "EntityAlreadyExists", http.StatusConflict},
	{iam.ErrDeleteConflict, "DeleteConflict", http.StatusConflict},
	{iam.ErrLimitExceeded, "LimitExceeded", http.StatusConflict},
	{iam.ErrMalformedPolicy, "MalformedPolicyDocument", http.StatusBadRequest},
	{iam.ErrInvalidInput, "InvalidInput", http.StatusBadRequest},
	{iam.ErrValidation, "ValidationError", http.StatusBadRequest},
	{iam.ErrUnmodifiable, "UnmodifiableEntity", http.StatusBadRequest},
	{iam.ErrAccessDeniedTrust, "AccessDenied", http.StatusForbidden},
}

// Messages of the internal-failure errors; the cause goes to the log only.
const (
	iamFailureMessage = "The request processing has failed because of an unknown error, exception or failure."
	stsFailureMessage = "An internal error has occurred."
)

// toAPIError maps any error of a handler to the public error. internal
// reports whether it is an unexpected failure whose cause must be logged.
func toAPIError(err error, svc *service) (e *apiError, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	var denied *auth.DeniedError
	if errors.As(err, &denied) {
		return &apiError{code: "AccessDenied", status: http.StatusForbidden, msg: denied.Error()}, false
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return &apiError{code: s.code, status: s.status, msg: afterSentinel(err, s.err)}, false
		}
	}
	if svc.name == "sts" {
		return &apiError{code: "InternalFailure", status: http.StatusInternalServerError, msg: stsFailureMessage}, true
	}
	return &apiError{code: "ServiceFailure", status: http.StatusInternalServerError, msg: iamFailureMessage}, true
}

// afterSentinel returns err's text after "<sentinel>: ", which the
// identity store words as AWS does.
func afterSentinel(err, sentinel error) string {
	s := err.Error()
	prefix := sentinel.Error() + ": "
	if i := strings.Index(s, prefix); i >= 0 {
		return s[i+len(prefix):]
	}
	return sentinel.Error()
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}
