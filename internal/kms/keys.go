package kms

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

// Limits, as AWS's.
const (
	maxKeyPolicyBytes = 32 << 10
	maxDescription    = 8192
	maxTags           = 50
	maxOnDemand       = 25
)

// defaultKeyPolicy is the policy CreateKey attaches when none is given: the
// account root user may do everything, which makes the account's IAM
// policies apply (SPEC KMS-06, J-03).
func (s *Service) defaultKeyPolicy() string {
	return `{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "` + s.rootArn + `"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`
}

// parseKeyPolicy validates a key policy document.
func parseKeyPolicy(doc string) (*policy.Policy, error) {
	if len(doc) > maxKeyPolicyBytes {
		return nil, errorf(codeLimitExceeded, fmt.Sprintf("The key policy is %d bytes; the limit is %d bytes.", len(doc), maxKeyPolicyBytes))
	}
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return nil, errorf(codeMalformedPolicy, "The key policy contains a control character.")
		}
	}
	p, err := policy.Parse([]byte(doc), policy.Resource)
	if err != nil {
		return nil, errorf(codeMalformedPolicy, "The key policy is malformed: "+err.Error())
	}
	return p, nil
}

// checkLockout refuses a policy that would keep the caller from changing
// it again (AWS's policy lockout safety check).
func (s *Service) checkLockout(ctx context.Context, c Caller, id KeyID, p *policy.Policy) error {
	v := &keyView{arn: s.keyARN(id), policy: p}
	err := s.authorize(ctx, authz{caller: c, action: "kms:PutKeyPolicy", view: v})
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Code == codeAccessDenied {
		return errorf(codeMalformedPolicy, "The new key policy will not allow you to update the key policy in the future.")
	}
	return err
}

func checkTags(tags []Tag) error {
	if len(tags) > maxTags {
		return errorf(codeLimitExceeded, fmt.Sprintf("A key can have at most %d tags.", maxTags))
	}
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		switch {
		case len(t.TagKey) < 1 || len(t.TagKey) > 128:
			return errorf(codeTag, fmt.Sprintf("Tag key %q must be 1 to 128 characters long.", clip(t.TagKey)))
		case len(t.TagValue) > 256:
			return errorf(codeTag, fmt.Sprintf("The value of tag %q must be at most 256 characters long.", clip(t.TagKey)))
		case strings.HasPrefix(strings.ToLower(t.TagKey), "aws:"):
			return errorf(codeTag, fmt.Sprintf("Tag key %q uses the reserved prefix aws:.", clip(t.TagKey)))
		case seen[t.TagKey]:
			return errorf(codeTag, fmt.Sprintf("Tag key %q appears more than once.", clip(t.TagKey)))
		}
		seen[t.TagKey] = true
	}
	return nil
}

func tagContext(tags []Tag) func(policy.Context) {
	return func(c policy.Context) {
		if len(tags) == 0 {
			return
		}
		keys := make([]string, 0, len(tags))
		for _, t := range tags {
			keys = append(keys, t.TagKey)
			c["aws:requesttag/"+strings.ToLower(t.TagKey)] = []string{t.TagValue}
		}
		c["aws:tagkeys"] = keys
	}
}

// newMaterialRecord generates 256 bits of key material from crypto/rand and
// seals it under the root key for key id, version.
func (s *Service) newMaterialRecord(id KeyID, version uint32, rotation string, now time.Time) (materialRecord, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return materialRecord{}, err
	}
	defer clear(raw[:])
	sealed, err := s.cfg.Root.Wrap(raw[:], materialContext(id, version))
	if err != nil {
		return materialRecord{}, err
	}
	mid, err := randomHex(32)
	if err != nil {
		return materialRecord{}, err
	}
	return materialRecord{Version: version, ID: mid, Sealed: sealed, Created: now, Rotation: rotation}, nil
}

