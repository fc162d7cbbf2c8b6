package kms

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const (
	kmsAll  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`
	j04     = `{ "Version": "2012-10-17", "Statement": { "Effect": "Allow", "Action": [ "kms:ListKeys", "kms:ListAliases", "kms:DescribeKey" ], "Resource": "*" } }`
	repoARN = "arn:aws:ecr:us-east-1:123456789012:repository/app"
)

// keyPolicy returns a key policy: the J-03 delegation to the account
// (unless noRoot) plus the given statements.
func keyPolicy(noRoot bool, stmts ...string) string {
	var all []string
	if !noRoot {
		all = append(all, `{"Sid":"EnableIAMUserPermissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}`)
	}
	all = append(all, stmts...)
	return `{"Version":"2012-10-17","Id":"ecr-key-policy","Statement":[` + strings.Join(all, ",") + `]}`
}

// TestKeyPolicyDecides covers SPEC KMS-06/07, PERM-03..07 and J-01..J-04
// over HTTP: the key policy decides, delegating to IAM through the account.
func TestKeyPolicyDecides(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	admin := e.sdk(e.admin())
	newKey := func(policy string) string {
		in := &awskms.CreateKeyInput{}
		if policy != "" {
			in.Policy, in.BypassPolicyLockoutSafetyCheck = aws.String(policy), true
		}
		return aws.ToString(must[*awskms.CreateKeyOutput](t)(admin.CreateKey(ctx, in)).KeyMetadata.Arn)
	}
	j03Key := newKey("")
	alice := e.newUser("alice")
	bob := e.newUser("bob", kmsAll)
	j02 := `{ "Version": "2012-10-17", "Id": "ecr-kms-permissions", "Statement": [ { "Sid": "AllowAccessToCreateAndRetireTheGrantsAssociatedWithTheKeyAsWellAsDescribeTheKey", "Effect": "Allow", "Action": [ "kms:CreateGrant", "kms:RetireGrant", "kms:DescribeKey" ], "Resource": "` + j03Key + `" } ] }`
	carol := e.newUser("carol", j02, j04)

	// alice has no IAM policy: the J-03 key policy alone does not allow her.
	_, err := e.sdk(alice).DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(j03Key)})
	wantCode(t, err, "AccessDeniedException")
	want := "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: kms:DescribeKey on resource: " + j03Key +
		" because no identity-based policy allows the kms:DescribeKey action"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message = %v\nwant %s", err, want)
	}
	// bob's IAM kms:* works through the J-03 delegation.
	must[*awskms.EncryptOutput](t)(e.sdk(bob).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(j03Key), Plaintext: []byte("x")}))
	// carol (J-02 + J-04) may describe and list, not encrypt.
	must[*awskms.DescribeKeyOutput](t)(e.sdk(carol).DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(j03Key)}))
	must[*awskms.ListKeysOutput](t)(e.sdk(carol).ListKeys(ctx, &awskms.ListKeysInput{}))
	must[*awskms.ListAliasesOutput](t)(e.sdk(carol).ListAliases(ctx, &awskms.ListAliasesInput{}))
	_, err = e.sdk(carol).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(j03Key), Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException")

	// A key policy without the account delegation ignores bob's IAM kms:*.
	noIAM := newKey(keyPolicy(true, `{"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"`+adminARN+`"},"Action":"kms:*","Resource":"*"}`))
	_, err = e.sdk(bob).DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(noIAM)})
	wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(err.Error(), "because no resource-based policy allows the kms:DescribeKey action") {
		t.Errorf("message = %v", err)
	}
	// A key policy naming alice directly allows her without IAM (PERM-06).
	named := newKey(keyPolicy(false, `{"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":["kms:DescribeKey","kms:CreateGrant"],"Resource":"*"}`))
	must[*awskms.DescribeKeyOutput](t)(e.sdk(alice).DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(named)}))
	// Explicit deny in the key policy beats bob's IAM allow.
	denied := newKey(keyPolicy(false, `{"Sid":"NoDecrypt","Effect":"Deny","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*"}`))
	ct := must[*awskms.EncryptOutput](t)(e.sdk(bob).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(denied), Plaintext: []byte("x")}))
	_, err = e.sdk(bob).Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
	wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(err.Error(), "with an explicit deny in a resource-based policy") {
		t.Errorf("message = %v", err)
	}

	// KMS-07: kms:ViaService lets alice use the key only through ECR.
	via := newKey(keyPolicy(false, `{"Sid":"ViaECR","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*","Condition":{"StringEquals":{"kms:ViaService":"ecr.us-east-1.amazonaws.com","kms:CallerAccount":"123456789012"}}}`))
	ec := map[string]string{"aws:ecr:arn": repoARN, "aws:s3:arn": "arn:aws:s3:::layers/sha256:ab"}
	dk, err := e.svc.GenerateDataKey(ctx, alice.viaECR(), &GenerateDataKeyInput{KeyId: via, KeySpec: "AES_256", EncryptionContext: ec})
	if err != nil {
		t.Fatalf("GenerateDataKey via ECR: %v", err)
	}
	if _, err := e.svc.Decrypt(ctx, alice.viaECR(), &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec}); err != nil {
		t.Fatalf("Decrypt via ECR: %v", err)
	}
	_, err = e.sdk(alice).GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(via), KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")
	_, err = e.svc.Decrypt(ctx, alice.caller(), &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")

	// kms:EncryptionContext:<key> and kms:EncryptionContextKeys conditions.
	ctxKey := newKey(keyPolicy(false, `{"Sid":"OnlyApp","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"kms:Encrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:aws:ecr:arn":"`+repoARN+`"},"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["aws:ecr:arn","aws:s3:arn"]}}}`))
	if _, err := e.svc.Encrypt(ctx, alice.caller(), &EncryptInput{KeyId: ctxKey, Plaintext: []byte("x"), EncryptionContext: ec}); err != nil {
		t.Fatalf("Encrypt with the allowed context: %v", err)
	}
	_, err = e.svc.Encrypt(ctx, alice.caller(), &EncryptInput{KeyId: ctxKey, Plaintext: []byte("x"), EncryptionContext: map[string]string{"aws:ecr:arn": repoARN + "x"}})
	wantCode(t, err, "AccessDeniedException")
	_, err = e.svc.Encrypt(ctx, alice.caller(), &EncryptInput{KeyId: ctxKey, Plaintext: []byte("x"), EncryptionContext: map[string]string{"aws:ecr:arn": repoARN, "other": "x"}})
	wantCode(t, err, "AccessDeniedException")
}

