package kms

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/policy"
)

// keyPolicyGate is the name of the key-policy gate in AccessDenied
// messages. AWS KMS words a missing key-policy Allow as "because no
// resource-based policy allows the kms:X action".
const keyPolicyGate = "resource-based policy"

// authz is one authorization question.
type authz struct {
	caller Caller
	action string    // "kms:Encrypt"
	view   *keyView  // the key; nil for actions on no key (IAM only)
	res    string    // the resource ARN; the key's ARN when view is set, "*" when empty
	ec     ecContext // the request's encryption context, for condition keys and grant constraints
	// grantOp is the grant operation that may allow the call when policies
	// do not ("" when grants do not apply).
	grantOp string
	// extra adds operation-specific condition keys.
	extra func(policy.Context)
	// keyPolicyOnly authorizes against IAM only (alias resources).
	iamOnly bool
}

// ecContext is an encryption context, and whether the operation takes one
// at all (grant constraints only constrain operations that do).
type ecContext struct {
	m       map[string]string
	applies bool
}

// authorize answers an authz with AWS's KMS logic:
//
//  1. The key policy is authoritative: it is both a resource-based policy
//     and a gate that must allow, so IAM policies count only when the key
//     policy allows the account (SPEC KMS-06, J-03). Actions on no key are
//     decided by IAM alone.
//  2. An explicit Deny in the key policy or an identity policy denies,
//     whatever grants say.
//  3. Otherwise a grant on the key for the caller, with the operation and
//     matching encryption context constraints, allows.
func (s *Service) authorize(ctx context.Context, a authz) error {
	p := a.caller.Principal
	var identity []*policy.Policy
	if p.Type != policy.TypeAWSService && p.Type != policy.TypeAnonymous && p.Type != "" {
		var err error
		if identity, err = s.cfg.IdentityPolicies(ctx, p); err != nil {
			return internal(err)
		}
	}
	res := a.res
	if a.view != nil && !a.iamOnly {
		res = a.view.arn
	}
	if res == "" {
		res = "*"
	}
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	req := &sc.req
	*req = policy.Request{Principal: policyPrincipal(a.caller), Action: a.action, Resource: res, Context: s.condContext(ctx, a, sc)}
	in := policy.Input{Request: req, ResourceAccount: s.cfg.AccountID, Identity: identity}
	if a.view != nil && !a.iamOnly {
		sc.pols[0] = a.view.policy
		in.Resource = sc.pols[:]
		sc.gates[0] = policy.Gate{Name: keyPolicyGate, Policies: in.Resource}
		in.Gates = sc.gates[:]
	}
	d := policy.Decide(in)
	if d.Allowed {
		return nil
	}
	explicit := d.Statement != nil && d.Statement.Effect() == policy.Deny
	if !explicit && a.grantOp != "" && a.view != nil && s.grantAllows(a.view, a.caller, a.grantOp, a.ec, identity, req) {
		return nil
	}
	return deniedError(&auth.DeniedError{Principal: a.caller.principalName(), Action: a.action, Resource: res, Reason: d.Reason})
}

func deniedError(d *auth.DeniedError) *Error {
	return &Error{Code: codeAccessDenied, Message: d.Error(), Err: d}
}

func policyPrincipal(c Caller) policy.Principal {
	p := c.Principal
	pp := policy.Principal{ARN: p.ARN, Account: p.AccountID, Type: p.Type, RoleARN: p.RoleARN, ID: p.PrincipalID}
	if p.Type == policy.TypeAWSService {
		pp.Service = c.InvokedBy
		pp.ARN, pp.Account = "", ""
	}
	if pp.Type == "" {
		pp.Type = policy.TypeAnonymous
	}
	return pp
}

// scratch is the per-authorization working memory: the condition-key map
// and value slices, reused through a pool so that the per-call checks do
// not allocate them anew (the policy evaluator keeps no reference after
// Decide returns).
type scratch struct {
	ctx   policy.Context
	vals  []string
	keys  []string
	req   policy.Request
	pols  [1]*policy.Policy
	gates [1]policy.Gate
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{ctx: make(policy.Context, 32), vals: make([]string, 0, 32), keys: make([]string, 0, 8)}
}}

func (sc *scratch) release() {
	clear(sc.ctx)
	clear(sc.vals[:cap(sc.vals)])
	sc.vals, sc.keys = sc.vals[:0], sc.keys[:0]
	sc.req = policy.Request{}
	sc.pols[0], sc.gates[0] = nil, policy.Gate{}
	scratchPool.Put(sc)
}

// one returns a one-element slice holding v, carved from the scratch.
func (sc *scratch) one(v string) []string {
	sc.vals = append(sc.vals, v)
	n := len(sc.vals)
	return sc.vals[n-1 : n : n]
}

