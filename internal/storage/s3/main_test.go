package s3

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cofferhq/coffer/internal/testbackend"
)

// The tests run against a real S3 server: versitygw (posix backend), which
// TestMain starts on a free 127.0.0.1 port with a temporary directory and
// stops by PID at the end. Without versitygw the tests fail: install it
// with scripts/deps.sh.
const (
	accessKey  = testbackend.AccessKey
	secretKey  = testbackend.SecretKey
	testRegion = testbackend.Region
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
func findVersitygw() (string, error) { return testbackend.FindVersitygw() }

// gateway is the run's versitygw (started by internal/testbackend, shared
// with the end-to-end tests and the benchmark).
type gateway struct {
	*testbackend.Versitygw
	addr     string // 127.0.0.1:port
	endpoint string // http://127.0.0.1:port
}

func startGateway(bin string) (*gateway, error) {
	// Keep the SDK away from the developer's own AWS configuration and
	// from the EC2 metadata service (files that do not exist).
	none := filepath.Join(os.TempDir(), "coffer-s3-test-no-aws-config")
	os.Setenv("AWS_CONFIG_FILE", none)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	g, err := testbackend.StartVersitygw(testbackend.VersitygwConfig{Bin: bin, VirtualDomain: virtualDomain})
	if err != nil {
		return nil, err
	}
	return &gateway{Versitygw: g, addr: g.Addr, endpoint: g.Endpoint}, nil
}

// stop ends versitygw by its PID and removes its data.
func (g *gateway) stop() { g.Stop() }

func (g *gateway) logTail() string { return g.LogTail() }

// client is a plain SDK client for the gateway, for setting up and
// inspecting what the driver did.
func (g *gateway) client() *s3sdk.Client { return g.Client() }

func (g *gateway) createBucket(ctx context.Context, bucket string) error {
	return g.CreateBucket(ctx, bucket)
}
