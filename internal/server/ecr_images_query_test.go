package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
)

func TestECRBatchGetImage(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t, "BatchGetImage")
	ctx := context.Background()
	repo := "ecr/get"
	e.repo(repo, "")
	cfg, layer, _ := e.baseImage(repo, 2048)
	m1, m2 := imageManifest(cfg, "one", layer), imageManifest(cfg, "two", layer)
	e.putImage(repo, m1, "v1")
	e.putImage(repo, m2, "v2")
	d1, d2 := digestOf([]byte(m1)), digestOf([]byte(m2))

	out, err := e.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(repo), ImageIds: []types.ImageIdentifier{
		{ImageTag: aws.String("v1")},
		{ImageDigest: aws.String(d2)},
		{ImageTag: aws.String("v1"), ImageDigest: aws.String(d2)},
		{ImageTag: aws.String("nope")},
		{ImageDigest: aws.String("sha256:1234")},
		{ImageTag: aws.String("bad tag!")},
		{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Images) != 2 ||
		aws.ToString(out.Images[0].ImageId.ImageDigest) != d1 || aws.ToString(out.Images[0].ImageId.ImageTag) != "v1" ||
		aws.ToString(out.Images[0].ImageManifest) != m1 ||
		aws.ToString(out.Images[1].ImageId.ImageDigest) != d2 || out.Images[1].ImageId.ImageTag != nil ||
		aws.ToString(out.Images[1].ImageManifest) != m2 || aws.ToString(out.Images[1].ImageManifestMediaType) != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("images = %+v", out.Images)
	}
	var codes []types.ImageFailureCode
	for _, f := range out.Failures {
		codes = append(codes, f.FailureCode)
		if aws.ToString(f.FailureReason) == "" {
			t.Errorf("failure %s without a reason", f.FailureCode)
		}
	}
	want := []types.ImageFailureCode{types.ImageFailureCodeImageTagDoesNotMatchDigest, types.ImageFailureCodeImageNotFound,
		types.ImageFailureCodeInvalidImageDigest, types.ImageFailureCodeInvalidImageTag, types.ImageFailureCodeMissingDigestAndTag}
	if !slices.Equal(codes, want) {
		t.Errorf("failure codes = %v, want %v", codes, want)
	}

	t.Run("acceptedMediaTypes", func(t *testing.T) {
		out, err := e.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(repo),
			ImageIds:           []types.ImageIdentifier{{ImageTag: aws.String("v1")}},
			AcceptedMediaTypes: []string{"application/vnd.docker.distribution.manifest.v2+json"}})
		if err != nil || len(out.Images) != 0 || len(out.Failures) != 1 || out.Failures[0].FailureCode != types.ImageFailureCodeImageNotFound ||
			!strings.Contains(aws.ToString(out.Failures[0].FailureReason), "application/vnd.oci.image.manifest.v1+json") {
			t.Fatalf("Docker-only accept of an OCI image: %v %+v", err, out)
		}
		out, err = e.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(repo),
			ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("v1")}},
			AcceptedMediaTypes: []string{"application/vnd.docker.distribution.manifest.v2+json",
				"application/vnd.oci.image.manifest.v1+json"}})
		if err != nil || len(out.Images) != 1 || len(out.Failures) != 0 {
			t.Fatalf("OCI accepted: %v %+v", err, out)
		}
	})

	_, err = e.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String("ecr/none"),
		ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("v1")}}})
	wantCode(t, "unknown repository", err, "RepositoryNotFoundException")
	many := make([]types.ImageIdentifier, 101)
	for i := range many {
		many[i] = types.ImageIdentifier{ImageTag: aws.String(fmt.Sprint("t", i))}
	}
	_, err = e.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(repo), ImageIds: many})
	wantCode(t, "101 image IDs", err, "InvalidParameterException")
}

