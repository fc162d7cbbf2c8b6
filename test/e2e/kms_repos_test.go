//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestKMSRepositoriesCLI drives KMS-encrypted repositories (issue #6) with
// the real aws CLI and docker against the real server: create-repository
// with a customer key, list-grants shows the repository's two grants,
// docker push and pull, revoke-grant stops pull with KmsException, and a
// delete by a user without kms:RetireGrant gives TRBL-01's message and
// leaves grants that retire-grant (C-02) removes.
func TestKMSRepositoriesCLI(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	d := newDockerCLI(t, ctx)
	c := startCoffer(t)
	requireTool(t, "aws")
	endpoint := c.URL("")
	awsErr := func(env []string, args ...string) (map[string]any, error) {
		out, err := runErr(ctx, env, nil, "aws", append(args, "--endpoint-url", endpoint, "--output", "json")...)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("aws %v: output is not JSON: %v\n%s", args, err, out)
			}
		}
		return m, nil
	}
	awsAs := func(env []string, args ...string) map[string]any {
		t.Helper()
		m, err := awsErr(env, args...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	admin := c.awsEnv()
	key := awsAs(admin, "kms", "create-key", "--description", "e2e repository key")["KeyMetadata"].(map[string]any)
	keyID, keyARN := key["KeyId"].(string), key["Arn"].(string)

	repo := awsAs(admin, "ecr", "create-repository", "--repository-name", "e2e/kms",
		"--encryption-configuration", "encryptionType=KMS,kmsKey="+keyID)["repository"].(map[string]any)
	enc := repo["encryptionConfiguration"].(map[string]any)
	if enc["encryptionType"] != "KMS" || enc["kmsKey"] != keyARN {
		t.Fatalf("encryptionConfiguration = %v", enc)
	}
	repoARN := repo["repositoryArn"].(string)
	grantsOf := func() []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, g := range awsAs(admin, "kms", "list-grants", "--key-id", keyID, "--region", "us-east-1")["Grants"].([]any) {
			g := g.(map[string]any)
			if cons, ok := g["Constraints"].(map[string]any); ok {
				if sub, ok := cons["EncryptionContextSubset"].(map[string]any); ok && sub["aws:ecr:arn"] == repoARN {
					out = append(out, g)
				}
			}
		}
		return out
	}
	if gs := grantsOf(); len(gs) != 2 {
		t.Fatalf("list-grants shows %d grants for %s, want 2", len(gs), repoARN)
	}

	d.login(c)
	ref := c.Addr + "/e2e/kms:v1"
	d.removeOnCleanup(ref)
	d.importImage(ref, map[string]string{"etc/os-release": "ID=coffer-kms-e2e\n", "data/x": strings.Repeat("kms layer\n", 1000)})
	digest := d.push(ref)
	d.run("rmi", "-f", ref)
	d.run("pull", ref)
	if got := d.inspect(ref); len(got.RepoDigests) == 0 || !strings.HasSuffix(got.RepoDigests[0], digest.String()) {
		t.Fatalf("pulled image digests %v, pushed %s", got.RepoDigests, digest)
	}

	// Revoke the grant that allows Decrypt: the very next pull fails.
	var storage map[string]any
	for _, g := range grantsOf() {
		for _, op := range g["Operations"].([]any) {
			if op == "Decrypt" {
				storage = g
			}
		}
	}
	awsAs(admin, "kms", "revoke-grant", "--key-id", keyID, "--grant-id", storage["GrantId"].(string))
	d.run("rmi", "-f", ref)
	if out, err := runErr(ctx, d.env, nil, "docker", "pull", ref); err == nil || !strings.Contains(err.Error(), "KmsException") {
		t.Fatalf("docker pull after revoke-grant = %v\n%s", err, out)
	}

	// A deleter without kms:RetireGrant.
	awsAs(admin, "iam", "create-user", "--user-name", "deleter")
	awsAs(admin, "iam", "attach-user-policy", "--user-name", "deleter", "--policy-arn", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess")
	ak := awsAs(admin, "iam", "create-access-key", "--user-name", "deleter")["AccessKey"].(map[string]any)
	deleter := append(c.awsEnv(), "AWS_ACCESS_KEY_ID="+ak["AccessKeyId"].(string), "AWS_SECRET_ACCESS_KEY="+ak["SecretAccessKey"].(string))
	_, err := awsErr(deleter, "ecr", "delete-repository", "--repository-name", "e2e/kms", "--force")
	want := "The repository [e2e/kms] has been deleted successfully but the grants created by the kmsKey [" + keyARN + "] failed to be retired"
	if err == nil || !strings.Contains(err.Error(), "(KmsException)") || !strings.Contains(err.Error(), want) {
		t.Fatalf("delete-repository without kms:RetireGrant = %v", err)
	}
	if _, err := awsErr(admin, "ecr", "describe-repositories", "--repository-names", "e2e/kms"); err == nil || !strings.Contains(err.Error(), "RepositoryNotFoundException") {
		t.Fatalf("describe-repositories after delete = %v", err)
	}
	left := grantsOf()
	if len(left) != 1 { // the revoked one is gone already
		t.Fatalf("%d grants left, want 1", len(left))
	}
	awsAs(admin, "kms", "retire-grant", "--key-id", keyID, "--grant-id", left[0]["GrantId"].(string), "--region", "us-east-1")
	if n := len(grantsOf()); n != 0 {
		t.Fatalf("%d grants left after retire-grant", n)
	}
}
