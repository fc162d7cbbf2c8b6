package s3

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/storage/storagetest"
)

// testConfig is a path-style driver on the shared test bucket under a
// fresh random prefix, with the smallest parts so that a few MiB already
// take the multipart path.
func testConfig() Config {
	return Config{
		Bucket:          testBucket,
		Prefix:          "t/" + rand.Text(),
		Region:          testRegion,
		Endpoint:        gw.endpoint,
		PathStyle:       true,
		AccessKeyID:     accessKey,
		SecretAccessKey: secretKey,
		PartSize:        MinPartSize,
		Concurrency:     4,
	}
}

func newTestDriver(t testing.TB, cfg Config) *Driver {
	t.Helper()
	d, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		return newTestDriver(t, testConfig())
	})
}

// TestConformanceVirtualHosted runs the suite with virtual-hosted
// addressing (Host: <bucket>.localhost:<port>), no prefix (each driver gets
// a bucket of its own) and the SSE-S3 header.
func TestConformanceVirtualHosted(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		bucket := "vh-" + strings.ToLower(rand.Text())
		if err := gw.createBucket(t.Context(), bucket); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Bucket = bucket
		cfg.Prefix = ""
		cfg.PathStyle = false
		cfg.Endpoint = "http://" + virtualDomain + ":" + port(gw.addr)
		cfg.ServerSideEncryption = "AES256"
		cfg.HTTPClient = loopbackClient(gw.addr)
		return newTestDriver(t, cfg)
	})
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// loopbackClient sends every request to addr whatever its host name, as a
// DNS entry for *.localhost would.
func loopbackClient(addr string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr}
}
