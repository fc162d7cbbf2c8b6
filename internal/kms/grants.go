package kms

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

// grantOperations is the model's GrantOperation enum; symmetricGrantOps are
// the ones valid on a symmetric encryption key.
var (
	grantOperations = []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
		"ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
		"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret"}
	symmetricGrantOps = []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
		"ReEncryptTo", "CreateGrant", "RetireGrant", "DescribeKey"}
)

const grantTokenPrefix = "cg1"

// newGrantToken returns a grant token for a grant: opaque to clients, it
// names the key and grant, and differs on every CreateGrant (a random
// nonce), as AWS's do. It confers nothing by itself: grants here take
// effect at once, and whoever presents a token is authorized as usual.
func newGrantToken(id KeyID, grantID string) (string, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	raw := append([]byte(grantTokenPrefix+string(id)+grantID), nonce[:]...)
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// parseGrantToken returns the key and grant a token names.
func parseGrantToken(t string) (KeyID, string, error) {
	bad := errorf(codeInvalidGrantToken, "The grant token is not one this KMS issued.")
	if len(t) < 1 || len(t) > 8192 {
		return "", "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(raw) != len(grantTokenPrefix)+keyIDLen+64+16 || !strings.HasPrefix(string(raw), grantTokenPrefix) {
		return "", "", bad
	}
	id := string(raw[len(grantTokenPrefix) : len(grantTokenPrefix)+keyIDLen])
	gid := string(raw[len(grantTokenPrefix)+keyIDLen : len(grantTokenPrefix)+keyIDLen+64])
	if !isUUID(id) || !isGrantID(gid) {
		return "", "", bad
	}
	return KeyID(id), gid, nil
}

// isGrantID reports whether s has the form of the grant IDs this KMS issues
// (64 lowercase hex).
func isGrantID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func checkGrantID(id string) error {
	if len(id) < 1 || len(id) > 128 {
		return validation("grantId", "", "Member must have length between 1 and 128")
	}
	if !isGrantID(id) {
		return errorf(codeInvalidGrantID, fmt.Sprintf("Invalid grant ID %s: grant IDs are 64 hexadecimal characters.", clip(id)))
	}
	return nil
}

// checkGrantRequest validates CreateGrant's operations, constraints and
// name, and returns the operations deduplicated in request order.
func checkGrantRequest(in *CreateGrantInput) ([]string, error) {
	if len(in.Operations) == 0 {
		return nil, validation("operations", "", "Member must have length greater than or equal to 1")
	}
	var ops, bad []string
	for _, op := range in.Operations {
		if !slices.Contains(grantOperations, op) {
			return nil, validation("operations", op, "Member must satisfy enum value set: ["+strings.Join(grantOperations, ", ")+"]")
		}
		if !slices.Contains(symmetricGrantOps, op) {
			bad = append(bad, op)
		}
		if !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	if len(bad) > 0 {
		return nil, errorf(codeValidation, fmt.Sprintf("Grant operations %v are not valid for a symmetric encryption KMS key (key usage ENCRYPT_DECRYPT).", bad))
	}
	if c := in.Constraints; c != nil {
		sub, eq := c.EncryptionContextSubset, c.EncryptionContextEquals
		switch {
		case sub != nil && eq != nil:
			return nil, errorf(codeValidation, "A grant constraint may set EncryptionContextSubset or EncryptionContextEquals, not both.")
		case sub == nil && eq == nil:
			return nil, errorf(codeValidation, "Constraints must set EncryptionContextSubset or EncryptionContextEquals.")
		}
		for name, m := range map[string]map[string]string{"EncryptionContextSubset": sub, "EncryptionContextEquals": eq} {
			if m == nil {
				continue
			}
			if len(m) == 0 {
				return nil, errorf(codeValidation, fmt.Sprintf("The grant constraint %s must hold at least one encryption context pair.", name))
			}
			for k := range m {
				if k == "" {
					return nil, errorf(codeValidation, fmt.Sprintf("The grant constraint %s has an empty encryption context key.", name))
				}
			}
		}
	}
	if in.Name != "" {
		if err := checkAliasPattern("name", in.Name); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

func sameConstraints(a, b *GrantConstraints) bool {
	if a == nil || b == nil {
		return a == b
	}
	return maps.Equal(a.EncryptionContextSubset, b.EncryptionContextSubset) && maps.Equal(a.EncryptionContextEquals, b.EncryptionContextEquals) &&
		(a.EncryptionContextSubset == nil) == (b.EncryptionContextSubset == nil)
}

// atLeastAsStrict reports whether child constraints are at least as strict
// as parent's: a grant that allows CreateGrant under constraints may only
// create grants that keep them.
func atLeastAsStrict(child, parent *GrantConstraints) bool {
	switch {
	case parent == nil:
		return true
	case child == nil:
		return false
	case parent.EncryptionContextEquals != nil:
		return maps.Equal(child.EncryptionContextEquals, parent.EncryptionContextEquals)
	case child.EncryptionContextEquals != nil:
		return subsetOf(parent.EncryptionContextSubset, child.EncryptionContextEquals)
	default:
		return subsetOf(parent.EncryptionContextSubset, child.EncryptionContextSubset)
	}
}

func (s *Service) grantEntry(g *grantRecord) GrantListEntry {
	e := GrantListEntry{KeyId: s.keyARN(g.KeyID), GrantId: g.ID, Name: g.Name, CreationDate: NewTimestamp(g.Created),
		GranteePrincipal: g.Grantee, RetiringPrincipal: g.Retiring, IssuingAccount: g.Issuer, Operations: slices.Clone(g.Operations)}
	if g.Constraints != nil {
		c := *g.Constraints
		e.Constraints = &c
	}
	return e
}

// CreateGrant adds a grant to a key: GranteePrincipal may perform
// Operations (under Constraints, when set) without a key policy or IAM
// statement. With a Name, retrying identical parameters returns the same
// grant (with a new token). The grant is effective immediately, and its
// token may be used at once.
func (s *Service) CreateGrant(ctx context.Context, c Caller, in *CreateGrantInput) (_ *CreateGrantOutput, err error) {
	cl := s.begin(ctx, c, "CreateGrant", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &CreateGrantInput{}
	}
	cl.param("keyId", in.KeyId)
	cl.param("granteePrincipal", in.GranteePrincipal)
	if in.RetiringPrincipal != "" {
		cl.param("retiringPrincipal", in.RetiringPrincipal)
	}
	cl.param("operations", in.Operations)
	if in.Constraints != nil {
		cl.param("constraints", map[string]any{"encryptionContextSubset": in.Constraints.EncryptionContextSubset,
			"encryptionContextEquals": in.Constraints.EncryptionContextEquals})
	}
	if in.Name != "" {
		cl.param("name", in.Name)
	}
	if err := checkPrincipal("granteePrincipal", in.GranteePrincipal); err != nil {
		return nil, err
	}
	if in.RetiringPrincipal != "" {
		if err := checkPrincipal("retiringPrincipal", in.RetiringPrincipal); err != nil {
			return nil, err
		}
	}
	ops, err := checkGrantRequest(in)
	if err != nil {
		return nil, err
	}
	if err := checkGrantTokens(in.GrantTokens); err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, "keyId", in.KeyId, refKeyOnly)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	forAWS := c.ViaService != "" || c.InvokedBy != ""
	a := authz{caller: c, action: "kms:CreateGrant", view: v, grantOp: "CreateGrant", extra: func(pc policy.Context) {
		pc["kms:grantoperations"] = ops
		pc["kms:granteeprincipal"] = []string{in.GranteePrincipal}
		if in.RetiringPrincipal != "" {
			pc["kms:retiringprincipal"] = []string{in.RetiringPrincipal}
		}
		pc["kms:grantisforawsresource"] = []string{fmt.Sprint(forAWS)}
		if k := in.Constraints; k != nil {
			m := k.EncryptionContextSubset
			pc["kms:grantconstrainttype"] = []string{"EncryptionContextSubset"}
			if k.EncryptionContextEquals != nil {
				m = k.EncryptionContextEquals
				pc["kms:grantconstrainttype"] = []string{"EncryptionContextEquals"}
			}
			keys := slices.Sorted(maps.Keys(m))
			pc["kms:encryptioncontextkeys"] = keys
			for _, k := range keys {
				pc["kms:encryptioncontext:"+strings.ToLower(k)] = []string{m[k]}
			}
		}
	}}
	if err := s.authorizeCreateGrant(ctx, a, ops, in.Constraints); err != nil {
		return nil, err
	}
	if err := checkState(v, enabledOnly); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, dryRunError()
	}
	gid, err := randomHex(32)
	if err != nil {
		return nil, internal(err)
	}
	g := grantRecord{ID: gid, KeyID: v.rec.ID, Name: in.Name, Created: s.now().UTC(), Grantee: in.GranteePrincipal,
		Retiring: in.RetiringPrincipal, Issuer: s.rootArn, Operations: ops, Constraints: in.Constraints}
	err = s.update(ctx, func(tx metadata.DocTx) error {
		if _, err := tx.Get(kindKey, string(v.rec.ID)); err != nil {
			return err
		}
		if in.Name != "" {
			existing, err := listDocs[grantRecord](tx, kindGrant, string(v.rec.ID)+"/")
			if err != nil {
				return err
			}
			for _, e := range existing {
				if e.Name == in.Name && e.Grantee == g.Grantee && e.Retiring == g.Retiring &&
					slices.Equal(slices.Sorted(slices.Values(e.Operations)), slices.Sorted(slices.Values(ops))) &&
					sameConstraints(e.Constraints, g.Constraints) {
					g = e
					return nil
				}
			}
		}
		return putDoc(tx, kindGrant, string(v.rec.ID)+"/"+g.ID, g, 0)
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, errorf(codeNotFound, fmt.Sprintf("Key '%s' does not exist", v.arn))
	}
	if err != nil {
		return nil, internal(err)
	}
	token, err := newGrantToken(v.rec.ID, g.ID)
	if err != nil {
		return nil, internal(err)
	}
	cl.response("grantId", g.ID)
	return &CreateGrantOutput{GrantToken: token, GrantId: g.ID}, nil
}

// authorizeCreateGrant is authorize for CreateGrant, whose grant path is
// narrower: a grant that allows CreateGrant lets its grantee create grants
// for at most its own operations and with constraints at least as strict.
func (s *Service) authorizeCreateGrant(ctx context.Context, a authz, ops []string, cons *GrantConstraints) error {
	a.grantOp = ""
	err := s.authorize(ctx, a)
	var e *Error
	if err == nil || !errors.As(err, &e) || e.Code != codeAccessDenied {
		return err
	}
	var d *auth.DeniedError
	if errors.As(err, &d) && strings.HasPrefix(d.Reason, "with an explicit deny") {
		return err
	}
	var buf [6]string
	for _, who := range s.granteesOf(a.caller, &buf) {
		gg := a.view.idx[who]
		if gg == nil || who == s.rootArn || who == s.cfg.AccountID {
			continue
		}
		for _, g := range allGrants(gg) {
			if slices.Contains(g.Operations, "CreateGrant") && subsetOps(ops, g.Operations) && atLeastAsStrict(cons, g.Constraints) {
				return nil
			}
		}
	}
	return err
}

func allGrants(gg *granteeGrants) []*grantRecord {
	out := slices.Clone(gg.open)
	for _, byValue := range gg.subset {
		for _, l := range byValue {
			out = append(out, l...)
		}
	}
	for _, l := range gg.equals {
		out = append(out, l...)
	}
	return out
}

func subsetOps(child, parent []string) bool {
	for _, op := range child {
		if !slices.Contains(parent, op) {
			return false
		}
	}
	return true
}

// ListGrants lists a key's grants (SPEC TRBL-03/04), optionally one grant
// or one grantee's.
func (s *Service) ListGrants(ctx context.Context, c Caller, in *ListGrantsInput) (_ *ListGrantsOutput, err error) {
	cl := s.begin(ctx, c, "ListGrants", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ListGrantsInput{}
	}
	cl.param("keyId", in.KeyId)
	if in.GrantId != "" {
		cl.param("grantId", in.GrantId)
		if err := checkGrantID(in.GrantId); err != nil {
			return nil, err
		}
	}
	if in.GranteePrincipal != "" {
		cl.param("granteePrincipal", in.GranteePrincipal)
		if err := checkPrincipal("granteePrincipal", in.GranteePrincipal); err != nil {
			return nil, err
		}
	}
	v, err := s.resolve(ctx, "keyId", in.KeyId, refKeyOnly)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	forAWS := c.ViaService != "" || c.InvokedBy != ""
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ListGrants", view: v, extra: func(pc policy.Context) {
		pc["kms:grantisforawsresource"] = []string{fmt.Sprint(forAWS)}
	}}); err != nil {
		return nil, err
	}
	grants := slices.DeleteFunc(slices.Clone(v.grants), func(g *grantRecord) bool {
		return (in.GrantId != "" && g.ID != in.GrantId) || (in.GranteePrincipal != "" && g.Grantee != in.GranteePrincipal)
	})
	start, end, next, err := page(len(grants), func(i int) string { return grants[i].ID }, in.Limit, in.Marker, 50)
	if err != nil {
		return nil, err
	}
	out := &ListGrantsOutput{Grants: []GrantListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, g := range grants[start:end] {
		out.Grants = append(out.Grants, s.grantEntry(g))
	}
	return out, nil
}

// ListRetirableGrants lists the grants, on any key of the account, whose
// retiring principal is RetiringPrincipal. It needs
// kms:ListRetirableGrants (IAM only).
func (s *Service) ListRetirableGrants(ctx context.Context, c Caller, in *ListRetirableGrantsInput) (_ *ListGrantsOutput, err error) {
	cl := s.begin(ctx, c, "ListRetirableGrants", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ListRetirableGrantsInput{}
	}
	cl.param("retiringPrincipal", in.RetiringPrincipal)
	if err := checkPrincipal("retiringPrincipal", in.RetiringPrincipal); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ListRetirableGrants", res: "*"}); err != nil {
		return nil, err
	}
	var all []grantRecord
	if err := s.cfg.Docs.ViewDocs(ctx, func(tx metadata.DocTx) error {
		all, err = listDocs[grantRecord](tx, kindGrant, "")
		return err
	}); err != nil {
		return nil, internal(err)
	}
	all = slices.DeleteFunc(all, func(g grantRecord) bool { return g.Retiring != in.RetiringPrincipal })
	sortKey := func(i int) string { return string(all[i].KeyID) + "/" + all[i].ID }
	start, end, next, err := page(len(all), sortKey, in.Limit, in.Marker, 50)
	if err != nil {
		return nil, err
	}
	out := &ListGrantsOutput{Grants: []GrantListEntry{}, NextMarker: next, Truncated: next != ""}
	for i := start; i < end; i++ {
		out.Grants = append(out.Grants, s.grantEntry(&all[i]))
	}
	return out, nil
}

