package kms

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeyID is a KMS key ID: a lowercase UUID, e.g.
// 1234abcd-12ab-34cd-56ef-1234567890ab.
type KeyID string

// ParseKeyID validates a key ID.
func ParseKeyID(s string) (KeyID, error) {
	if !isUUID(s) {
		return "", errorf(codeNotFound, fmt.Sprintf("Invalid keyId '%s'", clip(s)))
	}
	return KeyID(s), nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// newKeyID returns a random (version 4) UUID.
func newKeyID() (KeyID, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return KeyID(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]), nil
}

// randomHex returns n random bytes in lowercase hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// keyRef is what a KeyId parameter names, before resolution.
type keyRef struct {
	id    KeyID  // set for a key ID or key ARN
	alias string // set for an alias name or alias ARN ("alias/...")
	arn   bool   // given as an ARN
	raw   string
}

// refKinds says which identifier forms an operation accepts.
type refKinds int

const (
	refKeyOnly refKinds = iota // key ID or key ARN (CreateGrant, ListGrants, ...)
	refAnyForm                 // key ID, key ARN, alias name, alias ARN
)

// parseKeyRef parses a KeyId parameter: a key ID, a key ARN, an alias name
// or an alias ARN of this account and region (SPEC 3.5). A key ARN of
// another region is NotFoundException "Invalid arn <region>", as AWS
// answers; of another account, the key does not exist here.
func (s *Service) parseKeyRef(param, v string, kinds refKinds) (keyRef, error) {
	if v == "" {
		return keyRef{}, validation(param, v, "Member must have length greater than or equal to 1")
	}
	if len(v) > 2048 {
		return keyRef{}, validation(param, "", "Member must have length less than or equal to 2048")
	}
	r := keyRef{raw: v}
	switch {
	case strings.HasPrefix(v, "arn:"):
		p, err := parseARN(v)
		if err != nil || p.service != "kms" {
			return keyRef{}, errorf(codeInvalidArn, fmt.Sprintf("Invalid arn %s: %v", clip(v), arnProblem(err, p)))
		}
		if p.partition != s.partition {
			return keyRef{}, errorf(codeInvalidArn, fmt.Sprintf("Invalid arn %s: partition %s is not %s", clip(v), clip(p.partition), s.partition))
		}
		if p.region != s.cfg.Region {
			return keyRef{}, errorf(codeNotFound, "Invalid arn "+clip(p.region))
		}
		r.arn = true
		switch {
		case strings.HasPrefix(p.resource, "key/"):
			id := strings.TrimPrefix(p.resource, "key/")
			if !isUUID(id) {
				return keyRef{}, errorf(codeNotFound, fmt.Sprintf("Invalid keyId '%s'", clip(id)))
			}
			if p.account != s.cfg.AccountID {
				return keyRef{}, errorf(codeNotFound, fmt.Sprintf("Key '%s' does not exist", clip(v)))
			}
			r.id = KeyID(id)
		case strings.HasPrefix(p.resource, "alias/"):
			if kinds == refKeyOnly {
				return keyRef{}, errorf(codeInvalidArn, fmt.Sprintf("%s must be a key ID or key ARN, not an alias ARN: %s", param, clip(v)))
			}
			if err := checkAliasPattern("aliasName", p.resource); err != nil {
				return keyRef{}, err
			}
			if p.account != s.cfg.AccountID {
				return keyRef{}, errorf(codeNotFound, fmt.Sprintf("Alias %s is not found.", clip(v)))
			}
			r.alias = p.resource
		default:
			return keyRef{}, errorf(codeInvalidArn, fmt.Sprintf("Invalid arn %s: the resource must be key/<key-id> or alias/<alias-name>", clip(v)))
		}
	case strings.HasPrefix(v, "alias/"):
		if kinds == refKeyOnly {
			return keyRef{}, errorf(codeInvalidArn, fmt.Sprintf("%s must be a key ID or key ARN, not an alias name: %s", param, clip(v)))
		}
		if err := checkAliasPattern("aliasName", v); err != nil {
			return keyRef{}, err
		}
		r.alias = v
	default:
		id, err := ParseKeyID(v)
		if err != nil {
			return keyRef{}, err
		}
		r.id = id
	}
	return r, nil
}

// arn is a parsed ARN.
type arn struct {
	partition, service, region, account, resource string
}

