package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Issue #4: the JSON shapes of Coffer's ECR responses compared with moto's
// for the operations moto implements. moto is a shape reference only: it
// enforces nothing, so only member paths and JSON types are compared, never
// values or behaviour.

// motoOnlyAllowed lists members moto returns that ECR does not document in
// the botocore model (data/ecr/2015-09-21/service-2.json), so Coffer must
// not return them either. Keys are "Operation path".
// None is needed with moto 5.2.1: every member it returns for these calls
// is documented.
var motoOnlyAllowed = map[string]string{}

// startMoto runs moto_server on a free loopback port and returns its URL.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not found (%v): it is installed on every machine, see /work/shared/ENVIRONMENT.md", err)
	}
	addr := freePort(t, "127.0.0.1")
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", port)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGTERM) // its own process group, by PID
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return base
		}
		select {
		case <-done:
			t.Fatalf("moto_server exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server not ready on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ecrRaw sends one signed JSON 1.1 ECR request and returns status and body.
func ecrRaw(t *testing.T, base, id, secret, op string, in any) (int, []byte) {
	t.Helper()
	return jsonRaw(t, base, id, secret, "AmazonEC2ContainerRegistry_V20150921.", "ecr", op, in)
}

// jsonRaw sends one JSON 1.1 request, X-Amz-Target target+op, signed with
// SigV4 for service, and returns status and body.
func jsonRaw(t *testing.T, base, id, secret, target, service, op string, in any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target+op)
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
		req, hash, service, "us-east-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// shapeOf records every member path of v with its JSON type; list elements
// are merged under "[]".
func shapeOf(v any, path string, out map[string]string) {
	if path != "" {
		if prev, ok := out[path]; ok && prev != jsonKind(v) {
			out[path] = prev + "|" + jsonKind(v)
		} else if !ok {
			out[path] = jsonKind(v)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			shapeOf(e, path+"."+k, out)
		}
	case []any:
		for _, e := range x {
			shapeOf(e, path+"[]", out)
		}
	}
}

func decodeShape(t *testing.T, who, op string, body []byte) (map[string]string, map[string]any) {
	t.Helper()
	var v map[string]any
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s %s: not JSON: %v: %s", who, op, err, body)
		}
	}
	s := map[string]string{}
	shapeOf(v, "", s)
	return s, v
}

