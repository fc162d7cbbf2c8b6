package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// imgEnv is one server with an administrator's ECR client whose responses
// are all checked against the botocore model at the end of the test.
type imgEnv struct {
	t     *testing.T
	srv   *httptest.Server
	app   *App
	rec   *imgRecorder
	ecr   *ecr.Client
	token string // registry token of the administrator
}

func newImgEnv(t *testing.T, ops ...string) *imgEnv {
	t.Helper()
	model := imgLoadModel(t)
	srv, app := newAuthServer(t)
	rec := &imgRecorder{next: http.DefaultTransport}
	e := &imgEnv{t: t, srv: srv, app: app, rec: rec, ecr: ecrClient(srv, adminID, adminSecret, &http.Client{Transport: rec})}
	e.token = loginToken(t, e.ecr)
	t.Cleanup(func() { rec.verify(t, model, ops...) })
	return e
}

func (e *imgEnv) repo(name, mutability string) metadata.Repository {
	e.t.Helper()
	r, err := e.app.reg.CreateRepository(context.Background(), metadata.Repository{Name: name, TagMutability: mutability}, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *imgEnv) pullAuth() remote.Option {
	return remote.WithAuth(&authn.Basic{Username: "AWS", Password: e.token})
}

// apiCode returns the ECR error code of err ("" if none).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := apiCode(err); got != code {
		t.Fatalf("%s: err = %v, want %s", what, err, code)
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// uploadLayer pushes data with the layer API in parts of partSize bytes.
func (e *imgEnv) uploadLayer(repo string, data []byte, partSize int) string {
	e.t.Helper()
	ctx := context.Background()
	up, err := e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(repo)})
	if err != nil {
		e.t.Fatalf("InitiateLayerUpload: %v", err)
	}
	for off := 0; off < len(data); off += partSize {
		end := min(off+partSize, len(data))
		_, err := e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: up.UploadId,
			PartFirstByte: aws.Int64(int64(off)), PartLastByte: aws.Int64(int64(end - 1)), LayerPartBlob: data[off:end]})
		if err != nil {
			e.t.Fatalf("UploadLayerPart %d-%d: %v", off, end-1, err)
		}
	}
	d := digestOf(data)
	out, err := e.ecr.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo),
		UploadId: up.UploadId, LayerDigests: []string{d}})
	if err != nil {
		e.t.Fatalf("CompleteLayerUpload: %v", err)
	}
	if aws.ToString(out.LayerDigest) != d {
		e.t.Fatalf("CompleteLayerUpload digest %s, want %s", aws.ToString(out.LayerDigest), d)
	}
	return d
}

type imgDesc struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// imageManifest is an OCI image manifest over config and layers; note
// makes otherwise equal manifests distinct.
func imageManifest(config imgDesc, note string, layers ...imgDesc) string {
	m := map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": config, "layers": layers}
	if note != "" {
		m["annotations"] = map[string]string{"org.example.note": note}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// baseImage uploads a config and one layer to repo with the layer API and
// returns their descriptors.
func (e *imgEnv) baseImage(repo string, layerSize int) (config, layer imgDesc, layerData []byte) {
	layerData = randomBytes(e.t, layerSize)
	ld := e.uploadLayer(repo, layerData, layerSize)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + ld + `"]},"config":{}}`)
	cd := e.uploadLayer(repo, cfg, len(cfg))
	return imgDesc{"application/vnd.oci.image.config.v1+json", cd, int64(len(cfg))},
		imgDesc{"application/vnd.oci.image.layer.v1.tar", ld, int64(layerSize)}, layerData
}

func (e *imgEnv) putImage(repo, manifest, tag string) (*ecr.PutImageOutput, error) {
	in := &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(manifest)}
	if tag != "" {
		in.ImageTag = aws.String(tag)
	}
	return e.ecr.PutImage(context.Background(), in)
}

