//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// imgAWS runs `aws ecr ...` as the administrator against c and decodes
// its JSON output (nil for none).
func imgAWS(t *testing.T, ctx context.Context, c *coffer, args ...string) map[string]any {
	t.Helper()
	out := run(t, ctx, c.awsEnv(), nil, "aws", append(append([]string{"ecr"}, args...), "--endpoint-url", c.URL(""), "--output", "json")...)
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("aws ecr %v: output is not JSON: %v\n%s", args, err, out)
	}
	return m
}

// imgShell runs a bash script with the aws CLI environment, EP set to the
// endpoint: the way users chain aws commands with $(...).
func imgShell(t *testing.T, ctx context.Context, c *coffer, script string) string {
	t.Helper()
	return run(t, ctx, append(c.awsEnv(), "EP="+c.URL("")), nil, "bash", "-euo", "pipefail", "-c", script)
}

func imgList(m map[string]any, key string) []map[string]any {
	var out []map[string]any
	l, _ := m[key].([]any)
	for _, e := range l {
		out = append(out, e.(map[string]any))
	}
	return out
}

func imgTags(d map[string]any) []string {
	var tags []string
	l, _ := d["imageTags"].([]any)
	for _, t := range l {
		tags = append(tags, t.(string))
	}
	slices.Sort(tags)
	return tags
}

