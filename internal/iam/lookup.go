package iam

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

// KeyCredentials is what Lookup returns for the SigV4 verifier. Secret is
// the plaintext secret access key: it goes to the verifier only.
type KeyCredentials struct {
	AccessKeyID  string
	Secret       []byte
	SessionToken string
	Expires      time.Time
	Principal    auth.Principal
}

// Lookup resolves an access key ID (long-term AKIA or session ASIA) to its
// secret and principal; ErrUnknownKey for unknown or inactive keys and for
// sessions whose role or user is gone.
func (s *Service) Lookup(ctx context.Context, id string) (KeyCredentials, error) {
	var out KeyCredentials
	err := s.view(ctx, func(tx metadata.DocTx) error {
		switch {
		case strings.HasPrefix(id, "AKIA"):
			k, _, err := get[AccessKey](tx, kindKey, id, "access key")
			if err != nil || k.Status != "Active" {
				return ErrUnknownKey
			}
			u, _, err := get[User](tx, kindUser, k.UserName, "user")
			if err != nil {
				return ErrUnknownKey
			}
			secret, err := s.unseal(kindKey, id, k.Secret)
			if err != nil {
				return err
			}
			out = KeyCredentials{AccessKeyID: id, Secret: secret, Principal: s.userPrincipal(u, id)}
			return nil
		case strings.HasPrefix(id, "ASIA"):
			sess, _, err := get[Session](tx, kindSession, id, "session")
			if err != nil {
				return ErrUnknownKey
			}
			var p auth.Principal
			if sess.RoleName != "" {
				r, _, err := get[Role](tx, kindRole, sess.RoleName, "role")
				if err != nil || (sess.OwnerID != "" && sess.OwnerID != r.ID) {
					return ErrUnknownKey
				}
				p = auth.Principal{Type: "AssumedRole", ARN: "arn:aws:sts::" + s.cfg.AccountID + ":assumed-role/" + r.Name + "/" + sess.SessionName,
					AccountID: s.cfg.AccountID, PrincipalID: r.ID + ":" + sess.SessionName, RoleARN: r.ARN, SessionName: sess.SessionName}
			} else {
				u, _, err := get[User](tx, kindUser, sess.UserName, "user")
				if err != nil || (sess.OwnerID != "" && sess.OwnerID != u.ID) {
					return ErrUnknownKey
				}
				p = s.userPrincipal(u, "")
			}
			p.AccessKeyID, p.Expires = id, sess.Expires
			secret, err := s.unseal(kindSession, id, sess.Secret)
			if err != nil {
				return err
			}
			token, err := s.unseal(kindSession, id+"/token", sess.Token)
			if err != nil {
				return err
			}
			out = KeyCredentials{AccessKeyID: id, Secret: secret, SessionToken: string(token), Expires: sess.Expires, Principal: p}
			return nil
		}
		return ErrUnknownKey
	})
	return out, err
}

func (s *Service) userPrincipal(u User, keyID string) auth.Principal {
	return auth.Principal{Type: "IAMUser", ARN: u.ARN, AccountID: s.cfg.AccountID, PrincipalID: u.ID, UserName: u.Name, AccessKeyID: keyID}
}

// policyCache holds parsed identity policies per principal ARN, valid
// while no IAM write happened since (gen).
type policyCache struct {
	gen atomic.Uint64
	mu  sync.Mutex
	m   map[string]cachedPolicies
}

type cachedPolicies struct {
	gen         uint64
	principalID string // whose entry it is: a name can be reused
	exists      bool
	policies    []*policy.Policy
}

// Invalidate drops cached identity policies; every IAM write calls it, and
// replicas call it when another replica announces a write
// (internal/server/replicas.go).
func (s *Service) Invalidate() { s.pc.gen.Add(1) }

// IdentityPolicies returns the identity-based policies that apply to p:
// a user's inline and attached policies and those of its groups, or an
// assumed role's. A principal that no longer exists has none, nor has one
// whose user or role was deleted and created again under its name (a
// different ID: what the old one was granted is not the new one's).
func (s *Service) IdentityPolicies(ctx context.Context, p auth.Principal) ([]*policy.Policy, error) {
	e, err := s.identity(ctx, p)
	return e.policies, err
}

// Exists reports whether p still names a user or role of the account (by
// ID, not only by name), for credentials that outlive what they name: a
// registry token. Other principals (another account's, a service) are
// not the account's to know and exist.
func (s *Service) Exists(ctx context.Context, p auth.Principal) (bool, error) {
	if p.Type != "IAMUser" && p.Type != "AssumedRole" {
		return true, nil
	}
	e, err := s.identity(ctx, p)
	return e.exists, err
}

