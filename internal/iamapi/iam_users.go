package iamapi

import (
	"context"

	"github.com/cofferhq/coffer/internal/iam"
)

// iamOps is the IAM operation table: each entry's required members are
// the botocore input shape's (model_test.go checks them).
func (h *Handler) iamOps() map[string]op {
	ops := map[string]op{
		"CreateUser":      {[]string{"UserName"}, h.createUser},
		"GetUser":         {nil, h.getUser},
		"ListUsers":       {nil, h.listUsers},
		"DeleteUser":      {[]string{"UserName"}, h.deleteUser},
		"CreateAccessKey": {nil, h.createAccessKey},
		"ListAccessKeys":  {nil, h.listAccessKeys},
		"UpdateAccessKey": {[]string{"AccessKeyId", "Status"}, h.updateAccessKey},
		"DeleteAccessKey": {[]string{"AccessKeyId"}, h.deleteAccessKey},

		"CreateGroup":         {[]string{"GroupName"}, h.createGroup},
		"GetGroup":            {[]string{"GroupName"}, h.getGroup},
		"AddUserToGroup":      {[]string{"GroupName", "UserName"}, h.addUserToGroup},
		"RemoveUserFromGroup": {[]string{"GroupName", "UserName"}, h.removeUserFromGroup},

		"CreateRole": {[]string{"RoleName", "AssumeRolePolicyDocument"}, h.createRole},
		"GetRole":    {[]string{"RoleName"}, h.getRole},
		"DeleteRole": {[]string{"RoleName"}, h.deleteRole},

		"CreatePolicy":     {[]string{"PolicyName", "PolicyDocument"}, h.createPolicy},
		"GetPolicy":        {[]string{"PolicyArn"}, h.getPolicy},
		"GetPolicyVersion": {[]string{"PolicyArn", "VersionId"}, h.getPolicyVersion},
		"DeletePolicy":     {[]string{"PolicyArn"}, h.deletePolicy},
		"ListPolicies":     {nil, h.listPolicies},
	}
	// Inline and attached policies work the same on users, groups and roles.
	for _, hk := range holders {
		h.addHolderOps(ops, hk)
	}
	return ops
}

type userResult struct {
	User xmlUser `xml:"User"`
}

func (h *Handler) createUser(ctx context.Context, c *call) (any, error) {
	if c.q.has("PermissionsBoundary") {
		return nil, unsupported("InvalidInput", c.action, "PermissionsBoundary")
	}
	name := c.q.str("UserName")
	path, err := pathParam(c.q, "Path")
	if err != nil {
		return nil, err
	}
	tags, err := c.q.tags("Tags")
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, h.arn("user", path, name)); err != nil {
		return nil, err
	}
	u, err := h.iam.CreateUser(ctx, name, path, tags)
	if err != nil {
		return nil, err
	}
	return userResult{toUser(u, true)}, nil
}

// targetUser is the user an operation with an optional UserName acts on:
// the named one, or the calling IAM user. It authorizes the call on it.
func (h *Handler) targetUser(ctx context.Context, c *call) (string, error) {
	name := c.q.str("UserName")
	if name == "" {
		p := c.info.Principal
		if p.Type != "IAMUser" || p.UserName == "" {
			return "", validationError("Must specify userName when calling with non-User credentials")
		}
		return p.UserName, h.authorize(ctx, c, p.ARN)
	}
	return name, h.authorizeEntity(ctx, c, "user", name)
}

func (h *Handler) getUser(ctx context.Context, c *call) (any, error) {
	name, err := h.targetUser(ctx, c)
	if err != nil {
		return nil, err
	}
	u, err := h.iam.GetUser(ctx, name)
	if err != nil {
		return nil, err
	}
	return userResult{toUser(u, true)}, nil
}

type listUsersResult struct {
	Users       members[xmlUser] `xml:"Users"`
	IsTruncated bool             `xml:"IsTruncated"`
	Marker      string           `xml:"Marker,omitempty"`
}

func (h *Handler) listUsers(ctx context.Context, c *call) (any, error) {
	prefix, err := pathParam(c.q, "PathPrefix")
	if err != nil {
		return nil, err
	}
	after, maxItems, err := c.q.pageParams()
	if err != nil {
		return nil, err
	}
	// AWS authorizes ListUsers on the path prefix: arn:...:user/ by default.
	if err := h.authorize(ctx, c, h.arn("user", prefix, "")); err != nil {
		return nil, err
	}
	users, err := h.iam.ListUsers(ctx, prefix)
	if err != nil {
		return nil, err
	}
	page, marker, more := paginate(users, func(u iam.User) string { return u.Name }, after, maxItems)
	res := listUsersResult{IsTruncated: more, Marker: marker}
	for _, u := range page {
		res.Users.Items = append(res.Users.Items, toUser(u, false))
	}
	return res, nil
}

func (h *Handler) deleteUser(ctx context.Context, c *call) (any, error) {
	name := c.q.str("UserName")
	if err := h.authorizeEntity(ctx, c, "user", name); err != nil {
		return nil, err
	}
	return nil, h.iam.DeleteUser(ctx, name)
}

type accessKeyResult struct {
	AccessKey xmlAccessKey `xml:"AccessKey"`
}

// createAccessKey returns the secret access key: this response and
// AssumeRole's and GetSessionToken's are the only ones that carry one.
func (h *Handler) createAccessKey(ctx context.Context, c *call) (any, error) {
	name, err := h.targetUser(ctx, c)
	if err != nil {
		return nil, err
	}
	k, secret, err := h.iam.CreateAccessKey(ctx, name)
	if err != nil {
		return nil, err
	}
	return accessKeyResult{xmlAccessKey{UserName: k.UserName, AccessKeyID: k.ID, Status: k.Status,
		SecretAccessKey: secret, CreateDate: isoTime(k.CreatedAt)}}, nil
}

type listAccessKeysResult struct {
	AccessKeyMetadata members[xmlAccessKey] `xml:"AccessKeyMetadata"`
	IsTruncated       bool                  `xml:"IsTruncated"`
	Marker            string                `xml:"Marker,omitempty"`
}

func (h *Handler) listAccessKeys(ctx context.Context, c *call) (any, error) {
	after, maxItems, err := c.q.pageParams()
	if err != nil {
		return nil, err
	}
	name, err := h.targetUser(ctx, c)
	if err != nil {
		return nil, err
	}
	keys, err := h.iam.ListAccessKeys(ctx, name)
	if err != nil {
		return nil, err
	}
	page, marker, more := paginate(keys, func(k iam.AccessKey) string { return k.ID }, after, maxItems)
	res := listAccessKeysResult{IsTruncated: more, Marker: marker}
	for _, k := range page {
		res.AccessKeyMetadata.Items = append(res.AccessKeyMetadata.Items,
			xmlAccessKey{UserName: k.UserName, AccessKeyID: k.ID, Status: k.Status, CreateDate: isoTime(k.CreatedAt)})
	}
	return res, nil
}

func (h *Handler) updateAccessKey(ctx context.Context, c *call) (any, error) {
	name, err := h.targetUser(ctx, c)
	if err != nil {
		return nil, err
	}
	return nil, h.iam.UpdateAccessKey(ctx, name, c.q.str("AccessKeyId"), c.q.str("Status"))
}

func (h *Handler) deleteAccessKey(ctx context.Context, c *call) (any, error) {
	name, err := h.targetUser(ctx, c)
	if err != nil {
		return nil, err
	}
	return nil, h.iam.DeleteAccessKey(ctx, name, c.q.str("AccessKeyId"))
}
