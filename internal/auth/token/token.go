// Package token issues and verifies Coffer's registry tokens: the password
// half of `aws ecr get-login-password | docker login -u AWS` (SPEC
// SEC-13, USE-03).
//
// A token is
//
//	"cf1." base64url(payload) "." base64url(HMAC-SHA256(key, "cf1." base64url(payload)))
//
// where payload is the JSON of Claims. The HMAC key is a 32-byte secret the
// server keeps sealed under the root key, so any replica sharing the data
// can verify a token, and nobody without the key can mint or alter one.
// Tokens carry who the caller was; what they may do is decided per request
// by the policy evaluator, so a policy change applies to the very next
// request even for a token issued before it.
//
// What it trusts: the key. What it guarantees: Verify accepts only tokens
// this key issued, unaltered, before their expiry; comparisons are constant
// time; errors never echo the token.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Lifetime is ECR's authorization token lifetime.
const Lifetime = 12 * time.Hour

const prefix = "cf1."

// maxLen bounds what Verify will look at.
const maxLen = 8 << 10

// Errors. Verify wraps one of them; messages never contain the token.
var (
	ErrMalformed = errors.New("token: malformed")
	ErrSignature = errors.New("token: signature does not verify")
	ErrExpired   = errors.New("token: expired")
)

// Claims is what a token asserts.
type Claims struct {
	// Principal fields (auth.Principal, kept here without importing it so
	// the wire format is this package's own).
	Type        string `json:"typ"`
	ARN         string `json:"arn"`
	AccountID   string `json:"acct"`
	PrincipalID string `json:"pid"`
	UserName    string `json:"usr,omitempty"`
	RoleARN     string `json:"role,omitempty"`
	SessionName string `json:"sess,omitempty"`
	// AccessKeyID is the key that requested the token (audit); the token
	// stops working when that key is deactivated or deleted only through
	// the caller's checks, not here.
	AccessKeyID string `json:"akid,omitempty"`
	IssuedAt    int64  `json:"iat"`
	ExpiresAt   int64  `json:"exp"`
}

// Key signs and verifies tokens. It is incomparable and never formats its
// secret.
type Key struct {
	_ [0]func()
	k []byte
}

// NewKey wraps a 32-byte secret.
func NewKey(secret []byte) (*Key, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("token: key must be 32 bytes, got %d", len(secret))
	}
	return &Key{k: append([]byte(nil), secret...)}, nil
}

// String implements fmt.Stringer without revealing the key.
func (*Key) String() string { return "token.Key(REDACTED)" }

// Issue returns a token for c. IssuedAt and ExpiresAt must be set; Issue
// refuses a lifetime over Lifetime.
func (k *Key) Issue(c Claims) (string, error) {
	if c.ExpiresAt <= c.IssuedAt || c.ExpiresAt-c.IssuedAt > int64(Lifetime/time.Second) {
		return "", fmt.Errorf("token: lifetime must be in (0, %s]", Lifetime)
	}
	if c.ARN == "" || c.AccountID == "" {
		return "", errors.New("token: claims need a principal")
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := prefix + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(k.mac(signed)), nil
}

func (k *Key) mac(signed string) []byte {
	m := hmac.New(sha256.New, k.k)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Verify checks a token's signature and expiry at now and returns its
// claims. It remembers nothing: a caller that sees the same token often
// keeps its own memory of what verified (the server remembers whole
// Authorization headers, internal/server/tokenmemo.go).
func (k *Key) Verify(tok string, now time.Time) (Claims, error) {
	if len(tok) > maxLen || !strings.HasPrefix(tok, prefix) {
		return Claims{}, ErrMalformed
	}
	i := strings.LastIndexByte(tok, '.')
	if i <= len(prefix) {
		return Claims{}, ErrMalformed
	}
	signed, sig64 := tok[:i], tok[i+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	// Only the canonical encoding: the decoder skips '\r' and '\n', which
	// would give one token many spellings.
	if err != nil || len(sig) != sha256.Size || base64.RawURLEncoding.EncodeToString(sig) != sig64 {
		return Claims{}, ErrMalformed
	}
	if !hmac.Equal(sig, k.mac(signed)) {
		return Claims{}, ErrSignature
	}
	payload, err := base64.RawURLEncoding.DecodeString(signed[len(prefix):])
	if err != nil {
		return Claims{}, ErrMalformed
	}
	var c Claims
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.ARN == "" {
		return Claims{}, ErrMalformed
	}
	if now.Unix() >= c.ExpiresAt {
		return Claims{}, fmt.Errorf("%w at %s", ErrExpired, time.Unix(c.ExpiresAt, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}