func errType(v map[string]any) string {
	s, _ := v["__type"].(string)
	if i := strings.LastIndex(s, "#"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func TestMotoShapes(t *testing.T) {
	t.Parallel()
	motoURL := startMoto(t)
	srv, app := newAuthServer(t)
	coffer := ecrClient(srv, adminID, adminSecret, nil)

	const repo = "shapes/app"
	// Coffer needs the blobs of the manifest; moto validates none.
	e := &imgEnv{t: t, srv: srv, ecr: coffer}
	var manifest string

	type step struct {
		op      string
		in      map[string]any
		wantErr string // both must fail with this __type
		before  func() // run against Coffer before the step
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"all","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage"]}]}`
	lifecycle := `{"rules":[{"rulePriority":1,"description":"expire","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}`
	repoIn := func(kv ...any) map[string]any {
		m := map[string]any{"repositoryName": repo}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	// ARN of the repository, taken from each side's CreateRepository.
	arn := map[string]string{}
	steps := []step{
		{op: "CreateRepository", in: repoIn("imageTagMutability", "IMMUTABLE",
			"tags", []map[string]string{{"Key": "team", "Value": "a"}})},
		{op: "CreateRepository", in: repoIn(), wantErr: "RepositoryAlreadyExistsException"},
		{op: "DescribeRepositories", in: map[string]any{"repositoryNames": []string{repo}}},
		{op: "DescribeRepositories", in: map[string]any{"repositoryNames": []string{"shapes/none"}}, wantErr: "RepositoryNotFoundException"},
		{op: "PutImageTagMutability", in: repoIn("imageTagMutability", "MUTABLE")},
		{op: "SetRepositoryPolicy", in: repoIn("policyText", policy)},
		{op: "GetRepositoryPolicy", in: repoIn()},
		{op: "DeleteRepositoryPolicy", in: repoIn()},
		{op: "TagResource", in: map[string]any{"tags": []map[string]string{{"Key": "env", "Value": "x"}}}},
		{op: "ListTagsForResource", in: map[string]any{}},
		{op: "UntagResource", in: map[string]any{"tagKeys": []string{"env"}}},
		{op: "PutImage", in: repoIn("imageTag", "v1"), before: func() {
			cfg, layer, _ := e.baseImage(repo, 512)
			manifest = imageManifest(cfg, "", layer)
		}},
		{op: "BatchGetImage", in: repoIn("imageIds", []map[string]string{{"imageTag": "v1"}})},
		{op: "ListImages", in: repoIn()},
		{op: "DescribeImages", in: repoIn()},
		{op: "BatchDeleteImage", in: repoIn("imageIds", []map[string]string{{"imageTag": "v1"}})},
		{op: "GetAuthorizationToken", in: map[string]any{}},
		{op: "DescribeRegistry", in: map[string]any{}},
		{op: "PutLifecyclePolicy", in: repoIn("lifecyclePolicyText", lifecycle)},
		// lastEvaluatedAt is documented but Coffer returns it only once the
		// policy has run (moto invents it at put time): run it first.
		{op: "GetLifecyclePolicy", in: repoIn(), before: func() {
			if _, err := app.lifecycle.RunAll(context.Background(), false); err != nil {
				t.Fatalf("lifecycle run: %v", err)
			}
		}},
		{op: "DeleteRepository", in: repoIn("force", true)},
		{op: "DeleteRepository", in: repoIn(), wantErr: "RepositoryNotFoundException"},
	}

	var failures []string
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if s.op == "PutImage" {
			s.in["imageManifest"] = manifest
		}
		type result struct {
			status int
			body   []byte
			shape  map[string]string
			v      map[string]any
		}
		res := map[string]result{}
		for _, side := range []struct{ who, base, id, secret string }{
			{"coffer", srv.URL, adminID, adminSecret},
			{"moto", motoURL, "testing", "testing"},
		} {
			in := s.in
			if s.op == "TagResource" || s.op == "ListTagsForResource" || s.op == "UntagResource" {
				in = map[string]any{"resourceArn": arn[side.who]}
				for k, v := range s.in {
					in[k] = v
				}
			}
			st, body := ecrRaw(t, side.base, side.id, side.secret, s.op, in)
			sh, v := decodeShape(t, side.who, s.op, body)
			res[side.who] = result{st, body, sh, v}
			if s.op == "CreateRepository" && s.wantErr == "" {
				r, _ := v["repository"].(map[string]any)
				arn[side.who], _ = r["repositoryArn"].(string)
			}
		}
		c, m := res["coffer"], res["moto"]
		t.Logf("%s coffer %d %s", s.op, c.status, c.body)
		t.Logf("%s moto   %d %s", s.op, m.status, m.body)
		if s.wantErr != "" {
			if c.status < 400 || m.status < 400 {
				failures = append(failures, fmt.Sprintf("%s: want %s, coffer %d, moto %d", s.op, s.wantErr, c.status, m.status))
				continue
			}
			if errType(c.v) != s.wantErr || errType(m.v) != s.wantErr {
				failures = append(failures, fmt.Sprintf("%s: __type coffer %q, moto %q, want %s", s.op, errType(c.v), errType(m.v), s.wantErr))
			}
			// Error bodies: only __type must agree; other differences
			// (moto adds an undocumented "Message") are logged.
			for p := range m.shape {
				if _, ok := c.shape[p]; !ok {
					t.Logf("%s error %s: moto only (not in the ECR model's error shapes: ignored)", s.op, p)
				}
			}
			continue
		}
		if c.status != 200 || m.status != 200 {
			failures = append(failures, fmt.Sprintf("%s: status coffer %d, moto %d", s.op, c.status, m.status))
			continue
		}
		failures = append(failures, compareShapes(t, s.op, c.shape, m.shape, motoOnlyAllowed)...)
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
}

// compareShapes compares the member paths and JSON types of one operation's
// successful responses: a type mismatch, or a member moto returns that
// Coffer lacks (unless allowed["op path"] gives the reason), is a failure;
// Coffer-only members are logged.
func compareShapes(t *testing.T, op string, cs, ms map[string]string, allowed map[string]string) []string {
	t.Helper()
	var failures []string
	paths := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, sh := range []map[string]string{cs, ms} {
			for p := range sh {
				if !seen[p] {
					seen[p] = true
					if !yield(p) {
						return
					}
				}
			}
		}
	})
	for _, p := range paths {
		ct, inC := cs[p]
		mt, inM := ms[p]
		switch {
		case inC && inM && ct != mt && mt != "null" && ct != "null":
			failures = append(failures, fmt.Sprintf("%s %s: type coffer %s, moto %s", op, p, ct, mt))
		case inM && !inC:
			if why, ok := allowed[op+" "+p]; ok {
				t.Logf("%s %s: moto only, allowed: %s", op, p, why)
			} else {
				failures = append(failures, fmt.Sprintf("%s %s: moto returns it, Coffer lacks it", op, p))
			}
		case inC && !inM:
			t.Logf("%s %s: Coffer only (moto lacks it)", op, p)
		}
	}
	return failures
}
