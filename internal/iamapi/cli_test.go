package iamapi

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// awsCLI runs the real aws CLI (v1, installed on every machine here)
// against the test servers, with its own config and credentials files.
type awsCLI struct {
	t    *testing.T
	bin  string
	env  []string
	dir  string
	urls map[string]string // service -> endpoint URL
}

func newAWSCLI(t *testing.T, e *env) *awsCLI {
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("the aws CLI must be installed: %v", err)
	}
	dir := t.TempDir()
	c := &awsCLI{t: t, bin: bin, dir: dir, urls: map[string]string{"iam": e.iamURL, "sts": e.stsURL}}
	c.write("config", "[default]\nregion = us-east-1\noutput = json\n\n[profile carol]\nregion = us-east-1\noutput = json\n")
	c.write("credentials", "[default]\naws_access_key_id = "+adminKeyID+"\naws_secret_access_key = "+adminSecret+"\n")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			c.env = append(c.env, kv)
		}
	}
	c.env = append(c.env, "AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	return c
}

func (c *awsCLI) write(name, content string) string {
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *awsCLI) exec(args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Minute)
	defer cancel()
	full := append([]string{args[0], "--endpoint-url", c.urls[args[0]], "--output", "json"}, args[1:]...)
	cmd := exec.CommandContext(ctx, c.bin, full...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// run runs a command that must succeed and decodes its JSON output.
func (c *awsCLI) run(args ...string) map[string]any {
	c.t.Helper()
	stdout, stderr, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var v map[string]any
	if strings.TrimSpace(stdout) == "" {
		return v
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		c.t.Fatalf("aws %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout)
	}
	return v
}

// fail runs a command that must fail and returns its stderr.
func (c *awsCLI) fail(args ...string) string {
	c.t.Helper()
	_, stderr, err := c.exec(args...)
	if err == nil {
		c.t.Fatalf("aws %s succeeded, want an error", strings.Join(args, " "))
	}
	return stderr
}

// path walks decoded JSON: keys for objects, ints for arrays.
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(v any, keys ...any) string {
	s, _ := path(v, keys...).(string)
	return s
}

func TestAWSCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	cli := newAWSCLI(t, e)
	policyFile := cli.write("policy.json", ecrPolicyJSON)
	trustFile := cli.write("trust.json", trustPolicyJSON)

	out := cli.run("iam", "create-user", "--user-name", "carol", "--tags", "Key=team,Value=blue")
	if str(out, "User", "Arn") != "arn:aws:iam::123456789012:user/carol" || str(out, "User", "Tags", 0, "Value") != "blue" ||
		!strings.HasPrefix(str(out, "User", "UserId"), "AIDA") || str(out, "User", "CreateDate") == "" {
		t.Errorf("create-user = %v", out)
	}

	out = cli.run("iam", "list-users")
	var users []string
	for _, u := range path(out, "Users").([]any) {
		users = append(users, str(u, "UserName"))
	}
	if !slices.Equal(users, []string{"admin", "carol"}) {
		t.Errorf("list-users = %v", users)
	}

	out = cli.run("iam", "create-access-key", "--user-name", "carol")
	keyID, secret := str(out, "AccessKey", "AccessKeyId"), str(out, "AccessKey", "SecretAccessKey")
	if !strings.HasPrefix(keyID, "AKIA") || len(secret) != 40 || str(out, "AccessKey", "Status") != "Active" {
		t.Errorf("create-access-key = %v", out)
	}

	cli.run("iam", "put-user-policy", "--user-name", "carol", "--policy-name", "pull", "--policy-document", "file://"+policyFile)
	out = cli.run("iam", "get-user-policy", "--user-name", "carol", "--policy-name", "pull")
	// botocore URL-decodes and parses policy documents: an object, not a string.
	if str(out, "PolicyDocument", "Version") != "2012-10-17" || str(out, "PolicyDocument", "Statement", 0, "Resource") != "arn:aws:ecr:us-east-1:123456789012:repository/app/*" {
		t.Errorf("get-user-policy = %v", out)
	}

	out = cli.run("iam", "create-role", "--role-name", "ci", "--assume-role-policy-document", "file://"+trustFile)
	roleARN := str(out, "Role", "Arn")
	if roleARN != "arn:aws:iam::123456789012:role/ci" || str(out, "Role", "AssumeRolePolicyDocument", "Statement", 0, "Action") != "sts:AssumeRole" {
		t.Errorf("create-role = %v", out)
	}

	// list-policies --scope AWS, in one page and one policy per page (the
	// CLI follows IsTruncated/Marker itself).
	names := func(out map[string]any) []string {
		var n []string
		for _, p := range path(out, "Policies").([]any) {
			n = append(n, str(p, "PolicyName"))
		}
		return n
	}
	whole := names(cli.run("iam", "list-policies", "--scope", "AWS"))
	e.authz.take()
	paged := names(cli.run("iam", "list-policies", "--scope", "AWS", "--page-size", "1"))
	if calls := e.authz.take(); len(calls) != len(whole) {
		t.Errorf("--page-size 1 made %d requests for %d policies", len(calls), len(whole))
	}
	if !slices.Contains(whole, "AmazonEC2ContainerRegistryReadOnly") || !slices.Contains(whole, "AdministratorAccess") || !slices.Equal(whole, paged) {
		t.Errorf("list-policies --scope AWS = %v, paged = %v", whole, paged)
	}

	out = cli.run("sts", "get-caller-identity")
	if str(out, "Account") != testAccount || str(out, "Arn") != adminARN || !strings.HasPrefix(str(out, "UserId"), "AIDA") {
		t.Errorf("get-caller-identity = %v", out)
	}

	out = cli.run("sts", "assume-role", "--role-arn", roleARN, "--role-session-name", "cli-session")
	exp, err := time.Parse(time.RFC3339, str(out, "Credentials", "Expiration"))
	if !strings.HasPrefix(str(out, "Credentials", "AccessKeyId"), "ASIA") || str(out, "Credentials", "SessionToken") == "" ||
		str(out, "AssumedRoleUser", "Arn") != "arn:aws:sts::123456789012:assumed-role/ci/cli-session" || err != nil || time.Until(exp) < 50*time.Minute {
		t.Errorf("assume-role = %v (expiration %v)", out, err)
	}

	// carol's new key identifies carol.
	cli.write("credentials", "[default]\naws_access_key_id = "+adminKeyID+"\naws_secret_access_key = "+adminSecret+
		"\n\n[carol]\naws_access_key_id = "+keyID+"\naws_secret_access_key = "+secret+"\n")
	if out := cli.run("sts", "get-caller-identity", "--profile", "carol"); str(out, "Arn") != "arn:aws:iam::123456789012:user/carol" {
		t.Errorf("carol's get-caller-identity = %v", out)
	}

	// Errors reach the CLI with AWS's code and message.
	if stderr := cli.fail("iam", "get-user", "--user-name", "nobody"); !strings.Contains(stderr, "(NoSuchEntity)") ||
		!strings.Contains(stderr, "The user with name nobody cannot be found.") {
		t.Errorf("get-user nobody: %s", stderr)
	}
	if stderr := cli.fail("iam", "list-roles"); !strings.Contains(stderr, "(InvalidAction)") ||
		!strings.Contains(stderr, "Coffer does not implement the IAM action ListRoles yet") {
		t.Errorf("list-roles: %s", stderr)
	}
}
