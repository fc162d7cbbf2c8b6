package testbackend

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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Versitygw's module, the version scripts/deps.sh installs, and the root
// credentials and region the gateways here use.
const (
	VersitygwModule  = "github.com/versity/versitygw"
	VersitygwVersion = "v1.8.0"
	AccessKey        = "test"
	SecretKey        = "testtesttest"
	Region           = "us-east-1"
)

// FindVersitygw looks on PATH, in $(go env GOPATH)/bin and in the
// repository's .tools/bin, where scripts/deps.sh installs it.
func FindVersitygw() (string, error) {
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
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw (%s) was not found on PATH, in $(go env GOPATH)/bin or in .tools/bin "+
		"(looked at %s): run scripts/deps.sh versitygw", VersitygwModule, strings.Join(candidates, ", "))
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

// VersitygwConfig configures StartVersitygw.
type VersitygwConfig struct {
	// Bin is the versitygw binary; "" finds it with FindVersitygw.
	Bin string
	// VirtualDomain, if set, makes the gateway accept virtual-hosted
	// requests (Host: <bucket>.<VirtualDomain>:<port>) too.
	VirtualDomain string
}

// Versitygw is a running versitygw process over a temporary directory.
type Versitygw struct {
	Addr     string // 127.0.0.1:port
	Endpoint string // http://127.0.0.1:port
	// Root is the posix backend's directory: <Root>/<bucket>/<key>.
	Root    string
	dir     string // temporary: Root and the log
	logPath string
	argv    []string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// sysProcAttr is set on Linux so that versitygw dies with its parent even
// if the parent is killed before it can stop the gateway.
var sysProcAttr *syscall.SysProcAttr

// StartVersitygw starts versitygw on a free 127.0.0.1 port with the root
// credentials AccessKey and SecretKey.
func StartVersitygw(cfg VersitygwConfig) (*Versitygw, error) {
	bin := cfg.Bin
	if bin == "" {
		var err error
		if bin, err = FindVersitygw(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "coffer-versitygw-")
	if err != nil {
		return nil, err
	}
	g := &Versitygw{dir: dir, Root: filepath.Join(dir, "root"), logPath: filepath.Join(dir, "versitygw.log")}
	if err := os.Mkdir(g.Root, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// The free port can be taken between Close and versitygw's bind:
	// try a few ports.
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		g.Addr = l.Addr().String()
		l.Close()
		g.Endpoint = "http://" + g.Addr
		g.argv = []string{bin, "--port", g.Addr}
		if cfg.VirtualDomain != "" {
			g.argv = append(g.argv, "--virtual-domain", cfg.VirtualDomain)
		}
		g.argv = append(g.argv, "--keep-alive", "--quiet", "posix", g.Root)
		err = g.start()
		if err == nil {
			return g, nil
		}
		if attempt == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// start runs the gateway and waits until it answers HTTP.
func (g *Versitygw) start() error {
	logFile, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(g.argv[0], g.argv[1:]...)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	g.cmd, g.exited = cmd, exited
	// Ready when it answers HTTP at all (an anonymous request gets 403).
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited early: %s\n%s", cmd.ProcessState, g.LogTail())
		default:
		}
		resp, err := client.Get(g.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.Kill()
	return fmt.Errorf("versitygw not ready on %s after 15 s\n%s", g.Addr, g.LogTail())
}

// Stop ends versitygw by its PID (SIGTERM, then SIGKILL after 5 s) and
// removes its data.
func (g *Versitygw) Stop() {
	if g.Running() {
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(5 * time.Second):
			g.Kill()
		}
	}
	os.RemoveAll(g.dir)
}

// Kill ends versitygw at once (SIGKILL) and keeps its data, as an outage
// would; Restart starts it again.
func (g *Versitygw) Kill() {
	if g.Running() {
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// Running reports whether the process is up.
func (g *Versitygw) Running() bool {
	if g.exited == nil {
		return false
	}
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// Restart starts a killed gateway again on the same address and data.
func (g *Versitygw) Restart() error {
	if g.Running() {
		return errors.New("versitygw is still running")
	}
	return g.start()
}

// PID is the gateway's process ID.
func (g *Versitygw) PID() int { return g.cmd.Process.Pid }

// LogTail returns the end of the gateway's log.
func (g *Versitygw) LogTail() string { return tailFile(g.logPath, 4000) }

// Client is a plain SDK client for the gateway (path style), for setting
// up and inspecting what a driver did.
func (g *Versitygw) Client() *s3sdk.Client {
	return s3sdk.New(s3sdk.Options{
		Region:       Region,
		BaseEndpoint: aws.String(g.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// CreateBucket creates a bucket.
func (g *Versitygw) CreateBucket(ctx context.Context, bucket string) error {
	if _, err := g.Client().CreateBucket(ctx, &s3sdk.CreateBucketInput{Bucket: &bucket}); err != nil {
		return fmt.Errorf("create bucket %q: %w", bucket, err)
	}
	return nil
}