// Constant condition values, shared (the evaluator only reads them).
var (
	valTrue      = []string{"true"}
	valFalse     = []string{"false"}
	valSymmetric = []string{"SYMMETRIC_DEFAULT"}
	valEncDec    = []string{"ENCRYPT_DECRYPT"}
	valAWSKMS    = []string{"AWS_KMS"}
)

func boolVal(b bool) []string {
	if b {
		return valTrue
	}
	return valFalse
}

// interned holds small, bounded caches of derived strings: condition key
// names of encryption context keys, and printed source addresses.
type interned struct {
	ecKeys sync.Map // context key -> "kms:encryptioncontext:<lower key>"
	ips    sync.Map // netip.Addr -> string
	n      atomic.Int64
	clock  atomic.Pointer[timeStrings]
}

type timeStrings struct {
	sec          int64
	current, epc []string
}

const maxInterned = 4096

func (s *Service) ecKeyName(k string) string {
	if v, ok := s.in.ecKeys.Load(k); ok {
		return v.(string)
	}
	name := "kms:encryptioncontext:" + strings.ToLower(k)
	if s.in.n.Add(1) < maxInterned {
		s.in.ecKeys.Store(k, name)
	}
	return name
}

func (s *Service) ipString(a netip.Addr) string {
	if v, ok := s.in.ips.Load(a); ok {
		return v.(string)
	}
	str := a.String()
	if s.in.n.Add(1) < maxInterned {
		s.in.ips.Store(a, str)
	}
	return str
}

// timeValues returns aws:CurrentTime and aws:EpochTime for t, computed once
// per second.
func (s *Service) timeValues(t time.Time) ([]string, []string) {
	sec := t.Unix()
	if ts := s.in.clock.Load(); ts != nil && ts.sec == sec {
		return ts.current, ts.epc
	}
	ts := &timeStrings{sec: sec, current: []string{t.UTC().Format(time.RFC3339)}, epc: []string{strconv.FormatInt(sec, 10)}}
	s.in.clock.Store(ts)
	return ts.current, ts.epc
}

// condContext builds the request's condition keys: the global aws: keys the
// request carries, and the kms: keys of the operation.
func (s *Service) condContext(ctx context.Context, a authz, sc *scratch) policy.Context {
	c := sc.ctx
	now := time.Time{}
	if info := auth.FromContext(ctx); info != nil {
		now = info.Time
		if info.SourceIP.IsValid() {
			c["aws:sourceip"] = sc.one(s.ipString(info.SourceIP))
		}
		c["aws:securetransport"] = boolVal(info.SecureTransport)
		if info.UserAgent != "" {
			c["aws:useragent"] = sc.one(info.UserAgent)
		}
	}
	if now.IsZero() {
		now = s.now()
	}
	c["aws:currenttime"], c["aws:epochtime"] = s.timeValues(now)
	c["aws:requestedregion"] = s.valRegion
	c["aws:multifactorauthpresent"] = valFalse
	if acct := a.caller.Principal.AccountID; acct == s.cfg.AccountID {
		c["kms:calleraccount"] = s.valAccount
	} else if acct != "" {
		c["kms:calleraccount"] = sc.one(acct)
	}
	via := a.caller.ViaService != "" || a.caller.InvokedBy != ""
	c["aws:viaawsservice"] = boolVal(via)
	if a.caller.ViaService != "" {
		c["kms:viaservice"] = sc.one(a.caller.ViaService)
	}
	if a.caller.InvokedBy != "" {
		by := sc.one(a.caller.InvokedBy)
		c["aws:calledvia"], c["aws:calledviafirst"], c["aws:calledvialast"] = by, by, by
	}
	if a.view != nil {
		c["kms:keyspec"], c["kms:customermasterkeyspec"] = valSymmetric, valSymmetric
		c["kms:keyusage"], c["kms:keyorigin"], c["kms:multiregion"] = valEncDec, valAWSKMS, valFalse
	}
	if a.ec.applies && len(a.ec.m) > 0 {
		for k, v := range a.ec.m {
			sc.keys = append(sc.keys, k)
			c[s.ecKeyName(k)] = sc.one(v)
		}
		slices.Sort(sc.keys)
		c["kms:encryptioncontextkeys"] = sc.keys
	}
	if a.extra != nil {
		a.extra(c)
	}
	return c
}

// granteeGrants are the grants of one grantee on one key, indexed for the
// per-call check: unconstrained grants, subset constraints by one of their
// pairs, and equals constraints by their canonical context.
type granteeGrants struct {
	open   []*grantRecord
	subset map[string]map[string][]*grantRecord // first pair of the constraint: key -> value -> grants
	equals map[string][]*grantRecord            // canonical context
}

