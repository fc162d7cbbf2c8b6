// Package presign signs and verifies Coffer's presigned layer download URLs:
// the downloadUrl of ECR GetDownloadUrlForLayer, which Coffer serves itself
// (SPEC STO-03: the second step of a pull, possibly on another listener).
//
// A URL names one repository and one layer digest and carries three query
// parameters:
//
//	X-Coffer-Expires    unix seconds after which the URL is refused
//	X-Coffer-Principal  base64url(JSON of Principal): who asked for the URL
//	X-Coffer-Signature  hex(HMAC-SHA256(key, StringToSign))
//
//	StringToSign = "coffer-presigned-layer-v1" LF repository LF digest LF
//	               expires LF principal-parameter
//
// Repository names and digests cannot contain LF, expires is decimal and
// the principal parameter is base64url, so the string splits one way only.
//
// What it trusts: the key (32 bytes, kept sealed under the root key by the
// server; not the registry-token key, so neither can stand in for the
// other). What it guarantees: Verify accepts only parameters this key
// signed for exactly that repository and digest, unaltered, before they
// expire; the comparison is constant time; errors never echo the signature.
// What it does not decide: whether the principal may still download. A URL
// is a claim of who asked, and the server authorizes that principal again
// on every download, with the downloader's own request context (PEERS 7:
// no presigned path around policy).
package presign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Lifetime is how long a URL stays valid.
const Lifetime = 10 * time.Minute

// Query parameter names.
const (
	ParamExpires   = "X-Coffer-Expires"
	ParamPrincipal = "X-Coffer-Principal"
	ParamSignature = "X-Coffer-Signature"
)

const (
	label = "coffer-presigned-layer-v1"
	// maxPrincipal bounds the principal parameter Verify will decode.
	maxPrincipal = 4 << 10
)

// Errors. Verify wraps one of them.
var (
	ErrMalformed = errors.New("presign: the URL's query-string authentication parameters are missing or malformed")
	ErrSignature = errors.New("presign: the URL's signature does not match")
	ErrExpired   = errors.New("presign: the URL has expired")
)

// Principal is who requested the URL (auth.Principal's identity fields,
// kept here so the wire format is this package's own).
type Principal struct {
	Type        string `json:"typ"`
	ARN         string `json:"arn"`
	AccountID   string `json:"acct"`
	PrincipalID string `json:"pid"`
	UserName    string `json:"usr,omitempty"`
	RoleARN     string `json:"role,omitempty"`
	SessionName string `json:"sess,omitempty"`
	// Expires is when the principal's temporary credentials end (unix
	// seconds; 0 for long-term credentials).
	Expires int64 `json:"exp,omitempty"`
}

// Claims is what a URL asserts.
type Claims struct {
	Repository string
	Digest     string
	Principal  Principal
	Expires    time.Time
}

// Key signs and verifies URLs. It is incomparable and never formats its
// secret.
type Key struct {
	_ [0]func()
	k []byte
}

// NewKey wraps a 32-byte secret.
func NewKey(secret []byte) (*Key, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("presign: key must be 32 bytes, got %d", len(secret))
	}
	return &Key{k: append([]byte(nil), secret...)}, nil
}

// String implements fmt.Stringer without revealing the key.
func (*Key) String() string { return "presign.Key(REDACTED)" }

// Sign returns the query parameters of a URL for c.
func (k *Key) Sign(c Claims) (url.Values, error) {
	if c.Repository == "" || c.Digest == "" || c.Principal.ARN == "" {
		return nil, errors.New("presign: repository, digest and principal are required")
	}
	pj, err := json.Marshal(c.Principal)
	if err != nil {
		return nil, err
	}
	p := base64.RawURLEncoding.EncodeToString(pj)
	exp := strconv.FormatInt(c.Expires.Unix(), 10)
	return url.Values{
		ParamExpires:   {exp},
		ParamPrincipal: {p},
		ParamSignature: {hex.EncodeToString(k.mac(c.Repository, c.Digest, exp, p))},
	}, nil
}

func (k *Key) mac(repo, digest, exp, principal string) []byte {
	m := hmac.New(sha256.New, k.k)
	for i, s := range []string{label, repo, digest, exp, principal} {
		if i > 0 {
			m.Write([]byte{'\n'})
		}
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// Verify checks the parameters q of a URL for repository and digest at now
// and returns its claims. The signature is checked before anything the
// parameters say is believed, the expiry after it.
func (k *Key) Verify(repository, digest string, q url.Values, now time.Time) (Claims, error) {
	exp, p, sig := q[ParamExpires], q[ParamPrincipal], q[ParamSignature]
	if len(exp) != 1 || len(p) != 1 || len(sig) != 1 || len(exp[0]) > 20 || len(p[0]) > maxPrincipal {
		return Claims{}, ErrMalformed
	}
	got, err := hex.DecodeString(sig[0])
	if err != nil || len(got) != sha256.Size {
		return Claims{}, ErrMalformed
	}
	if !hmac.Equal(got, k.mac(repository, digest, exp[0], p[0])) {
		return Claims{}, ErrSignature
	}
	// Signed by us: the values are ours, but parse them defensively anyway.
	secs, err := strconv.ParseInt(exp[0], 10, 64)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	pj, err := base64.RawURLEncoding.DecodeString(p[0])
	if err != nil {
		return Claims{}, ErrMalformed
	}
	var pr Principal
	if err := json.Unmarshal(pj, &pr); err != nil || pr.ARN == "" {
		return Claims{}, ErrMalformed
	}
	c := Claims{Repository: repository, Digest: digest, Principal: pr, Expires: time.Unix(secs, 0)}
	if !now.Before(c.Expires) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}
