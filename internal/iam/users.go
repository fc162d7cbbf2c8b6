package iam

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/internal/metadata"
)

// CreateUser creates a user.
func (s *Service) CreateUser(ctx context.Context, name, path string, tags map[string]string) (User, error) {
	if err := checkName("userName", name, 64); err != nil {
		return User{}, err
	}
	path, err := checkPath(path)
	if err != nil {
		return User{}, err
	}
	u := User{Name: name, ID: newID("AIDA", 21), Path: path, ARN: s.userARN(path, name), CreatedAt: s.now().UTC(), Tags: tags}
	err = s.update(ctx, func(tx metadata.DocTx) error { return put(tx, kindUser, name, "User", u, 0) })
	return u, err
}

// GetUser returns a user.
func (s *Service) GetUser(ctx context.Context, name string) (User, error) {
	var u User
	err := s.view(ctx, func(tx metadata.DocTx) error {
		var err error
		u, _, err = get[User](tx, kindUser, name, "user")
		return err
	})
	return u, err
}

// ListUsers returns every user with the path prefix, by name.
func (s *Service) ListUsers(ctx context.Context, pathPrefix string) ([]User, error) {
	var out []User
	err := s.view(ctx, func(tx metadata.DocTx) error {
		all, err := list[User](tx, kindUser)
		for _, u := range all {
			if pathPrefix == "" || hasPathPrefix(u.Path, pathPrefix) {
				out = append(out, u)
			}
		}
		return err
	})
	return out, err
}

// DeleteUser deletes a user that has no access keys, policies or groups
// left (AWS's DeleteConflict otherwise).
func (s *Service) DeleteUser(ctx context.Context, name string) error {
	return s.update(ctx, func(tx metadata.DocTx) error {
		u, _, err := get[User](tx, kindUser, name, "user")
		if err != nil {
			return err
		}
		keys, err := userKeys(tx, name)
		if err != nil {
			return err
		}
		if len(keys) > 0 || len(u.Attached) > 0 || len(u.Inline) > 0 || len(u.Groups) > 0 {
			return fmt.Errorf("%w: Cannot delete entity, must delete access keys, policies and group memberships first.", ErrDeleteConflict)
		}
		return tx.Delete(kindUser, name)
	})
}

func userKeys(tx metadata.DocTx, user string) ([]AccessKey, error) {
	all, err := list[AccessKey](tx, kindKey)
	if err != nil {
		return nil, err
	}
	var out []AccessKey
	for _, k := range all {
		if k.UserName == user {
			out = append(out, k)
		}
	}
	return out, nil
}

// CreateAccessKey creates an access key for a user and returns its secret,
// the only time it is ever returned.
func (s *Service) CreateAccessKey(ctx context.Context, user string) (AccessKey, string, error) {
	return s.createAccessKey(ctx, user, newID("AKIA", 20), newSecret())
}

func (s *Service) createAccessKey(ctx context.Context, user, id, secret string) (AccessKey, string, error) {
	sealed, err := s.seal(kindKey, id, []byte(secret))
	if err != nil {
		return AccessKey{}, "", err
	}
	k := AccessKey{ID: id, UserName: user, Status: "Active", Secret: sealed, CreatedAt: s.now().UTC()}
	err = s.update(ctx, func(tx metadata.DocTx) error {
		if _, _, err := get[User](tx, kindUser, user, "user"); err != nil {
			return err
		}
		keys, err := userKeys(tx, user)
		if err != nil {
			return err
		}
		if len(keys) >= maxKeysPerUser {
			return fmt.Errorf("%w: Cannot exceed quota for AccessKeysPerUser: %d", ErrLimitExceeded, maxKeysPerUser)
		}
		return put(tx, kindKey, id, "Access key", k, 0)
	})
	if err != nil {
		return AccessKey{}, "", err
	}
	return k, secret, nil
}

// ListAccessKeys returns a user's keys (without secrets).
func (s *Service) ListAccessKeys(ctx context.Context, user string) ([]AccessKey, error) {
	var out []AccessKey
	err := s.view(ctx, func(tx metadata.DocTx) error {
		if _, _, err := get[User](tx, kindUser, user, "user"); err != nil {
			return err
		}
		var err error
		out, err = userKeys(tx, user)
		return err
	})
	for i := range out {
		out[i].Secret = nil
	}
	return out, err
}