func TestECRLayerPushThenPull(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t, "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "BatchCheckLayerAvailability", "PutImage")
	ctx := context.Background()
	repo := "ecr/push"
	e.repo(repo, "")
	layerData := randomBytes(t, 300<<10)
	layerDigest := digestOf(layerData)

	// Two parts, with an out-of-order one refused in between.
	up, err := e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(repo)})
	if err != nil {
		t.Fatal(err)
	}
	if len(aws.ToString(up.UploadId)) != 36 || aws.ToInt64(up.PartSize) <= 0 {
		t.Fatalf("InitiateLayerUpload = %q, %d", aws.ToString(up.UploadId), aws.ToInt64(up.PartSize))
	}
	part := func(first, last int) error {
		_, err := e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: up.UploadId,
			PartFirstByte: aws.Int64(int64(first)), PartLastByte: aws.Int64(int64(last)), LayerPartBlob: layerData[first : last+1]})
		return err
	}
	half := 128 << 10
	if err := part(0, half-1); err != nil {
		t.Fatalf("part 1: %v", err)
	}
	err = part(half+1000, len(layerData)-1)
	var ilp *types.InvalidLayerPartException
	if !errors.As(err, &ilp) || aws.ToInt64(ilp.LastValidByteReceived) != int64(half-1) ||
		aws.ToString(ilp.UploadId) != aws.ToString(up.UploadId) || aws.ToString(ilp.RepositoryName) != repo {
		t.Fatalf("out-of-order part: %v (%+v)", err, ilp)
	}
	// A part whose range and payload disagree is refused too.
	_, err = e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: up.UploadId,
		PartFirstByte: aws.Int64(int64(half)), PartLastByte: aws.Int64(int64(half + 9)), LayerPartBlob: layerData[half : half+5]})
	wantCode(t, "part with a wrong range", err, "InvalidLayerPartException")
	out, err := e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: up.UploadId,
		PartFirstByte: aws.Int64(int64(half)), PartLastByte: aws.Int64(int64(len(layerData) - 1)), LayerPartBlob: layerData[half:]})
	if err != nil || aws.ToInt64(out.LastByteReceived) != int64(len(layerData)-1) {
		t.Fatalf("part 2: %v, %+v", err, out)
	}
	done, err := e.ecr.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo),
		UploadId: up.UploadId, LayerDigests: []string{layerDigest}})
	if err != nil || aws.ToString(done.LayerDigest) != layerDigest || aws.ToString(done.RegistryId) != e.app.accountID {
		t.Fatalf("CompleteLayerUpload: %v, %+v", err, done)
	}

	t.Run("complete errors", func(t *testing.T) {
		// The same layer again: ECR's LayerAlreadyExistsException.
		up, _ := e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(repo)})
		e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: up.UploadId,
			PartFirstByte: aws.Int64(0), PartLastByte: aws.Int64(int64(len(layerData) - 1)), LayerPartBlob: layerData})
		_, err := e.ecr.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo),
			UploadId: up.UploadId, LayerDigests: []string{layerDigest}})
		wantCode(t, "complete an existing layer", err, "LayerAlreadyExistsException")
		// Content that does not match the digest.
		up, _ = e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(repo)})
		e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: up.UploadId,
			PartFirstByte: aws.Int64(0), PartLastByte: aws.Int64(2), LayerPartBlob: []byte("abc")})
		_, err = e.ecr.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo),
			UploadId: up.UploadId, LayerDigests: []string{digestOf([]byte("abd"))}})
		wantCode(t, "complete with the wrong digest", err, "InvalidLayerException")
		_, err = e.ecr.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo),
			UploadId: up.UploadId, LayerDigests: []string{digestOf([]byte("abc"))}})
		wantCode(t, "a session cancelled by a mismatch", err, "UploadNotFoundException")
		// Nothing uploaded.
		up, _ = e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(repo)})
		_, err = e.ecr.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo),
			UploadId: up.UploadId, LayerDigests: []string{layerDigest}})
		wantCode(t, "complete an empty upload", err, "EmptyUploadException")
		_, err = e.ecr.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo),
			UploadId: aws.String("00000000-0000-0000-0000-000000000000"), PartFirstByte: aws.Int64(0), PartLastByte: aws.Int64(0), LayerPartBlob: []byte("x")})
		wantCode(t, "unknown upload", err, "UploadNotFoundException")
		_, err = e.ecr.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String("ecr/nope")})
		wantCode(t, "upload to an unknown repository", err, "RepositoryNotFoundException")
	})

	cfgData := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + layerDigest + `"]},"config":{}}`)
	cfgDigest := e.uploadLayer(repo, cfgData, 100)

	t.Run("BatchCheckLayerAvailability", func(t *testing.T) {
		missing := digestOf([]byte("never pushed"))
		out, err := e.ecr.BatchCheckLayerAvailability(ctx, &ecr.BatchCheckLayerAvailabilityInput{RepositoryName: aws.String(repo),
			LayerDigests: []string{layerDigest, missing, "sha256:xyz", cfgDigest}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Layers) != 2 || aws.ToString(out.Layers[0].LayerDigest) != layerDigest || out.Layers[0].LayerAvailability != types.LayerAvailabilityAvailable ||
			aws.ToInt64(out.Layers[0].LayerSize) != int64(len(layerData)) || aws.ToInt64(out.Layers[1].LayerSize) != int64(len(cfgData)) {
			t.Errorf("layers = %+v", out.Layers)
		}
		codes := map[string]types.LayerFailureCode{}
		for _, f := range out.Failures {
			codes[aws.ToString(f.LayerDigest)] = f.FailureCode
		}
		if codes[missing] != types.LayerFailureCodeMissingLayerDigest || codes["sha256:xyz"] != types.LayerFailureCodeInvalidLayerDigest {
			t.Errorf("failures = %v", codes)
		}
	})

	manifest := imageManifest(imgDesc{"application/vnd.oci.image.config.v1+json", cfgDigest, int64(len(cfgData))}, "",
		imgDesc{"application/vnd.oci.image.layer.v1.tar", layerDigest, int64(len(layerData))})
	put, err := e.putImage(repo, manifest, "v1")
	if err != nil {
		t.Fatalf("PutImage: %v", err)
	}
	id := put.Image.ImageId
	if aws.ToString(id.ImageDigest) != digestOf([]byte(manifest)) || aws.ToString(id.ImageTag) != "v1" ||
		aws.ToString(put.Image.ImageManifest) != manifest || aws.ToString(put.Image.ImageManifestMediaType) != "application/vnd.oci.image.manifest.v1+json" ||
		aws.ToString(put.Image.RegistryId) != e.app.accountID || aws.ToString(put.Image.RepositoryName) != repo {
		t.Fatalf("PutImage = %+v", put.Image)
	}

	// Pull over /v2/ with a registry token: the same bytes.
	img, err := remote.Image(ref(t, e.srv, repo+":v1"), e.pullAuth())
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if d, _ := img.Digest(); d.String() != aws.ToString(id.ImageDigest) {
		t.Fatalf("pulled digest %s", d)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("pulled %d layers", len(layers))
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc) // ggcr verifies the digest
	rc.Close()
	if err != nil || !bytes.Equal(got, layerData) {
		t.Fatalf("pulled layer: %d bytes, %v", len(got), err)
	}
}

