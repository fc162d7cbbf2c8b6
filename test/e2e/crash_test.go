//go:build e2e

package e2e

import (
	"bytes"
	crand "crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

type pushState int

const (
	notStarted pushState = iota
	inFlight
	acked  // remote.Write returned nil: the registry confirmed the push
	failed // remote.Write returned an error (the server died under it)
)

func (s pushState) String() string {
	return [...]string{"not started", "in flight", "acknowledged", "failed"}[s]
}

type crashPush struct {
	repo, tag string
	ref       name.Reference
	img       v1.Image
	digest    v1.Hash
	state     pushState
	err       error
}

// TestKill9DuringPushes runs 8 concurrent pushers, SIGKILLs the server
// once a third of the pushes are acknowledged, restarts it on the same
// data directory, and checks that every acknowledged image is complete and
// that nothing unacknowledged is visible half-written.
func TestKill9DuringPushes(t *testing.T) {
	const workers, perWorker = 8, 6
	ctx := testContext(t, 5*time.Minute)
	c := startCoffer(t)

	pushes := make([][]*crashPush, workers)
	for w := range workers {
		for j := range perWorker {
			img, err := random.Image(192<<10, 3)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := img.Digest()
			p := &crashPush{repo: fmt.Sprintf("e2e/crash/w%d", w), tag: fmt.Sprintf("i%d", j), img: img, digest: d}
			p.ref = c.ref(t, p.repo+":"+p.tag)
			pushes[w] = append(pushes[w], p)
		}
	}

	var mu sync.Mutex // guards the state fields
	var ackCount atomic.Int32
	killAt := int32(workers * perWorker / 3)
	opts := c.opts(ctx)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range pushes[w] {
				mu.Lock()
				p.state = inFlight
				mu.Unlock()
				err := remote.Write(p.ref, p.img, opts...)
				mu.Lock()
				if err == nil {
					p.state = acked
				} else {
					p.state, p.err = failed, err
				}
				mu.Unlock()
				if err != nil {
					return // the server is gone; later pushes stay "not started"
				}
				ackCount.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for ackCount.Load() < killAt && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.Kill()
	wg.Wait()

	count := map[pushState]int{}
	for _, ps := range pushes {
		for _, p := range ps {
			count[p.state]++
		}
	}
	t.Logf("at SIGKILL: %d acknowledged, %d failed (in flight), %d not started", count[acked], count[failed], count[notStarted])
	if count[acked] < int(killAt) {
		t.Fatalf("only %d of %d pushes acknowledged before the kill (wanted %d): the server was too slow or failing", count[acked], workers*perWorker, killAt)
	}
	if count[failed] == 0 {
		t.Logf("note: no push was in flight at the kill; the test proved durability of acknowledged pushes only")
	}

	c.Restart()

	for _, ps := range pushes {
		for _, p := range ps {
			name := p.repo + ":" + p.tag
			switch p.state {
			case acked:
				t.Run("acked/"+name, func(t *testing.T) {
					img, err := remote.Image(c.ref(t, name), c.opts(ctx)...)
					if err != nil {
						t.Fatalf("acknowledged push lost after SIGKILL: %v", err)
					}
					if d, _ := img.Digest(); d != p.digest {
						t.Fatalf("tag points to %s, acknowledged push was %s", d, p.digest)
					}
					if err := verifyImage(img); err != nil {
						t.Errorf("acknowledged image damaged after SIGKILL: %v", err)
					}
				})
			case failed, notStarted:
				t.Run(p.state.String()+"/"+name, func(t *testing.T) {
					checkNotHalfVisible(t, c, p)
				})
			}
		}
	}

	// The restarted server takes new pushes.
	img, _ := random.Image(1024, 1)
	if err := remote.Write(c.ref(t, "e2e/crash/after:1"), img, c.opts(ctx)...); err != nil {
		t.Errorf("push after restart: %v", err)
	}
}

// checkNotHalfVisible: an unacknowledged manifest is either unknown
// (MANIFEST_UNKNOWN) or complete and verifiable; its tag is absent or
// points at it; its blobs are unknown or have the right bytes.
func checkNotHalfVisible(t *testing.T, c *coffer, p *crashPush) {
	ctx := testContext(t, time.Minute)
	if p.err != nil {
		t.Logf("push error at kill: %v", p.err)
	}
	res := c.do(ctx, http.MethodGet, "/v2/"+p.repo+"/manifests/"+p.digest.String(), nil, map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
	switch {
	case res.Status == http.StatusNotFound:
		if codes := ociErrorCodes(res.Body); !slices.Contains(codes, "MANIFEST_UNKNOWN") && !slices.Contains(codes, "NAME_UNKNOWN") {
			t.Errorf("unacknowledged manifest: 404 without MANIFEST_UNKNOWN/NAME_UNKNOWN: %v", res)
		}
	case res.Status == http.StatusOK:
		if sha256Digest(res.Body) != p.digest {
			t.Errorf("unacknowledged manifest served with wrong bytes: %v", res)
		}
		img, err := remote.Image(c.digestRef(t, p.repo, p.digest), c.opts(ctx)...)
		if err == nil {
			err = verifyImage(img)
		}
		if err != nil {
			t.Errorf("unacknowledged manifest is visible but incomplete: %v", err)
		}
	default:
		t.Errorf("unacknowledged manifest: want 200 (complete) or 404: %v", res)
	}
	if p.state == notStarted && res.Status != http.StatusNotFound {
		t.Errorf("a push that never started is visible: %v", res)
	}

	tag := c.do(ctx, http.MethodHead, "/v2/"+p.repo+"/manifests/"+p.tag, nil, map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
	if tag.Status == http.StatusOK && tag.Header.Get("Docker-Content-Digest") != p.digest.String() {
		t.Errorf("unacknowledged tag points to something else: %v", tag)
	}
	if tag.Status == http.StatusOK && res.Status != http.StatusOK {
		t.Errorf("tag %s exists but its manifest does not: %v / %v", p.tag, tag, res)
	}
	if tag.Status != http.StatusOK && tag.Status != http.StatusNotFound {
		t.Errorf("unacknowledged tag: want 200 or 404: %v", tag)
	}

	layers, _ := p.img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		b := c.do(ctx, http.MethodGet, "/v2/"+p.repo+"/blobs/"+d.String(), nil, nil)
		switch {
		case b.Status == http.StatusNotFound:
		case b.Status == http.StatusOK && b.Err == nil && sha256Digest(b.Body) == d:
		default:
			t.Errorf("blob of an unacknowledged push is half-visible: %v", b)
		}
	}
}

// TestUploadSurvivesRestart starts a chunked upload (POST, one PATCH),
// restarts the server (gracefully, and with SIGKILL), then finishes the
// upload (PATCH, PUT) and reads the blob back.
func TestUploadSurvivesRestart(t *testing.T) {
	for _, mode := range []string{"graceful", "kill9"} {
		t.Run(mode, func(t *testing.T) {
			ctx := testContext(t, 3*time.Minute)
			c := startCoffer(t)
			data := make([]byte, 3<<20+12345)
			crand.Read(data)
			digest := sha256Digest(data)
			first, second := data[:1<<20], data[1<<20:]
			repo := "e2e/upload/" + mode

			post := c.do(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, map[string]string{"Content-Length": "0"})
			if post.Status != http.StatusAccepted || post.Header.Get("Location") == "" {
				t.Fatalf("start upload: want 202 with Location: %v", post)
			}
			loc := resolve(t, c, "", post.Header.Get("Location"))

			patch := c.do(ctx, http.MethodPatch, loc, bytes.NewReader(first), map[string]string{
				"Content-Type":   "application/octet-stream",
				"Content-Range":  fmt.Sprintf("0-%d", len(first)-1),
				"Content-Length": strconv.Itoa(len(first)),
			})
			if patch.Status != http.StatusAccepted {
				t.Fatalf("first chunk: want 202: %v", patch)
			}
			if r := patch.Header.Get("Range"); r != fmt.Sprintf("0-%d", len(first)-1) {
				t.Errorf("first chunk: Range %q, want 0-%d: %v", r, len(first)-1, patch)
			}
			loc = resolve(t, c, loc, patch.Header.Get("Location"))

			if mode == "graceful" {
				c.Stop()
			} else {
				c.Kill()
			}
			c.Restart()

			status := c.do(ctx, http.MethodGet, loc, nil, nil)
			if status.Status != http.StatusNoContent {
				t.Fatalf("upload status after restart: want 204: %v", status)
			}
			if r := status.Header.Get("Range"); r != fmt.Sprintf("0-%d", len(first)-1) {
				t.Fatalf("upload status after restart: Range %q, want 0-%d (the acknowledged chunk): %v", r, len(first)-1, status)
			}
			loc = resolve(t, c, loc, status.Header.Get("Location"))

			patch = c.do(ctx, http.MethodPatch, loc, bytes.NewReader(second), map[string]string{
				"Content-Type":   "application/octet-stream",
				"Content-Range":  fmt.Sprintf("%d-%d", len(first), len(data)-1),
				"Content-Length": strconv.Itoa(len(second)),
			})
			if patch.Status != http.StatusAccepted {
				t.Fatalf("second chunk after restart: want 202: %v", patch)
			}
			loc = resolve(t, c, loc, patch.Header.Get("Location"))

			put := c.do(ctx, http.MethodPut, withQuery(loc, "digest", digest.String()), nil, map[string]string{"Content-Length": "0"})
			if put.Status != http.StatusCreated {
				t.Fatalf("close upload: want 201: %v", put)
			}
			if d := put.Header.Get("Docker-Content-Digest"); d != "" && d != digest.String() {
				t.Errorf("close upload: Docker-Content-Digest %s, want %s", d, digest)
			}

			get := c.do(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+digest.String(), nil, nil)
			if get.Status != http.StatusOK || get.Err != nil {
				t.Fatalf("GET blob: %v", get)
			}
			if !bytes.Equal(get.Body, data) {
				t.Errorf("GET blob: %d bytes with digest %s, want %d bytes with %s", len(get.Body), sha256Digest(get.Body), len(data), digest)
			}
		})
	}
}

// resolve makes an upload Location absolute (it may be relative); an
// empty loc keeps prev.
func resolve(t *testing.T, c *coffer, prev, loc string) string {
	t.Helper()
	if loc == "" {
		if prev == "" {
			t.Fatal("no Location header")
		}
		return prev
	}
	base, _ := url.Parse(c.URL("/"))
	u, err := base.Parse(loc)
	if err != nil {
		t.Fatalf("bad Location %q: %v", loc, err)
	}
	if u.Host != c.Addr {
		t.Fatalf("Location %q points to another host than %s", loc, c.Addr)
	}
	return u.String()
}

func withQuery(loc, key, value string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}
