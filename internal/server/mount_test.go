package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata"
)

// A mount without "from" succeeds only through a repository the caller may
// read (OCI automatic content discovery), never revealing others' blobs.
func TestMountWithoutFrom(t *testing.T) {
	t.Parallel()
	srv, app := newAuthServer(t)
	ctx := context.Background()
	admin := loginToken(t, ecrClient(srv, adminID, adminSecret, nil))
	img, _ := random.Image(4096, 1)
	if err := remote.Write(ref(t, srv, "source/app:v1"), img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: admin})); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()

	mount := func(tok, repo string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/v2/"+repo+"/blobs/uploads/?mount="+d.String(), nil)
		req.SetBasicAuth("AWS", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// PowerUser may read every repository: the blob is mounted. (It may not
	// create repositories, as in ECR: the target exists.)
	if _, err := app.reg.CreateRepository(ctx, metadata.Repository{Name: "target/one"}, false); err != nil {
		t.Fatal(err)
	}
	id, secret := createUser(t, app, "mounter", "AmazonEC2ContainerRegistryPowerUser")
	if got := mount(loginToken(t, ecrClient(srv, id, secret, nil)), "target/one"); got != http.StatusCreated {
		t.Fatalf("mount by a reader of source/app = %d, want 201", got)
	}
	// A user who may only push to target/two cannot read source/app: a
	// plain upload session, as if the blob did not exist.
	if _, err := app.iam.CreateUser(ctx, "pushonly", "/", nil); err != nil {
		t.Fatal(err)
	}
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken"],"Resource":"*"},
		{"Effect":"Allow","Action":["ecr:CreateRepository","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage"],
		"Resource":"arn:aws:ecr:us-east-1:*:repository/target/two"}]}`
	if err := app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "pushonly", "push-two", doc); err != nil {
		t.Fatal(err)
	}
	k, s2, err := app.iam.CreateAccessKey(ctx, "pushonly")
	if err != nil {
		t.Fatal(err)
	}
	pushTok := loginToken(t, ecrClient(srv, k.ID, s2, nil))
	if got := mount(pushTok, "target/two"); got != http.StatusAccepted {
		t.Fatalf("mount by a non-reader = %d, want 202 (an upload session)", got)
	}
	// Create-on-push needs ecr:CreateRepository, as in ECR.
	if got := mount(pushTok, "target/three"); got != http.StatusForbidden {
		t.Fatalf("push creating a repository without ecr:CreateRepository = %d, want 403", got)
	}
}
