package kms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/cofferhq/coffer/internal/policy"
)

// maxPlaintext is the model's PlaintextType maximum (Encrypt's limit).
const maxPlaintext = 4096

var encryptionAlgorithms = []string{"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"}

// checkAlgorithm accepts SYMMETRIC_DEFAULT (or nothing); asymmetric
// algorithms are not valid for a symmetric key.
func checkAlgorithm(param, alg string) error {
	if alg == "" || alg == "SYMMETRIC_DEFAULT" {
		return nil
	}
	if !slices.Contains(encryptionAlgorithms, alg) {
		return validation(param, alg, "Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]")
	}
	return errorf(codeInvalidKeyUsage, fmt.Sprintf("The encryption algorithm %s is not valid for a symmetric encryption KMS key; use SYMMETRIC_DEFAULT.", alg))
}

// ecParam is the encryption context as an event parameter. It is the
// request's own map, not a copy: a hook that keeps an Event beyond the call
// copies what it keeps.
func ecParam(ec map[string]string) map[string]string { return ec }

func algorithmKey(alg string) func(policy.Context) {
	if alg == "" || alg == "SYMMETRIC_DEFAULT" {
		return symmetricAlgorithm
	}
	return func(c policy.Context) { c["kms:encryptionalgorithm"] = []string{alg} }
}

func symmetricAlgorithm(c policy.Context) { c["kms:encryptionalgorithm"] = valSymmetric }

// Encrypt encrypts up to 4 KiB under a key's current material version,
// binding the encryption context (SPEC CTX-01).
func (s *Service) Encrypt(ctx context.Context, c Caller, in *EncryptInput) (_ *EncryptOutput, err error) {
	cl := s.begin(ctx, c, "Encrypt", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &EncryptInput{}
	}
	cl.param("keyId", in.KeyId)
	cl.param("encryptionContext", ecParam(in.EncryptionContext))
	cl.param("encryptionAlgorithm", orDefault(in.EncryptionAlgorithm, "SYMMETRIC_DEFAULT"))
	switch {
	case len(in.Plaintext) == 0:
		return nil, validation("plaintext", "", "Member must have length greater than or equal to 1")
	case len(in.Plaintext) > maxPlaintext:
		return nil, validation("plaintext", "", "Member must have length less than or equal to 4096")
	}
	if err := checkAlgorithm("encryptionAlgorithm", in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkGrantTokens(in.GrantTokens); err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	ec := ecContext{m: in.EncryptionContext, applies: true}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:Encrypt", view: v, ec: ec, grantOp: "Encrypt",
		extra: algorithmKey(in.EncryptionAlgorithm)}); err != nil {
		return nil, err
	}
	if err := checkState(v, enabledOnly); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, dryRunError()
	}
	blob, _, err := s.seal(ctx, v, in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return &EncryptOutput{CiphertextBlob: blob, KeyId: v.arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}, nil
}

// seal encrypts plaintext under the key's current material version,
// counting the use against the version's cap.
func (s *Service) seal(ctx context.Context, v *keyView, plaintext []byte, ec map[string]string) ([]byte, *material, error) {
	m, err := s.currentMaterial(ctx, v)
	if err != nil {
		return nil, nil, err
	}
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, nil, internal(err)
	}
	return m.seal(v.rec.ID, nonce[:], plaintext, ec), m, nil
}

// opened is a decrypted ciphertext blob.
type opened struct {
	view      *keyView
	plaintext []byte
	material  *material
}

