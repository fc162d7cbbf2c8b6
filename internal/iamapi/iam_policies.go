package iamapi

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/cofferhq/coffer/internal/iam"
)

// checkPolicyARN rejects what cannot be an IAM policy ARN, as AWS does
// before looking it up.
func checkPolicyARN(arn string) error {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	if !ok || !strings.Contains(rest, ":policy/") || len(arn) > 2048 {
		return newError("InvalidInput", http.StatusBadRequest, "ARN %s is not valid.", printable(arn))
	}
	return nil
}

func checkDescription(q query) error {
	if utf8.RuneCountInString(q.str("Description")) > 1000 {
		return validationError("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000")
	}
	return nil
}

type policyResult struct {
	Policy xmlPolicy `xml:"Policy"`
}

func (h *Handler) createPolicy(ctx context.Context, c *call) (any, error) {
	if c.q.has("Tags") {
		return nil, unsupported("InvalidInput", c.action, "Tags")
	}
	if err := checkDescription(c.q); err != nil {
		return nil, err
	}
	name := c.q.str("PolicyName")
	path, err := pathParam(c.q, "Path")
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, h.arn("policy", path, name)); err != nil {
		return nil, err
	}
	p, err := h.iam.CreatePolicy(ctx, name, path, c.q.str("PolicyDocument"), c.q.str("Description"))
	if err != nil {
		return nil, err
	}
	return policyResult{toPolicy(p, true)}, nil
}

// policyFor authorizes the call on PolicyArn and returns the policy.
func (h *Handler) policyFor(ctx context.Context, c *call) (iam.ManagedPolicy, error) {
	arn := c.q.str("PolicyArn")
	if err := checkPolicyARN(arn); err != nil {
		return iam.ManagedPolicy{}, err
	}
	if err := h.authorize(ctx, c, arn); err != nil {
		return iam.ManagedPolicy{}, err
	}
	return h.iam.GetPolicy(ctx, arn)
}

func (h *Handler) getPolicy(ctx context.Context, c *call) (any, error) {
	p, err := h.policyFor(ctx, c)
	if err != nil {
		return nil, err
	}
	return policyResult{toPolicy(p, true)}, nil
}

type policyVersionResult struct {
	PolicyVersion xmlPolicyVersion `xml:"PolicyVersion"`
}

type xmlPolicyVersion struct {
	Document         string   `xml:"Document"`
	VersionID        string   `xml:"VersionId"`
	IsDefaultVersion bool     `xml:"IsDefaultVersion"`
	CreateDate       *isoTime `xml:"CreateDate,omitempty"`
}

// getPolicyVersion serves the one version Coffer keeps, v1; its document
// is URL-encoded, as AWS returns it.
func (h *Handler) getPolicyVersion(ctx context.Context, c *call) (any, error) {
	p, err := h.policyFor(ctx, c)
	if err != nil {
		return nil, err
	}
	if v := c.q.str("VersionId"); v != "v1" {
		return nil, newError("NoSuchEntity", http.StatusNotFound, "Policy %s version %s does not exist or is not attachable.", p.ARN, printable(v))
	}
	return policyVersionResult{xmlPolicyVersion{Document: urlEncode(p.Document), VersionID: "v1",
		IsDefaultVersion: true, CreateDate: optTime(p.CreatedAt)}}, nil
}

func (h *Handler) deletePolicy(ctx context.Context, c *call) (any, error) {
	arn := c.q.str("PolicyArn")
	if err := checkPolicyARN(arn); err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, arn); err != nil {
		return nil, err
	}
	return nil, h.iam.DeletePolicy(ctx, arn)
}

type listPoliciesResult struct {
	Policies    members[xmlPolicy] `xml:"Policies"`
	IsTruncated bool               `xml:"IsTruncated"`
	Marker      string             `xml:"Marker,omitempty"`
}

func (h *Handler) listPolicies(ctx context.Context, c *call) (any, error) {
	scope := c.q.str("Scope")
	switch scope {
	case "", "All", "AWS", "Local":
	default:
		return nil, validationError("1 validation error detected: Value '%s' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]", printable(scope))
	}
	switch f := c.q.str("PolicyUsageFilter"); f {
	case "", "PermissionsPolicy": // every Coffer policy is a permissions policy
	case "PermissionsBoundary":
		return nil, unsupported("InvalidInput", c.action, "PolicyUsageFilter=PermissionsBoundary")
	default:
		return nil, validationError("1 validation error detected: Value '%s' at 'policyUsageFilter' failed to satisfy constraint: Member must satisfy enum value set: [PermissionsPolicy, PermissionsBoundary]", printable(f))
	}
	onlyAttached, err := c.q.bool("OnlyAttached")
	if err != nil {
		return nil, err
	}
	after, maxItems, err := c.q.pageParams()
	if err != nil {
		return nil, err
	}
	prefix, err := pathParam(c.q, "PathPrefix")
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, h.arn("policy", prefix, "")); err != nil {
		return nil, err
	}
	all, err := h.iam.ListPolicies(ctx, scope, onlyAttached)
	if err != nil {
		return nil, err
	}
	kept := all[:0]
	for _, p := range all {
		if strings.HasPrefix(p.Path, prefix) {
			kept = append(kept, p)
		}
	}
	page, marker, more := paginate(kept, func(p iam.ManagedPolicy) string { return p.ARN }, after, maxItems)
	res := listPoliciesResult{IsTruncated: more, Marker: marker}
	for _, p := range page {
		res.Policies.Items = append(res.Policies.Items, toPolicy(p, false))
	}
	return res, nil
}