func TestECRPutImage(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t, "PutImage")
	ctx := context.Background()
	repo := "ecr/put"
	e.repo(repo, "")
	cfg, layer, _ := e.baseImage(repo, 4096)
	manifest := imageManifest(cfg, "", layer)
	d := digestOf([]byte(manifest))
	if _, err := e.putImage(repo, manifest, "v1"); err != nil {
		t.Fatal(err)
	}

	_, err := e.putImage(repo, manifest, "v1")
	wantCode(t, "same manifest, same tag", err, "ImageAlreadyExistsException")
	_, err = e.putImage(repo, manifest, "")
	wantCode(t, "same manifest by digest", err, "ImageAlreadyExistsException")

	// Retag: the same manifest under a second tag.
	out, err := e.putImage(repo, manifest, "v2")
	if err != nil || aws.ToString(out.Image.ImageId.ImageDigest) != d {
		t.Fatalf("retag: %v", err)
	}
	tags, _ := e.app.reg.ImageTags(ctx, mustRepo(t, e.app, repo), registry.Digest(d))
	if !slices.Equal(tags, []string{"v1", "v2"}) {
		t.Fatalf("tags after retag = %v", tags)
	}

	_, err = e.ecr.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(manifest),
		ImageTag: aws.String("v3"), ImageDigest: aws.String(digestOf([]byte("other")))})
	wantCode(t, "digest mismatch", err, "ImageDigestDoesNotMatchException")
	if _, err := e.ecr.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(manifest),
		ImageTag: aws.String("v3"), ImageDigest: aws.String(d)}); err != nil {
		t.Fatalf("PutImage with the right digest: %v", err)
	}

	missing := imgDesc{"application/vnd.oci.image.layer.v1.tar", digestOf([]byte("not uploaded")), 12}
	_, err = e.putImage(repo, imageManifest(cfg, "", layer, missing), "broken")
	wantCode(t, "missing layer", err, "LayersNotFoundException")
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		digestOf([]byte("no such image")) + `","size":10}]}`
	_, err = e.putImage(repo, index, "idx")
	wantCode(t, "index over a missing image", err, "ReferencedImagesNotFoundException")
	_, err = e.putImage(repo, "{not json", "bad")
	wantCode(t, "invalid manifest", err, "InvalidParameterException")
	_, err = e.putImage("ecr/none", manifest, "v1")
	wantCode(t, "unknown repository", err, "RepositoryNotFoundException")
	_, err = e.ecr.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(manifest), RegistryId: aws.String("999999999999")})
	wantCode(t, "another registry", err, "InvalidParameterException")

	// An index over the image: its size is its largest child's.
	index = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		d + `","size":` + fmt.Sprint(len(manifest)) + `}]}`
	if _, err := e.putImage(repo, index, "multi"); err != nil {
		t.Fatalf("put index: %v", err)
	}
	desc, err := e.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo), ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("multi")}}})
	if err != nil || len(desc.ImageDetails) != 1 || aws.ToInt64(desc.ImageDetails[0].ImageSizeInBytes) != layer.Size {
		t.Fatalf("describe index: %v %+v", err, desc)
	}
}