// TestGrants covers grants end to end over HTTP: a user allowed only
// through a grant, constraints matching and not, grant tokens used at once,
// retire (retiring principal, grantee, account with J-01) and revoke, and
// that a revoke takes effect on the very next call (SPEC GRANT-04).
func TestGrants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	admin := e.sdk(e.admin())
	keyARN := aws.ToString(must[*awskms.CreateKeyOutput](t)(admin.CreateKey(ctx, &awskms.CreateKeyInput{})).KeyMetadata.Arn)
	keyID := keyARN[strings.LastIndexByte(keyARN, '/')+1:]
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	ec := map[string]string{"aws:ecr:arn": repoARN, "aws:s3:arn": "arn:aws:s3:::layers/sha256:ab"}

	// alice has nothing.
	_, err := e.sdk(alice).GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")

	// A constrained grant, its token used at once.
	g := must[*awskms.CreateGrantOutput](t)(admin.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyID),
		GranteePrincipal: aws.String(alice.arn), RetiringPrincipal: aws.String(bob.arn), Name: aws.String("app-grant"),
		Operations:  []types.GrantOperation{types.GrantOperationGenerateDataKey, types.GrantOperationDecrypt, types.GrantOperationDescribeKey},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"aws:ecr:arn": repoARN}}}))
	if len(aws.ToString(g.GrantId)) != 64 || aws.ToString(g.GrantToken) == "" {
		t.Fatalf("CreateGrant = %+v", g)
	}
	ak := e.sdk(alice)
	dk := must[*awskms.GenerateDataKeyOutput](t)(ak.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(keyARN),
		KeySpec: types.DataKeySpecAes256, EncryptionContext: ec, GrantTokens: []string{aws.ToString(g.GrantToken)}}))
	must[*awskms.DecryptOutput](t)(ak.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec}))
	must[*awskms.DescribeKeyOutput](t)(ak.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(keyID)}))
	// Constraint not matching: another repository, or no context.
	_, err = ak.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256,
		EncryptionContext: map[string]string{"aws:ecr:arn": repoARN + "-other"}})
	wantCode(t, err, "AccessDeniedException")
	_, err = ak.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256})
	wantCode(t, err, "AccessDeniedException")
	// Operation not granted.
	_, err = ak.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x"), EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")
	_, err = ak.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256,
		EncryptionContext: ec, GrantTokens: []string{"bogus"}})
	wantCode(t, err, "InvalidGrantTokenException")

	// Name makes CreateGrant idempotent (same ID, new token).
	again := must[*awskms.CreateGrantOutput](t)(admin.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyID),
		GranteePrincipal: aws.String(alice.arn), RetiringPrincipal: aws.String(bob.arn), Name: aws.String("app-grant"),
		Operations:  []types.GrantOperation{types.GrantOperationDescribeKey, types.GrantOperationGenerateDataKey, types.GrantOperationDecrypt},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"aws:ecr:arn": repoARN}}}))
	if aws.ToString(again.GrantId) != aws.ToString(g.GrantId) || aws.ToString(again.GrantToken) == aws.ToString(g.GrantToken) {
		t.Fatalf("idempotent CreateGrant = %+v, first %+v", again, g)
	}
	// EncryptionContextEquals: exact match only.
	eq := must[*awskms.CreateGrantOutput](t)(admin.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyARN),
		GranteePrincipal: aws.String(bob.arn), Operations: []types.GrantOperation{types.GrantOperationEncrypt},
		Constraints: &types.GrantConstraints{EncryptionContextEquals: map[string]string{"a": "1"}}}))
	bk := e.sdk(bob)
	must[*awskms.EncryptOutput](t)(bk.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x"), EncryptionContext: map[string]string{"a": "1"}}))
	_, err = bk.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x"), EncryptionContext: map[string]string{"a": "1", "b": "2"}})
	wantCode(t, err, "AccessDeniedException")

	// ListGrants: filters and paging (SPEC TRBL-03/04).
	lg := must[*awskms.ListGrantsOutput](t)(admin.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: aws.String(keyID)}))
	if len(lg.Grants) != 2 {
		t.Fatalf("grants = %+v", lg.Grants)
	}
	for _, gr := range lg.Grants {
		if aws.ToString(gr.KeyId) != keyARN || aws.ToString(gr.IssuingAccount) != "arn:aws:iam::123456789012:root" || gr.CreationDate == nil {
			t.Errorf("grant entry = %+v", gr)
		}
		if aws.ToString(gr.GrantId) == aws.ToString(g.GrantId) && gr.Constraints.EncryptionContextSubset["aws:ecr:arn"] != repoARN {
			t.Errorf("grant constraints = %+v", gr.Constraints)
		}
	}
	one := must[*awskms.ListGrantsOutput](t)(admin.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: aws.String(keyID), GranteePrincipal: aws.String(bob.arn)}))
	if len(one.Grants) != 1 || aws.ToString(one.Grants[0].GrantId) != aws.ToString(eq.GrantId) {
		t.Fatalf("grantee filter = %+v", one.Grants)
	}
	p1 := must[*awskms.ListGrantsOutput](t)(admin.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: aws.String(keyID), Limit: aws.Int32(1)}))
	p2 := must[*awskms.ListGrantsOutput](t)(admin.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: aws.String(keyID), Limit: aws.Int32(1), Marker: p1.NextMarker}))
	if !p1.Truncated || p2.Truncated || len(p2.Grants) != 1 || aws.ToString(p1.Grants[0].GrantId) == aws.ToString(p2.Grants[0].GrantId) {
		t.Fatalf("paging: %+v / %+v", p1, p2)
	}
	_, err = admin.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: aws.String("alias/x")})
	wantCode(t, err, "InvalidArnException")
	retirable := must[*awskms.ListRetirableGrantsOutput](t)(admin.ListRetirableGrants(ctx, &awskms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(bob.arn)}))
	if len(retirable.Grants) != 1 {
		t.Fatalf("retirable = %+v", retirable.Grants)
	}

	// Invalid grants.
	for name, in := range map[string]*awskms.CreateGrantInput{
		"operation":    {KeyId: aws.String(keyID), GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{"Fly"}},
		"asymmetric":   {KeyId: aws.String(keyID), GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{types.GrantOperationSign}},
		"both":         {KeyId: aws.String(keyID), GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{types.GrantOperationDecrypt}, Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"a": "b"}, EncryptionContextEquals: map[string]string{"a": "b"}}},
		"empty subset": {KeyId: aws.String(keyID), GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{types.GrantOperationDecrypt}, Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{}}},
		"principal":    {KeyId: aws.String(keyID), GranteePrincipal: aws.String("arn:aws:s3:::bucket"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}},
	} {
		_, err := admin.CreateGrant(ctx, in)
		if errCode(err) != "ValidationException" {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Retire: neither alice (grantee without RetireGrant) nor a stranger;
	// the retiring principal may.
	_, err = ak.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: g.GrantToken})
	wantCode(t, err, "AccessDeniedException")
	must[*awskms.RetireGrantOutput](t)(bk.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: g.GrantToken}))
	// Retired: the very next call fails.
	_, err = ak.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")

	// The account: J-01 in IAM lets a user retire by key and grant ID.
	j01 := `{ "Version": "2012-10-17", "Id": "ecr-kms-permissions", "Statement": [ { "Sid": "AllowAccessToRetireTheGrantsAssociatedWithTheKey", "Effect": "Allow", "Action": [ "kms:RetireGrant" ], "Resource": "` + keyARN + `" } ] }`
	dave := e.newUser("dave", j01)
	_, err = ak.RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: aws.String(keyID), GrantId: eq.GrantId})
	wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(err.Error(), "because no identity-based policy allows the kms:RetireGrant action") {
		t.Errorf("message = %v", err)
	}
	must[*awskms.RetireGrantOutput](t)(e.sdk(dave).RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: aws.String(keyID), GrantId: eq.GrantId}))
	_, err = e.sdk(dave).RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: aws.String(keyID), GrantId: eq.GrantId})
	wantCode(t, err, "NotFoundException")
	_, err = e.sdk(dave).RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: aws.String(keyID), GrantId: aws.String("GrantId")})
	wantCode(t, err, "InvalidGrantIdException")

	// Revoke needs kms:RevokeGrant (key policy + IAM); the next call fails.
	g3 := must[*awskms.CreateGrantOutput](t)(admin.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyID),
		GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationRetireGrant}}))
	must[*awskms.EncryptOutput](t)(ak.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x")}))
	_, err = ak.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: aws.String(keyID), GrantId: g3.GrantId})
	wantCode(t, err, "AccessDeniedException")
	must[*awskms.RevokeGrantOutput](t)(admin.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: aws.String(keyID), GrantId: g3.GrantId}))
	_, err = ak.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException")
	// The grantee may retire a grant that allows RetireGrant.
	g4 := must[*awskms.CreateGrantOutput](t)(admin.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyID),
		GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{types.GrantOperationRetireGrant}}))
	must[*awskms.RetireGrantOutput](t)(ak.RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: aws.String(keyARN), GrantId: g4.GrantId}))

	// A disabled key refuses its grantees too, and new grants.
	g5 := must[*awskms.CreateGrantOutput](t)(admin.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyID),
		GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{types.GrantOperationEncrypt}}))
	must[*awskms.DisableKeyOutput](t)(admin.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(keyID)}))
	_, err = ak.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x")})
	wantCode(t, err, "DisabledException")
	_, err = admin.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyID), GranteePrincipal: aws.String(alice.arn), Operations: []types.GrantOperation{types.GrantOperationEncrypt}})
	wantCode(t, err, "DisabledException")
	must[*awskms.RevokeGrantOutput](t)(admin.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: aws.String(keyID), GrantId: g5.GrantId}))
}

