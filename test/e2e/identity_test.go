//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestAWSCLIIdentity drives identity and access with the real aws CLI
// against the real server (issue #3): IAM users and managed policies,
// get-login-password, assume-role sessions, and key deactivation.
func TestAWSCLIIdentity(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	c := startCoffer(t)
	requireTool(t, "aws")
	endpoint := c.URL("")
	awsAs := func(env []string, args ...string) map[string]any {
		t.Helper()
		out := run(t, ctx, env, nil, "aws", append(args, "--endpoint-url", endpoint, "--output", "json")...)
		var m map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("aws %v: output is not JSON: %v\n%s", args, err, out)
			}
		}
		return m
	}
	admin := c.awsEnv()
	str := func(m map[string]any, path ...string) string {
		var v any = m
		for _, p := range path {
			v = v.(map[string]any)[p]
		}
		return v.(string)
	}

	who := awsAs(admin, "sts", "get-caller-identity")
	if !strings.HasSuffix(str(who, "Arn"), ":user/admin") {
		t.Fatalf("admin identity = %v", who)
	}
	account := str(who, "Account")

	awsAs(admin, "iam", "create-user", "--user-name", "ci")
	awsAs(admin, "iam", "attach-user-policy", "--user-name", "ci", "--policy-arn", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
	key := awsAs(admin, "iam", "create-access-key", "--user-name", "ci")
	ciID, ciSecret := str(key, "AccessKey", "AccessKeyId"), str(key, "AccessKey", "SecretAccessKey")
	ci := append(c.awsEnv(), "AWS_ACCESS_KEY_ID="+ciID, "AWS_SECRET_ACCESS_KEY="+ciSecret)

	img, _ := random.Image(4096, 2)
	if err := remote.Write(c.ref(t, "e2e/iam/app:v1"), img, c.opts(ctx)...); err != nil {
		t.Fatalf("admin push: %v", err)
	}
	login := func(env []string) remote.Option {
		t.Helper()
		tok := strings.TrimSpace(run(t, ctx, env, nil, "aws", "ecr", "get-login-password", "--endpoint-url", endpoint))
		return remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})
	}
	ciAuth := login(ci)
	noRetry := []remote.Option{remote.WithContext(ctx), remote.WithTransport(c.client.Transport), remote.WithRetryStatusCodes()}
	if _, err := remote.Image(c.ref(t, "e2e/iam/app:v1"), append(noRetry, ciAuth)...); err != nil {
		t.Fatalf("ReadOnly user pull: %v", err)
	}
	other, _ := random.Image(1024, 1)
	err := remote.Write(c.ref(t, "e2e/iam/app:v2"), other, append(noRetry, ciAuth)...)
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != 403 {
		t.Fatalf("ReadOnly user push = %v, want 403 DENIED", err)
	}

	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + account + `:user/ci"},"Action":"sts:AssumeRole"}]}`
	awsAs(admin, "iam", "create-role", "--role-name", "pusher", "--assume-role-policy-document", trust)
	awsAs(admin, "iam", "attach-role-policy", "--role-name", "pusher", "--policy-arn", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")
	sess := awsAs(ci, "sts", "assume-role", "--role-arn", "arn:aws:iam::"+account+":role/pusher", "--role-session-name", "build-42")
	if got := str(sess, "AssumedRoleUser", "Arn"); got != "arn:aws:sts::"+account+":assumed-role/pusher/build-42" {
		t.Fatalf("assumed role ARN = %s", got)
	}
	role := append(c.awsEnv(), "AWS_ACCESS_KEY_ID="+str(sess, "Credentials", "AccessKeyId"),
		"AWS_SECRET_ACCESS_KEY="+str(sess, "Credentials", "SecretAccessKey"), "AWS_SESSION_TOKEN="+str(sess, "Credentials", "SessionToken"))
	if who := awsAs(role, "sts", "get-caller-identity"); !strings.Contains(str(who, "Arn"), ":assumed-role/pusher/build-42") {
		t.Fatalf("session identity = %v", who)
	}
	if err := remote.Write(c.ref(t, "e2e/iam/app:v2"), other, append(noRetry, login(role))...); err != nil {
		t.Fatalf("assumed role push: %v", err)
	}

	// A role the user is not trusted for.
	awsAs(admin, "iam", "create-role", "--role-name", "admin-only", "--assume-role-policy-document",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::`+account+`:user/admin"},"Action":"sts:AssumeRole"}]}`)
	if out, err := runErr(ctx, ci, nil, "aws", "sts", "assume-role", "--endpoint-url", endpoint,
		"--role-arn", "arn:aws:iam::"+account+":role/admin-only", "--role-session-name", "nope"); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("untrusted assume-role = %v %s", err, out)
	}

	// Deactivating the key cuts it off at the next request.
	awsAs(admin, "iam", "update-access-key", "--user-name", "ci", "--access-key-id", ciID, "--status", "Inactive")
	if _, err := runErr(ctx, ci, nil, "aws", "sts", "get-caller-identity", "--endpoint-url", endpoint); err == nil || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("inactive key = %v", err)
	}
}
