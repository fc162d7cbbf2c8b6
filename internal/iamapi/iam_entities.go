package iamapi

import (
	"context"
	"encoding/xml"
	"strings"

	"github.com/cofferhq/coffer/internal/iam"
)

// holderKind is a kind of entity that holds inline and attached policies.
type holderKind struct {
	noun   string // "User", "Group", "Role": in action and member names
	kind   string // "user", "group", "role": in ARNs
	entity iam.Entity
}

var holders = []holderKind{
	{"User", "user", iam.UserEntity()},
	{"Group", "group", iam.GroupEntity()},
	{"Role", "role", iam.RoleEntity()},
}

// addHolderOps adds Put/Get/Delete<Noun>Policy, List<Noun>Policies,
// Attach/Detach<Noun>Policy and ListAttached<Noun>Policies. Each is
// authorized on the user, group or role, as in AWS's authorization
// reference.
func (h *Handler) addHolderOps(ops map[string]op, hk holderKind) {
	nameMember := hk.noun + "Name"
	withPolicy := []string{nameMember, "PolicyName"}
	withARN := []string{nameMember, "PolicyArn"}
	ops["Put"+hk.noun+"Policy"] = op{[]string{nameMember, "PolicyName", "PolicyDocument"}, func(ctx context.Context, c *call) (any, error) {
		name, err := h.authorizeHolder(ctx, c, hk)
		if err != nil {
			return nil, err
		}
		return nil, h.iam.PutInlinePolicy(ctx, hk.entity, name, c.q.str("PolicyName"), c.q.str("PolicyDocument"))
	}}
	ops["Get"+hk.noun+"Policy"] = op{withPolicy, func(ctx context.Context, c *call) (any, error) {
		name, err := h.authorizeHolder(ctx, c, hk)
		if err != nil {
			return nil, err
		}
		doc, err := h.iam.GetInlinePolicy(ctx, hk.entity, name, c.q.str("PolicyName"))
		if err != nil {
			return nil, err
		}
		return inlinePolicyResult{nameMember: nameMember, name: name, policyName: c.q.str("PolicyName"), doc: doc}, nil
	}}
	ops["Delete"+hk.noun+"Policy"] = op{withPolicy, func(ctx context.Context, c *call) (any, error) {
		name, err := h.authorizeHolder(ctx, c, hk)
		if err != nil {
			return nil, err
		}
		return nil, h.iam.DeleteInlinePolicy(ctx, hk.entity, name, c.q.str("PolicyName"))
	}}
	ops["List"+hk.noun+"Policies"] = op{[]string{nameMember}, func(ctx context.Context, c *call) (any, error) {
		after, maxItems, err := c.q.pageParams()
		if err != nil {
			return nil, err
		}
		name, err := h.authorizeHolder(ctx, c, hk)
		if err != nil {
			return nil, err
		}
		names, err := h.iam.ListInlinePolicies(ctx, hk.entity, name)
		if err != nil {
			return nil, err
		}
		page, marker, more := paginate(names, func(s string) string { return s }, after, maxItems)
		return listPolicyNamesResult{PolicyNames: members[string]{page}, IsTruncated: more, Marker: marker}, nil
	}}
	ops["Attach"+hk.noun+"Policy"] = op{withARN, func(ctx context.Context, c *call) (any, error) {
		if err := checkPolicyARN(c.q.str("PolicyArn")); err != nil {
			return nil, err
		}
		name, err := h.authorizeHolder(ctx, c, hk)
		if err != nil {
			return nil, err
		}
		return nil, h.iam.AttachPolicy(ctx, hk.entity, name, c.q.str("PolicyArn"))
	}}
	ops["Detach"+hk.noun+"Policy"] = op{withARN, func(ctx context.Context, c *call) (any, error) {
		if err := checkPolicyARN(c.q.str("PolicyArn")); err != nil {
			return nil, err
		}
		name, err := h.authorizeHolder(ctx, c, hk)
		if err != nil {
			return nil, err
		}
		return nil, h.iam.DetachPolicy(ctx, hk.entity, name, c.q.str("PolicyArn"))
	}}
	ops["ListAttached"+hk.noun+"Policies"] = op{[]string{nameMember}, func(ctx context.Context, c *call) (any, error) {
		after, maxItems, err := c.q.pageParams()
		if err != nil {
			return nil, err
		}
		name, err := h.authorizeHolder(ctx, c, hk)
		if err != nil {
			return nil, err
		}
		pols, err := h.iam.ListAttachedPolicies(ctx, hk.entity, name)
		if err != nil {
			return nil, err
		}
		prefix, err := pathParam(c.q, "PathPrefix")
		if err != nil {
			return nil, err
		}
		kept := pols[:0]
		for _, p := range pols {
			if strings.HasPrefix(p.Path, prefix) {
				kept = append(kept, p)
			}
		}
		page, marker, more := paginate(kept, func(p iam.ManagedPolicy) string { return p.ARN }, after, maxItems)
		res := listAttachedResult{IsTruncated: more, Marker: marker}
		for _, p := range page {
			res.AttachedPolicies.Items = append(res.AttachedPolicies.Items, xmlAttachedPolicy{PolicyName: p.Name, PolicyArn: p.ARN})
		}
		return res, nil
	}}
}

// authorizeHolder authorizes the call on the user, group or role named by
// <Noun>Name and returns the name.
func (h *Handler) authorizeHolder(ctx context.Context, c *call, hk holderKind) (string, error) {
	name := c.q.str(hk.noun + "Name")
	return name, h.authorizeEntity(ctx, c, hk.kind, name)
}

// inlinePolicyResult is Get{User,Group,Role}PolicyResult. PolicyDocument
// is URL-encoded, as AWS returns it.
type inlinePolicyResult struct {
	nameMember, name, policyName, doc string
}

func (r inlinePolicyResult) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, f := range [][2]string{{r.nameMember, r.name}, {"PolicyName", r.policyName}, {"PolicyDocument", urlEncode(r.doc)}} {
		if err := e.EncodeElement(f[1], xml.StartElement{Name: xml.Name{Local: f[0]}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

type listPolicyNamesResult struct {
	PolicyNames members[string] `xml:"PolicyNames"`
	IsTruncated bool            `xml:"IsTruncated"`
	Marker      string          `xml:"Marker,omitempty"`
}

type listAttachedResult struct {
	AttachedPolicies members[xmlAttachedPolicy] `xml:"AttachedPolicies"`
	IsTruncated      bool                       `xml:"IsTruncated"`
	Marker           string                     `xml:"Marker,omitempty"`
}
