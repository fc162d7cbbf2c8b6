package server

import (
	"context"
	"github.com/cofferhq/coffer/internal/audit"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/cofferhq/coffer/internal/lifecycle/runner"
	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

const lcPolicy = `{"rules":[
 {"rulePriority":1,"description":"keep the newest prod image","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
 {"rulePriority":2,"description":"keep one untagged image","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`

func lcDriver(t *testing.T, app *App) storage.Driver {
	t.Helper()
	d, err := fs.New(fs.Config{Root: filepath.Join(app.cfg.DataDir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLifecyclePolicyEndToEnd(t *testing.T) {
	e := newImgEnv(t, "PutLifecyclePolicy", "GetLifecyclePolicy", "DeleteLifecyclePolicy",
		"StartLifecyclePolicyPreview", "GetLifecyclePolicyPreview")
	ctx := context.Background()
	const repo = "lc/app"
	e.repo(repo, "MUTABLE")
	cfg, layer, _ := e.baseImage(repo, 1024)
	push := func(note, tag string) string {
		t.Helper()
		m := imageManifest(cfg, note, layer)
		if _, err := e.putImage(repo, m, tag); err != nil {
			t.Fatalf("PutImage %s: %v", note, err)
		}
		time.Sleep(2 * time.Millisecond) // distinct push times
		return digestOf([]byte(m))
	}
	prod1, prod2, prod3 := push("p1", "prod-1"), push("p2", "prod-2"), push("p3", "prod-3")
	un1, un2 := push("u1", ""), push("u2", "")
	dev := push("d1", "dev-1")

	name := aws.String(repo)
	_, err := e.ecr.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: name})
	wantCode(t, "GetLifecyclePolicy before put", err, "LifecyclePolicyNotFoundException")
	_, err = e.ecr.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: name})
	wantCode(t, "GetLifecyclePolicyPreview before start", err, "LifecyclePolicyPreviewNotFoundException")
	_, err = e.ecr.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: aws.String("lc/nope"), LifecyclePolicyText: aws.String(lcPolicy)})
	wantCode(t, "PutLifecyclePolicy unknown repository", err, "RepositoryNotFoundException")
	bad := strings.Replace(lcPolicy, `"countNumber":1},"action":{"type":"expire"}}]}`, `"countNumber":0},"action":{"type":"expire"}}]}`, 1)
	_, err = e.ecr.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: name, LifecyclePolicyText: aws.String(bad)})
	wantCode(t, "PutLifecyclePolicy countNumber 0", err, "InvalidParameterException")
	if !strings.Contains(err.Error(), "rules[1].selection.countNumber") {
		t.Errorf("error does not name the field: %v", err)
	}

	put, err := e.ecr.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: name, LifecyclePolicyText: aws.String(lcPolicy)})
	if err != nil {
		t.Fatalf("PutLifecyclePolicy: %v", err)
	}
	if aws.ToString(put.LifecyclePolicyText) != lcPolicy || aws.ToString(put.RepositoryName) != repo {
		t.Fatalf("PutLifecyclePolicy answered %+v", put)
	}
	got, err := e.ecr.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: name})
	if err != nil || aws.ToString(got.LifecyclePolicyText) != lcPolicy || got.LastEvaluatedAt != nil {
		t.Fatalf("GetLifecyclePolicy: %+v, %v", got, err)
	}

	want := map[string]int32{prod1: 1, prod2: 1, un1: 2}
	start, err := e.ecr.StartLifecyclePolicyPreview(ctx, &ecr.StartLifecyclePolicyPreviewInput{RepositoryName: name})
	if err != nil || start.Status != types.LifecyclePolicyPreviewStatusInProgress {
		t.Fatalf("StartLifecyclePolicyPreview: %+v, %v", start, err)
	}
	pv, err := e.ecr.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: name})
	if err != nil {
		t.Fatalf("GetLifecyclePolicyPreview: %v", err)
	}
	if pv.Status != types.LifecyclePolicyPreviewStatusComplete || aws.ToInt32(pv.Summary.ExpiringImageTotalCount) != 3 {
		t.Fatalf("preview status %s, summary %d", pv.Status, aws.ToInt32(pv.Summary.ExpiringImageTotalCount))
	}
	gotPreview := map[string]int32{}
	for _, r := range pv.PreviewResults {
		gotPreview[aws.ToString(r.ImageDigest)] = aws.ToInt32(r.AppliedRulePriority)
		if r.Action.Type != types.ImageActionTypeExpire {
			t.Errorf("preview action %s", r.Action.Type)
		}
	}
	if !mapsEqual(gotPreview, want) {
		t.Fatalf("preview %v, want %v", gotPreview, want)
	}
	// Filtered and paged.
	pv, err = e.ecr.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: name,
		Filter: &types.LifecyclePolicyPreviewFilter{TagStatus: types.TagStatusUntagged}})
	if err != nil || len(pv.PreviewResults) != 1 || aws.ToString(pv.PreviewResults[0].ImageDigest) != un1 {
		t.Fatalf("untagged preview: %+v, %v", pv, err)
	}
	pv, err = e.ecr.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: name, MaxResults: aws.Int32(2)})
	if err != nil || len(pv.PreviewResults) != 2 || pv.NextToken == nil {
		t.Fatalf("paged preview: %+v, %v", pv, err)
	}
	pv, err = e.ecr.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: name, MaxResults: aws.Int32(2), NextToken: pv.NextToken})
	if err != nil || len(pv.PreviewResults) != 1 || pv.NextToken != nil {
		t.Fatalf("second preview page: %+v, %v", pv, err)
	}
	// A preview of a policy text that is not stored.
	anyOld := `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`
	if _, err := e.ecr.StartLifecyclePolicyPreview(ctx, &ecr.StartLifecyclePolicyPreviewInput{RepositoryName: name, LifecyclePolicyText: aws.String(anyOld)}); err != nil {
		t.Fatal(err)
	}
	pv, err = e.ecr.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: name})
	if err != nil || len(pv.PreviewResults) != 0 || aws.ToString(pv.LifecyclePolicyText) != anyOld {
		t.Fatalf("preview of a new text: %+v, %v", pv, err)
	}

	// Run: a dry run changes nothing; a run expires exactly the preview.
	drv := lcDriver(t, e.app)
	run := runner.New(runner.Config{Store: e.app.store, Driver: drv, LastPull: e.app.reg.LastPull})
	reps, err := run.RunAll(ctx, true)
	if err != nil || len(reps) != 1 || len(reps[0].Expired) != 3 {
		t.Fatalf("dry run: %+v, %v", reps, err)
	}
	if n := lcImageCount(t, e, repo); n != 6 {
		t.Fatalf("dry run left %d images, want 6", n)
	}
	expiredKeys := map[string]string{}
	for d := range want {
		m, err := e.app.store.GetManifest(ctx, mustRepo(t, e.app, repo).ID, d)
		if err != nil {
			t.Fatal(err)
		}
		expiredKeys[d] = m.ObjectKey
	}
	// The server's own runner: every expiry becomes an audit event.
	reps, err = e.app.lifecycle.RunAll(ctx, false)
	if err != nil || len(reps) != 1 || reps[0].Err != nil {
		t.Fatalf("run: %+v, %v", reps, err)
	}
	if err := e.app.trail.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := e.app.trail.Lookup(ctx, audit.LookupInput{AttributeKey: audit.AttrEventName, AttributeValue: "PolicyExecutionEvent"})
	if err != nil || len(evs.Events) != len(want) {
		t.Fatalf("PolicyExecutionEvent records = %d, %v; want %d (one per expired image)", len(evs.Events), err, len(want))
	}
	gotRun := map[string]int32{}
	for _, c := range reps[0].Expired {
		gotRun[c.Image.Digest] = int32(c.RulePriority)
	}
	if !mapsEqual(gotRun, want) {
		t.Fatalf("run expired %v, want %v", gotRun, want)
	}
	list, err := e.ecr.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: name})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, id := range list.ImageIds {
		left = append(left, aws.ToString(id.ImageDigest))
	}
	slices.Sort(left)
	left = slices.Compact(left)
	wantLeft := []string{prod3, un2, dev}
	slices.Sort(wantLeft)
	if !slices.Equal(left, wantLeft) {
		t.Fatalf("images left %v, want %v", left, wantLeft)
	}
	for d, key := range expiredKeys {
		if _, err := drv.Stat(ctx, key); err == nil {
			t.Errorf("manifest object of expired %s still stored", d)
		}
	}
	got, err = e.ecr.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: name})
	if err != nil || got.LastEvaluatedAt == nil {
		t.Fatalf("GetLifecyclePolicy after run: %+v, %v", got, err)
	}

	del, err := e.ecr.DeleteLifecyclePolicy(ctx, &ecr.DeleteLifecyclePolicyInput{RepositoryName: name})
	if err != nil || aws.ToString(del.LifecyclePolicyText) != lcPolicy {
		t.Fatalf("DeleteLifecyclePolicy: %+v, %v", del, err)
	}
	_, err = e.ecr.DeleteLifecyclePolicy(ctx, &ecr.DeleteLifecyclePolicyInput{RepositoryName: name})
	wantCode(t, "DeleteLifecyclePolicy twice", err, "LifecyclePolicyNotFoundException")

	// The policy goes with its repository.
	if _, err := e.ecr.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: name, LifecyclePolicyText: aws.String(lcPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ecr.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: name, Force: true}); err != nil {
		t.Fatal(err)
	}
	e.repo(repo, "MUTABLE")
	_, err = e.ecr.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: name})
	wantCode(t, "GetLifecyclePolicy after the repository was recreated", err, "LifecyclePolicyNotFoundException")
	_, err = e.ecr.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: name})
	wantCode(t, "GetLifecyclePolicyPreview after the repository was recreated", err, "LifecyclePolicyPreviewNotFoundException")
}

