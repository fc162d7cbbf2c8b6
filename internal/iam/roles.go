package iam

import (
	"context"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
)

// CreateRole creates a role with a trust policy.
func (s *Service) CreateRole(ctx context.Context, name, path, trust, description string, maxSession int, tags map[string]string) (Role, error) {
	if err := checkName("roleName", name, 64); err != nil {
		return Role{}, err
	}
	path, err := checkPath(path)
	if err != nil {
		return Role{}, err
	}
	if maxSession == 0 {
		maxSession = 3600
	}
	if maxSession < 3600 || maxSession > 43200 {
		return Role{}, fmt.Errorf("%w: maxSessionDuration must be between 3600 and 43200 seconds", ErrValidation)
	}
	if err := validateTrustPolicy(trust); err != nil {
		return Role{}, err
	}
	r := Role{Name: name, ID: newID("AROA", 21), Path: path, ARN: s.roleARN(path, name), Description: description,
		CreatedAt: s.now().UTC(), AssumeRolePolicy: trust, MaxSessionDuration: maxSession, Tags: tags}
	err = s.update(ctx, func(tx metadata.DocTx) error { return put(tx, kindRole, name, "Role", r, 0) })
	return r, err
}

// GetRole returns a role.
func (s *Service) GetRole(ctx context.Context, name string) (Role, error) {
	var r Role
	err := s.view(ctx, func(tx metadata.DocTx) error {
		var err error
		r, _, err = get[Role](tx, kindRole, name, "role")
		return err
	})
	return r, err
}

// DeleteRole deletes a role without policies (DeleteConflict otherwise).
func (s *Service) DeleteRole(ctx context.Context, name string) error {
	return s.update(ctx, func(tx metadata.DocTx) error {
		r, _, err := get[Role](tx, kindRole, name, "role")
		if err != nil {
			return err
		}
		if len(r.Attached) > 0 || len(r.Inline) > 0 {
			return fmt.Errorf("%w: Cannot delete entity, must detach all policies first.", ErrDeleteConflict)
		}
		return tx.Delete(kindRole, name)
	})
}
