package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/quota"
)

// Issue #11 item 5: per-repository quotas (docs/quotas.md).

func quotaServer(t *testing.T) (*httptest.Server, *App) {
	t.Helper()
	images, size := int64(2), quota.Size(300<<10)
	return newTestServer(t, func(c *config.Config) {
		c.QuotaMaxBytes = "1GiB"
		c.Quotas = []quota.Rule{
			{Repositories: "q/images-*", MaxImages: &images},
			{Repositories: "q/bytes-*", MaxBytes: &size},
		}
	})
}

// want429 checks a /v2/ refusal: HTTP 429, OCI code TOOMANYREQUESTS, and a
// message naming the repository and the limit.
func want429(t *testing.T, what string, err error, repo, limit string) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusTooManyRequests || len(te.Errors) == 0 ||
		te.Errors[0].Code != transport.TooManyRequestsErrorCode {
		t.Fatalf("%s = %v, want 429 TOOMANYREQUESTS", what, err)
	}
	if msg := te.Errors[0].Message; !strings.Contains(msg, "repository "+repo+" ") || !strings.Contains(msg, limit) {
		t.Fatalf("%s: message %q does not name %s and %q", what, msg, repo, limit)
	}
}

// noRetry makes go-containerregistry report a 429 instead of retrying it.
var noRetry = remote.WithRetryStatusCodes()

func TestQuotaImagesOCI(t *testing.T) {
	t.Parallel()
	srv, app := quotaServer(t)
	const repo = "q/images-oci"
	for i := range 2 {
		img, _ := random.Image(1024, 1)
		if err := remote.Write(ref(t, srv, fmt.Sprintf("%s:v%d", repo, i)), img, noRetry); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	img, _ := random.Image(1024, 1)
	err := remote.Write(ref(t, srv, repo+":v2"), img, noRetry)
	want429(t, "third image", err, repo, "at most 2 images")
	t.Logf("third image: %v", err)
	// An image already stored adds nothing: a new tag on it is accepted.
	first, err := remote.Image(ref(t, srv, repo+":v0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, repo+":again"), first, noRetry); err != nil {
		t.Fatalf("re-tag at the limit: %v", err)
	}
	// Deleting an image makes room at once.
	d, _ := first.Digest()
	if err := remote.Delete(ref(t, srv, repo+"@"+d.String())); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, repo+":v2"), img, noRetry); err != nil {
		t.Fatalf("push after a delete: %v", err)
	}
	u, err := app.store.RepositoryUsage(context.Background(), mustRepo(t, app, repo).ID)
	if err != nil || u.Images != 2 {
		t.Fatalf("usage = %+v, %v", u, err)
	}
	// Other repositories have the default (1 GiB, no image limit).
	for i := range 3 {
		img, _ := random.Image(512, 1)
		if err := remote.Write(ref(t, srv, fmt.Sprintf("free/app:v%d", i)), img, noRetry); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQuotaBytesOCI(t *testing.T) {
	t.Parallel()
	srv, app := quotaServer(t)
	const repo = "q/bytes-oci"
	layer := func(n int) v1.Layer { return static.NewLayer(randomBytes(t, n), types.OCILayer) }
	small, err := mutate.AppendLayers(empty.Image, layer(200<<10))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, repo+":small"), small, noRetry); err != nil {
		t.Fatalf("push within the limit: %v", err)
	}
	big, _ := mutate.AppendLayers(empty.Image, layer(150<<10))
	err = remote.Write(ref(t, srv, repo+":big"), big, noRetry)
	want429(t, "push over the byte limit", err, repo, "at most 300KiB (307200 bytes)")
	t.Logf("over the byte limit: %v", err)
	// Nothing of the refused layer stays linked or stored.
	ld, _ := big.Layers()
	dg, _ := ld[0].Digest()
	if _, err := app.store.BlobLinked(context.Background(), mustRepo(t, app, repo).ID, dg.String()); err == nil {
		t.Fatal("the refused layer is linked")
	}
	// A cross-repository mount counts as well: the layer exists in the
	// AES256 domain, and linking it would take the repository over.
	if err := remote.Write(ref(t, srv, "free/big:v1"), big, noRetry); err != nil {
		t.Fatal(err)
	}
	err = remote.Write(ref(t, srv, repo+":big"), big, noRetry)
	want429(t, "mount over the byte limit", err, repo, "300KiB")
	// A blob DELETE unlinks, and frees its bytes.
	sl, _ := small.Layers()
	sd, _ := sl[0].Digest()
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v2/"+repo+"/blobs/"+sd.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("blob DELETE: %s", resp.Status)
	}
	if _, err := remote.Image(ref(t, srv, repo+":small")); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, repo+":big"), big, noRetry); err != nil {
		t.Fatalf("push after freeing bytes: %v", err)
	}
}

