package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
)

// The tests run against a real S3 server: versitygw (posix backend), which
// TestMain starts on a free 127.0.0.1 port with a temporary directory and
// stops by PID at the end. Without versitygw the tests fail: install it
// with scripts/deps.sh.
const (
	versitygwModule = "github.com/versity/versitygw"
	accessKey       = "test"
	secretKey       = "testtesttest"
	testRegion      = "us-east-1"
	// testBucket is shared by the drivers of most tests, each under its
	// own random prefix.
	testBucket = "coffer-test"
	// virtualDomain makes versitygw accept virtual-hosted requests
	// (Host: <bucket>.localhost:<port>) besides path-style ones.
	virtualDomain = "localhost"
)

// gw is the versitygw that TestMain started.
var gw *gateway

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := findVersitygw()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	g, err := startGateway(bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start versitygw: %v\n", err)
		return 1
	}
	defer g.stop()
	if err := g.createBucket(context.Background(), testBucket); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n%s", err, g.logTail())
		return 1
	}
	gw = g
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "versitygw log (last lines):\n%s", g.logTail())
	}
	return code
}

// findVersitygw looks on PATH, in $(go env GOPATH)/bin and in the
// repository's .tools/bin, where scripts/deps.sh installs it.
func findVersitygw() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var candidates []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			candidates = append(candidates, filepath.Join(dir, "bin", "versitygw"))
		}
	}
	if root, err := repoRoot(); err == nil {
		candidates = append(candidates, filepath.Join(root, ".tools", "bin", "versitygw"))
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw (%s) is needed by the S3 driver tests and was not found on PATH, "+
		"in $(go env GOPATH)/bin or in .tools/bin (looked at %s): run scripts/deps.sh versitygw",
		versitygwModule, strings.Join(candidates, ", "))
}

// repoRoot is the nearest directory above the working directory with a go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// gateway is a running versitygw process.
type gateway struct {
	cmd      *exec.Cmd
	dir      string // temporary: data root and log
	logPath  string
	addr     string // 127.0.0.1:port
	endpoint string // http://127.0.0.1:port
	exited   chan struct{}
}

// sysProcAttr is set on Linux so that versitygw dies with the test binary
// even if the binary is killed before its deferred stop runs.
var sysProcAttr *syscall.SysProcAttr

func startGateway(bin string) (*gateway, error) {
	dir, err := os.MkdirTemp("", "coffer-s3-versitygw-")
	if err != nil {
		return nil, err
	}
	// Keep the SDK away from the developer's own AWS configuration and
	// from the EC2 metadata service.
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// The free port can be taken between Close and versitygw's bind:
	// try a few ports.
	var lastErr error
	for range 3 {
		g, err := tryStart(bin, dir, root)
		if err == nil {
			return g, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func tryStart(bin, dir, root string) (*gateway, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logPath := filepath.Join(dir, "versitygw.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--port", addr, "--virtual-domain", virtualDomain, "--keep-alive", "--quiet", "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{cmd: cmd, dir: dir, logPath: logPath, addr: addr, endpoint: "http://" + addr, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(g.exited)
	}()
	// Ready when it answers HTTP at all (an anonymous request gets 403).
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-g.exited:
			return nil, fmt.Errorf("versitygw exited early: %s\n%s", cmd.ProcessState, g.logTail())
		default:
		}
		resp, err := http.Get(g.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return g, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.kill()
	return nil, fmt.Errorf("versitygw not ready on %s after 15 s\n%s", addr, g.logTail())
}

// stop ends versitygw by its PID (SIGTERM, then SIGKILL after 5 s) and
// removes its data.
func (g *gateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		g.kill()
	}
	os.RemoveAll(g.dir)
}

func (g *gateway) kill() {
	g.cmd.Process.Kill()
	<-g.exited
}

func (g *gateway) logTail() string {
	b, _ := os.ReadFile(g.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// client is a plain SDK client for the gateway, for setting up and
// inspecting what the driver did.
func (g *gateway) client() *s3sdk.Client {
	return s3sdk.New(s3sdk.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(g.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

func (g *gateway) createBucket(ctx context.Context, bucket string) error {
	if _, err := g.client().CreateBucket(ctx, &s3sdk.CreateBucketInput{Bucket: &bucket}); err != nil {
		return fmt.Errorf("create bucket %q: %w", bucket, err)
	}
	return nil
}