// identity returns what the store says of p, from the cache while no IAM
// write happened since.
func (s *Service) identity(ctx context.Context, p auth.Principal) (cachedPolicies, error) {
	c := &s.pc
	gen := c.gen.Load()
	key := p.ARN
	c.mu.Lock()
	if e, ok := c.m[key]; ok && e.gen == gen && e.principalID == p.PrincipalID {
		c.mu.Unlock()
		return e, nil
	}
	c.mu.Unlock()
	e, err := s.readIdentity(ctx, p)
	if err != nil {
		return cachedPolicies{}, err
	}
	e.gen, e.principalID = gen, p.PrincipalID
	c.mu.Lock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = make(map[string]cachedPolicies)
	}
	c.m[key] = e
	c.mu.Unlock()
	return e, nil
}

// readIdentity is identity without the cache. It is apart so that only a
// cache miss pays for the principal its closure captures (moved to the
// heap).
func (s *Service) readIdentity(ctx context.Context, p auth.Principal) (cachedPolicies, error) {
	var (
		docs   []string
		exists bool
	)
	err := s.view(ctx, func(tx metadata.DocTx) error {
		addHolder := func(inline map[string]string, attached []string) error {
			for _, d := range inline {
				docs = append(docs, d)
			}
			for _, arn := range attached {
				mp, err := s.managedPolicy(tx, arn)
				if errors.Is(err, ErrNoSuchEntity) {
					continue
				}
				if err != nil {
					return err
				}
				docs = append(docs, mp.Document)
			}
			return nil
		}
		switch p.Type {
		case "IAMUser":
			u, _, err := get[User](tx, kindUser, p.UserName, "user")
			if errors.Is(err, ErrNoSuchEntity) || (err == nil && (u.ARN != p.ARN || u.ID != p.PrincipalID)) {
				return nil
			}
			if err != nil {
				return err
			}
			exists = true
			if err := addHolder(u.Inline, u.Attached); err != nil {
				return err
			}
			for _, gname := range u.Groups {
				g, _, err := get[Group](tx, kindGroup, gname, "group")
				if errors.Is(err, ErrNoSuchEntity) {
					continue
				}
				if err != nil {
					return err
				}
				if err := addHolder(g.Inline, g.Attached); err != nil {
					return err
				}
			}
		case "AssumedRole":
			name := p.RoleARN[strings.LastIndexByte(p.RoleARN, '/')+1:]
			r, _, err := get[Role](tx, kindRole, name, "role")
			if errors.Is(err, ErrNoSuchEntity) || (err == nil && (r.ARN != p.RoleARN || !strings.HasPrefix(p.PrincipalID, r.ID+":"))) {
				return nil
			}
			if err != nil {
				return err
			}
			exists = true
			return addHolder(r.Inline, r.Attached)
		}
		return nil
	})
	if err != nil {
		return cachedPolicies{}, err
	}
	out := make([]*policy.Policy, 0, len(docs))
	for _, d := range docs {
		pol, err := policy.Parse([]byte(d), policy.Identity)
		if err != nil {
			return cachedPolicies{}, fmt.Errorf("iam: stored policy does not parse: %w", err)
		}
		out = append(out, pol)
	}
	return cachedPolicies{exists: exists, policies: out}, nil
}

// Bootstrap creates the administrator on first start: user "admin" with
// AdministratorAccess and one access key (id and secret when given, else
// generated). It does nothing when any user exists; created reports which.
func (s *Service) Bootstrap(ctx context.Context, id, secret string) (keyID, keySecret string, created bool, err error) {
	var any bool
	if err := s.view(ctx, func(tx metadata.DocTx) error {
		users, err := tx.List(kindUser, "")
		any = len(users) > 0
		return err
	}); err != nil || any {
		return "", "", false, err
	}
	if _, err := s.CreateUser(ctx, "admin", "/", nil); err != nil {
		return "", "", false, err
	}
	if err := s.AttachPolicy(ctx, entUser, "admin", "arn:aws:iam::aws:policy/AdministratorAccess"); err != nil {
		return "", "", false, err
	}
	if id == "" {
		id, secret = newID("AKIA", 20), newSecret()
	}
	if !strings.HasPrefix(id, "AKIA") || len(id) < 16 || len(id) > 128 || len(secret) < 16 {
		return "", "", false, fmt.Errorf("%w: the administrator access key ID must start with AKIA and the secret be at least 16 characters", ErrValidation)
	}
	if _, _, err := s.createAccessKey(ctx, "admin", id, secret); err != nil {
		return "", "", false, err
	}
	return id, secret, true, nil
}
