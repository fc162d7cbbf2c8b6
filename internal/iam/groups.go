package iam

import (
	"context"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/internal/metadata"
)

// CreateGroup creates a group.
func (s *Service) CreateGroup(ctx context.Context, name, path string) (Group, error) {
	if err := checkName("groupName", name, 128); err != nil {
		return Group{}, err
	}
	path, err := checkPath(path)
	if err != nil {
		return Group{}, err
	}
	g := Group{Name: name, ID: newID("AGPA", 21), Path: path, ARN: s.groupARN(path, name), CreatedAt: s.now().UTC()}
	err = s.update(ctx, func(tx metadata.DocTx) error { return put(tx, kindGroup, name, "Group", g, 0) })
	return g, err
}

// GetGroup returns a group and its members.
func (s *Service) GetGroup(ctx context.Context, name string) (Group, []User, error) {
	var (
		g       Group
		members []User
	)
	err := s.view(ctx, func(tx metadata.DocTx) error {
		var err error
		if g, _, err = get[Group](tx, kindGroup, name, "group"); err != nil {
			return err
		}
		users, err := list[User](tx, kindUser)
		for _, u := range users {
			if slices.Contains(u.Groups, name) {
				members = append(members, u)
			}
		}
		return err
	})
	return g, members, err
}

// AddUserToGroup adds a user to a group.
func (s *Service) AddUserToGroup(ctx context.Context, group, user string) error {
	return s.update(ctx, func(tx metadata.DocTx) error {
		if _, _, err := get[Group](tx, kindGroup, group, "group"); err != nil {
			return err
		}
		u, v, err := get[User](tx, kindUser, user, "user")
		if err != nil {
			return err
		}
		if slices.Contains(u.Groups, group) {
			return nil
		}
		u.Groups = append(u.Groups, group)
		return put(tx, kindUser, user, "User", u, v)
	})
}

// RemoveUserFromGroup removes a user from a group.
func (s *Service) RemoveUserFromGroup(ctx context.Context, group, user string) error {
	return s.update(ctx, func(tx metadata.DocTx) error {
		if _, _, err := get[Group](tx, kindGroup, group, "group"); err != nil {
			return err
		}
		u, v, err := get[User](tx, kindUser, user, "user")
		if err != nil {
			return err
		}
		i := slices.Index(u.Groups, group)
		if i < 0 {
			return fmt.Errorf("%w: The user with name %s is not in group %s.", ErrNoSuchEntity, user, group)
		}
		u.Groups = slices.Delete(u.Groups, i, i+1)
		return put(tx, kindUser, user, "User", u, v)
	})
}
