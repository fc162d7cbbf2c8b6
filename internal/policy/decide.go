package policy

// Input is everything Decide needs for one request.
type Input struct {
	Request *Request
	// ResourceAccount owns the resource. Empty means the principal's own
	// account (actions without a resource, such as
	// ecr:GetAuthorizationToken).
	ResourceAccount string
	// Identity holds the principal's identity-based policies: user inline,
	// attached and group policies, or the role's policies.
	Identity []*Policy
	// Resource holds the resource-based policies: repository policy,
	// registry policy, key policy.
	Resource []*Policy
	// Gates are further policies that must each allow: VPC endpoint
	// policies (SPEC EPOL-03), and for KMS the key policy (see Decide).
	Gates []Gate
}

// Gate is a set of policies, of which at least one must allow the request
// and none may deny it.
type Gate struct {
	// Name is the policy type as AWS names it in AccessDenied messages,
	// e.g. "VPC endpoint policy".
	Name     string
	Policies []*Policy
}

// Decision is the outcome of Decide.
type Decision struct {
	Allowed bool
	// Reason is AWS's AccessDenied wording for a deny ("with an explicit
	// deny in an identity-based policy", "because no identity-based policy
	// allows the ecr:PutImage action"); for an allow it says which policy
	// type allowed.
	Reason string
	// Statement is the statement that decided: the explicit Deny, or the
	// Allow; nil for an implicit deny.
	Statement *Statement
}

// Decide combines the policies that apply to a request with AWS's
// evaluation logic:
//
//  1. An explicit Deny in any identity, resource or gate policy denies.
//  2. Every gate must hold an Allow ("because no VPC endpoint policy allows
//     the X action"). A gate with no policies allows nothing: a listener
//     without a configured endpoint policy passes DefaultEndpointPolicy.
//  3. A principal of the resource's account is allowed by an Allow in an
//     identity-based policy OR by a resource-based policy that names it
//     directly (user, role, session, service or "*"). A resource policy
//     that names only the account delegates to the account's IAM policies
//     and so does not suffice alone. The account root user is implicitly
//     allowed by identity evaluation (AWS: "all requests are implicitly
//     denied with the exception of the AWS account root user, which has
//     full access"); only an explicit Deny or a gate stops it.
//  4. A principal of another account needs both an identity-based Allow
//     (implicit for that account's root) and a resource-based Allow; the
//     resource policy may name the account, the principal or "*".
//  5. Anonymous callers and AWS services have no identity policies: a
//     resource-based policy must allow them directly.
//  6. Otherwise the request is implicitly denied.
//
// KMS key policies are authoritative: IAM policies count only when the key
// policy allows the account (SPEC KMS-06, J-03). Pass the key policy both
// in Resource and as a Gate named "resource-based policy": the gate
// requires the key policy to allow (directly or for the account) and step
// 3 then lets a same-account principal through on either an IAM Allow or a
// key policy that names it.
func Decide(in Input) Decision {
	r := in.Request
	if r == nil {
		return Decision{Reason: "because the request is missing"}
	}
	deny := func(where string, s *Statement) Decision {
		return Decision{Reason: "with an explicit deny in " + article(where) + " " + where, Statement: s}
	}
	noAllow := func(what string) Decision {
		return Decision{Reason: "because no " + what + " allows the " + r.Action + " action"}
	}

	// 1. Explicit denies, everywhere, before any allow counts.
	var idStmt, resStmt *Statement
	resDirect := false
	for _, p := range in.Identity {
		e, s, _ := p.eval(r)
		if e == Deny {
			return deny("identity-based policy", s)
		}
		if e == Allow && idStmt == nil {
			idStmt = s
		}
	}
	for _, p := range in.Resource {
		e, s, d := p.eval(r)
		if e == Deny {
			return deny("resource-based policy", s)
		}
		if e == Allow && (resStmt == nil || (d && !resDirect)) {
			resStmt, resDirect = s, d
		}
	}
	missing := -1 // first gate without an Allow
	for i, g := range in.Gates {
		ok := false
		for _, p := range g.Policies {
			e, s, _ := p.eval(r)
			if e == Deny {
				return deny(g.Name, s)
			}
			ok = ok || e == Allow
		}
		if !ok && missing < 0 {
			missing = i
		}
	}
	// 2. Every gate must allow.
	if missing >= 0 {
		return noAllow(in.Gates[missing].Name)
	}

	pr := &r.Principal
	owner := in.ResourceAccount
	if owner == "" {
		owner = pr.Account
	}
	root := pr.Type == TypeRoot && pr.Account != ""
	idAllow := idStmt != nil || root
	const byIdentity, byResource = "identity-based policy", "resource-based policy"
	allowed := func(s *Statement, by string) Decision {
		reason := "allowed by a resource-based policy"
		if by == byIdentity {
			reason = "allowed by an identity-based policy"
		}
		return Decision{Allowed: true, Reason: reason, Statement: s}
	}

	switch {
	case pr.Type != TypeIAMUser && pr.Type != TypeAssumedRole && pr.Type != TypeRoot:
		// 5. Anonymous, AWS services, unknown types.
		if idStmt != nil {
			return allowed(idStmt, byIdentity)
		}
		if resStmt != nil && resDirect {
			return allowed(resStmt, byResource)
		}
		return noAllow(byResource)
	case pr.Account == owner:
		// 3. Same account: either suffices.
		if idStmt != nil {
			return allowed(idStmt, byIdentity)
		}
		if resStmt != nil && resDirect {
			return allowed(resStmt, byResource)
		}
		if root {
			return Decision{Allowed: true, Reason: "allowed as the account root user"}
		}
		return noAllow(byIdentity)
	default:
		// 4. Cross-account: both are needed.
		if !idAllow {
			return noAllow(byIdentity)
		}
		if resStmt == nil {
			return noAllow(byResource)
		}
		return allowed(resStmt, byResource)
	}
}

// article returns "an" before a vowel, else "a".
func article(s string) string {
	if s != "" {
		switch s[0] {
		case 'a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U':
			return "an"
		}
	}
	return "a"
}