// SPEC USE-08: with "sinceImagePushed > 30 days → expire", an image pushed
// 31 days ago is removed and one pushed 29 days ago stays.
func TestLifecycleUSE08(t *testing.T) {
	e := newImgEnv(t)
	ctx := context.Background()
	const repo = "lc/use08"
	e.repo(repo, "MUTABLE")
	cfg, layer, _ := e.baseImage(repo, 512)
	m := imageManifest(cfg, "x", layer)
	if _, err := e.putImage(repo, m, "v1"); err != nil {
		t.Fatal(err)
	}
	policy := `{"rules":[{"rulePriority":1,"description":"older than 30 days","selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`
	if _, err := e.ecr.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: aws.String(repo), LifecyclePolicyText: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) int {
		run := runner.New(runner.Config{Store: e.app.store, Driver: lcDriver(t, e.app), Now: func() time.Time { return time.Now().Add(d) }})
		reps, err := run.RunAll(ctx, false)
		if err != nil || len(reps) != 1 || reps[0].Err != nil {
			t.Fatalf("run: %+v, %v", reps, err)
		}
		return len(reps[0].Expired)
	}
	if n := at(29 * 24 * time.Hour); n != 0 {
		t.Fatalf("29 days after push: %d expired", n)
	}
	if n := lcImageCount(t, e, repo); n != 1 {
		t.Fatalf("%d images after 29 days", n)
	}
	if n := at(31 * 24 * time.Hour); n != 1 {
		t.Fatalf("31 days after push: %d expired", n)
	}
	if n := lcImageCount(t, e, repo); n != 0 {
		t.Fatalf("%d images after 31 days", n)
	}
}

func lcImageCount(t *testing.T, e *imgEnv, repo string) int {
	t.Helper()
	ms, err := e.app.store.ListManifests(context.Background(), mustRepo(t, e.app, repo).ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
