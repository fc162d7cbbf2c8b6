package kms

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// The tests in this file drive the handler over HTTP with aws-sdk-go-v2's
// kms client, SigV4-signed, against a real IAM over SQLite.

func TestSDKKeyLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	k := e.sdk(e.admin())

	created := must[*awskms.CreateKeyOutput](t)(k.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("app key"),
		Tags: []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String("platform")}}}))
	m := created.KeyMetadata
	id := aws.ToString(m.KeyId)
	if aws.ToString(m.Arn) != "arn:aws:kms:us-east-1:123456789012:key/"+id || m.KeyState != types.KeyStateEnabled || !m.Enabled ||
		m.KeyManager != types.KeyManagerTypeCustomer || m.KeySpec != types.KeySpecSymmetricDefault ||
		m.KeyUsage != types.KeyUsageTypeEncryptDecrypt || aws.ToString(m.Description) != "app key" || len(aws.ToString(m.CurrentKeyMaterialId)) != 64 {
		t.Fatalf("CreateKey metadata = %+v", m)
	}
	if since := time.Since(aws.ToTime(m.CreationDate)); since < -time.Minute || since > time.Minute {
		t.Errorf("CreationDate = %v", m.CreationDate)
	}

	// DescribeKey by key ID, key ARN, alias name and alias ARN.
	must[*awskms.CreateAliasOutput](t)(k.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: aws.String(id)}))
	for _, ref := range []string{id, aws.ToString(m.Arn), "alias/app", "arn:aws:kms:us-east-1:123456789012:alias/app"} {
		d, err := k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(ref)})
		if err != nil || aws.ToString(d.KeyMetadata.KeyId) != id {
			t.Fatalf("DescribeKey(%s) = %v, %v", ref, d, err)
		}
	}
	// Unknown key, unknown alias, another region, malformed ARN.
	_, err := k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("11111111-2222-4333-8444-555555555555")})
	wantCode(t, err, "NotFoundException")
	if !strings.Contains(err.Error(), "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-4333-8444-555555555555' does not exist") {
		t.Errorf("message = %v", err)
	}
	_, err = k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/nope")})
	wantCode(t, err, "NotFoundException")
	_, err = k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:us-west-2:123456789012:key/" + id)})
	wantCode(t, err, "NotFoundException")
	if !strings.Contains(err.Error(), "Invalid arn us-west-2") {
		t.Errorf("other region: %v", err)
	}
	_, err = k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:us-east-1:12345:key/" + id)})
	wantCode(t, err, "InvalidArnException")

	// ListKeys pages.
	for range 2 {
		must[*awskms.CreateKeyOutput](t)(k.CreateKey(ctx, &awskms.CreateKeyInput{}))
	}
	var all []string
	var marker *string
	for {
		out := must[*awskms.ListKeysOutput](t)(k.ListKeys(ctx, &awskms.ListKeysInput{Limit: aws.Int32(2), Marker: marker}))
		for _, e := range out.Keys {
			all = append(all, aws.ToString(e.KeyId))
		}
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	if len(all) != 3 {
		t.Fatalf("ListKeys paged = %v", all)
	}
	_, err = k.ListKeys(ctx, &awskms.ListKeysInput{Marker: aws.String("garbage")})
	wantCode(t, err, "InvalidMarkerException")

	// Description, tags, policies.
	must[*awskms.UpdateKeyDescriptionOutput](t)(k.UpdateKeyDescription(ctx, &awskms.UpdateKeyDescriptionInput{KeyId: aws.String(id), Description: aws.String("new")}))
	must[*awskms.TagResourceOutput](t)(k.TagResource(ctx, &awskms.TagResourceInput{KeyId: aws.String(id),
		Tags: []types.Tag{{TagKey: aws.String("env"), TagValue: aws.String("prod")}}}))
	must[*awskms.UntagResourceOutput](t)(k.UntagResource(ctx, &awskms.UntagResourceInput{KeyId: aws.String(id), TagKeys: []string{"team"}}))
	tags := must[*awskms.ListResourceTagsOutput](t)(k.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: aws.String(id)}))
	if len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].TagKey) != "env" {
		t.Fatalf("tags = %+v", tags.Tags)
	}
	_, err = k.TagResource(ctx, &awskms.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("aws:x"), TagValue: aws.String("")}}})
	wantCode(t, err, "TagException")
	pol := must[*awskms.GetKeyPolicyOutput](t)(k.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: aws.String(id)}))
	if !strings.Contains(aws.ToString(pol.Policy), `"AWS" : "arn:aws:iam::123456789012:root"`) || aws.ToString(pol.PolicyName) != "default" {
		t.Fatalf("default policy = %s", aws.ToString(pol.Policy))
	}
	names := must[*awskms.ListKeyPoliciesOutput](t)(k.ListKeyPolicies(ctx, &awskms.ListKeyPoliciesInput{KeyId: aws.String(id)}))
	if len(names.PolicyNames) != 1 || names.PolicyNames[0] != "default" {
		t.Fatalf("policy names = %v", names.PolicyNames)
	}
	_, err = k.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: aws.String(id), Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*"}]}`)})
	wantCode(t, err, "MalformedPolicyDocumentException")
	// Lockout check: a policy that leaves the admin out.
	_, err = k.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: aws.String(id),
		Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/other"},"Action":"kms:*","Resource":"*"}]}`)})
	wantCode(t, err, "MalformedPolicyDocumentException")

	// Disable and enable.
	must[*awskms.DisableKeyOutput](t)(k.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(id)}))
	_, err = k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")})
	wantCode(t, err, "DisabledException")
	must[*awskms.EnableKeyOutput](t)(k.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(id)}))
	must[*awskms.EncryptOutput](t)(k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")}))

	// Scheduled deletion with the injected clock.
	_, err = k.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(3)})
	wantCode(t, err, "ValidationException")
	sd := must[*awskms.ScheduleKeyDeletionOutput](t)(k.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)}))
	if sd.KeyState != types.KeyStatePendingDeletion || aws.ToInt32(sd.PendingWindowInDays) != 7 || aws.ToString(sd.KeyId) != aws.ToString(m.Arn) {
		t.Fatalf("ScheduleKeyDeletion = %+v", sd)
	}
	_, err = k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")
	d := must[*awskms.DescribeKeyOutput](t)(k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)}))
	if d.KeyMetadata.KeyState != types.KeyStatePendingDeletion || d.KeyMetadata.DeletionDate == nil || aws.ToInt32(d.KeyMetadata.PendingDeletionWindowInDays) != 7 {
		t.Fatalf("pending key = %+v", d.KeyMetadata)
	}
	must[*awskms.CancelKeyDeletionOutput](t)(k.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(id)}))
	d = must[*awskms.DescribeKeyOutput](t)(k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)}))
	if d.KeyMetadata.KeyState != types.KeyStateDisabled {
		t.Fatalf("cancelled deletion leaves %s, want Disabled", d.KeyMetadata.KeyState)
	}
	_, err = k.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(id)})
	wantCode(t, err, "KMSInvalidStateException")
	must[*awskms.ScheduleKeyDeletionOutput](t)(k.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)}))
	e.clock.Advance(7*24*time.Hour - time.Minute)
	must[*awskms.DescribeKeyOutput](t)(k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)}))
	e.clock.Advance(2 * time.Minute)
	_, err = k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)})
	wantCode(t, err, "NotFoundException")
	_, err = k.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/app")})
	wantCode(t, err, "NotFoundException") // the alias went with the key
	left := must[*awskms.ListKeysOutput](t)(k.ListKeys(ctx, &awskms.ListKeysInput{}))
	if len(left.Keys) != 2 {
		t.Fatalf("keys after deletion = %d", len(left.Keys))
	}
}