// UpdateAccessKey sets a key's status to Active or Inactive.
func (s *Service) UpdateAccessKey(ctx context.Context, user, id, status string) error {
	if status != "Active" && status != "Inactive" {
		return fmt.Errorf("%w: status must be Active or Inactive", ErrValidation)
	}
	return s.update(ctx, func(tx metadata.DocTx) error {
		k, v, err := get[AccessKey](tx, kindKey, id, "access key")
		if err != nil || k.UserName != user {
			return fmt.Errorf("%w: The Access Key with id %s cannot be found.", ErrNoSuchEntity, id)
		}
		k.Status = status
		return put(tx, kindKey, id, "Access key", k, v)
	})
}

// DeleteAccessKey deletes a user's key.
func (s *Service) DeleteAccessKey(ctx context.Context, user, id string) error {
	return s.update(ctx, func(tx metadata.DocTx) error {
		k, _, err := get[AccessKey](tx, kindKey, id, "access key")
		if err != nil || k.UserName != user {
			return fmt.Errorf("%w: The Access Key with id %s cannot be found.", ErrNoSuchEntity, id)
		}
		return tx.Delete(kindKey, id)
	})
}

// Entity names what inline and attached policies hang off: a user, a
// group or a role.
type Entity struct {
	kind, what string
}

var (
	entUser  = Entity{kindUser, "user"}
	entGroup = Entity{kindGroup, "group"}
	entRole  = Entity{kindRole, "role"}
)

// policyHolder is the part of User, Group and Role that holds policies.
type policyHolder interface {
	inline() *map[string]string
	attached() *[]string
}

func (u *User) inline() *map[string]string  { return &u.Inline }
func (u *User) attached() *[]string         { return &u.Attached }
func (g *Group) inline() *map[string]string { return &g.Inline }
func (g *Group) attached() *[]string        { return &g.Attached }
func (r *Role) inline() *map[string]string  { return &r.Inline }
func (r *Role) attached() *[]string         { return &r.Attached }

// modify loads Entity name, lets fn change its policies, and stores it.
func (s *Service) modify(ctx context.Context, e Entity, name string, fn func(tx metadata.DocTx, h policyHolder) error) error {
	return s.update(ctx, func(tx metadata.DocTx) error {
		switch e {
		case entUser:
			v, ver, err := get[User](tx, e.kind, name, e.what)
			if err != nil {
				return err
			}
			if err := fn(tx, &v); err != nil {
				return err
			}
			return put(tx, e.kind, name, e.what, v, ver)
		case entGroup:
			v, ver, err := get[Group](tx, e.kind, name, e.what)
			if err != nil {
				return err
			}
			if err := fn(tx, &v); err != nil {
				return err
			}
			return put(tx, e.kind, name, e.what, v, ver)
		default:
			v, ver, err := get[Role](tx, e.kind, name, e.what)
			if err != nil {
				return err
			}
			if err := fn(tx, &v); err != nil {
				return err
			}
			return put(tx, e.kind, name, e.what, v, ver)
		}
	})
}

// PutInlinePolicy adds or replaces an inline policy of a user, group or role.
func (s *Service) PutInlinePolicy(ctx context.Context, e Entity, name, policyName, doc string) error {
	if err := checkName("policyName", policyName, 128); err != nil {
		return err
	}
	if len(doc) > maxInlinePolicyBytes {
		return fmt.Errorf("%w: Maximum policy size of %d bytes exceeded for %s %s.", ErrLimitExceeded, maxInlinePolicyBytes, e.what, name)
	}
	if err := validateIdentityPolicy(doc); err != nil {
		return err
	}
	return s.modify(ctx, e, name, func(_ metadata.DocTx, h policyHolder) error {
		m := h.inline()
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[policyName] = doc
		return nil
	})
}

