package policy

import "strings"

// Effect is the outcome of evaluating one policy.
type Effect int

const (
	// NoMatch: no statement applies (an implicit deny).
	NoMatch Effect = iota
	// Allow: an Allow statement applies and no Deny does.
	Allow
	// Deny: a Deny statement applies.
	Deny
)

// String returns "NoMatch", "Allow" or "Deny".
func (e Effect) String() string {
	switch e {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return "NoMatch"
}

// Request is one authorisation question: may Principal perform Action on
// Resource, given Context.
type Request struct {
	Principal Principal
	// Action is "service:Action", e.g. "ecr:PutImage"; matched
	// case-insensitively.
	Action string
	// Resource is the resource ARN, or "*" for actions that have none
	// (ecr:GetAuthorizationToken); matched case-sensitively.
	Resource string
	// Context holds the condition keys of the request (aws:SourceIp,
	// aws:SourceVpce, kms:ViaService, ...).
	Context Context
}

// Context maps condition keys to their values. Keys are case-insensitive,
// as in AWS, and stored lower-cased: build it with NewContext, Set or Add
// (a map literal with mixed-case keys still works, through a slower path).
// Values are case-sensitive unless the operator says otherwise.
type Context map[string][]string

// NewContext returns a Context holding m with its keys lower-cased. Values
// of keys that differ only in case are merged.
func NewContext(m map[string][]string) Context {
	c := make(Context, len(m))
	for k, v := range m {
		c.Add(k, v...)
	}
	return c
}

// Set replaces the values of key.
func (c Context) Set(key string, values ...string) {
	c[strings.ToLower(key)] = append([]string(nil), values...)
}

// Add appends values to key.
func (c Context) Add(key string, values ...string) {
	k := strings.ToLower(key)
	c[k] = append(c[k], values...)
}

// Get returns the values of key, whatever its case.
func (c Context) Get(key string) ([]string, bool) {
	if v, ok := c[key]; ok {
		return v, true
	}
	for k, v := range c {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// values is what a key resolves to: one derived value or a context slice,
// without allocating.
type values struct {
	one   string
	list  []string
	isOne bool
}

func (v values) n() int {
	if v.isOne {
		return 1
	}
	return len(v.list)
}

func (v values) at(i int) string {
	if v.isOne {
		return v.one
	}
	return v.list[i]
}

// lookup resolves a lower-cased condition key. The keys that describe the
// principal come from r.Principal and take precedence over the context, so
// a context cannot contradict the authenticated identity:
//
//	aws:username          the user name (IAM users only)
//	aws:userid            Principal.ID
//	aws:principalaccount  Principal.Account
//	aws:principalarn      the role ARN for sessions, else Principal.ARN
//	aws:principaltype     Account, User, AssumedRole, Anonymous
//	aws:principalservicename  Principal.Service (AWS services only)
func (r *Request) lookup(key string) values {
	if strings.HasPrefix(key, "aws:") {
		if s, ok := r.Principal.derived(key); ok {
			return values{one: s, isOne: true}
		}
	}
	if r.Context == nil {
		return values{}
	}
	v, _ := r.Context.Get(key)
	return values{list: v}
}

func (p *Principal) derived(key string) (string, bool) {
	switch key {
	case "aws:username":
		if p.Type == TypeIAMUser && p.ARN != "" {
			return p.ARN[strings.LastIndexByte(p.ARN, '/')+1:], true
		}
	case "aws:userid":
		if p.ID != "" {
			return p.ID, true
		}
	case "aws:principalaccount":
		if p.Account != "" {
			return p.Account, true
		}
	case "aws:principalarn":
		if p.Type == TypeAssumedRole && p.RoleARN != "" {
			return p.RoleARN, true
		}
		if p.ARN != "" && p.Type != TypeAnonymous && p.Type != TypeAWSService {
			return p.ARN, true
		}
	case "aws:principaltype":
		switch p.Type {
		case TypeIAMUser:
			return "User", true
		case TypeAssumedRole:
			return "AssumedRole", true
		case TypeRoot:
			return "Account", true
		case TypeAnonymous:
			return "Anonymous", true
		}
	case "aws:principalservicename":
		if p.Type == TypeAWSService && p.Service != "" {
			return p.Service, true
		}
	}
	return "", false
}

// Evaluate evaluates the policy for r: Deny if any statement with Effect
// Deny applies (the first such statement is returned), else Allow if any
// Allow statement applies (the first), else NoMatch. It does not allocate,
// except for a StringEqualsIgnoreCase value holding a policy variable, a
// BinaryEquals condition, a date with a numeric zone offset, and request
// values that fail to parse as numbers or dates.
func (p *Policy) Evaluate(r *Request) (Effect, *Statement) {
	e, s, _ := p.eval(r)
	return e, s
}

// eval is Evaluate that also reports whether the Allow names the principal
// directly (see principalSet.matches). A direct Allow statement is returned
// in preference to one that applies only through the account.
func (p *Policy) eval(r *Request) (Effect, *Statement, bool) {
	var allow *Statement
	direct := false
	for _, s := range p.stmts {
		ok, d := s.applies(r)
		if !ok {
			continue
		}
		if s.effect == Deny {
			return Deny, s, true
		}
		if allow == nil || (d && !direct) {
			allow, direct = s, d
		}
	}
	if allow != nil {
		return Allow, allow, direct
	}
	return NoMatch, nil, false
}

// applies reports whether s applies to r, and whether its principal match
// is direct. The cheap, selective Action test runs first.
func (s *Statement) applies(r *Request) (bool, bool) {
	if s.matchAction(r) == s.notAction {
		return false, false
	}
	direct := true
	if s.principal != nil {
		if s.notPrincipal {
			if s.principal.excludes(&r.Principal) {
				return false, false
			}
		} else {
			m, d := s.principal.matches(&r.Principal)
			if !m {
				return false, false
			}
			direct = d
		}
	}
	if s.matchResource(r) == s.notResource {
		return false, false
	}
	for i := range s.conds {
		if !s.conds[i].eval(r) {
			return false, false
		}
	}
	return true, direct
}

func (s *Statement) matchAction(r *Request) bool {
	for i := range s.actions {
		if s.actions[i].match(r.Action, true, r) {
			return true
		}
	}
	return false
}

// matchResource matches the Resource/NotResource patterns as whole-string
// globs. AWS documents wildcards "within the individual segments of an ARN"
// and that a '*' ending a segment "can expand to match beyond the colon
// boundaries"; a whole-string glob is exactly that for every pattern whose
// mid-segment wildcards cannot meet a colon, which holds for the ECR and KMS
// ARNs Coffer issues (no colons in region, account or resource names).
func (s *Statement) matchResource(r *Request) bool {
	if s.anyResource {
		return true
	}
	for i := range s.resources {
		if s.resources[i].match(r.Resource, false, r) {
			return true
		}
	}
	return false
}
