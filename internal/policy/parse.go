package policy

import (
	"bytes"
	"strconv"
	"strings"
)

// Kind is the kind of policy a document is parsed as; it decides the rules
// for the Principal and Resource elements.
type Kind int

const (
	// Identity is a policy attached to a user, group or role. It has no
	// Principal: the principal is the identity it is attached to.
	Identity Kind = iota + 1
	// Resource is a resource-based policy: repository, registry or key
	// policy. Every statement names a Principal or NotPrincipal; Resource
	// may be left out and then means the resource the policy is attached
	// to (recorded as "*").
	Resource
	// Endpoint is a VPC endpoint policy. Principal is optional and defaults
	// to "*"; Version may be absent (then 2008-10-17 semantics apply).
	Endpoint
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case Identity:
		return "identity-based policy"
	case Resource:
		return "resource-based policy"
	case Endpoint:
		return "VPC endpoint policy"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Policy versions.
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// MaxSize bounds the documents Parse accepts. AWS's own limits are smaller
// (IAM managed policies 6,144 characters, ECR repository policies 10,240,
// KMS key policies 32 KiB); callers enforce those per API.
const MaxSize = 128 << 10

// Policy is a parsed, immutable policy document. It is safe for concurrent
// use.
type Policy struct {
	doc     []byte
	kind    Kind
	version string // as written; "" when absent
	id      string
	stmts   []*Statement
	// usesContext: some statement has a Condition or a policy variable
	// (see UsesContext).
	usesContext bool
}

// Statement is one compiled statement of a Policy. It is immutable: the
// built-in managed policies are shared by every caller.
type Statement struct {
	sid    string
	effect Effect
	index  int

	principal    *principalSet // nil in identity policies
	notPrincipal bool
	actions      []pattern
	notAction    bool
	resources    []pattern // nil with anyResource
	anyResource  bool      // Resource "*" (or absent in a resource policy)
	notResource  bool
	conds        []cond
}

// Sid returns the statement ID, "" when absent.
func (s *Statement) Sid() string { return s.sid }

// Effect returns Allow or Deny.
func (s *Statement) Effect() Effect { return s.effect }

// Index returns the statement's position in the document, from 0.
func (s *Statement) Index() int { return s.index }

// UsesContext reports whether evaluating p can read Request.Context: some
// statement has a Condition, or a policy variable in its Resource or
// NotResource. A policy that does not decides every request alike whatever
// its Context holds, so a caller may leave Context nil for it (a request
// context costs more to build than most evaluations).
func (p *Policy) UsesContext() bool { return p.usesContext }

// JSON returns a copy of the document exactly as it was parsed: the APIs
// return policies as written.
func (p *Policy) JSON() []byte { return bytes.Clone(p.doc) }

// Kind returns the kind the document was parsed as.
func (p *Policy) Kind() Kind { return p.kind }

// Version returns the Version element, or "" when the document has none.
func (p *Policy) Version() string { return p.version }

// ID returns the Id element, or "".
func (p *Policy) ID() string { return p.id }

// Statements returns the statements in document order.
func (p *Policy) Statements() []*Statement { return append([]*Statement(nil), p.stmts...) }

// Parse parses a policy document of the given kind strictly: unknown or
// duplicate elements, wrong types, unknown condition operators, malformed
// ARNs, CIDRs, dates and numbers are errors. Every error is an *Error
// wrapping ErrMalformed.
func Parse(doc []byte, kind Kind) (*Policy, error) {
	if kind != Identity && kind != Resource && kind != Endpoint {
		return nil, errf("", "unknown policy kind")
	}
	if len(doc) > MaxSize {
		return nil, errf("", "policy document is larger than "+strconv.Itoa(MaxSize)+" bytes")
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, errf("", "policy document is empty")
	}
	root, err := decodeJSON(doc)
	if err != nil {
		return nil, err
	}
	if root.kind != jObject {
		return nil, errf("", "policy document must be a JSON object")
	}
	p := &Policy{doc: bytes.Clone(doc), kind: kind}
	var stmtV *jvalue
	for i, k := range root.keys {
		v := root.vals[i]
		switch k {
		case "Version":
			if v.kind != jString || (v.s != Version2012 && v.s != Version2008) {
				return nil, errf("Version", `must be "2012-10-17" or "2008-10-17"`)
			}
			p.version = v.s
		case "Id":
			if v.kind != jString {
				return nil, errf("Id", "must be a string")
			}
			p.id = v.s
		case "Statement":
			stmtV = v
		default:
			return nil, errf(k, "unknown element (want Version, Id or Statement)")
		}
	}
	if p.version == "" && kind != Endpoint {
		return nil, errf("Version", `missing required element (want "2012-10-17")`)
	}
	if stmtV == nil {
		return nil, errf("Statement", "missing required element")
	}
	// Policy variables exist only in Version 2012-10-17; in 2008-10-17
	// documents (and endpoint policies without a Version) "${...}" is
	// literal text, as AWS documents.
	vars := p.version == Version2012
	switch stmtV.kind {
	case jObject:
		s, err := parseStatement(stmtV, "Statement", kind, vars)
		if err != nil {
			return nil, err
		}
		p.stmts = []*Statement{s}
	case jArray:
		if len(stmtV.arr) == 0 {
			return nil, errf("Statement", "must contain at least one statement")
		}
		for i, sv := range stmtV.arr {
			field := "Statement[" + strconv.Itoa(i) + "]"
			if sv.kind != jObject {
				return nil, errf(field, "must be an object")
			}
			s, err := parseStatement(sv, field, kind, vars)
			if err != nil {
				return nil, err
			}
			s.index = i
			p.stmts = append(p.stmts, s)
		}
	default:
		return nil, errf("Statement", "must be an object or a list of objects")
	}
	seen := make(map[string]int, len(p.stmts))
	for _, s := range p.stmts {
		if s.sid == "" {
			continue
		}
		if prev, dup := seen[s.sid]; dup {
			return nil, errf(stmtField(stmtV, s.index)+".Sid",
				"duplicate statement ID "+strconv.Quote(s.sid)+" (also in Statement["+strconv.Itoa(prev)+"])")
		}
		seen[s.sid] = s.index
	}
	for _, s := range p.stmts {
		p.usesContext = p.usesContext || s.usesContext()
	}
	return p, nil
}

// usesContext reports whether evaluating s can look up a condition key:
// through a condition, or through a policy variable in a pattern.
// Principal patterns hold no variables.
func (s *Statement) usesContext() bool {
	if len(s.conds) > 0 {
		return true
	}
	for _, ps := range [][]pattern{s.actions, s.resources} {
		for i := range ps {
			if ps[i].nvars > 0 {
				return true
			}
		}
	}
	return false
}

func stmtField(stmtV *jvalue, i int) string {
	if stmtV.kind == jObject {
		return "Statement"
	}
	return "Statement[" + strconv.Itoa(i) + "]"
}

func parseStatement(v *jvalue, field string, kind Kind, vars bool) (*Statement, error) {
	s := &Statement{}
	var effect, principal, notPrincipal, action, notAction, resource, notResource, condition *jvalue
	for i, k := range v.keys {
		e := v.vals[i]
		switch k {
		case "Sid":
			if e.kind != jString {
				return nil, errf(field+".Sid", "must be a string")
			}
			s.sid = e.s
		case "Effect":
			effect = e
		case "Principal":
			principal = e
		case "NotPrincipal":
			notPrincipal = e
		case "Action":
			action = e
		case "NotAction":
			notAction = e
		case "Resource":
			resource = e
		case "NotResource":
			notResource = e
		case "Condition":
			condition = e
		default:
			return nil, errf(field+"."+k, "unknown element (want Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource or Condition)")
		}
	}

	switch {
	case effect == nil:
		return nil, errf(field+".Effect", "missing required element")
	case effect.kind == jString && effect.s == "Allow":
		s.effect = Allow
	case effect.kind == jString && effect.s == "Deny":
		s.effect = Deny
	default:
		return nil, errf(field+".Effect", `must be "Allow" or "Deny"`)
	}

	// Principal / NotPrincipal.
	switch {
	case principal != nil && notPrincipal != nil:
		return nil, errf(field, "must not contain both Principal and NotPrincipal")
	case kind == Identity && (principal != nil || notPrincipal != nil):
		name := "Principal"
		if notPrincipal != nil {
			name = "NotPrincipal"
		}
		return nil, errf(field+"."+name, "an identity-based policy must not specify a principal")
	case principal != nil:
		ps, err := parsePrincipal(principal, field+".Principal")
		if err != nil {
			return nil, err
		}
		s.principal = ps
	case notPrincipal != nil:
		if s.effect != Deny {
			// AWS: "NotPrincipal must be used with "Effect":"Deny". Using
			// it with "Effect":"Allow" is not supported."
			return nil, errf(field+".NotPrincipal", `may only be used with "Effect": "Deny"`)
		}
		ps, err := parsePrincipal(notPrincipal, field+".NotPrincipal")
		if err != nil {
			return nil, err
		}
		s.principal, s.notPrincipal = ps, true
	case kind == Resource:
		return nil, errf(field+".Principal", "missing required element (a resource-based policy must name a Principal or NotPrincipal)")
	case kind == Endpoint:
		s.principal = &principalSet{any: true}
	}

	// Action / NotAction.
	switch {
	case action != nil && notAction != nil:
		return nil, errf(field, "must not contain both Action and NotAction")
	case action == nil && notAction == nil:
		return nil, errf(field+".Action", "missing required element (Action or NotAction)")
	}
	name, av := "Action", action
	if notAction != nil {
		name, av, s.notAction = "NotAction", notAction, true
	}
	list, err := scalarList(av, field+"."+name, false)
	if err != nil {
		return nil, err
	}
	for i, a := range list {
		f := field + "." + name
		if av.kind == jArray {
			f += "[" + strconv.Itoa(i) + "]"
		}
		if msg := validAction(a); msg != "" {
			return nil, errf(f, msg)
		}
		pat, _ := compile(a, compileOpts{wild: true})
		s.actions = append(s.actions, pat)
	}

	// Resource / NotResource.
	switch {
	case resource != nil && notResource != nil:
		return nil, errf(field, "must not contain both Resource and NotResource")
	case resource == nil && notResource == nil:
		if kind != Resource {
			return nil, errf(field+".Resource", "missing required element (Resource or NotResource)")
		}
		// In a resource-based policy a missing Resource means the resource
		// the policy is attached to; the caller only asks about that one.
		s.anyResource = true
	default:
		name, rv := "Resource", resource
		if notResource != nil {
			name, rv, s.notResource = "NotResource", notResource, true
		}
		list, err := scalarList(rv, field+"."+name, false)
		if err != nil {
			return nil, err
		}
		for i, r := range list {
			f := field + "." + name
			if rv.kind == jArray {
				f += "[" + strconv.Itoa(i) + "]"
			}
			if r != "*" && !strings.HasPrefix(r, "arn:") {
				return nil, errf(f, "resource "+strconv.Quote(r)+` must be in ARN format or "*"`)
			}
			pat, msg := compile(r, compileOpts{wild: true, vars: vars})
			if msg != "" {
				return nil, errf(f, msg)
			}
			if r == "*" {
				s.anyResource = true
			}
			s.resources = append(s.resources, pat)
		}
	}

	if condition != nil {
		conds, err := parseConditions(condition, field+".Condition", vars)
		if err != nil {
			return nil, err
		}
		s.conds = conds
	}
	return s, nil
}

// validAction checks "*" or "service:Action", where either part may hold
// wildcards. The message is AWS's own for a missing service prefix.
func validAction(a string) string {
	if a == "*" {
		return ""
	}
	svc, act, ok := strings.Cut(a, ":")
	if !ok || svc == "" {
		return "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.: " + strconv.Quote(a)
	}
	if act == "" || len(a) > 256 {
		return "invalid action " + strconv.Quote(a)
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '*' || c == '?' || (c == ':' && i == len(svc)):
		default:
			return "invalid character in action " + strconv.Quote(a)
		}
	}
	return ""
}