// GetInlinePolicy returns an inline policy document.
func (s *Service) GetInlinePolicy(ctx context.Context, e Entity, name, policyName string) (string, error) {
	var doc string
	err := s.view(ctx, func(tx metadata.DocTx) error {
		h, err := holder(tx, e, name)
		if err != nil {
			return err
		}
		d, ok := (*h.inline())[policyName]
		if !ok {
			return fmt.Errorf("%w: The %s policy with name %s cannot be found.", ErrNoSuchEntity, e.what, policyName)
		}
		doc = d
		return nil
	})
	return doc, err
}

// DeleteInlinePolicy removes an inline policy.
func (s *Service) DeleteInlinePolicy(ctx context.Context, e Entity, name, policyName string) error {
	return s.modify(ctx, e, name, func(_ metadata.DocTx, h policyHolder) error {
		m := h.inline()
		if _, ok := (*m)[policyName]; !ok {
			return fmt.Errorf("%w: The %s policy with name %s cannot be found.", ErrNoSuchEntity, e.what, policyName)
		}
		delete(*m, policyName)
		return nil
	})
}

// ListInlinePolicies returns the names of an Entity's inline policies.
func (s *Service) ListInlinePolicies(ctx context.Context, e Entity, name string) ([]string, error) {
	var out []string
	err := s.view(ctx, func(tx metadata.DocTx) error {
		h, err := holder(tx, e, name)
		if err != nil {
			return err
		}
		for k := range *h.inline() {
			out = append(out, k)
		}
		slices.Sort(out)
		return nil
	})
	return out, err
}

// AttachPolicy attaches a managed policy (AWS or customer) to an Entity.
func (s *Service) AttachPolicy(ctx context.Context, e Entity, name, policyARN string) error {
	return s.modify(ctx, e, name, func(tx metadata.DocTx, h policyHolder) error {
		if _, err := s.managedPolicy(tx, policyARN); err != nil {
			return err
		}
		a := h.attached()
		if slices.Contains(*a, policyARN) {
			return nil
		}
		if len(*a) >= maxAttachedPolicies {
			return fmt.Errorf("%w: Cannot exceed quota for PoliciesPer%s: %d", ErrLimitExceeded, titleCase(e.what), maxAttachedPolicies)
		}
		*a = append(*a, policyARN)
		return nil
	})
}

// DetachPolicy detaches a managed policy.
func (s *Service) DetachPolicy(ctx context.Context, e Entity, name, policyARN string) error {
	return s.modify(ctx, e, name, func(_ metadata.DocTx, h policyHolder) error {
		a := h.attached()
		i := slices.Index(*a, policyARN)
		if i < 0 {
			return fmt.Errorf("%w: Policy %s was not found.", ErrNoSuchEntity, policyARN)
		}
		*a = slices.Delete(*a, i, i+1)
		return nil
	})
}

// ListAttachedPolicies returns the managed policies attached to an Entity.
func (s *Service) ListAttachedPolicies(ctx context.Context, e Entity, name string) ([]ManagedPolicy, error) {
	var out []ManagedPolicy
	err := s.view(ctx, func(tx metadata.DocTx) error {
		h, err := holder(tx, e, name)
		if err != nil {
			return err
		}
		for _, arn := range *h.attached() {
			p, err := s.managedPolicy(tx, arn)
			if err != nil {
				continue // deleted meanwhile
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

func holder(tx metadata.DocTx, e Entity, name string) (policyHolder, error) {
	switch e {
	case entUser:
		v, _, err := get[User](tx, e.kind, name, e.what)
		return &v, err
	case entGroup:
		v, _, err := get[Group](tx, e.kind, name, e.what)
		return &v, err
	default:
		v, _, err := get[Role](tx, e.kind, name, e.what)
		return &v, err
	}
}

// UserEntity selects users in the inline and attached policy operations.
func UserEntity() Entity { return entUser }

// GroupEntity selects groups.
func GroupEntity() Entity { return entGroup }

// RoleEntity selects roles.
func RoleEntity() Entity { return entRole }

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func hasPathPrefix(path, prefix string) bool {
	return len(path) >= len(prefix) && path[:len(prefix)] == prefix
}

var _ = errors.Is