// findStoredGrant returns a grant of a key view, or NotFoundException.
func findStoredGrant(v *keyView, id string) (*grantRecord, error) {
	i, ok := slices.BinarySearchFunc(v.grants, id, func(g *grantRecord, t string) int { return strings.Compare(g.ID, t) })
	if !ok {
		return nil, errorf(codeNotFound, fmt.Sprintf("Grant %s does not exist on key %s.", id, v.arn))
	}
	return v.grants[i], nil
}

// ownIdentities are the principal names that are the caller itself (not a
// service it calls through): its ARN, its role, or for an AWS service
// principal the service.
func ownIdentities(c Caller) []string {
	p := c.Principal
	switch {
	case p.Type == policy.TypeAWSService:
		return []string{c.InvokedBy}
	case p.RoleARN != "":
		return []string{p.ARN, p.RoleARN}
	}
	return []string{p.ARN}
}

// RetireGrant deletes a grant, named by its token or by key and grant ID.
// Only the grant's retiring principal, its grantee when the grant allows
// RetireGrant, or the key's account may retire it; for the account, a
// principal needs kms:RetireGrant in its IAM policies (SPEC PERM-02/03,
// J-01) or must be the root user. A call through a service retires with
// the principal's own authority.
func (s *Service) RetireGrant(ctx context.Context, c Caller, in *RetireGrantInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "RetireGrant", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &RetireGrantInput{}
	}
	if in.KeyId != "" {
		cl.param("keyId", in.KeyId)
	}
	if in.GrantId != "" {
		cl.param("grantId", in.GrantId)
	}
	var id KeyID
	gid := in.GrantId
	switch {
	case in.GrantToken != "":
		tid, tgid, err := parseGrantToken(in.GrantToken)
		if err != nil {
			return nil, err
		}
		if gid != "" && gid != tgid {
			return nil, errorf(codeInvalidGrantToken, "The grant token names another grant than GrantId.")
		}
		id, gid = tid, tgid
		cl.param("grantId", gid)
	case in.KeyId == "" || in.GrantId == "":
		return nil, errorf(codeValidation, "Specify a GrantToken, or a KeyId and a GrantId.")
	default:
		if err := checkGrantID(gid); err != nil {
			return nil, err
		}
	}
	var v *keyView
	if in.KeyId != "" {
		if v, err = s.resolve(ctx, "keyId", in.KeyId, refKeyOnly); err != nil {
			return nil, err
		}
		if id != "" && v.rec.ID != id {
			return nil, errorf(codeInvalidGrantToken, "The grant token names a grant of another key than KeyId.")
		}
	} else if v, err = s.resolveRef(ctx, keyRef{id: id}); err != nil {
		return nil, err
	}
	cl.key(v)
	g, err := findStoredGrant(v, gid)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeRetire(ctx, c, v, g); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, dryRunError()
	}
	if err := s.deleteGrant(ctx, v, gid); err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

