package policy

import (
	"slices"
	"strconv"
	"strings"
)

// Principal is the authenticated caller as the evaluator sees it.
type Principal struct {
	// ARN of the caller: arn:aws:iam::<acct>:user/<path/name>,
	// arn:aws:sts::<acct>:assumed-role/<role>/<session>,
	// arn:aws:iam::<acct>:root; empty for services and anonymous callers.
	ARN string
	// Account is the caller's account ID; empty for services and anonymous.
	Account string
	// Type is the CloudTrail userIdentity type: IAMUser, AssumedRole, Root,
	// AWSService or Anonymous. Any other value is treated as Anonymous.
	Type string
	// RoleARN is, for an AssumedRole session, the ARN of the role
	// (arn:aws:iam::<acct>:role/<path/name>); role principals in policies
	// match its sessions.
	RoleARN string
	// Service is, for AWSService, the service principal, e.g.
	// "ecr.amazonaws.com".
	Service string
	// ID is the unique ID (aws:userid): AIDA... for a user,
	// AROA...:<session> for a session, the account ID for root. Optional.
	ID string
}

// Principal types (CloudTrail userIdentity.type).
const (
	TypeIAMUser     = "IAMUser"
	TypeAssumedRole = "AssumedRole"
	TypeRoot        = "Root"
	TypeAWSService  = "AWSService"
	TypeAnonymous   = "Anonymous"
)

// principalSet is a compiled Principal or NotPrincipal element. AWS allows
// no partial wildcards there ("You cannot use a wildcard to match part of a
// principal name or ARN"), so matching is exact comparison.
type principalSet struct {
	any      bool     // "*" or {"AWS": "*"}
	accounts []string // 123456789012 or arn:aws:iam::123456789012:root
	users    []string // user ARNs
	roles    []string // role ARNs
	sessions []string // assumed-role session ARNs
	services []string // service principals
}

// parsePrincipal compiles a Principal/NotPrincipal element.
func parsePrincipal(v *jvalue, field string) (*principalSet, error) {
	ps := &principalSet{}
	if v.kind == jString {
		if v.s != "*" {
			return nil, errf(field, `must be "*" or an object such as {"AWS": "arn:aws:iam::123456789012:root"}`)
		}
		ps.any = true
		return ps, nil
	}
	if v.kind != jObject {
		return nil, errf(field, `must be "*" or an object such as {"AWS": "arn:aws:iam::123456789012:root"}`)
	}
	if len(v.keys) == 0 {
		return nil, errf(field, "must name at least one principal")
	}
	for i, k := range v.keys {
		kf := field + "." + k
		switch k {
		case "AWS", "Service":
		case "Federated":
			return nil, errf(kf, "federated principals are not supported")
		case "CanonicalUser":
			return nil, errf(kf, "canonical user principals are not supported")
		default:
			return nil, errf(kf, "unknown principal type "+strconv.Quote(k)+` (want "AWS" or "Service")`)
		}
		vals, err := scalarList(v.vals[i], kf, false)
		if err != nil {
			return nil, err
		}
		for n, s := range vals {
			f := kf
			if v.vals[i].kind == jArray {
				f += "[" + strconv.Itoa(n) + "]"
			}
			var msg string
			if k == "AWS" {
				msg = ps.addAWS(s)
			} else {
				msg = ps.addService(s)
			}
			if msg != "" {
				return nil, errf(f, msg)
			}
		}
	}
	return ps, nil
}

func (ps *principalSet) addService(s string) string {
	if !validServiceName(s) {
		return "invalid service principal " + strconv.Quote(s) + ` (want a name such as "ecr.amazonaws.com")`
	}
	ps.services = append(ps.services, s)
	return ""
}

