//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestECRReposAWSCLI drives the repository control plane (issue #4) with the
// real aws CLI against the real server: create, describe, repository
// policy, tag mutability, tags, forced delete, and the refusal of KMS_DSSE
// outside GovCloud.
func TestECRReposAWSCLI(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	c := startCoffer(t)
	requireTool(t, "aws")
	env := c.awsEnv()
	endpoint := c.URL("")
	awsJSON := func(args ...string) map[string]any {
		t.Helper()
		out := run(t, ctx, env, nil, "aws", append(args, "--endpoint-url", endpoint, "--output", "json")...)
		m := map[string]any{}
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("aws %v: output is not JSON: %v\n%s", args, err, out)
			}
		}
		return m
	}
	awsFails := func(want string, args ...string) string {
		t.Helper()
		out, err := runErr(ctx, env, nil, "aws", append(args, "--endpoint-url", endpoint, "--output", "json")...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("aws %v = %v\n%s\nwant an error with %s", args, err, out, want)
		}
		return err.Error()
	}
	get := func(m map[string]any, path ...string) any {
		var v any = m
		for _, p := range path {
			obj, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: no %s in %v", path, p, v)
			}
			v = obj[p]
		}
		return v
	}
	account := get(awsJSON("sts", "get-caller-identity"), "Account").(string)
	const name = "e2e/repos/app"
	arn := "arn:aws:ecr:us-east-1:" + account + ":repository/" + name

	created := awsJSON("ecr", "create-repository", "--repository-name", name,
		"--image-tag-mutability", "IMMUTABLE", "--tags", "Key=team,Value=a")
	repo := created["repository"].(map[string]any)
	if repo["repositoryArn"] != arn || repo["registryId"] != account || repo["repositoryUri"] != c.Addr+"/"+name ||
		repo["imageTagMutability"] != "IMMUTABLE" || get(created, "repository", "encryptionConfiguration", "encryptionType") != "AES256" {
		t.Fatalf("create-repository = %v", created)
	}
	if _, ok := repo["createdAt"].(float64); !ok {
		t.Fatalf("createdAt = %#v, want epoch seconds", repo["createdAt"])
	}
	awsFails("RepositoryAlreadyExistsException", "ecr", "create-repository", "--repository-name", name)

	// The CLI pages on its own; the repository is in the listing.
	all := awsJSON("ecr", "describe-repositories")
	found := false
	for _, r := range all["repositories"].([]any) {
		found = found || r.(map[string]any)["repositoryName"] == name
	}
	if !found {
		t.Fatalf("describe-repositories does not list %s: %v", name, all)
	}
	one := awsJSON("ecr", "describe-repositories", "--repository-names", name)
	if got := one["repositories"].([]any); len(got) != 1 || got[0].(map[string]any)["repositoryArn"] != arn {
		t.Fatalf("describe-repositories --repository-names = %v", one)
	}

	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnlyForTheAccount","Effect":"Allow",` +
		`"Principal":{"AWS":"arn:aws:iam::` + account + `:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	set := awsJSON("ecr", "set-repository-policy", "--repository-name", name, "--policy-text", "file://"+policyFile)
	if set["policyText"] != policy || set["repositoryName"] != name || set["registryId"] != account {
		t.Fatalf("set-repository-policy = %v", set)
	}
	if got := awsJSON("ecr", "get-repository-policy", "--repository-name", name); got["policyText"] != policy {
		t.Fatalf("get-repository-policy = %v", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	awsFails("InvalidParameterException", "ecr", "set-repository-policy", "--repository-name", name, "--policy-text", "file://"+bad)

	mut := awsJSON("ecr", "put-image-tag-mutability", "--repository-name", name, "--image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION",
		"--image-tag-mutability-exclusion-filters", "filterType=WILDCARD,filter=latest")
	if mut["imageTagMutability"] != "IMMUTABLE_WITH_EXCLUSION" || len(mut["imageTagMutabilityExclusionFilters"].([]any)) != 1 {
		t.Fatalf("put-image-tag-mutability = %v", mut)
	}
	mut = awsJSON("ecr", "put-image-tag-mutability", "--repository-name", name, "--image-tag-mutability", "MUTABLE")
	if mut["imageTagMutability"] != "MUTABLE" {
		t.Fatalf("put-image-tag-mutability MUTABLE = %v", mut)
	}
	after := awsJSON("ecr", "describe-repositories", "--repository-names", name)
	if enc, _ := json.Marshal(get(after["repositories"].([]any)[0].(map[string]any), "encryptionConfiguration")); string(enc) != `{"encryptionType":"AES256"}` {
		t.Fatalf("encryptionConfiguration after the updates = %s", enc)
	}

	awsJSON("ecr", "tag-resource", "--resource-arn", arn, "--tags", "Key=env,Value=ci")
	tags := awsJSON("ecr", "list-tags-for-resource", "--resource-arn", arn)["tags"].([]any)
	got := map[string]string{}
	for _, tg := range tags {
		m := tg.(map[string]any)
		got[m["Key"].(string)] = m["Value"].(string)
	}
	if len(got) != 2 || got["team"] != "a" || got["env"] != "ci" {
		t.Fatalf("list-tags-for-resource = %v", tags)
	}
	awsJSON("ecr", "untag-resource", "--resource-arn", arn, "--tag-keys", "env")
	if tags := awsJSON("ecr", "list-tags-for-resource", "--resource-arn", arn)["tags"].([]any); len(tags) != 1 {
		t.Fatalf("tags after untag-resource = %v", tags)
	}

	// A docker-style push into the repository, then delete it: refused
	// while it holds an image, done with --force.
	img, _ := random.Image(2048, 2)
	if err := remote.Write(c.ref(t, name+":v1"), img, c.opts(ctx)...); err != nil {
		t.Fatalf("push: %v", err)
	}
	awsFails("RepositoryNotEmptyException", "ecr", "delete-repository", "--repository-name", name)
	del := awsJSON("ecr", "delete-repository", "--repository-name", name, "--force")
	if get(del, "repository", "repositoryArn") != arn {
		t.Fatalf("delete-repository --force = %v", del)
	}
	awsFails("RepositoryNotFoundException", "ecr", "describe-repositories", "--repository-names", name)
	awsFails("RepositoryNotFoundException", "ecr", "get-repository-policy", "--repository-name", name)

	// KMS_DSSE exists only in GovCloud: refused with the reason, never
	// silently downgraded (KMS repositories: kms_repos_test.go).
	msg := awsFails("InvalidParameterException", "ecr", "create-repository", "--repository-name", "e2e/repos/kms",
		"--encryption-configuration", "encryptionType=KMS_DSSE")
	if !strings.Contains(msg, "GovCloud") {
		t.Fatalf("KMS_DSSE refusal does not say why:\n%s", msg)
	}
	awsFails("RepositoryNotFoundException", "ecr", "describe-repositories", "--repository-names", "e2e/repos/kms")

	reg := awsJSON("ecr", "describe-registry")
	if reg["registryId"] != account || len(get(reg, "replicationConfiguration", "rules").([]any)) != 0 {
		t.Fatalf("describe-registry = %v", reg)
	}
	awsFails("RegistryPolicyNotFoundException", "ecr", "get-registry-policy")
}
