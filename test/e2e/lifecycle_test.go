//go:build e2e

package e2e

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestLifecycleAWSCLI drives ECR lifecycle policies with the real aws CLI
// against the real server (issue #11): ECR's documented examples ("keep
// the last N images with a tag prefix", "expire untagged images beyond
// N") are stored, previewed, applied with `coffer lifecycle run` beside the
// live server, audited as PolicyExecutionEvent, and deleted.
func TestLifecycleAWSCLI(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	c := startCoffer(t)
	requireTool(t, "aws")
	endpoint := c.URL("")
	admin := c.awsEnv()
	aws := func(args ...string) map[string]any {
		t.Helper()
		out := run(t, ctx, admin, nil, "aws", append(args, "--endpoint-url", endpoint, "--output", "json")...)
		var m map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("aws %v: output is not JSON: %v\n%s", args, err, out)
			}
		}
		return m
	}
	// awsFails runs a command that must fail and returns its error text
	// (the CLI prints "An error occurred (Code) when calling ...: message").
	awsFails := func(args ...string) string {
		t.Helper()
		out, err := runErr(ctx, admin, nil, "aws", append(args, "--endpoint-url", endpoint, "--output", "json")...)
		if err == nil {
			t.Fatalf("aws %v succeeded, want an error; output:\n%s", args, out)
		}
		return err.Error()
	}
	const repo = "e2e/lc"

	// 1. Push prod-1..prod-4 (oldest first), dev-1 and two untagged images.
	push := func(ref string, img v1.Image) v1.Hash {
		t.Helper()
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		var r name.Reference = c.digestRef(t, repo, d) // untagged
		if ref != "" {
			r = c.ref(t, repo+":"+ref)
		}
		if err := remote.Write(r, img, c.opts(ctx)...); err != nil {
			t.Fatalf("push %s: %v", r, err)
		}
		// imagePushedAt orders the images; keep the pushes apart.
		time.Sleep(pushGap)
		return d
	}
	img := func() v1.Image {
		t.Helper()
		i, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	digests := map[string]v1.Hash{}
	for _, tag := range []string{"prod-1", "prod-2", "prod-3", "prod-4", "dev-1"} {
		digests[tag] = push(tag, img())
	}
	untaggedOld, untaggedNew := push("", img()), push("", img())

	// The images as describe-images shows them, by digest; the pushes must
	// be ordered by imagePushedAt as sent.
	describe := func() map[string]map[string]any {
		t.Helper()
		res := map[string]map[string]any{}
		for _, d := range aws("ecr", "describe-images", "--repository-name", repo)["imageDetails"].([]any) {
			m := d.(map[string]any)
			res[m["imageDigest"].(string)] = m
		}
		return res
	}
	before := describe()
	if len(before) != 7 {
		t.Fatalf("describe-images lists %d images, want 7: %v", len(before), before)
	}
	order := []v1.Hash{digests["prod-1"], digests["prod-2"], digests["prod-3"], digests["prod-4"], digests["dev-1"], untaggedOld, untaggedNew}
	var last time.Time
	for i, d := range order {
		at := cliTime(t, before[d.String()]["imagePushedAt"])
		if i > 0 && !last.Before(at) {
			t.Fatalf("imagePushedAt of push %d (%v) is not after push %d (%v): the pushes are not ordered", i, at, i-1, last)
		}
		last = at
	}

	// 2. Store ECR's two documented examples; get returns the same policy.
	policy := `{"rules":[` +
		`{"rulePriority":1,"description":"Keep only the last 2 prod images","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}},` +
		`{"rulePriority":2,"description":"Expire untagged images beyond 1","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`
	put := aws("ecr", "put-lifecycle-policy", "--repository-name", repo, "--lifecycle-policy-text", policy)
	if put["repositoryName"] != repo {
		t.Fatalf("put-lifecycle-policy = %v", put)
	}
	got := aws("ecr", "get-lifecycle-policy", "--repository-name", repo)
	if text, _ := got["lifecyclePolicyText"].(string); !sameJSON(t, text, policy) {
		t.Fatalf("get-lifecycle-policy text = %s\nwant %s", text, policy)
	}

	// 3. Bad policies are refused, naming the problem.
	for _, bad := range []struct{ name, text, want string }{
		{"countNumber 0", strings.Replace(policy, `"countNumber":2`, `"countNumber":0`, 1), "rules[0].selection.countNumber"},
		{"tagged without tagPrefixList", strings.Replace(policy, `"tagPrefixList":["prod"],`, ``, 1), "rules[0].selection.tagPrefixList"},
	} {
		msg := awsFails("ecr", "put-lifecycle-policy", "--repository-name", repo, "--lifecycle-policy-text", bad.text)
		t.Logf("%s: %s", bad.name, cliError(msg))
		if !strings.Contains(msg, "(InvalidParameterException)") || !strings.Contains(msg, bad.want) {
			t.Errorf("put-lifecycle-policy with %s: %s\nwant InvalidParameterException naming %s", bad.name, msg, bad.want)
		}
	}
	if text, _ := aws("ecr", "get-lifecycle-policy", "--repository-name", repo)["lifecyclePolicyText"].(string); !sameJSON(t, text, policy) {
		t.Fatalf("a refused policy replaced the stored one: %s", text)
	}

	// 4. The preview lists exactly what a run would expire.
	aws("ecr", "start-lifecycle-policy-preview", "--repository-name", repo)
	var preview map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		preview = aws("ecr", "get-lifecycle-policy-preview", "--repository-name", repo)
		if preview["status"] == "COMPLETE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("preview not COMPLETE within 10s: %v", preview)
		}
	}
	wantExpired := map[string]float64{ // digest -> appliedRulePriority
		digests["prod-1"].String(): 1, digests["prod-2"].String(): 1, untaggedOld.String(): 2,
	}
	gotExpired := map[string]float64{}
	results, _ := preview["previewResults"].([]any)
	for _, r := range results {
		m := r.(map[string]any)
		d, _ := m["imageDigest"].(string)
		if _, dup := gotExpired[d]; dup {
			t.Errorf("preview lists %s twice", d)
		}
		gotExpired[d], _ = m["appliedRulePriority"].(float64)
		if a, _ := m["action"].(map[string]any); a["type"] != "EXPIRE" {
			t.Errorf("preview result %s: action %v, want type EXPIRE", d, m["action"])
		}
	}
	if !reflect.DeepEqual(gotExpired, wantExpired) {
		t.Errorf("preview expires (digest: rule) %v\nwant %v (prod-1, prod-2 by rule 1, the older untagged image by rule 2)\n%v", gotExpired, wantExpired, preview)
	}
	if s, _ := preview["summary"].(map[string]any); s["expiringImageTotalCount"] != float64(3) {
		t.Errorf("preview summary = %v, want expiringImageTotalCount 3", preview["summary"])
	}
	// Nothing is deleted by a preview.
	if n := len(describe()); n != 7 {
		t.Fatalf("after the preview describe-images lists %d images, want 7", n)
	}

	// 5. Apply it now with the binary, beside the live server.
	runStart := time.Now().Add(-time.Second)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") {
			env = append(env, kv)
		}
	}
	env = append(env, "COFFER_ADMIN_ACCESS_KEY_ID="+adminKeyID, "COFFER_ADMIN_SECRET_ACCESS_KEY="+adminSecret)
	env = append(env, c.Env...)
	cmd := exec.CommandContext(ctx, cofferBin, "lifecycle", "run", "--data", c.Dir)
	cmd.Env, cmd.WaitDelay = env, 5*time.Second
	out, err := cmd.CombinedOutput()
	lc := string(out)
	if err != nil {
		t.Fatalf("coffer lifecycle run --data %s: %v\n%s", c.Dir, err, lc)
	}
	t.Logf("coffer lifecycle run:\n%s", lc)
	if !strings.Contains(lc, "3 images expired") {
		t.Errorf("coffer lifecycle run output does not report 3 images expired:\n%s", lc)
	}
	after := describe()
	var kept []string
	for d, m := range after {
		tags, _ := m["imageTags"].([]any)
		if len(tags) == 0 {
			if d == untaggedNew.String() {
				kept = append(kept, "<newer untagged>")
			} else {
				kept = append(kept, "<untagged "+d+">")
			}
		}
		for _, tg := range tags {
			kept = append(kept, tg.(string))
		}
	}
	sort.Strings(kept)
	if want := []string{"<newer untagged>", "dev-1", "prod-3", "prod-4"}; !slices.Equal(kept, want) {
		t.Errorf("after the run describe-images lists %v, want %v", kept, want)
	}
	for tag, d := range map[string]v1.Hash{"prod-3": digests["prod-3"], "prod-4": digests["prod-4"], "dev-1": digests["dev-1"]} {
		if m, ok := after[d.String()]; !ok {
			t.Errorf("%s (%s) is gone after the run", tag, d)
		} else if tags, _ := m["imageTags"].([]any); len(tags) != 1 || tags[0] != tag {
			t.Errorf("%s (%s) has tags %v after the run", tag, d, tags)
		}
	}
	_, err = remote.Image(c.ref(t, repo+":prod-1"), c.opts(ctx)...)
	if status, codes := registryErr(err); status != 404 || !slices.Contains(codes, "MANIFEST_UNKNOWN") {
		t.Errorf("pull %s:prod-1 after the run = %v (status %d, codes %v), want 404 MANIFEST_UNKNOWN", repo, err, status, codes)
	}
	if got := aws("ecr", "get-lifecycle-policy", "--repository-name", repo); got["lastEvaluatedAt"] == nil {
		t.Errorf("get-lifecycle-policy after the run has no lastEvaluatedAt: %v", got)
	}

	// 6. Each expiry is audited as a PolicyExecutionEvent of the service.
	type expiry struct {
		EventType           string `json:"eventType"`
		EventSource         string `json:"eventSource"`
		EventName           string `json:"eventName"`
		ServiceEventDetails struct {
			RepositoryName string   `json:"repositoryName"`
			ImageDigest    string   `json:"imageDigest"`
			ImageTags      []string `json:"imageTags"`
			RulePriority   float64  `json:"rulePriority"`
			ActionType     string   `json:"actionType"`
		} `json:"serviceEventDetails"`
	}
	var events []expiry
	var lookup map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		lookup = aws("cloudtrail", "lookup-events", "--start-time", runStart.UTC().Format(time.RFC3339),
			"--lookup-attributes", "AttributeKey=EventName,AttributeValue=PolicyExecutionEvent")
		events = events[:0]
		list, _ := lookup["Events"].([]any)
		for _, e := range list {
			var ev expiry
			raw, _ := e.(map[string]any)["CloudTrailEvent"].(string)
			if err := json.Unmarshal([]byte(raw), &ev); err != nil {
				t.Fatalf("CloudTrailEvent is not JSON: %v\n%s", err, raw)
			}
			events = append(events, ev)
		}
		if len(events) >= 3 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("lookup-events: %d PolicyExecutionEvent %v after the run started", len(events), time.Since(runStart.Add(time.Second)).Round(time.Millisecond))
	gotAudited := map[string]float64{}
	for _, ev := range events {
		d := ev.ServiceEventDetails
		if ev.EventType != "AwsServiceEvent" || ev.EventName != "PolicyExecutionEvent" || ev.EventSource != "ecr.amazonaws.com" ||
			d.RepositoryName != repo || d.ActionType != "EXPIRE" {
			t.Errorf("PolicyExecutionEvent = %+v, want an AwsServiceEvent from ecr.amazonaws.com expiring an image of %s", ev, repo)
		}
		gotAudited[d.ImageDigest] = d.RulePriority
	}
	if len(events) != 3 || !reflect.DeepEqual(gotAudited, wantExpired) {
		t.Errorf("lookup-events PolicyExecutionEvent: %d events expiring (digest: rule) %v, want 3 events expiring %v\n%v",
			len(events), gotAudited, wantExpired, lookup)
	}

	// 7. Delete the policy; get then answers LifecyclePolicyNotFoundException.
	del := aws("ecr", "delete-lifecycle-policy", "--repository-name", repo)
	if text, _ := del["lifecyclePolicyText"].(string); !sameJSON(t, text, policy) {
		t.Errorf("delete-lifecycle-policy returned %v, want the policy", del)
	}
	if msg := awsFails("ecr", "get-lifecycle-policy", "--repository-name", repo); !strings.Contains(msg, "(LifecyclePolicyNotFoundException)") {
		t.Errorf("get-lifecycle-policy after delete: %s\nwant LifecyclePolicyNotFoundException", msg)
	}
}

// pushGap keeps pushes apart so imagePushedAt orders them.
const pushGap = 20 * time.Millisecond

// cliTime is a timestamp as the aws CLI prints it: epoch seconds (with
// milliseconds, Coffer's precision) by default, or ISO 8601 when the
// configuration says cli_timestamp_format = iso8601.
func cliTime(t *testing.T, v any) time.Time {
	t.Helper()
	switch v := v.(type) {
	case float64:
		return time.UnixMilli(int64(math.Round(v * 1000)))
	case string:
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatalf("timestamp %q: %v", v, err)
		}
		return at
	}
	t.Fatalf("timestamp %v (%T) is neither epoch seconds nor ISO 8601", v, v)
	return time.Time{}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Errorf("not JSON: %v\n%s", err, a)
		return false
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

// cliError is the aws CLI's "An error occurred (Code) ..." line of a
// runErr error, or all of it if there is none.
func cliError(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "An error occurred") {
			return strings.TrimSpace(l)
		}
	}
	return s
}
