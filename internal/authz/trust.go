package authz

import (
	"context"
	"fmt"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/policy"
)

// Trust decides sts:AssumeRole (iam.Trust). The role's trust policy is both
// a gate that must allow and the resource policy: a trust policy naming the
// caller decides alone, one naming only the account delegates to the
// caller's identity policies, as in AWS.
func (a *Authorizer) Trust(ctx context.Context, caller auth.Principal, role iam.Role) error {
	trust, err := policy.Parse([]byte(role.AssumeRolePolicy), policy.Resource)
	if err != nil {
		return fmt.Errorf("authz: trust policy of %s: %w", role.Name, err)
	}
	identity, err := a.cfg.IAM.IdentityPolicies(ctx, caller)
	if err != nil {
		return fmt.Errorf("authz: identity policies: %w", err)
	}
	info := &auth.Info{Principal: caller, Time: a.now()}
	d := policy.Decide(policy.Input{
		Request: &policy.Request{
			Principal: policy.Principal{ARN: caller.ARN, Account: caller.AccountID, Type: caller.Type, RoleARN: caller.RoleARN},
			Action:    "sts:AssumeRole",
			Resource:  role.ARN,
			Context:   a.context(info, 0),
		},
		ResourceAccount: a.cfg.AccountID,
		Identity:        identity,
		Resource:        []*policy.Policy{trust},
		Gates:           []policy.Gate{{Name: "role trust policy", Policies: []*policy.Policy{trust}}},
	})
	if !d.Allowed {
		return fmt.Errorf("%w: User: %s is not authorized to perform: sts:AssumeRole on resource: %s", iam.ErrAccessDeniedTrust, caller.ARN, role.ARN)
	}
	return nil
}