func (s *Service) authorizeRetire(ctx context.Context, c Caller, v *keyView, g *grantRecord) error {
	own := ownIdentities(c)
	if g.Retiring != "" && slices.Contains(own, g.Retiring) {
		return nil
	}
	if slices.Contains(own, g.Grantee) && slices.Contains(g.Operations, "RetireGrant") {
		return nil
	}
	p := c.Principal
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	req := &policy.Request{Principal: policyPrincipal(c), Action: "kms:RetireGrant", Resource: v.arn, Context: s.condContext(ctx, authz{caller: c, view: v}, sc)}
	reason := "because no identity-based policy allows the kms:RetireGrant action"
	if p.AccountID == s.cfg.AccountID && p.Type != policy.TypeAWSService {
		identity, err := s.cfg.IdentityPolicies(ctx, p)
		if err != nil {
			return internal(err)
		}
		d := policy.Decide(policy.Input{Request: req, ResourceAccount: s.cfg.AccountID, Identity: identity})
		if d.Allowed {
			return nil
		}
		reason = d.Reason
	}
	return deniedError(&auth.DeniedError{Principal: c.principalName(), Action: "kms:RetireGrant", Resource: v.arn, Reason: reason})
}

func (s *Service) deleteGrant(ctx context.Context, v *keyView, gid string) error {
	err := s.update(ctx, func(tx metadata.DocTx) error { return tx.Delete(kindGrant, string(v.rec.ID)+"/"+gid) })
	if errors.Is(err, metadata.ErrNotFound) {
		return errorf(codeNotFound, fmt.Sprintf("Grant %s does not exist on key %s.", gid, v.arn))
	}
	if err != nil {
		return internal(err)
	}
	return nil
}

// RevokeGrant deletes a grant; it needs kms:RevokeGrant on the key. The
// grant stops working at the very next call (SPEC GRANT-04).
func (s *Service) RevokeGrant(ctx context.Context, c Caller, in *RevokeGrantInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "RevokeGrant", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &RevokeGrantInput{}
	}
	cl.param("keyId", in.KeyId)
	cl.param("grantId", in.GrantId)
	if err := checkGrantID(in.GrantId); err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, "keyId", in.KeyId, refKeyOnly)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	forAWS := c.ViaService != "" || c.InvokedBy != ""
	if err := s.authorize(ctx, authz{caller: c, action: "kms:RevokeGrant", view: v, extra: func(pc policy.Context) {
		pc["kms:grantisforawsresource"] = []string{fmt.Sprint(forAWS)}
	}}); err != nil {
		return nil, err
	}
	if _, err := findStoredGrant(v, in.GrantId); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, dryRunError()
	}
	if err := s.deleteGrant(ctx, v, in.GrantId); err != nil {
		return nil, err
	}
	return &Empty{}, nil
}
