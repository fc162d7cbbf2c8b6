package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// userAgent identifies the harness in the registries' logs.
const userAgent = "coffer-bench"

// manifestAccept is what a pull asks for, as ggcr does.
const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

// client drives one registry with go-containerregistry. Every registry gets
// a client built the same way: its own connection pool, the same number of
// parallel blob transfers (jobs) and no retries, so that a failed request
// fails the run instead of being hidden as a slow one.
type client struct {
	addr string
	acc  access
	jobs int
	tr   *http.Transport
	opts []remote.Option
}

func newClient(ctx context.Context, addr string, acc access, jobs int) *client {
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	// Large socket buffers in the client keep its syscall count low: on a
	// 2-core machine the client's CPU is taken from the server's.
	tr.WriteBufferSize = 256 << 10
	tr.ReadBufferSize = 256 << 10
	c := &client{addr: addr, acc: acc, jobs: jobs, tr: tr}
	c.opts = []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(tr),
		remote.WithAuth(acc.auth()),
		remote.WithJobs(jobs),
		remote.WithUserAgent(userAgent),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}
	return c
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// ref names repository repo (under the access namespace) and tag.
func (c *client) ref(repo, tag string) (name.Reference, error) {
	return name.ParseReference(fmt.Sprintf("%s/%s/%s:%s", c.addr, c.acc.namespace(), repo, tag), name.Insecure)
}

// push writes img with remote.Write: for each blob a HEAD, then POST,
// a monolithic PATCH and PUT, jobs blobs at a time; then the manifest.
func (c *client) push(ref name.Reference, img *testImage) error {
	if err := remote.Write(ref, img.img, c.opts...); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// pull fetches the manifest by tag, checks its digest, then fetches the
// config and every layer, jobs at a time, each through ggcr's verifying
// reader (digest and size checked at EOF). It returns the bytes received.
func (c *client) pull(ref name.Reference, want *testImage) (int64, error) {
	img, err := remote.Image(ref, c.opts...)
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", ref, err)
	}
	if d != want.digest {
		return 0, fmt.Errorf("pull %s: manifest digest %s, pushed %s", ref, d, want.digest)
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", ref, err)
	}
	cfg, err := img.RawConfigFile() // fetched and verified against m.Config
	if err != nil {
		return 0, fmt.Errorf("pull %s config: %w", ref, err)
	}
	total := atomic.Int64{}
	total.Add(int64(len(cfg)))

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		next    atomic.Int64
		layers  = m.Layers
		workers = min(c.jobs, len(layers))
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(layers) {
					return
				}
				n, err := c.fetchLayer(img, layers[i], buf)
				total.Add(n)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					next.Store(int64(len(layers))) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return total.Load(), fmt.Errorf("pull %s: %w", ref, err)
	}
	return total.Load(), nil
}

func (c *client) fetchLayer(img v1.Image, desc v1.Descriptor, buf []byte) (int64, error) {
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return 0, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	n, err := io.CopyBuffer(discard{}, onlyReader{rc}, buf)
	if err != nil {
		return n, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if n != desc.Size {
		return n, fmt.Errorf("layer %s: %d bytes, want %d", desc.Digest, n, desc.Size)
	}
	return n, nil
}

// discard is io.Discard without ReadFrom (whose 8 KiB buffers would
// multiply the client's read calls).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// load sends n manifest requests (HEAD or GET) for ref, conc at a time,
// through ggcr's registry transport (one /v2/ ping, then plain requests),
// and returns each request's latency. Every response must be 200 with the
// pushed digest in Docker-Content-Digest; a GET body must hash to it.
func (c *client) load(ctx context.Context, method string, ref name.Reference, want v1.Hash, n, conc int) ([]time.Duration, error) {
	rt, err := transport.NewWithContext(ctx, ref.Context().Registry, c.acc.auth(),
		transport.NewUserAgent(c.tr, userAgent), []string{ref.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, ref, err)
	}
	hc := &http.Client{Transport: rt, Timeout: 30 * time.Second}
	url := fmt.Sprintf("http://%s/v2/%s/manifests/%s", c.addr, ref.Context().RepositoryStr(), ref.Identifier())

	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := manifestRequest(ctx, hc, method, url, want); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return nil, fmt.Errorf("%s %s: %w", method, ref, *p)
	}
	return lat, nil
}

func manifestRequest(ctx context.Context, hc *http.Client, method, url string, want v1.Hash) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != want.String() {
		return fmt.Errorf("Docker-Content-Digest %q, want %s", got, want)
	}
	if method == http.MethodGet {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want.String() {
			return fmt.Errorf("body digest %s, want %s", got, want)
		}
	}
	return nil
}
