package server

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/iam"
)

// The metadata and resource-policy caches (internal/metadata/cache, on by
// default with a 1s TTL) never delay a change made through the API: a
// repository policy, registry policy, tag or tag move is honoured by the
// very next /v2/ request (SPEC POL-01, POL-05), though the request before
// it filled the caches.
func TestAPIChangesBypassCaches(t *testing.T) {
	t.Parallel()
	srv, app := newAuthServer(t)
	ctx := context.Background()
	if app.cfg.MetadataCacheTTL <= 0 {
		t.Fatal("the metadata cache is off by default")
	}
	admin := ecrClient(srv, adminID, adminSecret, nil)
	adminAuth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, admin)})
	img1, _ := random.Image(256, 1)
	img2, _ := random.Image(256, 1)
	r := ref(t, srv, "cached/app:v1")
	if err := remote.Write(r, img1, adminAuth); err != nil {
		t.Fatal(err)
	}

	id, secret := createUser(t, app, "reader", "AmazonEC2ContainerRegistryReadOnly")
	reader := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, ecrClient(srv, id, secret, nil))})
	readerARN := "arn:aws:iam::" + app.accountID + ":user/reader"
	deny := `{"Version":"2012-10-17","Statement":[{"Sid":"no","Effect":"Deny","Principal":{"AWS":"` + readerARN + `"},"Action":"ecr:*"}]}`
	// refused and digest check the next manifest HEAD, twice: the first
	// may fill the caches, the second is served from them.
	refused := func(step string, wantStatus int) {
		t.Helper()
		for range 2 {
			if _, err := remote.Head(r, reader); statusOf(err) != wantStatus {
				t.Fatalf("%s: HEAD = %v, want status %d", step, err, wantStatus)
			}
		}
	}
	digest := func(step string, want string) {
		t.Helper()
		for range 2 {
			d, err := remote.Head(r, reader)
			if err != nil || d.Digest.String() != want {
				t.Fatalf("%s: HEAD = %v, %v, want %s", step, d, err, want)
			}
		}
	}
	d1, _ := img1.Digest()
	d2, _ := img2.Digest()
	digest("start", d1.String())

	if _, err := admin.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String("cached/app"), PolicyText: aws.String(deny)}); err != nil {
		t.Fatal(err)
	}
	refused("SetRepositoryPolicy", 403)
	if _, err := admin.DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: aws.String("cached/app")}); err != nil {
		t.Fatal(err)
	}
	digest("DeleteRepositoryPolicy", d1.String())

	if _, err := admin.PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(deny)}); err != nil {
		t.Fatal(err)
	}
	refused("PutRegistryPolicy", 403)
	if _, err := admin.DeleteRegistryPolicy(ctx, &ecr.DeleteRegistryPolicyInput{}); err != nil {
		t.Fatal(err)
	}
	digest("DeleteRegistryPolicy", d1.String())

	noSecrets := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:*","Resource":"*",
		"Condition":{"StringEquals":{"aws:ResourceTag/classified":"yes"}}}]}`
	if err := app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "reader", "no-classified", noSecrets); err != nil {
		t.Fatal(err)
	}
	digest("identity policy on a tag", d1.String())
	arn := aws.String(app.reg.RepositoryARN("cached/app"))
	if _, err := admin.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: arn,
		Tags: []ecrtypes.Tag{{Key: aws.String("classified"), Value: aws.String("yes")}}}); err != nil {
		t.Fatal(err)
	}
	refused("TagResource", 403)
	if _, err := admin.UntagResource(ctx, &ecr.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"classified"}}); err != nil {
		t.Fatal(err)
	}
	digest("UntagResource", d1.String())

	// A tag move and a tag deletion.
	if err := remote.Write(r, img2, adminAuth); err != nil {
		t.Fatal(err)
	}
	digest("tag moved", d2.String())
	if _, err := admin.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{RepositoryName: aws.String("cached/app"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("v1")}}}); err != nil {
		t.Fatal(err)
	}
	refused("tag deleted", 404)
}