func validServiceName(s string) bool {
	if len(s) < 3 || len(s) > 128 || s[0] == '.' || s[len(s)-1] == '.' || !strings.Contains(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// addAWS adds one "AWS" principal value.
func (ps *principalSet) addAWS(s string) string {
	if s == "*" {
		ps.any = true
		return ""
	}
	if strings.ContainsAny(s, "*?") {
		return "wildcards are not allowed in principals except \"*\" on its own: " + strconv.Quote(s)
	}
	if isAccountID(s) {
		ps.accounts = append(ps.accounts, s)
		return ""
	}
	bad := "invalid AWS principal " + strconv.Quote(s) + " (want an account ID or an IAM user, role, root or assumed-role ARN)"
	var parts [6]string
	if !splitARN(s, &parts) || parts[0] != "arn" || !validPartition(parts[1]) || parts[3] != "" || !isAccountID(parts[4]) {
		return bad
	}
	res := parts[5]
	switch parts[2] {
	case "iam":
		switch {
		case res == "root":
			ps.accounts = append(ps.accounts, parts[4])
		case strings.HasPrefix(res, "user/") && validIAMPath(res[len("user/"):]):
			ps.users = append(ps.users, s)
		case strings.HasPrefix(res, "role/") && validIAMPath(res[len("role/"):]):
			ps.roles = append(ps.roles, s)
		default:
			return bad
		}
	case "sts":
		rest, ok := strings.CutPrefix(res, "assumed-role/")
		role, session, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || !validIAMName(role) || !validIAMName(session) {
			return bad
		}
		ps.sessions = append(ps.sessions, s)
	default:
		return bad
	}
	return ""
}

// isAccountID accepts any run of 1 to 32 digits: AWS account IDs have 12,
// but SPEC J-07 uses the 10-digit 1234567890.
func isAccountID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validPartition(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// validIAMPath accepts "name" or "path/.../name" with IAM name characters.
func validIAMPath(s string) bool {
	for _, seg := range strings.Split(s, "/") {
		if !validIAMName(seg) {
			return false
		}
	}
	return true
}

// validIAMName: IAM names and session names use [\w+=,.@-].
func validIAMName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_+=,.@-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// The request principal is a set of facets: AWS evaluates a request as
// coming from the account, then the role, then the session (its NotPrincipal
// documentation: "AWS might validate the account first and then the user.
// If an assumed-role user ... is being evaluated, AWS might validate the
// account first, then the role, and then the assumed-role user").
//
//	IAMUser      user ARN, account
//	AssumedRole  session ARN, role ARN, account
//	Root         account
//	AWSService   service
//	Anonymous    (none: only "*" names it)

// matches reports whether ps names p, and whether it names p directly
// rather than only through p's account. A statement that names an account
// delegates to that account's IAM policies (AWS: "When you specify an
// account as the principal ... you delegate authority to the account");
// it is direct only for the account's root user.
func (ps *principalSet) matches(p *Principal) (matched, direct bool) {
	if ps.any {
		return true, true
	}
	switch p.Type {
	case TypeIAMUser:
		if slices.Contains(ps.users, p.ARN) {
			return true, true
		}
	case TypeAssumedRole:
		if slices.Contains(ps.sessions, p.ARN) || (p.RoleARN != "" && slices.Contains(ps.roles, p.RoleARN)) {
			return true, true
		}
	case TypeRoot:
		if p.Account != "" && slices.Contains(ps.accounts, p.Account) {
			return true, true
		}
		return false, false
	case TypeAWSService:
		return slices.Contains(ps.services, p.Service), true
	default:
		return false, false
	}
	if p.Account != "" && slices.Contains(ps.accounts, p.Account) {
		return true, false
	}
	return false, false
}

// excludes reports whether a NotPrincipal set ps covers every facet of p,
// so that a Deny with NotPrincipal spares p. Following AWS, naming a user or
// role alone is not enough: its account (and, for a session, the role or the
// session) must be named too, or the Deny still applies.
func (ps *principalSet) excludes(p *Principal) bool {
	if ps.any {
		return true
	}
	switch p.Type {
	case TypeIAMUser:
		return slices.Contains(ps.users, p.ARN) && ps.hasAccount(p)
	case TypeAssumedRole:
		return (slices.Contains(ps.sessions, p.ARN) || (p.RoleARN != "" && slices.Contains(ps.roles, p.RoleARN))) && ps.hasAccount(p)
	case TypeRoot:
		return ps.hasAccount(p)
	case TypeAWSService:
		return slices.Contains(ps.services, p.Service)
	}
	return false
}

func (ps *principalSet) hasAccount(p *Principal) bool {
	return p.Account != "" && slices.Contains(ps.accounts, p.Account)
}