// TestQuotaConcurrentPushesOCI: many clients push distinct images into a
// repository with room for 2 at the same time; exactly 2 succeed and every
// other push is refused with 429.
func TestQuotaConcurrentPushesOCI(t *testing.T) {
	t.Parallel()
	srv, app := quotaServer(t)
	const repo = "q/images-race"
	var (
		mu       sync.Mutex
		ok, full int
		wg       sync.WaitGroup
	)
	for i := range 8 {
		img, _ := random.Image(2048, 1)
		wg.Go(func() {
			err := remote.Write(ref(t, srv, fmt.Sprintf("%s:c%d", repo, i)), img, noRetry)
			var te *transport.Error
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.As(err, &te) && te.StatusCode == http.StatusTooManyRequests:
				full++
			default:
				t.Errorf("push %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok != 2 || full != 6 {
		t.Fatalf("%d pushes succeeded and %d were refused; want 2 and 6", ok, full)
	}
	if u, err := app.store.RepositoryUsage(context.Background(), mustRepo(t, app, repo).ID); err != nil || u.Images != 2 {
		t.Fatalf("usage = %+v, %v", u, err)
	}
}

// TestQuotaECR: the ECR API answers LimitExceededException: PutImage over
// the image limit, UploadLayerPart when the upload cannot fit, and
// CompleteLayerUpload when the commit itself would go over (which the
// botocore model does not declare for it; docs/quotas.md). A refused
// session stays, so the SDKs' retries of the throttling-like error get the
// same answer.
func TestQuotaECR(t *testing.T) {
	t.Parallel()
	srv, app := quotaServer(t)
	// The SDK retries LimitExceededException as throttling; once is enough here.
	c := ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(adminID, adminSecret, "")})
	e := &imgEnv{t: t, srv: srv, app: app, ecr: c}
	ctx := context.Background()
	wantLimit := func(what string, err error, repo, limit string) {
		t.Helper()
		wantCode(t, what, err, "LimitExceededException")
		if !strings.Contains(err.Error(), "repository "+repo+" ") || !strings.Contains(err.Error(), limit) {
			t.Fatalf("%s: %v does not name %s and %q", what, err, repo, limit)
		}
	}

	const imgRepo = "q/images-ecr"
	e.repo(imgRepo, "")
	cfg, layer, _ := e.baseImage(imgRepo, 1024)
	for i := range 2 {
		if _, err := e.putImage(imgRepo, imageManifest(cfg, fmt.Sprint(i), layer), fmt.Sprint("v", i)); err != nil {
			t.Fatalf("PutImage %d: %v", i, err)
		}
	}
	_, err := e.putImage(imgRepo, imageManifest(cfg, "2", layer), "v2")
	wantLimit("PutImage over the image limit", err, imgRepo, "at most 2 images")

	const byteRepo = "q/bytes-ecr"
	e.repo(byteRepo, "")
	e.uploadLayer(byteRepo, randomBytes(t, 200<<10), 64<<10)
	// UploadLayerPart: the parts so far plus this one cannot fit.
	up, err := e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(byteRepo)})
	if err != nil {
		t.Fatal(err)
	}
	part := func(data []byte, first int64) error {
		_, err := e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(byteRepo), UploadId: up.UploadId,
			PartFirstByte: aws.Int64(first), PartLastByte: aws.Int64(first + int64(len(data)) - 1), LayerPartBlob: data})
		return err
	}
	data := randomBytes(t, 150<<10)
	if err := part(data[:60<<10], 0); err != nil {
		t.Fatalf("first part within the limit: %v", err)
	}
	err = part(data[60<<10:], 60<<10)
	wantLimit("UploadLayerPart over the byte limit", err, byteRepo, "300KiB")

	// CompleteLayerUpload: two uploads that each fit alone, completed one
	// after the other; the second commit goes over.
	start := func(data []byte) *string {
		out, err := e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(byteRepo)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(byteRepo), UploadId: out.UploadId,
			PartFirstByte: aws.Int64(0), PartLastByte: aws.Int64(int64(len(data)) - 1), LayerPartBlob: data}); err != nil {
			t.Fatal(err)
		}
		return out.UploadId
	}
	a, b := randomBytes(t, 60<<10), randomBytes(t, 60<<10)
	ida, idb := start(a), start(b)
	complete := func(id *string, data []byte) error {
		_, err := e.ecr.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(byteRepo),
			UploadId: id, LayerDigests: []string{digestOf(data)}})
		return err
	}
	if err := complete(ida, a); err != nil {
		t.Fatalf("first CompleteLayerUpload: %v", err)
	}
	err = complete(idb, b)
	wantLimit("CompleteLayerUpload over the byte limit", err, byteRepo, "300KiB")
	// The refused session stays: a retry is refused the same way.
	err = complete(idb, b)
	wantLimit("CompleteLayerUpload retried", err, byteRepo, "300KiB")
}
