package iam

import (
	"context"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

func validateIdentityPolicy(doc string) error {
	if _, err := policy.Parse([]byte(doc), policy.Identity); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedPolicy, err)
	}
	return nil
}

func validateTrustPolicy(doc string) error {
	if _, err := policy.Parse([]byte(doc), policy.Resource); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedPolicy, err)
	}
	return nil
}

// CreatePolicy creates a customer managed policy.
func (s *Service) CreatePolicy(ctx context.Context, name, path, doc, description string) (ManagedPolicy, error) {
	if err := checkName("policyName", name, 128); err != nil {
		return ManagedPolicy{}, err
	}
	path, err := checkPath(path)
	if err != nil {
		return ManagedPolicy{}, err
	}
	if len(doc) > maxManagedPolicyBytes {
		return ManagedPolicy{}, fmt.Errorf("%w: Cannot exceed quota for PolicySize: %d", ErrLimitExceeded, maxManagedPolicyBytes)
	}
	if err := validateIdentityPolicy(doc); err != nil {
		return ManagedPolicy{}, err
	}
	now := s.now().UTC()
	p := ManagedPolicy{Name: name, ID: newID("ANPA", 21), Path: path, ARN: s.policyARN(path, name),
		Description: description, Document: doc, CreatedAt: now, UpdatedAt: now}
	err = s.update(ctx, func(tx metadata.DocTx) error {
		existing, err := list[ManagedPolicy](tx, kindPolicy)
		if err != nil {
			return err
		}
		for _, e := range existing {
			if e.Name == name {
				return fmt.Errorf("%w: A policy called %s already exists. Duplicate names are not allowed.", ErrEntityExists, name)
			}
		}
		return put(tx, kindPolicy, p.ARN, "Policy", p, 0)
	})
	return p, err
}

// managedPolicy resolves an AWS managed or customer managed policy ARN.
func (s *Service) managedPolicy(tx metadata.DocTx, arn string) (ManagedPolicy, error) {
	if name, ok := strings.CutPrefix(arn, "arn:aws:iam::aws:policy/"); ok {
		p, ok := policy.Managed(name)
		if !ok {
			return ManagedPolicy{}, fmt.Errorf("%w: Policy %s does not exist or is not attachable.", ErrNoSuchEntity, arn)
		}
		return ManagedPolicy{Name: name, ID: "ANPA" + strings.ToUpper(fmt.Sprintf("%017x", hash64(name)))[:17], Path: "/",
			ARN: arn, Document: string(p.JSON()), AWSManaged: true}, nil
	}
	p, _, err := get[ManagedPolicy](tx, kindPolicy, arn, "policy")
	if err != nil {
		return ManagedPolicy{}, fmt.Errorf("%w: Policy %s does not exist or is not attachable.", ErrNoSuchEntity, arn)
	}
	return p, nil
}

// GetPolicy returns a managed policy with its attachment count.
func (s *Service) GetPolicy(ctx context.Context, arn string) (ManagedPolicy, error) {
	var p ManagedPolicy
	err := s.view(ctx, func(tx metadata.DocTx) error {
		var err error
		if p, err = s.managedPolicy(tx, arn); err != nil {
			return err
		}
		p.AttachmentCount, err = attachments(tx, arn)
		return err
	})
	return p, err
}

// DeletePolicy deletes a customer managed policy that nothing attaches.
func (s *Service) DeletePolicy(ctx context.Context, arn string) error {
	if strings.HasPrefix(arn, "arn:aws:iam::aws:policy/") {
		return fmt.Errorf("%w: Cannot delete AWS managed policy %s.", ErrUnmodifiable, arn)
	}
	return s.update(ctx, func(tx metadata.DocTx) error {
		if _, err := s.managedPolicy(tx, arn); err != nil {
			return err
		}
		n, err := attachments(tx, arn)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: Cannot delete a policy attached to entities.", ErrDeleteConflict)
		}
		return tx.Delete(kindPolicy, arn)
	})
}

// ListPolicies lists policies: scope "AWS", "Local" or "All" (default).
func (s *Service) ListPolicies(ctx context.Context, scope string, onlyAttached bool) ([]ManagedPolicy, error) {
	var out []ManagedPolicy
	err := s.view(ctx, func(tx metadata.DocTx) error {
		if scope != "Local" {
			for _, m := range policy.ManagedPolicies() {
				p, err := s.managedPolicy(tx, m.ARN)
				if err != nil {
					return err
				}
				out = append(out, p)
			}
		}
		if scope != "AWS" {
			local, err := list[ManagedPolicy](tx, kindPolicy)
			if err != nil {
				return err
			}
			out = append(out, local...)
		}
		kept := out[:0]
		for _, p := range out {
			n, err := attachments(tx, p.ARN)
			if err != nil {
				return err
			}
			p.AttachmentCount = n
			if !onlyAttached || n > 0 {
				kept = append(kept, p)
			}
		}
		out = kept
		return nil
	})
	return out, err
}

// attachments counts the users, groups and roles a policy is attached to.
func attachments(tx metadata.DocTx, arn string) (int, error) {
	n := 0
	users, err := list[User](tx, kindUser)
	if err != nil {
		return 0, err
	}
	for _, u := range users {
		n += count(u.Attached, arn)
	}
	groups, err := list[Group](tx, kindGroup)
	if err != nil {
		return 0, err
	}
	for _, g := range groups {
		n += count(g.Attached, arn)
	}
	roles, err := list[Role](tx, kindRole)
	if err != nil {
		return 0, err
	}
	for _, r := range roles {
		n += count(r.Attached, arn)
	}
	return n, nil
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func hash64(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