func mustRepo(t *testing.T, app *App, name string) metadata.Repository {
	t.Helper()
	r, err := app.store.GetRepository(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestImmutableTagBothDoors: tag immutability is one rule in the registry,
// so ECR PutImage and an OCI manifest PUT refuse a move with the same words.
func TestImmutableTagBothDoors(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t)
	ctx := context.Background()
	repo := "ecr/immutable"
	e.repo(repo, metadata.TagImmutable)
	a, _ := random.Image(1024, 1)
	b, _ := random.Image(1024, 1)
	if err := remote.Write(ref(t, e.srv, repo+":release"), a, e.pullAuth()); err != nil {
		t.Fatalf("push a: %v", err)
	}
	bd, _ := b.Digest()
	if err := remote.Write(ref(t, e.srv, repo+"@"+bd.String()), b, e.pullAuth()); err != nil {
		t.Fatalf("push b by digest: %v", err)
	}
	want := "The image tag 'release' already exists in the 'ecr/immutable' repository and cannot be overwritten because the repository is immutable."

	raw, _ := b.RawManifest()
	_, err := e.putImage(repo, string(raw), "release")
	var ita *types.ImageTagAlreadyExistsException
	if !errors.As(err, &ita) || ita.ErrorMessage() != want {
		t.Fatalf("ECR PutImage: %v; want %q", err, want)
	}

	err = remote.Tag(ref(t, e.srv, repo+":release").(name.Tag), b, e.pullAuth())
	var te *transport.Error
	if !errors.As(err, &te) || len(te.Errors) != 1 || te.Errors[0].Message != want {
		t.Fatalf("OCI manifest PUT: %v; want %q", err, want)
	}
	// Both refusals left the tag where it was.
	m, err := e.app.reg.ResolveManifest(ctx, mustRepo(t, e.app, repo), "release")
	if ad, _ := a.Digest(); err != nil || m.Digest != ad.String() {
		t.Fatalf("release = %s, %v", m.Digest, err)
	}
}
