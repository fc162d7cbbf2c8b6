package server

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/iam"
)

// The tag condition keys (issue #3): aws:RequestTag/<key> and aws:TagKeys
// on tagging requests, aws:ResourceTag/<key> on requests to a tagged
// repository.
func TestTagConditionKeys(t *testing.T) {
	t.Parallel()
	srv, app := newAuthServer(t)
	ctx := context.Background()
	denied := func(err error) bool {
		var ae smithy.APIError
		return errors.As(err, &ae) && ae.ErrorCode() == "AccessDeniedException"
	}

	// Creating (and tagging) is allowed only with team=blue and no other key.
	if _, err := app.iam.CreateUser(ctx, "tagger", "/", nil); err != nil {
		t.Fatal(err)
	}
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:CreateRepository","ecr:TagResource"],"Resource":"*",
		"Condition":{"StringEquals":{"aws:RequestTag/team":"blue"},"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}},
		{"Effect":"Allow","Action":"ecr:UntagResource","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}}]}`
	if err := app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "tagger", "blue-only", doc); err != nil {
		t.Fatal(err)
	}
	k, secret, _ := app.iam.CreateAccessKey(ctx, "tagger")
	c := ecrClient(srv, k.ID, secret, nil)
	tag := func(kv ...string) []ecrtypes.Tag {
		var out []ecrtypes.Tag
		for i := 0; i < len(kv); i += 2 {
			out = append(out, ecrtypes.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		return out
	}
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("tags/blue"), Tags: tag("team", "blue")}); err != nil {
		t.Fatalf("create with team=blue: %v", err)
	}
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("tags/red"), Tags: tag("team", "red")}); !denied(err) {
		t.Fatalf("create with team=red = %v, want AccessDeniedException", err)
	}
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("tags/extra"), Tags: tag("team", "blue", "cost", "x")}); !denied(err) {
		t.Fatalf("create with an extra tag key = %v, want AccessDeniedException", err)
	}
	arn := app.reg.RepositoryARN("tags/blue")
	if _, err := c.UntagResource(ctx, &ecr.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"cost"}}); !denied(err) {
		t.Fatalf("untag of another key = %v, want AccessDeniedException", err)
	}
	if _, err := c.UntagResource(ctx, &ecr.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"team"}}); err != nil {
		t.Fatalf("untag team: %v", err)
	}

	// Reads of a repository tagged classified=yes are denied.
	admin := ecrClient(srv, adminID, adminSecret, nil)
	adminTok := loginToken(t, admin)
	img, _ := random.Image(512, 1)
	for _, repo := range []string{"tags/secret", "tags/open"} {
		if err := remote.Write(ref(t, srv, repo+":v1"), img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: adminTok})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: aws.String(app.reg.RepositoryARN("tags/secret")), Tags: tag("classified", "yes")}); err != nil {
		t.Fatal(err)
	}
	id, s2 := createUser(t, app, "nosecrets", "AmazonEC2ContainerRegistryReadOnly")
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:*","Resource":"*",
		"Condition":{"StringEquals":{"aws:ResourceTag/classified":"yes"}}}]}`
	if err := app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "nosecrets", "no-classified", deny); err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, ecrClient(srv, id, s2, nil))})
	if _, err := remote.Image(ref(t, srv, "tags/open:v1"), auth); err != nil {
		t.Fatalf("pull of an untagged repository: %v", err)
	}
	if _, err := remote.Image(ref(t, srv, "tags/secret:v1"), auth); statusOf(err) != 403 {
		t.Fatalf("pull of a classified repository = %v, want 403", err)
	}
}
