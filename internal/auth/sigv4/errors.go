package sigv4

import (
	"errors"

	"github.com/cofferhq/coffer/internal/auth"
)

// The sentinels below classify every verification failure. Verify returns
// them wrapped in an *Error that carries AWS's public message; test with
// errors.Is. The doc comment of each names the AWS error code a JSON
// protocol (__type) and a Query protocol (ErrorResponse Code) answer with.
var (
	// ErrMissingAuth: no SigV4 credentials at all, or both the header and
	// the query form at once. JSON MissingAuthenticationTokenException,
	// Query MissingAuthenticationToken; HTTP 403.
	ErrMissingAuth = errors.New("sigv4: missing authentication token")

	// ErrIncompleteSignature: a malformed Authorization header, presigned
	// query or credential scope. IncompleteSignature (JSON
	// IncompleteSignatureException); HTTP 400.
	ErrIncompleteSignature = errors.New("sigv4: incomplete signature")

	// ErrUnknownKey: the access key ID is unknown or inactive. KeyStore
	// implementations return an error wrapping it. JSON
	// UnrecognizedClientException, Query InvalidClientTokenId; HTTP 403.
	ErrUnknownKey = errors.New("sigv4: unknown access key")

	// ErrSignatureMismatch: the signature, the payload hash or the date in
	// the scope does not match the request. JSON InvalidSignatureException,
	// Query SignatureDoesNotMatch; HTTP 403.
	ErrSignatureMismatch = errors.New("sigv4: signature does not match")

	// ErrRequestExpired: X-Amz-Date outside ±MaxSkew of now, or a presigned
	// URL used outside its validity. JSON InvalidSignatureException, Query
	// SignatureDoesNotMatch (as AWS does); S3-style doors AccessDenied;
	// HTTP 403.
	ErrRequestExpired = errors.New("sigv4: request expired")

	// ErrExpiredToken: temporary credentials past their expiry.
	// ExpiredTokenException (Query ExpiredToken); HTTP 403 (STS: 400).
	ErrExpiredToken = errors.New("sigv4: security token expired")

	// ErrInvalidToken: a session token missing or different for temporary
	// credentials, or present for long-term ones. JSON
	// UnrecognizedClientException, Query InvalidClientTokenId; HTTP 403.
	ErrInvalidToken = errors.New("sigv4: invalid security token")

	// ErrWrongRegion: the credential scope names another region. JSON
	// InvalidSignatureException, Query SignatureDoesNotMatch; HTTP 403.
	ErrWrongRegion = errors.New("sigv4: credential scoped to wrong region")

	// ErrWrongService: the credential scope names another service. JSON
	// InvalidSignatureException, Query SignatureDoesNotMatch; HTTP 403.
	ErrWrongService = errors.New("sigv4: credential scoped to wrong service")

	// ErrBodyTooLarge: the body had to be read to verify its hash and is
	// larger than Config.MaxBody. HTTP 413.
	ErrBodyTooLarge = errors.New("sigv4: request body too large to verify")
)

// AWS's public messages.
const (
	msgMissingAuth  = "Request is missing Authentication Token"
	msgBothForms    = "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"
	msgInvalidToken = "The security token included in the request is invalid."
	msgExpiredToken = "The security token included in the request is expired"
	msgMismatch     = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgWrongRegion  = "Credential should be scoped to a valid region. "
	msgPresignQuery = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
	msgExpiredURL   = "Request has expired"
	msgNotYetValid  = "Request is not valid yet"
	msgBodyTooLarge = "Request body is too large to verify its signature"
)

// Error is a verification failure. Err is one of the sentinels above;
// Message is AWS's wording for the client; Detail is for logs. Neither ever
// holds a secret key, a signature or a session token.
type Error struct {
	Err     error
	Message string
	Detail  string
}

// Error returns the sentinel's text, the public message and the detail.
func (e *Error) Error() string {
	s := e.Err.Error() + ": " + e.Message
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// Is reports every verification failure as auth.ErrUnauthenticated too, so
// the request pipeline needs no knowledge of this package.
func (e *Error) Is(target error) bool { return target == auth.ErrUnauthenticated }

func fail(sentinel error, msg, detail string) *Error {
	return &Error{Err: sentinel, Message: msg, Detail: detail}
}

func mismatch(detail string) *Error { return fail(ErrSignatureMismatch, msgMismatch, detail) }

func incomplete(msg string) *Error { return fail(ErrIncompleteSignature, msg, "") }

// quoteUntrusted bounds and sanitizes client input echoed in a message: at
// most 64 bytes, printable ASCII only.
func quoteUntrusted(s string) string {
	const limit = 64
	b := make([]byte, 0, min(len(s), limit)+3)
	for i := 0; i < len(s) && i < limit; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '\'' || c == '\\' || c == '<' || c == '>' || c == '&' || c == '"' {
			c = '?'
		}
		b = append(b, c)
	}
	if len(s) > limit {
		b = append(b, "..."...)
	}
	return string(b)
}
