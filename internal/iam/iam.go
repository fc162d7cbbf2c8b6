// Package iam is Coffer's identity store: IAM users, access keys, groups,
// roles, customer managed policies and STS sessions of the registry's one
// account, kept as documents in the metadata store (metadata.DocStore) with
// every secret sealed under the service root key.
//
// It answers the three questions the rest of Coffer asks:
//   - Lookup: which principal owns this access key, and what is its secret
//     (the SigV4 verifier's key store)?
//   - IdentityPolicies: which identity-based policies apply to a principal
//     (the decision point's input)?
//   - the IAM and STS API operations (internal/iamapi), with AWS's error
//     names (NoSuchEntity, EntityAlreadyExists, DeleteConflict,
//     LimitExceeded, MalformedPolicyDocument, ...).
//
// What it trusts: the metadata store and the root key. What it guarantees:
// secret access keys and session tokens never leave it except to the
// verifier (Lookup) and once to their creator; every multi-record change is
// one transaction.
package iam

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
)

// Errors, named as AWS names them; the API layer maps them to codes.
var (
	ErrNoSuchEntity      = errors.New("NoSuchEntity")
	ErrEntityExists      = errors.New("EntityAlreadyExists")
	ErrDeleteConflict    = errors.New("DeleteConflict")
	ErrLimitExceeded     = errors.New("LimitExceeded")
	ErrMalformedPolicy   = errors.New("MalformedPolicyDocument")
	ErrInvalidInput      = errors.New("InvalidInput")
	ErrValidation        = errors.New("ValidationError")
	ErrUnmodifiable      = errors.New("UnmodifiableEntity")
	ErrUnknownKey        = errors.New("unknown or inactive access key")
	ErrAccessDeniedTrust = errors.New("AccessDenied")
)

// Document kinds.
const (
	kindUser    = "iam.user"
	kindKey     = "iam.accesskey"
	kindGroup   = "iam.group"
	kindRole    = "iam.role"
	kindPolicy  = "iam.policy"
	kindSession = "sts.session"
)

// Limits, as AWS's defaults.
const (
	maxKeysPerUser        = 2
	maxAttachedPolicies   = 20
	maxInlinePolicyBytes  = 10240
	maxManagedPolicyBytes = 6144
)

// Config configures a Service.
type Config struct {
	AccountID string
	Docs      metadata.DocStore
	Root      *rootkey.Key
	Log       *slog.Logger
	Now       func() time.Time
}

