//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// leadingLog is what a replica logs when it takes the leadership of the
// background work (internal/server/replicas.go).
const leadingLog = "leading: background work runs here"

// TestReplicas runs three replicas on one PostgreSQL database and one
// bucket (issue #9), each with its own data directory and the same root
// key, and a cache TTL no test outlives, so that whatever a replica sees
// of another's write comes from the replicas' invalidation (the fence
// before each request, the notifications): push through A,
// pull through B; a repository policy set through B and an identity
// policy set through C hold on the other replicas at their next request;
// an image deleted through A is MANIFEST_UNKNOWN through B; A (the
// leader) is killed with SIGKILL in the middle of a chunked upload, which
// B finishes (the chunks A had acknowledged are in the bucket; the one in
// flight is lost, and B's session status says so) and C serves; the
// leadership moves to B or C; fsck finds the store clean.
func TestReplicas(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	start := time.Now()
	s, a, b, c := startReplicas(t, ctx)
	t.Logf("backends and three replicas ready in %v", time.Since(start).Round(time.Millisecond))
	for _, r := range []*coffer{b, c} {
		if strings.Contains(r.logs.String(), leadingLog) {
			t.Errorf("replica %s leads beside A", r.Addr)
		}
	}
	for _, r := range []*coffer{a, b, c} {
		if _, err := os.Stat(filepath.Join(r.Dir, "root.key")); err == nil {
			t.Errorf("%s has a root.key; want the shared COFFER_ROOT_KEY only", r.Dir)
		}
		if _, err := os.Stat(filepath.Join(r.Dir, "audit")); err != nil {
			t.Errorf("replica %s keeps no audit trail of its own: %v", r.Addr, err)
		}
	}

	// Push through A, pull through B (and C).
	marker := "LAYER-" + randomHex(t, 16)
	img := markedImage(t, marker, "CONFIG-"+randomHex(t, 16), "MANIFEST-"+randomHex(t, 16))
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(a.ref(t, "team/app:v1"), img, a.opts(ctx)...); err != nil {
		t.Fatalf("push through A: %v", err)
	}
	for _, r := range []*coffer{b, c, a} { // each caches the tag and the policies
		(&scaleOut{coffer: r}).pullCheck(t, ctx, "pull through "+r.Addr, "team/app:v1", want, marker)
	}
	manifestGet := func(r *coffer, ref string) httpResult {
		return r.do(ctx, "GET", "/v2/team/app/manifests/"+ref, nil,
			map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
	}
	expect := func(what string, res httpResult, status int, code string) {
		t.Helper()
		if res.Status != status || (code != "" && !slices.Contains(ociErrorCodes(res.Body), code)) {
			t.Errorf("%s: %s; want %d %s", what, res, status, code)
		}
	}

	// A repository policy set through B holds on A at its next request.
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage"}]}`
	if _, err := ecrClient(b).SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String("team/app"),
		PolicyText: aws.String(deny)}); err != nil {
		t.Fatalf("SetRepositoryPolicy through B: %v", err)
	}
	expect("pull through A after a deny set through B", manifestGet(a, "v1"), http.StatusForbidden, "DENIED")
	if _, err := ecrClient(c).DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: aws.String("team/app")}); err != nil {
		t.Fatalf("DeleteRepositoryPolicy through C: %v", err)
	}
	expect("pull through A after the deny was removed through C", manifestGet(a, "v1"), http.StatusOK, "")

	// An identity policy set through C holds on B (which cached the
	// administrator's policies) at its next request.
	if _, err := iamClient(c).PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("admin"), PolicyName: aws.String("no-pull"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:BatchGetImage","Resource":"*"}]}`)}); err != nil {
		t.Fatalf("PutUserPolicy through C: %v", err)
	}
	expect("pull through B after an identity deny set through C", manifestGet(b, "v1"), http.StatusForbidden, "DENIED")
	if _, err := iamClient(a).DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: aws.String("admin"), PolicyName: aws.String("no-pull")}); err != nil {
		t.Fatalf("DeleteUserPolicy through A: %v", err)
	}
	expect("pull through B after the identity deny was removed through A", manifestGet(b, "v1"), http.StatusOK, "")

	// An image deleted through A is gone through B, by tag and by digest.
	if out, err := ecrClient(a).BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{RepositoryName: aws.String("team/app"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageDigest: aws.String(want.String())}}}); err != nil || len(out.Failures) > 0 {
		t.Fatalf("BatchDeleteImage through A: %v %+v", err, out)
	}
	expect("manifest by tag through B after deletion through A", manifestGet(b, "v1"), http.StatusNotFound, "MANIFEST_UNKNOWN")
	expect("manifest by digest through B after deletion through A", manifestGet(b, want.String()), http.StatusNotFound, "MANIFEST_UNKNOWN")

	// A KMS key disabled through C holds on B (which has the key's view
	// and material cached) at its next request; enabled through A, B
	// serves again.
	kc := kmsClient(a)
	k, err := kc.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("replicas e2e")})
	if err != nil {
		t.Fatalf("CreateKey through A: %v", err)
	}
	keyID := aws.ToString(k.KeyMetadata.KeyId)
	if _, err := ecrClient(a).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/kms"),
		EncryptionConfiguration: &ecrtypes.EncryptionConfiguration{EncryptionType: ecrtypes.EncryptionTypeKms, KmsKey: aws.String(keyID)}}); err != nil {
		t.Fatalf("CreateRepository (KMS) through A: %v", err)
	}
	kmsImg := markedImage(t, "KMS-"+randomHex(t, 16), "CONFIG-"+randomHex(t, 16), "MANIFEST-"+randomHex(t, 16))
	if err := remote.Write(a.ref(t, "team/kms:v1"), kmsImg, a.opts(ctx)...); err != nil {
		t.Fatalf("push to the KMS repository through A: %v", err)
	}
	kmsGet := func(r *coffer) httpResult {
		return r.do(ctx, "GET", "/v2/team/kms/manifests/v1", nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
	}
	expect("KMS manifest through B", kmsGet(b), http.StatusOK, "")
	if _, err := kmsClient(c).DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("DisableKey through C: %v", err)
	}
	if res := kmsGet(b); res.Status == http.StatusOK {
		t.Errorf("KMS manifest through B after DisableKey through C: %s; want a refusal", res)
	} else {
		t.Logf("KMS manifest through B with the key disabled: %d %v", res.Status, ociErrorCodes(res.Body))
	}
	if _, err := kc.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("EnableKey through A: %v", err)
	}
	expect("KMS manifest through B after EnableKey through A", kmsGet(b), http.StatusOK, "")

	// A chunked upload: one chunk acknowledged by A, the next one cut by
	// SIGKILL, then the upload finished through B and read through C.
	chunk1, chunk2 := randomBytes(t, 300<<10), randomBytes(t, 200<<10)
	blob := append(slices.Clip(chunk1), chunk2...)
	digest := sha256Digest(blob)
	res := a.do(ctx, "POST", "/v2/team/up/blobs/uploads/", nil, nil)
	expect("upload POST through A", res, http.StatusAccepted, "")
	loc := uploadPath(t, res)
	res = a.do(ctx, "PATCH", loc, bytes.NewReader(chunk1), chunkHeaders(0, len(chunk1)))
	expect("first chunk through A", res, http.StatusAccepted, "")
	if got := res.Header.Get("Range"); got != fmt.Sprintf("0-%d", len(chunk1)-1) {
		t.Fatalf("first chunk: Range %q", got)
	}
	loc = uploadPath(t, res)
	pr, pw := io.Pipe()
	inFlight := make(chan httpResult, 1)
	go func() { inFlight <- a.do(ctx, "PATCH", loc, pr, chunkHeaders(len(chunk1), len(chunk2))) }()
	if _, err := pw.Write(chunk2[:len(chunk2)/2]); err != nil {
		t.Fatalf("half of the second chunk: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // A is streaming it into a part
	a.Kill()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if r := <-inFlight; r.Status != 0 {
		t.Errorf("PATCH cut by SIGKILL got an answer: %s", r)
	}
	res = b.do(ctx, "GET", loc, nil, nil)
	expect("upload status through B after A died", res, http.StatusNoContent, "")
	if got := res.Header.Get("Range"); got != fmt.Sprintf("0-%d", len(chunk1)-1) {
		t.Fatalf("upload status through B: Range %q; want the first chunk only (the second was in flight)", got)
	}
	res = b.do(ctx, "PATCH", loc, bytes.NewReader(chunk2), chunkHeaders(len(chunk1), len(chunk2)))
	expect("second chunk through B", res, http.StatusAccepted, "")
	loc = uploadPath(t, res)
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	expect("upload PUT through B", b.do(ctx, "PUT", loc+sep+"digest="+digest.String(), nil, map[string]string{"Content-Length": "0"}),
		http.StatusCreated, "")
	res = c.do(ctx, "GET", "/v2/team/up/blobs/"+digest.String(), nil, nil)
	if res.Status != http.StatusOK || !bytes.Equal(res.Body, blob) {
		t.Errorf("blob through C: %d, %d bytes (equal %v); want 200 and the %d bytes pushed", res.Status, len(res.Body), bytes.Equal(res.Body, blob), len(blob))
	}

	// The leader died: B or C takes over.
	t0 := time.Now()
	deadline := t0.Add(20 * time.Second)
	for !strings.Contains(b.logs.String(), leadingLog) && !strings.Contains(c.logs.String(), leadingLog) {
		if time.Now().After(deadline) {
			t.Fatal("no replica took over the leadership within 20 s of the leader's SIGKILL")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("leadership moved within %v of checking", time.Since(t0).Round(time.Millisecond))

	s.coffer = b
	if out, code := s.fsck(t, ctx); code != 0 {
		t.Errorf("fsck = %d\n%s", code, out)
	}

	// The audit trail stays one verifiable record across replicas: A
	// starts again on its data directory (the segment SIGKILL cut is
	// sealed and published), every replica stops (each publishes its last
	// log files and writes a closing digest of the shared chain), and
	// the shared trail verifies whole with the key from the database. A
	// byte changed in one log file in the bucket is then reported.
	a.Restart()
	for _, r := range []*coffer{a, b, c} {
		r.Stop()
	}
	rep, code := s.auditVerifyShared(t, ctx)
	if code != 0 || !rep.OK || rep.LogFilesChecked < 3 || len(rep.Pending) != 0 {
		t.Fatalf("coffer audit verify --shared = %d: %+v; want OK, every replica's log files digested", code, rep)
	}
	t.Logf("shared trail: %d digests, %d log files, OK", rep.DigestsChecked, rep.LogFilesChecked)
	var logFiles []string
	filepath.WalkDir(filepath.Join(s.gw.Root, s.bucket), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(p, "/audit/") && strings.Contains(p, "_CloudTrail_") {
			logFiles = append(logFiles, p)
		}
		return nil
	})
	if len(logFiles) < 3 {
		t.Fatalf("%d log files in the bucket; want every replica's", len(logFiles))
	}
	raw, err := os.ReadFile(logFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(logFiles[0], raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, code = s.auditVerifyShared(t, ctx)
	if code != 1 || rep.OK || rep.FirstBad == nil || rep.FirstBad.Kind != "modified" || !strings.HasSuffix(logFiles[0], rep.FirstBad.Object) {
		t.Errorf("after a flipped byte in %s: verify = %d, %+v; want the file reported modified", logFiles[0], code, rep)
	}
	t.Logf("TestReplicas took %v", time.Since(start).Round(time.Millisecond))
}

// sharedReport is what `coffer audit verify --json` prints.
type sharedReport struct {
	OK              bool     `json:"ok"`
	DigestsChecked  int      `json:"DigestsChecked"`
	LogFilesChecked int      `json:"LogFilesChecked"`
	Pending         []string `json:"Pending"`
	Problems        []struct {
		Kind, Object, Detail string
	} `json:"Problems"`
	FirstBad *struct{ Kind, Object string } `json:"FirstBad"`
}

// auditVerifyShared runs `coffer audit verify --shared --json` with the
// replicas' configuration.
func (s *scaleOut) auditVerifyShared(t *testing.T, ctx context.Context) (sharedReport, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, cofferBin, append([]string{"audit", "verify", "--shared", "--json", "--data", s.Dir}, s.Args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, s.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("coffer audit verify --shared: %v", err)
	}
	var rep sharedReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("coffer audit verify --shared = %d: %v\n%s\n%s", code, err, out, stderr.String())
	}
	return rep, code
}

// startReplicas starts PostgreSQL, versitygw and three replicas on them
// with the same root key and a cache TTL no test outlives (so whatever a
// replica sees of another's write comes from the replicas' invalidation);
// a, the first, leads. Registry tokens are signed with a key in the
// database: one login serves every replica.
func startReplicas(t *testing.T, ctx context.Context) (s *scaleOut, a, b, c *coffer) {
	t.Helper()
	s = startBackends(t, ctx)
	rootKey := "COFFER_ROOT_KEY=" + base64.StdEncoding.EncodeToString(randomBytes(t, 32))
	replica := func(c *coffer) {
		s.configure(c)
		c.Args = append(c.Args, "--metadata-cache-ttl", "1h")
		c.Env = append(c.Env, rootKey)
	}
	a = startCoffer(t, replica)
	waitLog(t, a, leadingLog, 10*time.Second)
	b = startCoffer(t, replica)
	c = startCoffer(t, replica)
	a.loginToken(ctx)
	b.token, c.token = a.token, a.token
	return s, a, b, c
}

// waitLog waits until c's stderr contains s.
func waitLog(t *testing.T, c *coffer, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(c.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("coffer %s did not log %q within %v", c.Addr, s, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ecrClient(c *coffer) *ecr.Client {
	return ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(c.URL("")), Retryer: aws.NopRetryer{},
		Credentials: adminCredentials()})
}

func iamClient(c *coffer) *iam.Client {
	return iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(c.URL("")), Retryer: aws.NopRetryer{},
		Credentials: adminCredentials()})
}

func kmsClient(c *coffer) *awskms.Client {
	return awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(c.URL("")), Retryer: aws.NopRetryer{},
		Credentials: adminCredentials()})
}

func adminCredentials() aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: adminKeyID, SecretAccessKey: adminSecret}, nil
	})
}

// uploadPath is the path and query of an upload response's Location,
// valid on every replica.
func uploadPath(t *testing.T, r httpResult) string {
	t.Helper()
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil || u.Path == "" {
		t.Fatalf("%s: no usable Location (%v)", r, err)
	}
	return u.RequestURI()
}

// chunkHeaders are the headers of a PATCH of n bytes at offset from.
func chunkHeaders(from, n int) map[string]string {
	return map[string]string{"Content-Type": "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", from, from+n-1), "Content-Length": fmt.Sprint(n)}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