// TestManagedKey covers SPEC KMS-01/02/05 and the AWS managed key's
// immutability.
func TestManagedKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	admin := e.sdk(e.admin())
	aliases := must[*awskms.ListAliasesOutput](t)(admin.ListAliases(ctx, &awskms.ListAliasesInput{}))
	if len(aliases.Aliases) != 0 {
		t.Fatalf("aliases before first use = %+v", aliases.Aliases)
	}
	arn, err := e.svc.ManagedKey(ctx, "ecr")
	if err != nil {
		t.Fatal(err)
	}
	arn2, err := e.svc.ManagedKey(ctx, "ecr")
	if err != nil || arn2 != arn {
		t.Fatalf("second ManagedKey = %s, %v; want %s", arn2, err, arn)
	}
	aliases = must[*awskms.ListAliasesOutput](t)(admin.ListAliases(ctx, &awskms.ListAliasesInput{}))
	if len(aliases.Aliases) != 1 || aws.ToString(aliases.Aliases[0].AliasName) != "alias/aws/ecr" || !strings.HasSuffix(arn, aws.ToString(aliases.Aliases[0].TargetKeyId)) {
		t.Fatalf("aliases = %+v", aliases.Aliases)
	}
	d := must[*awskms.DescribeKeyOutput](t)(admin.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/aws/ecr")}))
	if d.KeyMetadata.KeyManager != types.KeyManagerTypeAws || aws.ToString(d.KeyMetadata.Arn) != arn {
		t.Fatalf("managed key = %+v", d.KeyMetadata)
	}
	// Nobody may change it: not the administrator, not through ECR.
	for name, call := range map[string]func() error{
		"PutKeyPolicy": func() error {
			_, err := admin.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: aws.String(arn), Policy: aws.String(keyPolicy(false)), BypassPolicyLockoutSafetyCheck: true})
			return err
		},
		"DisableKey": func() error {
			_, err := admin.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)})
			return err
		},
		"ScheduleKeyDeletion": func() error {
			_, err := admin.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(arn)})
			return err
		},
		"RotateKeyOnDemand": func() error {
			_, err := admin.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: aws.String(arn)})
			return err
		},
		"DeleteAlias": func() error {
			_, err := admin.DeleteAlias(ctx, &awskms.DeleteAliasInput{AliasName: aws.String("alias/aws/ecr")})
			return err
		},
		"CreateAlias reserved": func() error {
			_, err := admin.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/aws/mine"), TargetKeyId: aws.String(arn)})
			return err
		},
		"ScheduleKeyDeletion via ECR": func() error {
			_, err := e.svc.ScheduleKeyDeletion(ctx, e.admin().viaECR(), &ScheduleKeyDeletionInput{KeyId: arn})
			return err
		},
	} {
		err := call()
		want := "AccessDeniedException"
		if name == "CreateAlias reserved" {
			want = "InvalidAliasNameException"
		}
		if errCode(err) != want {
			t.Errorf("%s on the AWS managed key: %v, want %s", name, err, want)
		}
	}
	// KMS-05: any principal of the account may use it through ECR, with no
	// KMS permission of its own; not directly.
	nobody := e.newUser("nobody")
	ec := map[string]string{"aws:ecr:arn": repoARN}
	dk, err := e.svc.GenerateDataKey(ctx, nobody.viaECR(), &GenerateDataKeyInput{KeyId: "alias/aws/ecr", KeySpec: "AES_256", EncryptionContext: ec})
	if err != nil {
		t.Fatalf("GenerateDataKey via ECR: %v", err)
	}
	if _, err := e.svc.CreateGrant(ctx, nobody.viaECR(), &CreateGrantInput{KeyId: arn, GranteePrincipal: ecrVia,
		Operations: []string{"Decrypt"}, Constraints: &GrantConstraints{EncryptionContextSubset: ec}}); err != nil {
		t.Fatalf("CreateGrant via ECR: %v", err)
	}
	_, err = e.svc.Decrypt(ctx, nobody.caller(), &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")
	// The account may read it.
	must[*awskms.GetKeyPolicyOutput](t)(admin.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: aws.String(arn)}))
	_, err = e.svc.ManagedKey(ctx, "s3")
	wantCode(t, err, "NotFoundException")
}