// Service is the identity store.
type Service struct {
	cfg Config
	now func() time.Time
	log *slog.Logger
	pc  policyCache
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.AccountID == "" || cfg.Docs == nil || cfg.Root == nil {
		return nil, errors.New("iam: AccountID, Docs and Root are required")
	}
	s := &Service{cfg: cfg, now: cfg.Now, log: cfg.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// AccountID returns the account the identities belong to.
func (s *Service) AccountID() string { return s.cfg.AccountID }

// User is an IAM user.
type User struct {
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	Path      string            `json:"path"`
	ARN       string            `json:"arn"`
	CreatedAt time.Time         `json:"created"`
	Groups    []string          `json:"groups,omitempty"`
	Attached  []string          `json:"attached,omitempty"` // managed policy ARNs
	Inline    map[string]string `json:"inline,omitempty"`   // policy name -> document
	Tags      map[string]string `json:"tags,omitempty"`
}

// AccessKey is a long-term access key of a user. Secret is sealed.
type AccessKey struct {
	ID        string    `json:"id"`
	UserName  string    `json:"user"`
	Status    string    `json:"status"` // Active or Inactive
	Secret    []byte    `json:"secret"`
	CreatedAt time.Time `json:"created"`
}

// Group is an IAM group; members are recorded on the users.
type Group struct {
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	Path      string            `json:"path"`
	ARN       string            `json:"arn"`
	CreatedAt time.Time         `json:"created"`
	Attached  []string          `json:"attached,omitempty"`
	Inline    map[string]string `json:"inline,omitempty"`
}

// Role is an IAM role.
type Role struct {
	Name               string            `json:"name"`
	ID                 string            `json:"id"`
	Path               string            `json:"path"`
	ARN                string            `json:"arn"`
	Description        string            `json:"description,omitempty"`
	CreatedAt          time.Time         `json:"created"`
	AssumeRolePolicy   string            `json:"trust"`
	MaxSessionDuration int               `json:"max_session"` // seconds
	Attached           []string          `json:"attached,omitempty"`
	Inline             map[string]string `json:"inline,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// ManagedPolicy is a customer managed policy (one version, v1).
type ManagedPolicy struct {
	Name        string    `json:"name"`
	ID          string    `json:"id"`
	Path        string    `json:"path"`
	ARN         string    `json:"arn"`
	Description string    `json:"description,omitempty"`
	Document    string    `json:"document"`
	CreatedAt   time.Time `json:"created"`
	UpdatedAt   time.Time `json:"updated"`
	// AWSManaged marks the built-ins (arn:aws:iam::aws:policy/...).
	AWSManaged      bool `json:"-"`
	AttachmentCount int  `json:"-"`
}

// Session is an STS session's temporary credentials. Secret and Token are
// sealed.
type Session struct {
	AccessKeyID string    `json:"id"`
	Secret      []byte    `json:"secret"`
	Token       []byte    `json:"token"`
	Expires     time.Time `json:"expires"`
	// For AssumeRole sessions:
	RoleName    string `json:"role,omitempty"`
	SessionName string `json:"session,omitempty"`
	// For GetSessionToken sessions, the user whose session it is.
	UserName string `json:"user,omitempty"`
	// The ID of the role or user: one deleted and created again under the
	// name is another, and the session is not its. Empty in sessions made
	// before it was recorded.
	OwnerID   string    `json:"owner_id,omitempty"`
	CreatedAt time.Time `json:"created"`
}

var (
	nameRE = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	pathRE = regexp.MustCompile(`^(/|/[\x21-\x7e]*/)$`)
)

func checkName(what, name string, max int) error {
	if len(name) > max || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s must be 1-%d characters of letters, digits and +=,.@_-", ErrValidation, what, max)
	}
	return nil
}

func checkPath(path string) (string, error) {
	if path == "" {
		return "/", nil
	}
	if len(path) > 512 || !pathRE.MatchString(path) {
		return "", fmt.Errorf("%w: path must begin and end with / and be at most 512 printable characters", ErrValidation)
	}
	return path, nil
}

// newID returns an AWS-style unique ID: prefix plus uppercase base32
// characters, n characters in all.
func newID(prefix string, n int) string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic("iam: crypto/rand failed: " + err.Error())
	}
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	s = strings.NewReplacer("0", "Q", "1", "R").Replace(s)
	return (prefix + s)[:n]
}

// newSecret returns a 40-character secret access key.
func newSecret() string {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		panic("iam: crypto/rand failed: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Service) seal(kind, id string, secret []byte) ([]byte, error) {
	return s.cfg.Root.Wrap(secret, map[string]string{"coffer:secret": kind + "/" + id})
}

func (s *Service) unseal(kind, id string, sealed []byte) ([]byte, error) {
	b, err := s.cfg.Root.Unwrap(sealed, map[string]string{"coffer:secret": kind + "/" + id})
	if err != nil {
		return nil, fmt.Errorf("iam: sealed %s secret of %s does not open", kind, id)
	}
	return b, nil
}

func (s *Service) userARN(path, name string) string {
	return "arn:aws:iam::" + s.cfg.AccountID + ":user" + path + name
}

func (s *Service) groupARN(path, name string) string {
	return "arn:aws:iam::" + s.cfg.AccountID + ":group" + path + name
}

func (s *Service) roleARN(path, name string) string {
	return "arn:aws:iam::" + s.cfg.AccountID + ":role" + path + name
}

func (s *Service) policyARN(path, name string) string {
	return "arn:aws:iam::" + s.cfg.AccountID + ":policy" + path + name
}