func canonicalString(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(strconv.Itoa(len(k)))
		b.WriteByte(':')
		b.WriteString(k)
		b.WriteString(strconv.Itoa(len(m[k])))
		b.WriteByte(':')
		b.WriteString(m[k])
	}
	return b.String()
}

func indexGrants(grants []*grantRecord) map[string]*granteeGrants {
	idx := make(map[string]*granteeGrants)
	for _, g := range grants {
		gg := idx[g.Grantee]
		if gg == nil {
			gg = &granteeGrants{}
			idx[g.Grantee] = gg
		}
		switch c := g.Constraints; {
		case c == nil:
			gg.open = append(gg.open, g)
		case c.EncryptionContextEquals != nil:
			if gg.equals == nil {
				gg.equals = make(map[string][]*grantRecord)
			}
			k := canonicalString(c.EncryptionContextEquals)
			gg.equals[k] = append(gg.equals[k], g)
		default:
			if gg.subset == nil {
				gg.subset = make(map[string]map[string][]*grantRecord)
			}
			first := slices.Min(slices.Collect(maps.Keys(c.EncryptionContextSubset)))
			v := c.EncryptionContextSubset[first]
			if gg.subset[first] == nil {
				gg.subset[first] = make(map[string][]*grantRecord)
			}
			gg.subset[first][v] = append(gg.subset[first][v], g)
		}
	}
	return idx
}

// granteesOf lists the grantee principals that name this caller: its ARN,
// its role (for an assumed-role session), the service it calls through,
// and its account's root. A service principal as grantee covers calls made
// through that service on anyone's behalf.
func (s *Service) granteesOf(c Caller, buf *[6]string) []string {
	p := c.Principal
	out := buf[:0]
	if p.ARN != "" && p.Type != policy.TypeAWSService {
		out = append(out, p.ARN)
	}
	if p.RoleARN != "" {
		out = append(out, p.RoleARN)
	}
	if c.ViaService != "" {
		out = append(out, c.ViaService)
	}
	if c.InvokedBy != "" && c.InvokedBy != c.ViaService {
		out = append(out, c.InvokedBy)
	}
	if p.AccountID == s.cfg.AccountID && p.Type != policy.TypeAWSService {
		out = append(out, s.rootArn, s.cfg.AccountID)
	}
	return out
}

// grantAllows reports whether a grant on the key lets the caller perform
// op with encryption context ec.
func (s *Service) grantAllows(v *keyView, c Caller, op string, ec ecContext, identity []*policy.Policy, req *policy.Request) bool {
	var buf [6]string
	for _, who := range s.granteesOf(c, &buf) {
		gg := v.idx[who]
		if gg == nil {
			continue
		}
		if who == s.rootArn || who == s.cfg.AccountID {
			// A grant to the account delegates to the account's IAM
			// policies, as a key policy naming the account does.
			if c.Principal.Type != policy.TypeRoot && !identityAllows(identity, req) {
				continue
			}
		}
		if g := findGrant(gg, op, ec); g != nil {
			return true
		}
	}
	return false
}

func identityAllows(identity []*policy.Policy, req *policy.Request) bool {
	return policy.Decide(policy.Input{Request: req, Identity: identity}).Allowed
}

// findGrant returns a grant of gg that allows op with ec, or nil.
func findGrant(gg *granteeGrants, op string, ec ecContext) *grantRecord {
	has := func(g *grantRecord) bool { return slices.Contains(g.Operations, op) }
	for _, g := range gg.open {
		if has(g) {
			return g
		}
	}
	if !ec.applies {
		// DescribeKey, CreateGrant and RetireGrant take no encryption
		// context: constraints do not restrict them.
		for _, byValue := range gg.subset {
			for _, list := range byValue {
				for _, g := range list {
					if has(g) {
						return g
					}
				}
			}
		}
		for _, list := range gg.equals {
			for _, g := range list {
				if has(g) {
					return g
				}
			}
		}
		return nil
	}
	if len(gg.equals) > 0 {
		for _, g := range gg.equals[canonicalString(ec.m)] {
			if has(g) && equalContext(g.Constraints.EncryptionContextEquals, ec.m) {
				return g
			}
		}
	}
	if len(gg.subset) > 0 {
		for k, v := range ec.m {
			for _, g := range gg.subset[k][v] {
				if has(g) && subsetOf(g.Constraints.EncryptionContextSubset, ec.m) {
					return g
				}
			}
		}
	}
	return nil
}

func subsetOf(sub, m map[string]string) bool {
	for k, v := range sub {
		if w, ok := m[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func equalContext(a, b map[string]string) bool {
	return len(a) == len(b) && subsetOf(a, b)
}