func TestSDKEncryptDecrypt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	k := e.sdk(e.admin())
	id := aws.ToString(must[*awskms.CreateKeyOutput](t)(k.CreateKey(ctx, &awskms.CreateKeyInput{})).KeyMetadata.KeyId)
	arn := "arn:aws:kms:us-east-1:123456789012:key/" + id
	ec := map[string]string{"aws:ecr:arn": "arn:aws:ecr:us-east-1:123456789012:repository/app", "aws:s3:arn": "arn:aws:s3:::b/x"}

	// Without context.
	enc := must[*awskms.EncryptOutput](t)(k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("hello")}))
	if aws.ToString(enc.KeyId) != arn || enc.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("Encrypt = %+v", enc)
	}
	dec := must[*awskms.DecryptOutput](t)(k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}))
	if string(dec.Plaintext) != "hello" || aws.ToString(dec.KeyId) != arn {
		t.Fatalf("Decrypt = %+v", dec)
	}
	// With context: exactly the same context decrypts; changed, missing
	// and extra pairs fail alike (SPEC CTX-01).
	enc = must[*awskms.EncryptOutput](t)(k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("arn:aws:kms:us-east-1:123456789012:key/" + id),
		Plaintext: []byte("with context"), EncryptionContext: ec}))
	dec = must[*awskms.DecryptOutput](t)(k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(id)}))
	if string(dec.Plaintext) != "with context" {
		t.Fatalf("Decrypt with context = %q", dec.Plaintext)
	}
	changed := map[string]string{"aws:ecr:arn": ec["aws:ecr:arn"], "aws:s3:arn": "arn:aws:s3:::b/y"}
	missing := map[string]string{"aws:ecr:arn": ec["aws:ecr:arn"]}
	extra := map[string]string{"aws:ecr:arn": ec["aws:ecr:arn"], "aws:s3:arn": ec["aws:s3:arn"], "x": "y"}
	tampered := bytes.Clone(enc.CiphertextBlob)
	tampered[len(tampered)-1] ^= 1
	var messages []string
	for name, c := range map[string]struct {
		blob []byte
		ec   map[string]string
	}{"changed": {enc.CiphertextBlob, changed}, "missing": {enc.CiphertextBlob, missing}, "extra": {enc.CiphertextBlob, extra},
		"none": {enc.CiphertextBlob, nil}, "tampered": {tampered, ec}, "truncated": {enc.CiphertextBlob[:40], ec},
		"garbage": {[]byte("not a ciphertext at all, not at all, not at all, not at all, not at all"), nil}} {
		_, err := k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: c.blob, EncryptionContext: c.ec})
		if errCode(err) != "InvalidCiphertextException" {
			t.Errorf("%s: %v", name, err)
			continue
		}
		messages = append(messages, err.Error()[strings.Index(err.Error(), "InvalidCiphertextException"):])
	}
	for _, m := range messages[1:] {
		if m != messages[0] {
			t.Errorf("decryption failures differ: %q vs %q", m, messages[0])
		}
	}
	// A KeyId that is not the blob's.
	other := aws.ToString(must[*awskms.CreateKeyOutput](t)(k.CreateKey(ctx, &awskms.CreateKeyInput{})).KeyMetadata.KeyId)
	_, err := k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(other)})
	wantCode(t, err, "IncorrectKeyException")

	// Oversized plaintext, asymmetric algorithm, bad data key specs.
	_, err = k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: make([]byte, 4097)})
	wantCode(t, err, "ValidationException")
	must[*awskms.EncryptOutput](t)(k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: make([]byte, 4096)}))
	_, err = k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
	wantCode(t, err, "InvalidKeyUsageException")
	_, err = k.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(id)})
	wantCode(t, err, "ValidationException")
	_, err = k.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)})
	wantCode(t, err, "ValidationException")

	// Data keys.
	dk := must[*awskms.GenerateDataKeyOutput](t)(k.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256, EncryptionContext: ec}))
	if len(dk.Plaintext) != 32 || aws.ToString(dk.KeyId) != arn {
		t.Fatalf("GenerateDataKey = %+v", dk)
	}
	dec = must[*awskms.DecryptOutput](t)(k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec}))
	if !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		t.Fatal("data key does not round-trip")
	}
	nop := must[*awskms.GenerateDataKeyWithoutPlaintextOutput](t)(k.GenerateDataKeyWithoutPlaintext(ctx, &awskms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(id), NumberOfBytes: aws.Int32(17)}))
	dec = must[*awskms.DecryptOutput](t)(k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: nop.CiphertextBlob}))
	if len(dec.Plaintext) != 17 {
		t.Fatalf("GenerateDataKeyWithoutPlaintext plaintext = %d bytes", len(dec.Plaintext))
	}
	// ReEncrypt to another key and context.
	re := must[*awskms.ReEncryptOutput](t)(k.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: dk.CiphertextBlob,
		SourceEncryptionContext: ec, DestinationKeyId: aws.String(other), DestinationEncryptionContext: map[string]string{"k": "v"}}))
	if aws.ToString(re.SourceKeyId) != arn || !strings.HasSuffix(aws.ToString(re.KeyId), other) {
		t.Fatalf("ReEncrypt = %+v", re)
	}
	dec = must[*awskms.DecryptOutput](t)(k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: map[string]string{"k": "v"}}))
	if !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		t.Fatal("ReEncrypt lost the plaintext")
	}
	rnd := must[*awskms.GenerateRandomOutput](t)(k.GenerateRandom(ctx, &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(64)}))
	if len(rnd.Plaintext) != 64 {
		t.Fatalf("GenerateRandom = %d bytes", len(rnd.Plaintext))
	}
	_, err = k.GenerateRandom(ctx, &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(1025)})
	wantCode(t, err, "ValidationException")
	// DryRun.
	_, err = k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x"), DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperationException")
}

func TestSDKRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	k := e.sdk(e.admin())
	id := aws.ToString(must[*awskms.CreateKeyOutput](t)(k.CreateKey(ctx, &awskms.CreateKeyInput{})).KeyMetadata.KeyId)
	ec := map[string]string{"purpose": "rotation"}
	old := must[*awskms.EncryptOutput](t)(k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("v1"), EncryptionContext: ec}))
	first := must[*awskms.DecryptOutput](t)(k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: old.CiphertextBlob, EncryptionContext: ec}))

	st := must[*awskms.GetKeyRotationStatusOutput](t)(k.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: aws.String(id)}))
	if st.KeyRotationEnabled {
		t.Fatal("rotation enabled by default")
	}
	_, err := k.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: aws.String(id), RotationPeriodInDays: aws.Int32(30)})
	wantCode(t, err, "ValidationException")
	must[*awskms.EnableKeyRotationOutput](t)(k.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: aws.String(id), RotationPeriodInDays: aws.Int32(90)}))
	st = must[*awskms.GetKeyRotationStatusOutput](t)(k.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: aws.String(id)}))
	if !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 90 || st.NextRotationDate == nil {
		t.Fatalf("rotation status = %+v", st)
	}

	// On demand.
	must[*awskms.RotateKeyOnDemandOutput](t)(k.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: aws.String(id)}))
	mid := must[*awskms.EncryptOutput](t)(k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("v2"), EncryptionContext: ec}))
	// Automatic, when due (injected clock + Sweep).
	e.clock.Advance(91 * 24 * time.Hour)
	if _, rotated, err := e.svc.Sweep(ctx); err != nil || rotated != 1 {
		t.Fatalf("Sweep rotated %d, %v", rotated, err)
	}
	st = must[*awskms.GetKeyRotationStatusOutput](t)(k.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: aws.String(id)}))
	if !aws.ToTime(st.NextRotationDate).After(e.clock.Now()) {
		t.Fatalf("next rotation %v is not after now", st.NextRotationDate)
	}
	newer := must[*awskms.EncryptOutput](t)(k.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("v3"), EncryptionContext: ec}))

	seen := map[string]string{}
	for i, c := range [][]byte{old.CiphertextBlob, mid.CiphertextBlob, newer.CiphertextBlob} {
		d := must[*awskms.DecryptOutput](t)(k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: c, EncryptionContext: ec}))
		if want := []string{"v1", "v2", "v3"}[i]; string(d.Plaintext) != want {
			t.Fatalf("ciphertext %d decrypts to %q", i, d.Plaintext)
		}
		seen[aws.ToString(d.KeyMaterialId)] = string(d.Plaintext)
	}
	if len(seen) != 3 || seen[aws.ToString(first.KeyMaterialId)] != "v1" {
		t.Fatalf("material IDs = %v", seen)
	}
	rots := must[*awskms.ListKeyRotationsOutput](t)(k.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: aws.String(id)}))
	if len(rots.Rotations) != 2 || rots.Rotations[0].RotationType != types.RotationTypeOnDemand || rots.Rotations[1].RotationType != types.RotationTypeAutomatic {
		t.Fatalf("rotations = %+v", rots.Rotations)
	}
	all := must[*awskms.ListKeyRotationsOutput](t)(k.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: aws.String(id), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial}))
	if len(all.Rotations) != 3 || all.Rotations[2].KeyMaterialState != types.KeyMaterialStateCurrent || all.Rotations[0].KeyMaterialState != types.KeyMaterialStateNonCurrent {
		t.Fatalf("all material = %+v", all.Rotations)
	}
	must[*awskms.DisableKeyRotationOutput](t)(k.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: aws.String(id)}))
	// Disabled keys refuse rotation settings.
	must[*awskms.DisableKeyOutput](t)(k.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(id)}))
	_, err = k.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: aws.String(id)})
	wantCode(t, err, "DisabledException")
	_, err = k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: old.CiphertextBlob, EncryptionContext: ec})
	wantCode(t, err, "DisabledException")
}

func TestSDKUnsupportedAndUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	k := e.sdk(e.admin())
	_, err := k.Sign(ctx, &awskms.SignInput{KeyId: aws.String("alias/x"), Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
	wantCode(t, err, "UnsupportedOperationException")
	if !strings.Contains(err.Error(), "Sign") {
		t.Errorf("message does not name the operation: %v", err)
	}
	_, err = k.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = k.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: "NOPE"})
	wantCode(t, err, "ValidationException")
	_, err = k.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String("{not json")})
	wantCode(t, err, "MalformedPolicyDocumentException")
}