// TestAWSCLIImages drives the ECR image and layer operations with the real
// aws CLI and curl against the real binary (issue #4): describe-images,
// batch-get-image, the documented put-image retag recipe, list-images with
// a tag filter, batch-delete-image, and get-download-url-for-layer fetched
// with curl.
func TestAWSCLIImages(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	c := startCoffer(t)
	requireTool(t, "aws")
	requireTool(t, "curl")
	const repo = "e2e/images" // created by the first push (--create-on-push)

	img, _ := random.Image(8192, 2)
	if err := remote.Write(c.ref(t, repo+":v1"), img, c.opts(ctx)...); err != nil {
		t.Fatalf("push v1: %v", err)
	}
	digest, _ := img.Digest()
	raw, _ := img.RawManifest()
	mf, _ := img.Manifest()
	var layerSum int64
	for _, l := range mf.Layers {
		layerSum += l.Size
	}

	// describe-images: the image with its tag, size and push time.
	out := imgAWS(t, ctx, c, "describe-images", "--repository-name", repo)
	details := imgList(out, "imageDetails")
	if len(details) != 1 || details[0]["imageDigest"] != digest.String() || !slices.Equal(imgTags(details[0]), []string{"v1"}) ||
		details[0]["imageSizeInBytes"] != float64(layerSum) || details[0]["imagePushedAt"] == nil {
		t.Fatalf("describe-images = %v (want size %d)", out, layerSum)
	}

	// batch-get-image returns the manifest byte for byte.
	got := imgShell(t, ctx, c, `aws ecr batch-get-image --endpoint-url "$EP" --repository-name `+repo+
		` --image-ids imageTag=v1 --query 'images[0].imageManifest' --output text`)
	if strings.TrimRight(got, "\n") != string(raw) {
		t.Fatalf("batch-get-image manifest:\n%s\nwant\n%s", got, raw)
	}

	// The retag recipe from the ECR user guide.
	imgShell(t, ctx, c, `MANIFEST=$(aws ecr batch-get-image --endpoint-url "$EP" --repository-name `+repo+
		` --image-ids imageTag=v1 --output text --query 'images[].imageManifest')
aws ecr put-image --endpoint-url "$EP" --repository-name `+repo+` --image-tag v2 --image-manifest "$MANIFEST" >/dev/null`)
	out = imgAWS(t, ctx, c, "describe-images", "--repository-name", repo, "--image-ids", "imageTag=v2")
	if d := imgList(out, "imageDetails"); len(d) != 1 || d[0]["imageDigest"] != digest.String() || !slices.Equal(imgTags(d[0]), []string{"v1", "v2"}) {
		t.Fatalf("after put-image retag: %v", out)
	}
	// ... and again is ECR's ImageAlreadyExistsException.
	_, err := runErr(ctx, c.awsEnv(), nil, "aws", "ecr", "put-image", "--endpoint-url", c.URL(""), "--repository-name", repo,
		"--image-tag", "v2", "--image-manifest", string(raw))
	if err == nil || !strings.Contains(err.Error(), "ImageAlreadyExistsException") {
		t.Fatalf("put-image of an existing tag: %v", err)
	}

	// An untagged image, then list-images --filter tagStatus=UNTAGGED.
	loose, _ := random.Image(2048, 1)
	looseDigest, _ := loose.Digest()
	if err := remote.Write(c.ref(t, repo+"@"+looseDigest.String()), loose, c.opts(ctx)...); err != nil {
		t.Fatalf("push by digest: %v", err)
	}
	out = imgAWS(t, ctx, c, "list-images", "--repository-name", repo, "--filter", "tagStatus=UNTAGGED")
	if ids := imgList(out, "imageIds"); len(ids) != 1 || ids[0]["imageDigest"] != looseDigest.String() || ids[0]["imageTag"] != nil {
		t.Fatalf("list-images UNTAGGED = %v", out)
	}
	out = imgAWS(t, ctx, c, "list-images", "--repository-name", repo, "--filter", "tagStatus=TAGGED")
	if ids := imgList(out, "imageIds"); len(ids) != 2 {
		t.Fatalf("list-images TAGGED = %v", out)
	}

	// get-download-url-for-layer, fetched with curl: the exact bytes.
	layerDigest := mf.Layers[0].Digest
	out = imgAWS(t, ctx, c, "get-download-url-for-layer", "--repository-name", repo, "--layer-digest", layerDigest.String())
	url, _ := out["downloadUrl"].(string)
	if !strings.HasPrefix(url, c.URL("/_coffer/layers/"+repo+"/")) || out["layerDigest"] != layerDigest.String() {
		t.Fatalf("get-download-url-for-layer = %v", out)
	}
	file := filepath.Join(t.TempDir(), "layer")
	run(t, ctx, nil, nil, "curl", "-sS", "--fail", "-o", file, url)
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := img.LayerByDigest(layerDigest)
	rc, _ := layer.Compressed()
	var want bytes.Buffer
	want.ReadFrom(rc)
	rc.Close()
	if sha256Digest(body) != layerDigest || !bytes.Equal(body, want.Bytes()) {
		t.Fatalf("curl downloaded %d bytes with digest %s, want %s", len(body), sha256Digest(body), layerDigest)
	}
	part := run(t, ctx, nil, nil, "curl", "-sS", "--fail", "-r", "100-199", url)
	if part != string(want.Bytes()[100:200]) {
		t.Fatalf("curl -r 100-199 returned %d bytes that differ", len(part))
	}
	// A tampered URL is refused.
	bad := strings.Replace(url, "X-Coffer-Expires=", "X-Coffer-Expires=1", 1)
	status := run(t, ctx, nil, nil, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", bad)
	if status != "403" {
		t.Fatalf("tampered URL: HTTP %s", status)
	}

	// batch-delete-image by tag: only the tag goes while another remains.
	out = imgAWS(t, ctx, c, "batch-delete-image", "--repository-name", repo, "--image-ids", "imageTag=v2")
	if ids := imgList(out, "imageIds"); len(ids) != 1 || ids[0]["imageTag"] != "v2" || ids[0]["imageDigest"] != digest.String() {
		t.Fatalf("batch-delete-image v2 = %v", out)
	}
	out = imgAWS(t, ctx, c, "describe-images", "--repository-name", repo, "--image-ids", "imageDigest="+digest.String())
	if d := imgList(out, "imageDetails"); len(d) != 1 || !slices.Equal(imgTags(d[0]), []string{"v1"}) {
		t.Fatalf("after deleting v2: %v", out)
	}
	// By digest: the image and its last tag.
	out = imgAWS(t, ctx, c, "batch-delete-image", "--repository-name", repo, "--image-ids", "imageDigest="+digest.String())
	if ids := imgList(out, "imageIds"); len(ids) != 1 || ids[0]["imageTag"] != "v1" {
		t.Fatalf("batch-delete-image by digest = %v", out)
	}
	out = imgAWS(t, ctx, c, "list-images", "--repository-name", repo)
	if ids := imgList(out, "imageIds"); len(ids) != 1 || ids[0]["imageDigest"] != looseDigest.String() {
		t.Fatalf("list-images after deletes = %v", out)
	}
}

// TestDockerPushDescribeImages: an image pushed by docker is an ECR image:
// aws ecr describe-images shows it with docker's digest and tag.
func TestDockerPushDescribeImages(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	d := newDockerCLI(t, ctx)
	c := startCoffer(t)
	requireTool(t, "aws")
	d.login(c)
	ref := c.Addr + "/e2e/docker-images:v1"
	d.removeOnCleanup(ref)
	d.importImage(ref, map[string]string{"etc/os-release": "ID=coffer-e2e-images\n", "data/x": strings.Repeat("x", 5000)})
	digest := d.push(ref)

	out := imgAWS(t, ctx, c, "describe-images", "--repository-name", "e2e/docker-images")
	details := imgList(out, "imageDetails")
	if len(details) != 1 || details[0]["imageDigest"] != digest.String() || !slices.Equal(imgTags(details[0]), []string{"v1"}) ||
		details[0]["imageManifestMediaType"] != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Fatalf("describe-images after docker push = %v", out)
	}
	size, _ := details[0]["imageSizeInBytes"].(float64)
	if size <= 0 {
		t.Fatalf("imageSizeInBytes = %v", details[0]["imageSizeInBytes"])
	}
	out = imgAWS(t, ctx, c, "batch-check-layer-availability", "--repository-name", "e2e/docker-images",
		"--layer-digests", "sha256:"+strings.Repeat("0", 64))
	if f := imgList(out, "failures"); len(f) != 1 || f[0]["failureCode"] != "MissingLayerDigest" {
		t.Fatalf("batch-check-layer-availability of a missing layer = %v", out)
	}
}
