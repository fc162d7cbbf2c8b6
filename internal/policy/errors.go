package policy

import "errors"

// ErrMalformed is the sentinel every parse error wraps, so callers can test
// with errors.Is(err, policy.ErrMalformed) and map it to
// MalformedPolicyDocument (IAM) or InvalidParameterException (ECR, KMS).
var ErrMalformed = errors.New("policy: malformed policy document")

// Error is a parse error: Field names the element of the document at fault
// in JSON-path form (for example "Statement[1].Effect", or "Statement.Effect"
// when Statement is a single object), and Msg says what is wrong with it.
// Its text is safe to return to the client: it quotes only the document.
type Error struct {
	Field string
	Msg   string
}

// Error returns "Field: Msg", or Msg alone for document-level problems.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Unwrap returns ErrMalformed.
func (e *Error) Unwrap() error { return ErrMalformed }

func errf(field, msg string) *Error { return &Error{Field: field, Msg: msg} }
