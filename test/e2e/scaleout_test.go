//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/testbackend"
)

// scaleOut is one Coffer on PostgreSQL and versitygw (issue #9), with the
// backends the test started.
type scaleOut struct {
	*coffer
	pg     *testbackend.Postgres
	gw     *testbackend.Versitygw
	dsn    string
	bucket string
	prefix string
	awsDir string // empty AWS configuration, keeping the host's out
}

// startScaleOut starts PostgreSQL, versitygw with a bucket, and coffer
// configured for both (flags for storage, the environment for the DSN
// and the S3 keys, as a deployment would).
func startScaleOut(t *testing.T, ctx context.Context) *scaleOut {
	t.Helper()
	s := startBackends(t, ctx)
	s.coffer = startCoffer(t, s.configure)
	return s
}

// startBackends starts PostgreSQL with a database and versitygw with a
// bucket, and no coffer.
func startBackends(t *testing.T, ctx context.Context) *scaleOut {
	t.Helper()
	pg, err := testbackend.StartPostgres(testbackend.PostgresConfig{})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(pg.Stop)
	s := &scaleOut{pg: pg, bucket: "coffer-e2e", prefix: "prod"}
	if s.dsn, err = pg.CreateDatabase(ctx, "coffer"); err != nil {
		t.Fatal(err)
	}
	if s.gw, err = testbackend.StartVersitygw(testbackend.VersitygwConfig{}); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(s.gw.Stop)
	if err := s.gw.CreateBucket(ctx, s.bucket); err != nil {
		t.Fatal(err)
	}
	s.awsDir = t.TempDir()
	return s
}

