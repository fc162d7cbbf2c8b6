//go:build e2e

package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

const depsHint = "install it with scripts/deps.sh (as root), then start a daemon with: eval \"$(scripts/dockerd.sh start)\""

// requireTool fails the test unless name is on PATH. Missing tools are
// failures, not skips: CI must never pass by testing less.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: %s", name, depsHint)
	}
	return p
}

// requireDocker fails the test unless a docker daemon answers on DOCKER_HOST.
func requireDocker(t *testing.T) {
	t.Helper()
	requireTool(t, "docker")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		t.Fatalf("no docker daemon answers (DOCKER_HOST=%q): %v\n%s\n%s", os.Getenv("DOCKER_HOST"), err, out, depsHint)
	}
}

// ref parses "repo:tag" or "repo@digest" on c's address.
func (c *coffer) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(c.Addr+"/"+s, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatalf("parse reference %q: %v", s, err)
	}
	return r
}

func (c *coffer) digestRef(t *testing.T, repo string, d v1.Hash) name.Digest {
	t.Helper()
	return c.ref(t, repo+"@"+d.String()).(name.Digest)
}

func (c *coffer) registry(t *testing.T) name.Registry {
	t.Helper()
	r, err := name.NewRegistry(c.Addr, name.Insecure)
	if err != nil {
		t.Fatalf("registry %q: %v", c.Addr, err)
	}
	return r
}

// opts are go-containerregistry options with the current run's transport
// and no retries: a failure must show, not be papered over.
func (c *coffer) opts(ctx context.Context, extra ...remote.Option) []remote.Option {
	o := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(c.client.Transport),
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1}),
		remote.WithRetryStatusCodes(),
		remote.WithUserAgent("coffer-e2e"),
		remote.WithAuth(&authn.Basic{Username: "AWS", Password: c.loginToken(ctx)}),
	}
	return append(o, extra...)
}

// awsEnv is the environment for the aws CLI acting as the administrator.
func (c *coffer) awsEnv() []string {
	dir := c.t.TempDir()
	return []string{"AWS_ACCESS_KEY_ID=" + adminKeyID, "AWS_SECRET_ACCESS_KEY=" + adminSecret,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=" + filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"), "AWS_PAGER="}
}

// loginToken returns the password of `aws ecr get-login-password
// --endpoint-url`, run once per server (the real aws CLI, as users do).
func (c *coffer) loginToken(ctx context.Context) string {
	c.t.Helper()
	if c.token == "" {
		requireTool(c.t, "aws")
		out := run(c.t, ctx, c.awsEnv(), nil, "aws", "ecr", "get-login-password", "--endpoint-url", c.URL(""))
		c.token = strings.TrimSpace(out)
		if c.token == "" {
			c.t.Fatal("aws ecr get-login-password printed nothing")
		}
	}
	return c.token
}

// httpResult is a whole HTTP exchange, printable for failure messages.
type httpResult struct {
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
	Err         error // transport error or error while reading the body
}

func (r httpResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s -> ", r.Method, r.URL)
	if r.Status == 0 {
		fmt.Fprintf(&b, "error: %v", r.Err)
		return b.String()
	}
	fmt.Fprintf(&b, "%d", r.Status)
	for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Location", "Range", "Link", "OCI-Subject"} {
		if v := r.Header.Get(h); v != "" {
			fmt.Fprintf(&b, " %s=%q", h, v)
		}
	}
	body := r.Body
	if len(body) > 512 {
		body = append(body[:512:512], "..."...)
	}
	if bytes.ContainsFunc(body, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		fmt.Fprintf(&b, " body=<%d bytes binary>", len(r.Body))
	} else if len(body) > 0 {
		fmt.Fprintf(&b, " body=%s", body)
	}
	if r.Err != nil {
		fmt.Fprintf(&b, " (read error: %v)", r.Err)
	}
	return b.String()
}

// do performs one request on c and reads the whole response body.
func (c *coffer) do(ctx context.Context, method, path string, body io.Reader, hdr map[string]string) httpResult {
	u := path
	if !strings.HasPrefix(path, "http://") {
		u = c.URL(path)
	}
	res := httpResult{Method: method, URL: u}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		res.Err = err
		return res
	}
	for k, v := range hdr {
		if k == "Content-Length" {
			fmt.Sscan(v, &req.ContentLength)
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("Authorization") == "" && hdr["Authorization"] != "-" {
		req.SetBasicAuth("AWS", c.loginToken(ctx))
	}
	if hdr["Authorization"] == "-" { // a deliberately anonymous request
		req.Header.Del("Authorization")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		res.Err = err
		return res
	}
	defer resp.Body.Close()
	res.Status, res.Header = resp.StatusCode, resp.Header
	res.Body, res.Err = io.ReadAll(resp.Body)
	return res
}

// ociErrorCodes returns the codes of an OCI {"errors":[...]} body.
func ociErrorCodes(body []byte) []string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return nil
	}
	var codes []string
	for _, x := range e.Errors {
		codes = append(codes, x.Code)
	}
	return codes
}

// registryErr returns the HTTP status and OCI error codes of a
// go-containerregistry error, or 0 and nil if it is not a registry answer.
func registryErr(err error) (int, []string) {
	var te *transport.Error
	if !errors.As(err, &te) {
		return 0, nil
	}
	var codes []string
	for _, d := range te.Errors {
		codes = append(codes, string(d.Code))
	}
	return te.StatusCode, codes
}

func sha256Digest(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n/2)
	if _, err := io.ReadFull(crand.Reader, b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// run executes a command with a bounded time, returning stdout; on failure
// it fails the test with the command line and its combined output.
func run(t *testing.T, ctx context.Context, env []string, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	out, err := runErr(ctx, env, stdin, name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

func runErr(ctx context.Context, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v after %v\nstdout:\n%s\nstderr:\n%s",
			name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}