// TestServiceGrantForRegistry is the registry's use of grants through the
// seam (SPEC FLOW, GRANT): a user without any KMS permission pushes and
// pulls through ECR because the grant names the ECR service principal;
// revoking it breaks the very next call (GRANT-03/04).
func TestServiceGrantForRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	admin := e.admin()
	// PERM-06: the key policy lets the creator create grants and describe.
	key, err := e.svc.CreateKey(ctx, admin.caller(), &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	arn := key.KeyMetadata.Arn
	ec := map[string]string{"aws:ecr:arn": repoARN, "aws:s3:arn": "arn:aws:s3:::layers/x"}
	var ids []string
	for range 2 { // FLOW-02: two grants
		g, err := e.svc.CreateGrant(ctx, admin.viaECR(), &CreateGrantInput{KeyId: arn, GranteePrincipal: ecrVia, RetiringPrincipal: "ecr.amazonaws.com",
			Operations:  []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "DescribeKey", "RetireGrant"},
			Constraints: &GrantConstraints{EncryptionContextSubset: map[string]string{"aws:ecr:arn": repoARN}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.GrantId)
	}
	puller := e.newUser("puller")
	dk, err := e.svc.GenerateDataKey(ctx, puller.viaECR(), &GenerateDataKeyInput{KeyId: arn, KeySpec: "AES_256", EncryptionContext: ec})
	if err != nil {
		t.Fatalf("push through ECR: %v", err)
	}
	if _, err := e.svc.Decrypt(ctx, puller.viaECR(), &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec}); err != nil {
		t.Fatalf("pull through ECR: %v", err)
	}
	// Another repository's context is not covered.
	_, err = e.svc.GenerateDataKey(ctx, puller.viaECR(), &GenerateDataKeyInput{KeyId: arn, KeySpec: "AES_256",
		EncryptionContext: map[string]string{"aws:ecr:arn": repoARN + "2"}})
	wantCode(t, err, "AccessDeniedException")
	// RetireGrant through ECR uses the user's own authority (PERM-02):
	// puller has no kms:RetireGrant.
	_, err = e.svc.RetireGrant(ctx, puller.viaECR(), &RetireGrantInput{KeyId: arn, GrantId: ids[0]})
	wantCode(t, err, "AccessDeniedException")
	// Revoke both: the very next push and pull fail.
	for _, id := range ids {
		if _, err := e.svc.RevokeGrant(ctx, admin.caller(), &RevokeGrantInput{KeyId: arn, GrantId: id}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.svc.Decrypt(ctx, puller.viaECR(), &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")
	_, err = e.svc.GenerateDataKey(ctx, puller.viaECR(), &GenerateDataKeyInput{KeyId: arn, KeySpec: "AES_256", EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")
}
