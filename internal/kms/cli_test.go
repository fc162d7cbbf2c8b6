package kms

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// awsCLI runs the real aws CLI against the test server with its own config
// and credentials. The CLI is installed on every machine here: its
// absence fails the test.
type awsCLI struct {
	t   *testing.T
	bin string
	env []string
	dir string
	url string
}

func newAWSCLI(t *testing.T, e *env, u user) *awsCLI {
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("the aws CLI must be installed: %v", err)
	}
	dir := t.TempDir()
	c := &awsCLI{t: t, bin: bin, dir: dir, url: e.URL}
	os.WriteFile(filepath.Join(dir, "config"), []byte("[default]\nregion = us-east-1\noutput = json\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "credentials"), []byte("[default]\naws_access_key_id = "+u.keyID+"\naws_secret_access_key = "+u.secret+"\n"), 0o600)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			c.env = append(c.env, kv)
		}
	}
	c.env = append(c.env, "AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1")
	return c
}

func (c *awsCLI) exec(args ...string) (string, string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Minute)
	defer cancel()
	full := append([]string{"kms"}, args...)
	full = append(full, "--endpoint-url", c.url)
	cmd := exec.CommandContext(ctx, c.bin, full...)
	cmd.Env, cmd.Dir = c.env, c.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (c *awsCLI) run(args ...string) map[string]any {
	c.t.Helper()
	stdout, stderr, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("aws kms %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var v map[string]any
	if strings.TrimSpace(stdout) != "" {
		if err := json.Unmarshal([]byte(stdout), &v); err != nil {
			c.t.Fatalf("aws kms %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
	return v
}

func (c *awsCLI) fail(code string, args ...string) string {
	c.t.Helper()
	_, stderr, err := c.exec(args...)
	if err == nil || !strings.Contains(stderr, "("+code+")") {
		c.t.Fatalf("aws kms %s: %v %s, want %s", strings.Join(args, " "), err, stderr, code)
	}
	return stderr
}

func (c *awsCLI) file(name string, data []byte) string {
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func field(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	s, _ := v.(string)
	return s
}

// TestAWSCLI drives the KMS with the real aws CLI: key lifecycle, aliases,
// encrypt/decrypt with blobs as fileb://, grants with SPEC TRBL-03/05's
// list-grants and retire-grant as written, rotation, deletion.
func TestAWSCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cli := newAWSCLI(t, e, e.admin())

	key := cli.run("create-key", "--description", "cli key", "--tags", "TagKey=team,TagValue=platform")
	id, arn := field(key, "KeyMetadata", "KeyId"), field(key, "KeyMetadata", "Arn")
	if field(key, "KeyMetadata", "KeyState") != "Enabled" || !strings.HasSuffix(arn, ":key/"+id) {
		t.Fatalf("create-key = %v", key)
	}
	cli.run("create-alias", "--alias-name", "alias/cli", "--target-key-id", id)
	if d := cli.run("describe-key", "--key-id", "alias/cli"); field(d, "KeyMetadata", "KeyId") != id {
		t.Fatalf("describe-key alias = %v", d)
	}
	if d := cli.run("describe-key", "--key-id", "arn:aws:kms:us-east-1:123456789012:alias/cli"); field(d, "KeyMetadata", "Arn") != arn {
		t.Fatalf("describe-key alias ARN = %v", d)
	}
	aliases := cli.run("list-aliases", "--key-id", id)
	if list := aliases["Aliases"].([]any); len(list) != 1 || field(list[0].(map[string]any), "AliasName") != "alias/cli" {
		t.Fatalf("list-aliases = %v", aliases)
	}
	cli.fail("NotFoundException", "describe-key", "--key-id", "alias/missing")
	cli.fail("InvalidAliasNameException", "create-alias", "--alias-name", "alias/aws/mine", "--target-key-id", id)
	cli.fail("NotFoundException", "describe-key", "--key-id", "arn:aws:kms:eu-west-1:123456789012:key/"+id)

	// Encrypt/decrypt with fileb:// blobs, with and without context.
	pt := cli.file("plain.bin", []byte("cli plaintext"))
	enc := cli.run("encrypt", "--key-id", "alias/cli", "--plaintext", "fileb://"+pt, "--encryption-context", "purpose=test,repo=app")
	blob := cli.file("blob.bin", decodeB64(t, field(enc, "CiphertextBlob")))
	dec := cli.run("decrypt", "--ciphertext-blob", "fileb://"+blob, "--encryption-context", "purpose=test,repo=app")
	if string(decodeB64(t, field(dec, "Plaintext"))) != "cli plaintext" || field(dec, "KeyId") != arn {
		t.Fatalf("decrypt = %v", dec)
	}
	cli.fail("InvalidCiphertextException", "decrypt", "--ciphertext-blob", "fileb://"+blob, "--encryption-context", "purpose=test")
	plainEnc := cli.run("encrypt", "--key-id", id, "--plaintext", "fileb://"+pt)
	blob2 := cli.file("blob2.bin", decodeB64(t, field(plainEnc, "CiphertextBlob")))
	cli.run("decrypt", "--ciphertext-blob", "fileb://"+blob2, "--key-id", id)
	cli.fail("ValidationException", "encrypt", "--key-id", id, "--plaintext", "fileb://"+cli.file("big.bin", make([]byte, 4097)))
	dk := cli.run("generate-data-key", "--key-id", arn, "--key-spec", "AES_256", "--encryption-context", "aws:ecr:arn="+repoARN)
	if len(decodeB64(t, field(dk, "Plaintext"))) != 32 {
		t.Fatalf("generate-data-key = %v", dk)
	}

	// Grants: a user allowed only through one; TRBL-03 and TRBL-05 as written.
	u := e.newUser("grantee")
	g := cli.run("create-grant", "--key-id", id, "--grantee-principal", u.arn, "--operations", "Decrypt", "GenerateDataKey",
		"--constraints", "EncryptionContextSubset={aws:ecr:arn="+repoARN+"}", "--name", "repo-grant")
	grantID := field(g, "GrantId")
	ucli := newAWSCLI(t, e, u)
	dkBlob := cli.file("dk.bin", decodeB64(t, field(dk, "CiphertextBlob")))
	ucli.run("decrypt", "--ciphertext-blob", "fileb://"+dkBlob, "--encryption-context", "aws:ecr:arn="+repoARN)
	ucli.fail("AccessDeniedException", "decrypt", "--ciphertext-blob", "fileb://"+blob, "--encryption-context", "purpose=test,repo=app")
	listed := cli.run("list-grants", "--key-id", id, "--region", "us-east-1") // C-01
	grants := listed["Grants"].([]any)
	if len(grants) != 1 || field(grants[0].(map[string]any), "GrantId") != grantID ||
		grants[0].(map[string]any)["Constraints"].(map[string]any)["EncryptionContextSubset"].(map[string]any)["aws:ecr:arn"] != repoARN {
		t.Fatalf("list-grants = %v", listed)
	}
	cli.run("retire-grant", "--key-id", id, "--grant-id", grantID, "--region", "us-east-1") // C-02
	if listed := cli.run("list-grants", "--key-id", id, "--region", "us-east-1"); len(listed["Grants"].([]any)) != 0 {
		t.Fatalf("list-grants after retire-grant = %v", listed)
	}
	ucli.fail("AccessDeniedException", "decrypt", "--ciphertext-blob", "fileb://"+dkBlob, "--encryption-context", "aws:ecr:arn="+repoARN)
	cli.fail("InvalidGrantIdException", "retire-grant", "--key-id", id, "--grant-id", "GrantId", "--region", "us-east-1")

	// Revoke.
	g = cli.run("create-grant", "--key-id", arn, "--grantee-principal", u.arn, "--operations", "Encrypt")
	ucli.run("encrypt", "--key-id", arn, "--plaintext", "fileb://"+pt)
	cli.run("revoke-grant", "--key-id", arn, "--grant-id", field(g, "GrantId"))
	ucli.fail("AccessDeniedException", "encrypt", "--key-id", arn, "--plaintext", "fileb://"+pt)

	// Disable/enable, rotation with the old ciphertext still decrypting.
	cli.run("disable-key", "--key-id", id)
	cli.fail("DisabledException", "decrypt", "--ciphertext-blob", "fileb://"+blob2)
	cli.run("enable-key", "--key-id", id)
	cli.run("enable-key-rotation", "--key-id", id, "--rotation-period-in-days", "180")
	if st := cli.run("get-key-rotation-status", "--key-id", id); st["KeyRotationEnabled"] != true || st["RotationPeriodInDays"] != float64(180) {
		t.Fatalf("get-key-rotation-status = %v", st)
	}
	cli.run("rotate-key-on-demand", "--key-id", id)
	cli.run("decrypt", "--ciphertext-blob", "fileb://"+blob2)
	if r := cli.run("list-key-rotations", "--key-id", id); len(r["Rotations"].([]any)) != 1 {
		t.Fatalf("list-key-rotations = %v", r)
	}
	if p := cli.run("get-key-policy", "--key-id", id, "--policy-name", "default", "--output", "json"); !strings.Contains(field(p, "Policy"), ":root") {
		t.Fatalf("get-key-policy = %v", p)
	}
	cli.run("tag-resource", "--key-id", id, "--tags", "TagKey=env,TagValue=prod")
	if tags := cli.run("list-resource-tags", "--key-id", id); len(tags["Tags"].([]any)) != 2 {
		t.Fatalf("list-resource-tags = %v", tags)
	}

	// Scheduled deletion, then the injected clock passes the date.
	s := cli.run("schedule-key-deletion", "--key-id", id, "--pending-window-in-days", "7")
	if field(s, "KeyState") != "PendingDeletion" {
		t.Fatalf("schedule-key-deletion = %v", s)
	}
	cli.fail("KMSInvalidStateException", "encrypt", "--key-id", id, "--plaintext", "fileb://"+pt)
	e.clock.Advance(8 * 24 * time.Hour)
	cli.fail("NotFoundException", "describe-key", "--key-id", id)
	if keys := cli.run("list-keys"); len(keys["Keys"].([]any)) != 0 {
		t.Fatalf("list-keys after deletion = %v", keys)
	}
	cli.fail("UnsupportedOperationException", "get-public-key", "--key-id", "alias/aws/ecr")
}

// TestBoto3 runs testdata/boto3_kms.py, one script through boto3.
func TestBoto3(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required: %v", err)
	}
	u := e.newUser("boto3user")
	cmd := exec.CommandContext(t.Context(), py, filepath.Join("testdata", "boto3_kms.py"))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KMS_URL="+e.URL, "AWS_ACCESS_KEY_ID="+adminKeyID, "AWS_SECRET_ACCESS_KEY="+adminSecret,
		"AWS_DEFAULT_REGION=us-east-1", "USER_KEY_ID="+u.keyID, "USER_SECRET="+u.secret, "USER_ARN="+u.arn,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "boto3: ok") {
		t.Fatalf("boto3_kms.py: %v\n%s", err, out)
	}
	// The SDK's view of what the script left: one key, enabled.
	k := must[*awskms.ListKeysOutput](t)(e.sdk(e.admin()).ListKeys(t.Context(), &awskms.ListKeysInput{}))
	d := must[*awskms.DescribeKeyOutput](t)(e.sdk(e.admin()).DescribeKey(t.Context(), &awskms.DescribeKeyInput{KeyId: k.Keys[0].KeyId}))
	if len(k.Keys) != 1 || d.KeyMetadata.KeyState != types.KeyStateDisabled || aws.ToString(d.KeyMetadata.Description) != "boto3" {
		t.Fatalf("after boto3: %d keys, %+v", len(k.Keys), d.KeyMetadata)
	}
}

func decodeB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("not base64: %q", s)
	}
	return b
}
