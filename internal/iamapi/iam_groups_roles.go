package iamapi

import (
	"context"

	"github.com/cofferhq/coffer/internal/iam"
)

type groupResult struct {
	Group xmlGroup `xml:"Group"`
}

func (h *Handler) createGroup(ctx context.Context, c *call) (any, error) {
	name := c.q.str("GroupName")
	path, err := pathParam(c.q, "Path")
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, h.arn("group", path, name)); err != nil {
		return nil, err
	}
	g, err := h.iam.CreateGroup(ctx, name, path)
	if err != nil {
		return nil, err
	}
	return groupResult{toGroup(g)}, nil
}

type getGroupResult struct {
	Group       xmlGroup         `xml:"Group"`
	Users       members[xmlUser] `xml:"Users"`
	IsTruncated bool             `xml:"IsTruncated"`
	Marker      string           `xml:"Marker,omitempty"`
}

func (h *Handler) getGroup(ctx context.Context, c *call) (any, error) {
	after, maxItems, err := c.q.pageParams()
	if err != nil {
		return nil, err
	}
	name := c.q.str("GroupName")
	if err := h.authorizeEntity(ctx, c, "group", name); err != nil {
		return nil, err
	}
	g, users, err := h.iam.GetGroup(ctx, name)
	if err != nil {
		return nil, err
	}
	page, marker, more := paginate(users, func(u iam.User) string { return u.Name }, after, maxItems)
	res := getGroupResult{Group: toGroup(g), IsTruncated: more, Marker: marker}
	for _, u := range page {
		res.Users.Items = append(res.Users.Items, toUser(u, false))
	}
	return res, nil
}

// addUserToGroup and removeUserFromGroup are authorized on the group, as
// in AWS's authorization reference.
func (h *Handler) addUserToGroup(ctx context.Context, c *call) (any, error) {
	group := c.q.str("GroupName")
	if err := h.authorizeEntity(ctx, c, "group", group); err != nil {
		return nil, err
	}
	return nil, h.iam.AddUserToGroup(ctx, group, c.q.str("UserName"))
}

func (h *Handler) removeUserFromGroup(ctx context.Context, c *call) (any, error) {
	group := c.q.str("GroupName")
	if err := h.authorizeEntity(ctx, c, "group", group); err != nil {
		return nil, err
	}
	return nil, h.iam.RemoveUserFromGroup(ctx, group, c.q.str("UserName"))
}

type roleResult struct {
	Role xmlRole `xml:"Role"`
}

func (h *Handler) createRole(ctx context.Context, c *call) (any, error) {
	if c.q.has("PermissionsBoundary") {
		return nil, unsupported("InvalidInput", c.action, "PermissionsBoundary")
	}
	if err := checkDescription(c.q); err != nil {
		return nil, err
	}
	name := c.q.str("RoleName")
	path, err := pathParam(c.q, "Path")
	if err != nil {
		return nil, err
	}
	maxSession, _, err := c.q.int("MaxSessionDuration", 3600, 43200)
	if err != nil {
		return nil, err
	}
	tags, err := c.q.tags("Tags")
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, h.arn("role", path, name)); err != nil {
		return nil, err
	}
	r, err := h.iam.CreateRole(ctx, name, path, c.q.str("AssumeRolePolicyDocument"), c.q.str("Description"), maxSession, tags)
	if err != nil {
		return nil, err
	}
	return roleResult{toRole(r)}, nil
}

func (h *Handler) getRole(ctx context.Context, c *call) (any, error) {
	name := c.q.str("RoleName")
	if err := h.authorizeEntity(ctx, c, "role", name); err != nil {
		return nil, err
	}
	r, err := h.iam.GetRole(ctx, name)
	if err != nil {
		return nil, err
	}
	return roleResult{toRole(r)}, nil
}

func (h *Handler) deleteRole(ctx context.Context, c *call) (any, error) {
	name := c.q.str("RoleName")
	if err := h.authorizeEntity(ctx, c, "role", name); err != nil {
		return nil, err
	}
	return nil, h.iam.DeleteRole(ctx, name)
}