func (s *Service) metadataOf(v *keyView) *KeyMetadata {
	r := v.rec
	m := &KeyMetadata{AWSAccountId: s.cfg.AccountID, KeyId: string(r.ID), Arn: v.arn, CreationDate: NewTimestamp(r.Created),
		Enabled: r.State == stateEnabled, Description: r.Description, KeyUsage: "ENCRYPT_DECRYPT", KeyState: r.State,
		Origin: "AWS_KMS", KeyManager: r.Manager, CustomerMasterKeySpec: "SYMMETRIC_DEFAULT", KeySpec: "SYMMETRIC_DEFAULT",
		EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"}}
	if r.State == statePendingDeletion {
		m.DeletionDate = NewTimestamp(r.DeletionDate)
		d := r.PendingDays
		m.PendingDeletionWindowInDays = &d
	}
	if mr, ok := v.material(r.Current); ok {
		m.CurrentKeyMaterialId = mr.ID
	}
	return m
}

// CreateKey creates a symmetric encryption key (SYMMETRIC_DEFAULT,
// ENCRYPT_DECRYPT, AWS_KMS origin) with fresh key material.
func (s *Service) CreateKey(ctx context.Context, c Caller, in *CreateKeyInput) (_ *CreateKeyOutput, err error) {
	cl := s.begin(ctx, c, "CreateKey", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &CreateKeyInput{}
	}
	cl.param("keyUsage", orDefault(in.KeyUsage, "ENCRYPT_DECRYPT"))
	cl.param("keySpec", orDefault(in.KeySpec, "SYMMETRIC_DEFAULT"))
	if in.Description != nil {
		cl.param("description", *in.Description)
	}
	if err := checkCreateKey(in); err != nil {
		return nil, err
	}
	doc := ""
	var pol *policy.Policy
	if in.Policy != nil {
		if pol, err = parseKeyPolicy(*in.Policy); err != nil {
			return nil, err
		}
		doc = *in.Policy
	}
	bypass := in.BypassPolicyLockoutSafetyCheck
	err = s.authorize(ctx, authz{caller: c, action: "kms:CreateKey", res: "*", extra: func(pc policy.Context) {
		pc["kms:keyspec"] = []string{"SYMMETRIC_DEFAULT"}
		pc["kms:keyusage"] = []string{"ENCRYPT_DECRYPT"}
		pc["kms:keyorigin"] = []string{"AWS_KMS"}
		pc["kms:multiregion"] = []string{"false"}
		pc["kms:bypasspolicylockoutsafetycheck"] = []string{strconv.FormatBool(bypass)}
		tagContext(in.Tags)(pc)
	}})
	if err != nil {
		return nil, err
	}
	id, err := newKeyID()
	if err != nil {
		return nil, internal(err)
	}
	if pol == nil {
		doc = s.defaultKeyPolicy()
	} else if !bypass {
		if err := s.checkLockout(ctx, c, id, pol); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	mat, err := s.newMaterialRecord(id, 1, "", now)
	if err != nil {
		return nil, internal(err)
	}
	rec := keyRecord{ID: id, Created: now, State: stateEnabled, Manager: managerCustomer, Policy: doc, Current: 1,
		Tags: sortedTags(in.Tags)}
	if in.Description != nil {
		rec.Description = *in.Description
	}
	err = s.update(ctx, func(tx metadata.DocTx) error {
		if err := putDoc(tx, kindKey, string(id), rec, 0); err != nil {
			return err
		}
		return putDoc(tx, kindMaterial, materialKey(id, 1), mat, 0)
	})
	if err != nil {
		return nil, internal(err)
	}
	v := &keyView{rec: rec, arn: s.keyARN(id), mats: []materialRecord{mat}}
	cl.key(v)
	cl.response("keyMetadata", map[string]any{"keyId": string(id), "arn": v.arn})
	return &CreateKeyOutput{KeyMetadata: s.metadataOf(v)}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkCreateKey refuses what Coffer does not build (asymmetric, HMAC,
// imported, custom key store, multi-Region keys) by name, and values
// outside the model's enums.
func checkCreateKey(in *CreateKeyInput) error {
	enum := func(param, v string, valid []string, supported string) error {
		if v == "" || v == supported {
			return nil
		}
		if !slices.Contains(valid, v) {
			return validation(param, v, "Member must satisfy enum value set: ["+strings.Join(valid, ", ")+"]")
		}
		return errorf(codeUnsupported, fmt.Sprintf("Coffer's KMS creates only symmetric encryption keys (%s %s); %s %s is not supported.", param, supported, param, v))
	}
	specs := []string{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
		"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519"}
	if err := enum("keyUsage", in.KeyUsage, []string{"SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"}, "ENCRYPT_DECRYPT"); err != nil {
		return err
	}
	if err := enum("keySpec", in.KeySpec, specs, "SYMMETRIC_DEFAULT"); err != nil {
		return err
	}
	if err := enum("customerMasterKeySpec", in.CustomerMasterKeySpec, specs[:len(specs)-5], "SYMMETRIC_DEFAULT"); err != nil {
		return err
	}
	if err := enum("origin", in.Origin, []string{"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"}, "AWS_KMS"); err != nil {
		return err
	}
	if in.KeySpec != "" && in.CustomerMasterKeySpec != "" {
		return errorf(codeValidation, "You cannot specify both KeySpec and CustomerMasterKeySpec.")
	}
	if in.CustomKeyStoreId != "" || in.XksKeyId != "" {
		return errorf(codeUnsupported, "Coffer's KMS has no custom key stores (CustomKeyStoreId, XksKeyId).")
	}
	if in.MultiRegion != nil && *in.MultiRegion {
		return errorf(codeUnsupported, "Coffer's KMS has no multi-Region keys (MultiRegion).")
	}
	if in.Description != nil && len(*in.Description) > maxDescription {
		return validation("description", "", "Member must have length less than or equal to 8192")
	}
	return checkTags(in.Tags)
}

func sortedTags(tags []Tag) []Tag {
	out := slices.Clone(tags)
	slices.SortFunc(out, func(a, b Tag) int { return strings.Compare(a.TagKey, b.TagKey) })
	return out
}

// DescribeKey returns a key's metadata. An alias of an AWS managed key
// that does not exist yet creates the key (SPEC 3.5).
func (s *Service) DescribeKey(ctx context.Context, c Caller, in *DescribeKeyInput) (_ *DescribeKeyOutput, err error) {
	cl := s.begin(ctx, c, "DescribeKey", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &DescribeKeyInput{}
	}
	cl.param("keyId", in.KeyId)
	if err := checkGrantTokens(in.GrantTokens); err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:DescribeKey", view: v, grantOp: "DescribeKey"}); err != nil {
		return nil, err
	}
	return &DescribeKeyOutput{KeyMetadata: s.metadataOf(v)}, nil
}

// ListKeys lists the account's keys in this region, AWS managed and
// customer managed (SPEC KMS-09).
func (s *Service) ListKeys(ctx context.Context, c Caller, in *ListKeysInput) (_ *ListKeysOutput, err error) {
	cl := s.begin(ctx, c, "ListKeys", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ListKeysInput{}
	}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ListKeys", res: "*"}); err != nil {
		return nil, err
	}
	var recs []keyRecord
	if err := s.cfg.Docs.ViewDocs(ctx, func(tx metadata.DocTx) error {
		recs, err = listDocs[keyRecord](tx, kindKey, "")
		return err
	}); err != nil {
		return nil, internal(err)
	}
	now := s.now()
	recs = slices.DeleteFunc(recs, func(r keyRecord) bool {
		return r.State == statePendingDeletion && !now.Before(r.DeletionDate)
	})
	start, end, next, err := page(len(recs), func(i int) string { return string(recs[i].ID) }, in.Limit, in.Marker, 100)
	if err != nil {
		return nil, err
	}
	out := &ListKeysOutput{Keys: []KeyListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, r := range recs[start:end] {
		out.Keys = append(out.Keys, KeyListEntry{KeyId: string(r.ID), KeyArn: s.keyARN(r.ID)})
	}
	return out, nil
}

// mutateKey is the skeleton of the operations that change one key's record:
// resolve, authorize, check the state, then apply fn to the record in a
// transaction (fn sees the stored record, so concurrent writers serialize).
func (s *Service) mutateKey(ctx context.Context, cl *call, c Caller, keyID, action string, rule stateRule,
	extra func(policy.Context), pre func(v *keyView) error, fn func(v *keyView, r *keyRecord) error) (*keyView, error) {
	v, err := s.resolve(ctx, "keyId", keyID, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: action, view: v, extra: extra}); err != nil {
		return nil, err
	}
	if err := checkState(v, rule); err != nil {
		return nil, err
	}
	if v.rec.Manager == managerAWS {
		// The managed key policy refuses these actions to everyone; this
		// holds even if a policy ever did not.
		return nil, errorf(codeUnsupported, fmt.Sprintf("%s is an AWS managed key: its properties, state and policy cannot be changed.", v.arn))
	}
	if pre != nil {
		if err := pre(v); err != nil {
			return nil, err
		}
	}
	err = s.update(ctx, func(tx metadata.DocTx) error {
		r, ver, err := getDoc[keyRecord](tx, kindKey, string(v.rec.ID))
		if errors.Is(err, metadata.ErrNotFound) {
			return errorf(codeNotFound, fmt.Sprintf("Key '%s' does not exist", v.arn))
		}
		if err != nil {
			return err
		}
		cur := *v
		cur.rec = r
		if err := checkState(&cur, rule); err != nil {
			return err
		}
		if err := fn(&cur, &r); err != nil {
			return err
		}
		return putDoc(tx, kindKey, string(r.ID), r, ver)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// UpdateKeyDescription replaces a key's description.
func (s *Service) UpdateKeyDescription(ctx context.Context, c Caller, in *UpdateKeyDescriptionInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "UpdateKeyDescription", false)
	defer func() { err = cl.end(err) }()
	if in == nil || in.Description == nil {
		return nil, validation("description", "", "Member must not be null")
	}
	cl.param("keyId", in.KeyId)
	cl.param("description", *in.Description)
	if len(*in.Description) > maxDescription {
		return nil, validation("description", "", "Member must have length less than or equal to 8192")
	}
	_, err = s.mutateKey(ctx, cl, c, in.KeyId, "kms:UpdateKeyDescription", notPending, nil, nil, func(_ *keyView, r *keyRecord) error {
		r.Description = *in.Description
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// EnableKey sets a disabled key's state to Enabled.
func (s *Service) EnableKey(ctx context.Context, c Caller, in *KeyIDInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "EnableKey", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &KeyIDInput{}
	}
	cl.param("keyId", in.KeyId)
	_, err = s.mutateKey(ctx, cl, c, in.KeyId, "kms:EnableKey", notPending, nil, nil, func(_ *keyView, r *keyRecord) error {
		r.State = stateEnabled
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// DisableKey sets a key's state to Disabled: every cryptographic operation
// with it fails with DisabledException from the next call on.
func (s *Service) DisableKey(ctx context.Context, c Caller, in *KeyIDInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "DisableKey", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &KeyIDInput{}
	}
	cl.param("keyId", in.KeyId)
	v, err := s.mutateKey(ctx, cl, c, in.KeyId, "kms:DisableKey", notPending, nil, nil, func(_ *keyView, r *keyRecord) error {
		r.State = stateDisabled
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.dropMaterials(v.rec.ID)
	return &Empty{}, nil
}

// ScheduleKeyDeletion puts a key in PendingDeletion for 7 to 30 days
// (default 30); when the date passes, the key, its material, aliases and
// grants are deleted.
func (s *Service) ScheduleKeyDeletion(ctx context.Context, c Caller, in *ScheduleKeyDeletionInput) (_ *ScheduleKeyDeletionOutput, err error) {
	cl := s.begin(ctx, c, "ScheduleKeyDeletion", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ScheduleKeyDeletionInput{}
	}
	days := int32(30)
	if in.PendingWindowInDays != nil {
		days = *in.PendingWindowInDays
	}
	cl.param("keyId", in.KeyId)
	cl.param("pendingWindowInDays", days)
	if days < 7 || days > 30 {
		return nil, errorf(codeValidation, fmt.Sprintf("PendingWindowInDays should be between 7 and 30, but it is %d", days))
	}
	var when time.Time
	v, err := s.mutateKey(ctx, cl, c, in.KeyId, "kms:ScheduleKeyDeletion", notPendingOnly, func(pc policy.Context) {
		pc["kms:schedulekeydeletionpendingwindowindays"] = []string{strconv.Itoa(int(days))}
	}, nil, func(_ *keyView, r *keyRecord) error {
		when = s.now().UTC().Add(time.Duration(days) * 24 * time.Hour)
		r.State, r.DeletionDate, r.PendingDays = statePendingDeletion, when, days
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.dropMaterials(v.rec.ID)
	cl.response("deletionDate", when.Format(time.RFC3339))
	return &ScheduleKeyDeletionOutput{KeyId: v.arn, DeletionDate: NewTimestamp(when), KeyState: statePendingDeletion,
		PendingWindowInDays: days}, nil
}

// CancelKeyDeletion takes a key out of PendingDeletion; it is Disabled
// afterwards, as in AWS.
func (s *Service) CancelKeyDeletion(ctx context.Context, c Caller, in *KeyIDInput) (_ *KeyIDOutput, err error) {
	cl := s.begin(ctx, c, "CancelKeyDeletion", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &KeyIDInput{}
	}
	cl.param("keyId", in.KeyId)
	v, err := s.mutateKey(ctx, cl, c, in.KeyId, "kms:CancelKeyDeletion", pendingOnly, nil, nil, func(_ *keyView, r *keyRecord) error {
		r.State, r.DeletionDate, r.PendingDays = stateDisabled, time.Time{}, 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &KeyIDOutput{KeyId: v.arn}, nil
}

// GetKeyPolicy returns the key policy (its name is always "default").
func (s *Service) GetKeyPolicy(ctx context.Context, c Caller, in *GetKeyPolicyInput) (_ *GetKeyPolicyOutput, err error) {
	cl := s.begin(ctx, c, "GetKeyPolicy", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &GetKeyPolicyInput{}
	}
	name := orDefault(in.PolicyName, "default")
	cl.param("keyId", in.KeyId)
	cl.param("policyName", name)
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:GetKeyPolicy", view: v}); err != nil {
		return nil, err
	}
	if name != "default" {
		return nil, errorf(codeNotFound, fmt.Sprintf("No such policy exists: %s (the only key policy is named default)", clip(name)))
	}
	return &GetKeyPolicyOutput{Policy: v.rec.Policy, PolicyName: "default"}, nil
}

// PutKeyPolicy replaces the key policy after checking it parses and (unless
// bypassed) still lets the caller change it.
func (s *Service) PutKeyPolicy(ctx context.Context, c Caller, in *PutKeyPolicyInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "PutKeyPolicy", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &PutKeyPolicyInput{}
	}
	name := orDefault(in.PolicyName, "default")
	cl.param("keyId", in.KeyId)
	cl.param("policyName", name)
	cl.param("bypassPolicyLockoutSafetyCheck", in.BypassPolicyLockoutSafetyCheck)
	if name != "default" {
		return nil, errorf(codeUnsupported, fmt.Sprintf("The only key policy is named default, not %s.", clip(name)))
	}
	if in.Policy == "" {
		return nil, validation("policy", "", "Member must have length greater than or equal to 1")
	}
	pol, err := parseKeyPolicy(in.Policy)
	if err != nil {
		return nil, err
	}
	bypass := in.BypassPolicyLockoutSafetyCheck
	lockout := func(v *keyView) error {
		if bypass {
			return nil
		}
		return s.checkLockout(ctx, c, v.rec.ID, pol)
	}
	_, err = s.mutateKey(ctx, cl, c, in.KeyId, "kms:PutKeyPolicy", anyState, func(pc policy.Context) {
		pc["kms:bypasspolicylockoutsafetycheck"] = []string{strconv.FormatBool(bypass)}
	}, lockout, func(_ *keyView, r *keyRecord) error {
		r.Policy = in.Policy
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// ListKeyPolicies lists the key's policy names: always ["default"].
func (s *Service) ListKeyPolicies(ctx context.Context, c Caller, in *ListKeyPoliciesInput) (_ *ListKeyPoliciesOutput, err error) {
	cl := s.begin(ctx, c, "ListKeyPolicies", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ListKeyPoliciesInput{}
	}
	cl.param("keyId", in.KeyId)
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ListKeyPolicies", view: v}); err != nil {
		return nil, err
	}
	names := []string{"default"}
	start, end, next, err := page(len(names), func(i int) string { return names[i] }, in.Limit, in.Marker, 100)
	if err != nil {
		return nil, err
	}
	return &ListKeyPoliciesOutput{PolicyNames: names[start:end], NextMarker: next, Truncated: next != ""}, nil
}

// TagResource adds or replaces tags on a key.
func (s *Service) TagResource(ctx context.Context, c Caller, in *TagResourceInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "TagResource", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &TagResourceInput{}
	}
	cl.param("keyId", in.KeyId)
	keys := make([]string, 0, len(in.Tags))
	for _, t := range in.Tags {
		keys = append(keys, t.TagKey)
	}
	cl.param("tagKeys", keys)
	if len(in.Tags) == 0 {
		return nil, validation("tags", "", "Member must not be null")
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	_, err = s.mutateKey(ctx, cl, c, in.KeyId, "kms:TagResource", notPending, tagContext(in.Tags), nil, func(_ *keyView, r *keyRecord) error {
		m := make(map[string]string, len(r.Tags)+len(in.Tags))
		for _, t := range r.Tags {
			m[t.TagKey] = t.TagValue
		}
		for _, t := range in.Tags {
			m[t.TagKey] = t.TagValue
		}
		if len(m) > maxTags {
			return errorf(codeLimitExceeded, fmt.Sprintf("A key can have at most %d tags.", maxTags))
		}
		r.Tags = r.Tags[:0]
		for k, v := range m {
			r.Tags = append(r.Tags, Tag{TagKey: k, TagValue: v})
		}
		r.Tags = sortedTags(r.Tags)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// UntagResource removes tags from a key; absent keys are ignored.
func (s *Service) UntagResource(ctx context.Context, c Caller, in *UntagResourceInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "UntagResource", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &UntagResourceInput{}
	}
	cl.param("keyId", in.KeyId)
	cl.param("tagKeys", in.TagKeys)
	if len(in.TagKeys) == 0 {
		return nil, validation("tagKeys", "", "Member must not be null")
	}
	_, err = s.mutateKey(ctx, cl, c, in.KeyId, "kms:UntagResource", notPending, func(pc policy.Context) {
		pc["aws:tagkeys"] = in.TagKeys
	}, nil, func(_ *keyView, r *keyRecord) error {
		r.Tags = slices.DeleteFunc(r.Tags, func(t Tag) bool { return slices.Contains(in.TagKeys, t.TagKey) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// ListResourceTags lists a key's tags, by tag key.
func (s *Service) ListResourceTags(ctx context.Context, c Caller, in *ListResourceTagsInput) (_ *ListResourceTagsOutput, err error) {
	cl := s.begin(ctx, c, "ListResourceTags", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ListResourceTagsInput{}
	}
	cl.param("keyId", in.KeyId)
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ListResourceTags", view: v}); err != nil {
		return nil, err
	}
	tags := v.rec.Tags
	start, end, next, err := page(len(tags), func(i int) string { return tags[i].TagKey }, in.Limit, in.Marker, 50)
	if err != nil {
		return nil, err
	}
	return &ListResourceTagsOutput{Tags: append([]Tag{}, tags[start:end]...), NextMarker: next, Truncated: next != ""}, nil
}

// encodeMarker and decodeMarker make paging markers: opaque to clients,
// the sort key of the last item returned.
func encodeMarker(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("m1:" + after))
}

func decodeMarker(m string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(m)
	if err != nil || !strings.HasPrefix(string(b), "m1:") {
		return "", errorf(codeInvalidMarker, "The marker is not one this KMS returned.")
	}
	return string(b[3:]), nil
}