// decryptBlob is Decrypt's core, shared with ReEncrypt: parse, find the
// key the blob names (checking it against keyID when given), authorize
// action, check the key state, and open. Every failure of the ciphertext
// itself, including naming a key or version this KMS does not have, is the
// same InvalidCiphertextException.
func (s *Service) decryptBlob(ctx context.Context, cl *call, c Caller, action, grantOp, keyParam, keyID string,
	raw []byte, ec map[string]string, alg string, dry bool, skipCiphertext bool) (*opened, error) {
	b, perr := parseBlob(raw)
	var given *keyView
	if keyID != "" {
		v, err := s.resolve(ctx, keyParam, keyID, refAnyForm)
		if err != nil {
			return nil, err
		}
		given = v
		if perr == nil && v.rec.ID != b.keyID {
			cl.key(v)
			return nil, errorf(codeIncorrectKey, "The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	if perr != nil {
		if given != nil {
			cl.key(given)
		}
		return nil, invalidCiphertext()
	}
	v := given
	if v == nil {
		var err error
		v, err = s.view(ctx, b.keyID)
		if errors.Is(err, errKeyGone) {
			return nil, invalidCiphertext()
		}
		if err != nil {
			return nil, internal(err)
		}
	}
	cl.key(v)
	ecc := ecContext{m: ec, applies: true}
	if err := s.authorize(ctx, authz{caller: c, action: action, view: v, ec: ecc, grantOp: grantOp, extra: algorithmKey(alg)}); err != nil {
		return nil, err
	}
	if err := checkState(v, enabledOnly); err != nil {
		return nil, err
	}
	if dry && skipCiphertext {
		return nil, dryRunError()
	}
	m, err := s.openMaterial(v, b.version)
	if errors.Is(err, errBlob) {
		return nil, invalidCiphertext()
	}
	if err != nil {
		return nil, internal(err)
	}
	pt, err := m.open(b, ec)
	if err != nil {
		return nil, invalidCiphertext()
	}
	if dry {
		clear(pt)
		return nil, dryRunError()
	}
	return &opened{view: v, plaintext: pt, material: m}, nil
}

func checkCiphertext(raw []byte) error {
	switch {
	case len(raw) == 0:
		return validation("ciphertextBlob", "", "Member must have length greater than or equal to 1")
	case len(raw) > maxBlob:
		return validation("ciphertextBlob", "", "Member must have length less than or equal to 6144")
	}
	return nil
}

func ignoreCiphertext(mods []string) (bool, error) {
	for _, m := range mods {
		if m != "IGNORE_CIPHERTEXT" {
			return false, validation("dryRunModifiers", m, "Member must satisfy enum value set: [IGNORE_CIPHERTEXT]")
		}
	}
	return len(mods) > 0, nil
}

// Decrypt decrypts a ciphertext blob. KeyId is optional: the blob names its
// key and material version, and old versions keep decrypting after
// rotation.
func (s *Service) Decrypt(ctx context.Context, c Caller, in *DecryptInput) (_ *DecryptOutput, err error) {
	cl := s.begin(ctx, c, "Decrypt", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &DecryptInput{}
	}
	if in.KeyId != "" {
		cl.param("keyId", in.KeyId)
	}
	cl.param("encryptionContext", ecParam(in.EncryptionContext))
	cl.param("encryptionAlgorithm", orDefault(in.EncryptionAlgorithm, "SYMMETRIC_DEFAULT"))
	if in.Recipient != nil {
		return nil, errorf(codeUnsupported, "Coffer's KMS has no attested enclaves: Recipient is not supported.")
	}
	if err := checkCiphertext(in.CiphertextBlob); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("encryptionAlgorithm", in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkGrantTokens(in.GrantTokens); err != nil {
		return nil, err
	}
	skip, err := ignoreCiphertext(in.DryRunModifiers)
	if err != nil {
		return nil, err
	}
	o, err := s.decryptBlob(ctx, cl, c, "kms:Decrypt", "Decrypt", "keyId", in.KeyId, in.CiphertextBlob,
		in.EncryptionContext, in.EncryptionAlgorithm, dryRun(in.DryRun), skip)
	if err != nil {
		return nil, err
	}
	return &DecryptOutput{KeyId: o.view.arn, Plaintext: o.plaintext, EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
		KeyMaterialId: o.material.id}, nil
}

// ReEncrypt decrypts a blob and encrypts its plaintext under another key
// (or the same key, with another context) without revealing it. It needs
// kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the
// destination.
func (s *Service) ReEncrypt(ctx context.Context, c Caller, in *ReEncryptInput) (_ *ReEncryptOutput, err error) {
	cl := s.begin(ctx, c, "ReEncrypt", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ReEncryptInput{}
	}
	cl.param("destinationKeyId", in.DestinationKeyId)
	if in.SourceKeyId != "" {
		cl.param("sourceKeyId", in.SourceKeyId)
	}
	cl.param("sourceEncryptionContext", ecParam(in.SourceEncryptionContext))
	cl.param("destinationEncryptionContext", ecParam(in.DestinationEncryptionContext))
	if err := checkCiphertext(in.CiphertextBlob); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("sourceEncryptionAlgorithm", in.SourceEncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("destinationEncryptionAlgorithm", in.DestinationEncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkGrantTokens(in.GrantTokens); err != nil {
		return nil, err
	}
	if _, err := ignoreCiphertext(in.DryRunModifiers); err != nil {
		return nil, err
	}
	dst, err := s.resolve(ctx, "destinationKeyId", in.DestinationKeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	o, err := s.decryptBlob(ctx, cl, c, "kms:ReEncryptFrom", "ReEncryptFrom", "sourceKeyId", in.SourceKeyId,
		in.CiphertextBlob, in.SourceEncryptionContext, in.SourceEncryptionAlgorithm, false, false)
	if err != nil {
		return nil, err
	}
	defer clear(o.plaintext)
	same := strconv.FormatBool(o.view.rec.ID == dst.rec.ID)
	dec := ecContext{m: in.DestinationEncryptionContext, applies: true}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ReEncryptTo", view: dst, ec: dec, grantOp: "ReEncryptTo",
		extra: func(pc policy.Context) {
			algorithmKey(in.DestinationEncryptionAlgorithm)(pc)
			pc["kms:reencryptonsamekey"] = []string{same}
		}}); err != nil {
		return nil, err
	}
	if err := checkState(dst, enabledOnly); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, dryRunError()
	}
	blob, m, err := s.seal(ctx, dst, o.plaintext, in.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	return &ReEncryptOutput{CiphertextBlob: blob, SourceKeyId: o.view.arn, KeyId: dst.arn,
		SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT", DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
		SourceKeyMaterialId: o.material.id, DestinationKeyMaterialId: m.id}, nil
}

// dataKeySize validates KeySpec / NumberOfBytes (exactly one).
func dataKeySize(spec string, n *int32) (int, error) {
	switch {
	case spec != "" && n != nil:
		return 0, errorf(codeValidation, "Specify either KeySpec or NumberOfBytes, not both.")
	case spec == "AES_256":
		return 32, nil
	case spec == "AES_128":
		return 16, nil
	case spec != "":
		return 0, validation("keySpec", spec, "Member must satisfy enum value set: [AES_256, AES_128]")
	case n == nil:
		return 0, errorf(codeValidation, "Specify either KeySpec or NumberOfBytes.")
	case *n < 1 || *n > 1024:
		return 0, validation("numberOfBytes", strconv.Itoa(int(*n)), "Member must have value between 1 and 1024")
	}
	return int(*n), nil
}

// GenerateDataKey returns a new data key in plaintext and encrypted under
// the key (SPEC FLOW-03/04).
func (s *Service) GenerateDataKey(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, c, in, "GenerateDataKey")
}

// GenerateDataKeyWithoutPlaintext is GenerateDataKey without the plaintext
// copy.
func (s *Service) GenerateDataKeyWithoutPlaintext(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, c, in, "GenerateDataKeyWithoutPlaintext")
}

func (s *Service) generateDataKey(ctx context.Context, c Caller, in *GenerateDataKeyInput, op string) (_ *GenerateDataKeyOutput, err error) {
	cl := s.begin(ctx, c, op, true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &GenerateDataKeyInput{}
	}
	cl.param("keyId", in.KeyId)
	cl.param("encryptionContext", ecParam(in.EncryptionContext))
	if in.KeySpec != "" {
		cl.param("keySpec", in.KeySpec)
	}
	if in.NumberOfBytes != nil {
		cl.param("numberOfBytes", *in.NumberOfBytes)
	}
	if in.Recipient != nil {
		return nil, errorf(codeUnsupported, "Coffer's KMS has no attested enclaves: Recipient is not supported.")
	}
	n, err := dataKeySize(in.KeySpec, in.NumberOfBytes)
	if err != nil {
		return nil, err
	}
	if err := checkGrantTokens(in.GrantTokens); err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	ec := ecContext{m: in.EncryptionContext, applies: true}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:" + op, view: v, ec: ec, grantOp: op}); err != nil {
		return nil, err
	}
	if err := checkState(v, enabledOnly); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, dryRunError()
	}
	pt := make([]byte, n)
	if _, err := rand.Read(pt); err != nil {
		return nil, internal(err)
	}
	blob, m, err := s.seal(ctx, v, pt, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	out := &GenerateDataKeyOutput{CiphertextBlob: blob, KeyId: v.arn, KeyMaterialId: m.id}
	if op == "GenerateDataKey" {
		out.Plaintext = pt
	} else {
		clear(pt)
	}
	return out, nil
}

// GenerateRandom returns 1 to 1024 random bytes from crypto/rand.
func (s *Service) GenerateRandom(ctx context.Context, c Caller, in *GenerateRandomInput) (_ *GenerateRandomOutput, err error) {
	cl := s.begin(ctx, c, "GenerateRandom", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &GenerateRandomInput{}
	}
	if in.NumberOfBytes != nil {
		cl.param("numberOfBytes", *in.NumberOfBytes)
	}
	switch {
	case in.CustomKeyStoreId != "":
		return nil, errorf(codeUnsupported, "Coffer's KMS has no custom key stores (CustomKeyStoreId).")
	case in.Recipient != nil:
		return nil, errorf(codeUnsupported, "Coffer's KMS has no attested enclaves: Recipient is not supported.")
	case in.NumberOfBytes == nil:
		return nil, errorf(codeValidation, "NumberOfBytes is required.")
	case *in.NumberOfBytes < 1 || *in.NumberOfBytes > 1024:
		return nil, validation("numberOfBytes", strconv.Itoa(int(*in.NumberOfBytes)), "Member must have value between 1 and 1024")
	}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:GenerateRandom", res: "*"}); err != nil {
		return nil, err
	}
	out := make([]byte, *in.NumberOfBytes)
	if _, err := rand.Read(out); err != nil {
		return nil, internal(err)
	}
	return &GenerateRandomOutput{Plaintext: out}, nil
}
