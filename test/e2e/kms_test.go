//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// TestKMS drives the built-in KMS (issue #5) on the real server, through
// the AWS door's SigV4 for service kms, with the aws CLI (blobs as
// fileb://, SPEC TRBL-03/05's commands as written) and aws-sdk-go-v2: key
// lifecycle, aliases, encrypt/decrypt with and without context, a user
// denied by the key policy and allowed only through a grant, retire and
// revoke, disable/enable, rotation with old ciphertexts decrypting, and
// scheduled deletion.
func TestKMS(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	c := startCoffer(t)
	requireTool(t, "aws")
	endpoint := c.URL("")
	dir := t.TempDir()
	kmsCLI := func(env []string, args ...string) (map[string]any, error) {
		out, err := runErr(ctx, env, nil, "aws", append(append([]string{"kms"}, args...), "--endpoint-url", endpoint, "--output", "json")...)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("aws kms %v: output is not JSON: %v\n%s", args, err, out)
			}
		}
		return m, nil
	}
	ok := func(env []string, args ...string) map[string]any {
		t.Helper()
		m, err := kmsCLI(env, args...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	fails := func(code string, env []string, args ...string) {
		t.Helper()
		if _, err := kmsCLI(env, args...); err == nil || !strings.Contains(err.Error(), "("+code+")") {
			t.Fatalf("aws kms %v = %v, want %s", args, err, code)
		}
	}
	str := func(m map[string]any, path ...string) string {
		var v any = m
		for _, p := range path {
			v = v.(map[string]any)[p]
		}
		s, _ := v.(string)
		return s
	}
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return "fileb://" + p
	}
	b64 := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("not base64: %q", s)
		}
		return b
	}
	admin := c.awsEnv()

	key := ok(admin, "create-key", "--description", "e2e key")
	id, arn := str(key, "KeyMetadata", "KeyId"), str(key, "KeyMetadata", "Arn")
	if !strings.HasPrefix(arn, "arn:aws:kms:us-east-1:") || str(key, "KeyMetadata", "KeyManager") != "CUSTOMER" {
		t.Fatalf("create-key = %v", key)
	}
	ok(admin, "create-alias", "--alias-name", "alias/e2e", "--target-key-id", id)
	if d := ok(admin, "describe-key", "--key-id", "alias/e2e"); str(d, "KeyMetadata", "Arn") != arn {
		t.Fatalf("describe-key alias/e2e = %v", d)
	}
	pt := file("pt.bin", []byte("e2e secret"))
	enc := ok(admin, "encrypt", "--key-id", "alias/e2e", "--plaintext", pt, "--encryption-context", "aws:ecr:arn=arn:aws:ecr:us-east-1:1:repository/app")
	blob := file("ct.bin", b64(str(enc, "CiphertextBlob")))
	if d := ok(admin, "decrypt", "--ciphertext-blob", blob, "--encryption-context", "aws:ecr:arn=arn:aws:ecr:us-east-1:1:repository/app"); string(b64(str(d, "Plaintext"))) != "e2e secret" {
		t.Fatalf("decrypt = %v", d)
	}
	fails("InvalidCiphertextException", admin, "decrypt", "--ciphertext-blob", blob)
	plain := file("ct2.bin", b64(str(ok(admin, "encrypt", "--key-id", id, "--plaintext", pt), "CiphertextBlob")))

	// A user with no KMS permission: denied by the key policy (J-03 alone
	// does not allow users), allowed through a grant.
	runIAM := func(args ...string) map[string]any {
		t.Helper()
		out := run(t, ctx, admin, nil, "aws", append(append([]string{"iam"}, args...), "--endpoint-url", endpoint, "--output", "json")...)
		var m map[string]any
		json.Unmarshal([]byte(out), &m)
		return m
	}
	runIAM("create-user", "--user-name", "kmsuser")
	ak := runIAM("create-access-key", "--user-name", "kmsuser")
	user := append(c.awsEnv(), "AWS_ACCESS_KEY_ID="+str(ak, "AccessKey", "AccessKeyId"), "AWS_SECRET_ACCESS_KEY="+str(ak, "AccessKey", "SecretAccessKey"))
	userARN := "arn:aws:iam::" + strings.Split(arn, ":")[4] + ":user/kmsuser"
	fails("AccessDeniedException", user, "decrypt", "--ciphertext-blob", plain)
	g := ok(admin, "create-grant", "--key-id", id, "--grantee-principal", userARN, "--operations", "Decrypt")
	if d := ok(user, "decrypt", "--ciphertext-blob", plain); string(b64(str(d, "Plaintext"))) != "e2e secret" {
		t.Fatalf("grantee decrypt = %v", d)
	}
	grants := ok(admin, "list-grants", "--key-id", id, "--region", "us-east-1") // SPEC C-01
	if list, _ := grants["Grants"].([]any); len(list) != 1 || str(list[0].(map[string]any), "GrantId") != str(g, "GrantId") {
		t.Fatalf("list-grants = %v", grants)
	}
	ok(admin, "retire-grant", "--key-id", id, "--grant-id", str(g, "GrantId"), "--region", "us-east-1") // SPEC C-02
	fails("AccessDeniedException", user, "decrypt", "--ciphertext-blob", plain)
	g = ok(admin, "create-grant", "--key-id", arn, "--grantee-principal", userARN, "--operations", "Decrypt")
	ok(user, "decrypt", "--ciphertext-blob", plain)
	ok(admin, "revoke-grant", "--key-id", arn, "--grant-id", str(g, "GrantId"))
	fails("AccessDeniedException", user, "decrypt", "--ciphertext-blob", plain)

	// Disable/enable, rotation, scheduled deletion.
	ok(admin, "disable-key", "--key-id", id)
	fails("DisabledException", admin, "decrypt", "--ciphertext-blob", plain)
	ok(admin, "enable-key", "--key-id", id)
	ok(admin, "rotate-key-on-demand", "--key-id", id)
	ok(admin, "decrypt", "--ciphertext-blob", plain)
	s := ok(admin, "schedule-key-deletion", "--key-id", id, "--pending-window-in-days", "7")
	if str(s, "KeyState") != "PendingDeletion" {
		t.Fatalf("schedule-key-deletion = %v", s)
	}
	fails("KMSInvalidStateException", admin, "encrypt", "--key-id", id, "--plaintext", pt)
	ok(admin, "cancel-key-deletion", "--key-id", id)
	fails("UnsupportedOperationException", admin, "sign", "--key-id", id, "--message", pt, "--signing-algorithm", "ECDSA_SHA_256")

	// aws-sdk-go-v2 against the same server.
	k := awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: adminKeyID, SecretAccessKey: adminSecret}, nil
		})})
	if _, err := k.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"aws:ecr:arn": "arn:aws:ecr:us-east-1:1:repository/sdk"}
	dk, err := k.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String("alias/e2e"), KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	out, err := k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	if err != nil || !bytes.Equal(out.Plaintext, dk.Plaintext) {
		t.Fatalf("sdk decrypt = %v", err)
	}
	_, err = k.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidCiphertextException" {
		t.Fatalf("sdk decrypt without context = %v", err)
	}
}