func TestECRDescribeImagesFields(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t, "DescribeImages", "BatchGetImage")
	ctx := context.Background()
	repo := "ecr/describe"
	e.repo(repo, "")
	cfg, layer, _ := e.baseImage(repo, 5000)
	extra := e.uploadLayer(repo, randomBytes(t, 777), 777)
	manifest := imageManifest(cfg, "", layer, imgDesc{"application/vnd.oci.image.layer.v1.tar", extra, 777})
	before := time.Now()
	e.putImage(repo, manifest, "v1")
	e.putImage(repo, manifest, "latest")
	after := time.Now()

	describe := func() types.ImageDetail {
		t.Helper()
		out, err := e.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo),
			ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("v1")}, {ImageDigest: aws.String(digestOf([]byte(manifest)))}}})
		if err != nil || len(out.ImageDetails) != 1 {
			t.Fatalf("DescribeImages: %v %+v", err, out)
		}
		return out.ImageDetails[0]
	}
	d := describe()
	pushed := aws.ToTime(d.ImagePushedAt)
	if aws.ToString(d.ImageDigest) != digestOf([]byte(manifest)) || !slices.Equal(d.ImageTags, []string{"latest", "v1"}) ||
		aws.ToInt64(d.ImageSizeInBytes) != layer.Size+777 ||
		pushed.Before(before.Truncate(time.Millisecond)) || pushed.After(after) ||
		aws.ToString(d.ImageManifestMediaType) != "application/vnd.oci.image.manifest.v1+json" ||
		aws.ToString(d.ArtifactMediaType) != "application/vnd.oci.image.config.v1+json" ||
		aws.ToString(d.RegistryId) != e.app.accountID || aws.ToString(d.RepositoryName) != repo ||
		d.LastRecordedPullTime != nil || d.ImageStatus != types.ImageStatusActive {
		t.Fatalf("detail = %+v (pushed %v, want in [%v, %v]; size want %d)", d, pushed, before, after, layer.Size+777)
	}

	// A pull (BatchGetImage, the first step of every pull) is recorded.
	if _, err := e.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(repo),
		ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("v1")}}}); err != nil {
		t.Fatal(err)
	}
	pulled := describe().LastRecordedPullTime
	if pulled == nil || aws.ToTime(pulled).Before(pushed) || aws.ToTime(pulled).After(time.Now()) {
		t.Fatalf("lastRecordedPullTime after a pull = %v", pulled)
	}
	// ... and survives the batch being written.
	if err := e.app.reg.FlushPulls(ctx); err != nil {
		t.Fatal(err)
	}
	if again := describe().LastRecordedPullTime; again == nil || !aws.ToTime(again).Equal(aws.ToTime(pulled)) {
		t.Fatalf("lastRecordedPullTime after flush = %v, want %v", again, pulled)
	}

	_, err := e.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo),
		ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("v9")}}})
	var nf *types.ImageNotFoundException
	if !errors.As(err, &nf) || !strings.Contains(nf.ErrorMessage(), "imageTag:'v9'") {
		t.Fatalf("describe a missing tag: %v", err)
	}
	_, err = e.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo), MaxResults: aws.Int32(0)})
	wantCode(t, "maxResults 0", err, "InvalidParameterException")
	_, err = e.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo), NextToken: aws.String("garbage")})
	wantCode(t, "a forged token", err, "InvalidParameterException")
}

// imagesRepo fills repo with images of known tags, in an order unrelated
// to their digests, and returns tags by digest (nil: untagged).
func (e *imgEnv) imagesRepo(repo string) map[string][]string {
	e.t.Helper()
	e.repo(repo, "")
	cfg, layer, _ := e.baseImage(repo, 1024)
	want := map[string][]string{}
	for i, tags := range [][]string{{"c", "a", "b"}, nil, {"z"}, nil, {"m", "n"}, {"x"}, nil} {
		m := imageManifest(cfg, fmt.Sprint("image ", i), layer)
		if len(tags) == 0 {
			if _, err := e.putImage(repo, m, ""); err != nil {
				e.t.Fatal(err)
			}
		}
		for _, tag := range tags {
			if _, err := e.putImage(repo, m, tag); err != nil {
				e.t.Fatal(err)
			}
		}
		want[digestOf([]byte(m))] = slices.Sorted(slices.Values(tags))
	}
	return want
}