func parseARN(s string) (arn, error) {
	var parts [6]string
	rest := s
	for i := range 5 {
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			return arn{}, errors.New("an ARN has six colon-separated parts")
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	parts[5] = rest
	if parts[0] != "arn" {
		return arn{}, errors.New("an ARN begins with \"arn\"")
	}
	a := arn{partition: parts[1], service: parts[2], region: parts[3], account: parts[4], resource: parts[5]}
	if a.partition == "" || a.service == "" {
		return a, errors.New("partition and service must not be empty")
	}
	if a.resource == "" {
		return a, errors.New("the resource must not be empty")
	}
	if a.service == "kms" && (a.region == "" || !isAccountID(a.account)) {
		return a, errors.New("a KMS ARN names a region and a 12-digit account")
	}
	return a, nil
}

func arnProblem(err error, a arn) string {
	if err != nil {
		return err.Error()
	}
	return "the service must be kms, not " + clip(a.service)
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// aliasPrefix and the reserved prefix of AWS managed keys' aliases.
const (
	aliasPrefix    = "alias/"
	awsAliasPrefix = "alias/aws/"
)

// checkAliasPattern applies the model's AliasNameType constraints.
func checkAliasPattern(param, name string) error {
	if len(name) < 1 || len(name) > 256 {
		return validation(param, name, "Member must have length less than or equal to 256")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ':' || c == '/' || c == '_' || c == '-') {
			return validation(param, name, "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$")
		}
	}
	return nil
}

// checkNewAliasName validates the name of an alias being created: the
// pattern, the alias/ prefix, and the reserved alias/aws/ prefix.
func checkNewAliasName(name string) error {
	if err := checkAliasPattern("aliasName", name); err != nil {
		return err
	}
	if !strings.HasPrefix(name, aliasPrefix) || len(name) == len(aliasPrefix) {
		return errorf(codeInvalidAliasName, fmt.Sprintf("Alias %s must begin with alias/ followed by a name", clip(name)))
	}
	if strings.HasPrefix(name, awsAliasPrefix) {
		return errorf(codeInvalidAliasName, fmt.Sprintf("Alias %s cannot begin with alias/aws/: that prefix is reserved for AWS managed keys", clip(name)))
	}
	return nil
}

// checkPrincipal validates a grantee or retiring principal: the model's
// PrincipalIdType pattern, then one of the forms a grant may name (an
// account ID or root ARN, a user, role or assumed-role ARN, or a service
// principal such as ecr.us-east-1.amazonaws.com).
func checkPrincipal(param, p string) error {
	if len(p) < 1 || len(p) > 256 {
		return validation(param, p, "Member must have length less than or equal to 256")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_+=,.@:/-", c) >= 0) {
			return validation(param, p, `Member must satisfy regular expression pattern: ^[\w+=,.@:/-]+$`)
		}
	}
	switch {
	case isAccountID(p):
		return nil
	case strings.HasPrefix(p, "arn:"):
		a, err := parseARN(p)
		if err == nil && (a.service == "iam" || a.service == "sts") && a.region == "" && isAccountID(a.account) {
			r := a.resource
			if r == "root" || (a.service == "iam" && (strings.HasPrefix(r, "user/") || strings.HasPrefix(r, "role/")) && !strings.HasSuffix(r, "/")) ||
				(a.service == "sts" && strings.HasPrefix(r, "assumed-role/") && strings.Count(r, "/") >= 2 && !strings.HasSuffix(r, "/")) {
				return nil
			}
		}
		return errorf(codeValidation, fmt.Sprintf("%s %s is not a valid principal: name an account, an IAM user, role or assumed-role ARN, or a service principal", param, clip(p)))
	case isServicePrincipal(p):
		return nil
	}
	return errorf(codeValidation, fmt.Sprintf("%s %s is not a valid principal: name an account, an IAM user, role or assumed-role ARN, or a service principal", param, clip(p)))
}

// isServicePrincipal reports whether p looks like an AWS service principal:
// dot-separated lower-case labels ending in amazonaws.com.
func isServicePrincipal(p string) bool {
	rest, ok := strings.CutSuffix(p, ".amazonaws.com")
	if !ok || rest == "" {
		return false
	}
	for _, label := range strings.Split(rest, ".") {
		if label == "" {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validation is AWS's constraint-violation message.
func validation(param, value, constraint string) *Error {
	if value == "" {
		return errorf(codeValidation, fmt.Sprintf("1 validation error detected: Value at '%s' failed to satisfy constraint: %s", param, constraint))
	}
	return errorf(codeValidation, fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", clip(value), param, constraint))
}

// clip shortens a client-supplied value for an error message and replaces
// control and non-ASCII bytes, so a message never echoes much input.
func clip(s string) string {
	const max = 256
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