// configure is a startCoffer option: c runs on s's database and bucket.
func (s *scaleOut) configure(c *coffer) {
	c.Args = []string{"--storage", "s3", "--s3-bucket", s.bucket, "--s3-endpoint", s.gw.Endpoint,
		"--s3-path-style", "--s3-prefix", s.prefix}
	c.Env = []string{"COFFER_METADATA_DSN=" + s.dsn,
		"COFFER_S3_ACCESS_KEY_ID=" + testbackend.AccessKey, "COFFER_S3_SECRET_ACCESS_KEY=" + testbackend.SecretKey,
		"AWS_CONFIG_FILE=" + filepath.Join(s.awsDir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.awsDir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true"}
}

// fsck runs `coffer fsck` with the server's configuration and returns its
// output and exit status.
func (s *scaleOut) fsck(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, cofferBin, append(append([]string{"fsck", "--data", s.Dir}, s.Args...), args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, s.Env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("coffer fsck: %v\n%s", err, out)
	return "", 0
}

// pullCheck pulls ref and checks its digest and its layer's bytes.
func (s *scaleOut) pullCheck(t *testing.T, ctx context.Context, what, repoTag string, want v1.Hash, marker string) {
	t.Helper()
	img, err := remote.Image(s.ref(t, repoTag), s.opts(ctx)...)
	if err != nil {
		t.Fatalf("%s: pull: %v", what, err)
	}
	if d, err := img.Digest(); err != nil || d != want {
		t.Fatalf("%s: digest %v, %v; want %v", what, d, err, want)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%s: layers %d, %v", what, len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatalf("%s: layer: %v", what, err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Contains(b, []byte(marker)) {
		t.Fatalf("%s: layer content (%d bytes) wrong: %v", what, len(b), err)
	}
}

// waitReady polls /readyz until it answers 200.
func (s *scaleOut) waitReady(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := s.do(ctx, "GET", "/readyz", nil, map[string]string{"Authorization": "-"})
		if r.Status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz still %s after 20 s", what, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unavailable checks that a request answers the OCI 503 with Retry-After.
func unavailable(t *testing.T, what string, r httpResult) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" ||
		len(ociErrorCodes(r.Body)) != 1 || ociErrorCodes(r.Body)[0] != "UNAVAILABLE" {
		t.Errorf("%s: %s; want 503 UNAVAILABLE with Retry-After", what, r)
	}
}

// TestPostgresS3 runs one replica on PostgreSQL and an S3 bucket: push and
// pull with go-containerregistry, ciphertext only in the bucket, metadata
// in PostgreSQL and nothing in the data directory, a restart, both
// backends going away (503 with Retry-After, /readyz) and coming back
// (service resumes without a restart), and coffer fsck on the same
// configuration: clean, then a deleted object.
func TestPostgresS3(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	start := time.Now()
	s := startScaleOut(t, ctx)
	t.Logf("PostgreSQL, versitygw and coffer ready in %v", time.Since(start).Round(time.Millisecond))

	layerMarker, configMarker, manifestMarker := "LAYER-"+randomHex(t, 16), "CONFIG-"+randomHex(t, 16), "MANIFEST-"+randomHex(t, 16)
	img := markedImage(t, layerMarker, configMarker, manifestMarker)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(s.ref(t, "team/app:v1"), img, s.opts(ctx)...); err != nil {
		t.Fatalf("push: %v", err)
	}
	s.pullCheck(t, ctx, "first pull", "team/app:v1", want, layerMarker)

	// Ciphertext only, and in the bucket under the prefix.
	bucketDir := filepath.Join(s.gw.Root, s.bucket)
	for _, m := range []string{layerMarker, configMarker, manifestMarker} {
		hits, scanned := filesContaining(t, bucketDir, []byte(m))
		if len(hits) > 0 || scanned < 3 {
			t.Errorf("marker %s: found in %v of %d files in the bucket; want 0 of at least 3", m[:8], hits, scanned)
		}
	}
	for _, dir := range []string{"layers/aes256", "manifests"} {
		if entries, err := os.ReadDir(filepath.Join(bucketDir, s.prefix, dir)); err != nil || len(entries) == 0 {
			t.Errorf("bucket has nothing under %s/%s: %v", s.prefix, dir, err)
		}
	}
	// Metadata in PostgreSQL, none of it in the data directory.
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var manifests, blobs, tags int
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM manifests), (SELECT count(*) FROM blobs), (SELECT count(*) FROM tags)`).
		Scan(&manifests, &blobs, &tags)
	if err != nil || manifests != 1 || blobs != 2 || tags != 1 {
		t.Errorf("PostgreSQL holds %d manifests, %d blobs, %d tags (%v); want 1, 2, 1", manifests, blobs, tags, err)
	}
	for _, name := range []string{"coffer.db", "blobs"} {
		if _, err := os.Stat(filepath.Join(s.Dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data directory has %s (%v); want metadata and objects elsewhere", name, err)
		}
	}

	s.Stop()
	s.Restart()
	s.pullCheck(t, ctx, "pull after restart", "team/app:v1", want, layerMarker)

	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()
	blobPath := "/v2/team/app/blobs/" + layerDigest.String()

	// The object store goes away and comes back.
	s.gw.Kill()
	t0 := time.Now()
	unavailable(t, "blob GET without S3", s.do(ctx, "GET", blobPath, nil, nil))
	t.Logf("blob GET without S3 answered in %v", time.Since(t0).Round(time.Millisecond))
	if r := s.do(ctx, "GET", "/readyz", nil, map[string]string{"Authorization": "-"}); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz without S3: %s; want 503", r)
	}
	if err := s.gw.Restart(); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, ctx, "S3 back")
	s.pullCheck(t, ctx, "pull after S3 came back", "team/app:v1", want, layerMarker)

	// The database goes away and comes back.
	if err := s.pg.Halt(); err != nil {
		t.Fatal(err)
	}
	unavailable(t, "manifest GET without PostgreSQL", s.do(ctx, "GET", "/v2/team/app/manifests/v1",
		nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}))
	if r := s.do(ctx, "GET", "/readyz", nil, map[string]string{"Authorization": "-"}); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz without PostgreSQL: %s; want 503", r)
	}
	ecrClient := ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL("")), Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: adminKeyID, SecretAccessKey: adminSecret}, nil
		})})
	_, err = ecrClient.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ServiceUnavailableException" || !errors.As(err, &re) ||
		re.HTTPStatusCode() != 503 || re.Response.Header.Get("Retry-After") == "" {
		t.Errorf("ECR DescribeRepositories without PostgreSQL: %v; want 503 ServiceUnavailableException with Retry-After", err)
	}
	if err := s.pg.Resume(); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, ctx, "PostgreSQL back")
	s.pullCheck(t, ctx, "pull after PostgreSQL came back", "team/app:v1", want, layerMarker)
	if _, err := ecrClient.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{}); err != nil {
		t.Errorf("ECR DescribeRepositories after PostgreSQL came back: %v", err)
	}

	// fsck on the same configuration, beside the live server.
	if out, code := s.fsck(t, ctx); code != 0 || !strings.Contains(out, "read 1 manifests and 2 blobs: 0 problems") {
		t.Fatalf("fsck of a clean store = %d\n%s", code, out)
	}
	layerObjects, _ := filepath.Glob(filepath.Join(bucketDir, s.prefix, "layers", "aes256", "*"))
	if len(layerObjects) != 2 {
		t.Fatalf("layer objects in the bucket: %v; want 2", layerObjects)
	}
	if err := os.Remove(layerObjects[0]); err != nil {
		t.Fatal(err)
	}
	out, code := s.fsck(t, ctx)
	if code != 1 || !strings.Contains(out, "missing layers/aes256/"+filepath.Base(layerObjects[0])) || !strings.Contains(out, "1 problems (1 missing") {
		t.Fatalf("fsck after deleting an object = %d\n%s", code, out)
	}
	t.Logf("TestPostgresS3 took %v", time.Since(start).Round(time.Millisecond))
}