func TestECRListImages(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t, "ListImages", "DescribeImages")
	ctx := context.Background()
	repo := "ecr/list"
	want := e.imagesRepo(repo)
	digests := slices.Sorted(func(yield func(string) bool) {
		for d := range want {
			if !yield(d) {
				return
			}
		}
	})
	expect := func(status types.TagStatus) []string {
		var out []string
		for _, d := range digests {
			tags := want[d]
			if len(tags) == 0 {
				if status != types.TagStatusTagged {
					out = append(out, d+" ")
				}
				continue
			}
			if status != types.TagStatusUntagged {
				for _, tag := range tags {
					out = append(out, d+" "+tag)
				}
			}
		}
		return out
	}
	for _, status := range []types.TagStatus{"", types.TagStatusAny, types.TagStatusTagged, types.TagStatusUntagged} {
		for _, page := range []int32{1, 2, 3, 1000} {
			t.Run(fmt.Sprintf("%s/%d", status, page), func(t *testing.T) {
				in := &ecr.ListImagesInput{RepositoryName: aws.String(repo), MaxResults: aws.Int32(page)}
				if status != "" {
					in.Filter = &types.ListImagesFilter{TagStatus: status}
				}
				var got []string
				pages := 0
				for p := ecr.NewListImagesPaginator(e.ecr, in); p.HasMorePages(); {
					out, err := p.NextPage(ctx)
					if err != nil {
						t.Fatal(err)
					}
					pages++
					if len(out.ImageIds) > int(page) {
						t.Fatalf("page of %d entries, maxResults %d", len(out.ImageIds), page)
					}
					for _, id := range out.ImageIds {
						got = append(got, aws.ToString(id.ImageDigest)+" "+aws.ToString(id.ImageTag))
					}
					if pages > 40 {
						t.Fatal("pagination does not end")
					}
				}
				if w := expect(status); !slices.Equal(got, w) {
					t.Fatalf("listed\n%v\nwant\n%v", strings.Join(got, "\n"), strings.Join(w, "\n"))
				}
			})
		}
	}

	t.Run("DescribeImages paging and filters", func(t *testing.T) {
		for _, status := range []types.TagStatus{types.TagStatusAny, types.TagStatusTagged, types.TagStatusUntagged} {
			var got []string
			for p := ecr.NewDescribeImagesPaginator(e.ecr, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo),
				MaxResults: aws.Int32(2), Filter: &types.DescribeImagesFilter{TagStatus: status}}); p.HasMorePages(); {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range out.ImageDetails {
					if !slices.Equal(d.ImageTags, want[aws.ToString(d.ImageDigest)]) {
						t.Errorf("%s: tags %v, want %v", aws.ToString(d.ImageDigest), d.ImageTags, want[aws.ToString(d.ImageDigest)])
					}
					got = append(got, aws.ToString(d.ImageDigest))
				}
			}
			var w []string
			for _, d := range digests {
				tagged := len(want[d]) > 0
				if status == types.TagStatusAny || (status == types.TagStatusTagged) == tagged {
					w = append(w, d)
				}
			}
			if !slices.Equal(got, w) {
				t.Errorf("%s: described %v, want %v", status, got, w)
			}
		}
	})

	_, err := e.ecr.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String(repo), MaxResults: aws.Int32(1001)})
	wantCode(t, "maxResults 1001", err, "InvalidParameterException")
	_, err = e.ecr.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String(repo), Filter: &types.ListImagesFilter{TagStatus: "SOMETIMES"}})
	wantCode(t, "unknown tagStatus", err, "InvalidParameterException")
	d, _ := e.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo), MaxResults: aws.Int32(1)})
	_, err = e.ecr.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String(repo), NextToken: d.NextToken})
	wantCode(t, "a DescribeImages token in ListImages", err, "InvalidParameterException")
}

func TestECRBatchDeleteImage(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t, "BatchDeleteImage")
	ctx := context.Background()
	repo := "ecr/delete"
	e.repo(repo, "")
	cfg, layer, _ := e.baseImage(repo, 1024)
	put := func(note string, tags ...string) string {
		m := imageManifest(cfg, note, layer)
		if len(tags) == 0 {
			e.putImage(repo, m, "")
		}
		for _, tag := range tags {
			if _, err := e.putImage(repo, m, tag); err != nil {
				t.Fatal(err)
			}
		}
		return digestOf([]byte(m))
	}
	x, y, u := put("x", "a", "b"), put("y", "c", "d"), put("u")
	del := func(ids ...types.ImageIdentifier) *ecr.BatchDeleteImageOutput {
		t.Helper()
		out, err := e.ecr.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{RepositoryName: aws.String(repo), ImageIds: ids})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ids := func(out *ecr.BatchDeleteImageOutput) []string {
		var s []string
		for _, id := range out.ImageIds {
			s = append(s, aws.ToString(id.ImageDigest)+" "+aws.ToString(id.ImageTag))
		}
		return s
	}
	exists := func(d string) bool {
		_, err := e.app.store.GetManifest(ctx, mustRepo(t, e.app, repo).ID, d)
		return err == nil
	}

	// By tag: the tag goes; the image stays while it has another.
	out := del(types.ImageIdentifier{ImageTag: aws.String("a")})
	if !slices.Equal(ids(out), []string{x + " a"}) || len(out.Failures) != 0 || !exists(x) {
		t.Fatalf("delete tag a: %v %+v, exists %v", ids(out), out.Failures, exists(x))
	}
	out = del(types.ImageIdentifier{ImageTag: aws.String("b"), ImageDigest: aws.String(x)})
	if !slices.Equal(ids(out), []string{x + " b"}) || exists(x) {
		t.Fatalf("delete the last tag: %v, exists %v", ids(out), exists(x))
	}
	// By digest: the image and every tag.
	out = del(types.ImageIdentifier{ImageDigest: aws.String(y)}, types.ImageIdentifier{ImageDigest: aws.String(u)})
	if !slices.Equal(ids(out), []string{y + " c", y + " d", u + " "}) || exists(y) || exists(u) {
		t.Fatalf("delete by digest: %v", ids(out))
	}

	z := put("z", "keep")
	child := put("child", "child")
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		child + `","size":10}]}`
	if _, err := e.putImage(repo, index, "all"); err != nil {
		t.Fatal(err)
	}
	out = del(
		types.ImageIdentifier{ImageTag: aws.String("nope")},
		types.ImageIdentifier{ImageTag: aws.String("keep"), ImageDigest: aws.String(child)},
		types.ImageIdentifier{},
		types.ImageIdentifier{ImageDigest: aws.String("sha256:zz")},
		types.ImageIdentifier{ImageDigest: aws.String(child)},
	)
	var codes []types.ImageFailureCode
	for _, f := range out.Failures {
		codes = append(codes, f.FailureCode)
	}
	wantCodes := []types.ImageFailureCode{types.ImageFailureCodeImageNotFound, types.ImageFailureCodeImageTagDoesNotMatchDigest,
		types.ImageFailureCodeMissingDigestAndTag, types.ImageFailureCodeInvalidImageDigest, types.ImageFailureCodeImageReferencedByManifestList}
	if len(out.ImageIds) != 0 || !slices.Equal(codes, wantCodes) || !exists(z) || !exists(child) {
		t.Fatalf("failures = %v, want %v (deleted %v)", codes, wantCodes, ids(out))
	}
	// Untagging an index's child keeps it; deleting the index frees it.
	out = del(types.ImageIdentifier{ImageTag: aws.String("child")})
	if !slices.Equal(ids(out), []string{child + " child"}) || !exists(child) {
		t.Fatalf("untag a child: %v, exists %v", ids(out), exists(child))
	}
	del(types.ImageIdentifier{ImageTag: aws.String("all")})
	out = del(types.ImageIdentifier{ImageDigest: aws.String(child)})
	if !slices.Equal(ids(out), []string{child + " "}) {
		t.Fatalf("delete a freed child: %v %+v", ids(out), out.Failures)
	}
}
