package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cofferhq/coffer/internal/storage"
)

// pattern is deterministic pseudo-random content with a period (1 MiB + 7)
// that no part size divides, so a shifted or swapped part shows.
type pattern struct{ block []byte }

var testPattern = sync.OnceValue(func() *pattern {
	block := make([]byte, 1<<20+7)
	mathrand.NewChaCha8([32]byte{'s', '3'}).Read(block)
	return &pattern{block: block}
})

// fill writes the content at offset off into b.
func (p *pattern) fill(b []byte, off int64) {
	for len(b) > 0 {
		n := copy(b, p.block[off%int64(len(p.block)):])
		b, off = b[n:], off+int64(n)
	}
}

// writePattern writes size bytes of the pattern to w in chunks of chunk
// bytes and returns their SHA-256.
func writePattern(t testing.TB, w io.Writer, size int64, chunk int) []byte {
	t.Helper()
	h := sha256.New()
	buf := make([]byte, chunk)
	for off := int64(0); off < size; {
		b := buf[:min(int64(chunk), size-off)]
		testPattern().fill(b, off)
		h.Write(b)
		if n, err := w.Write(b); err != nil || n != len(b) {
			t.Fatalf("Write at %d = %d, %v", off, n, err)
		}
		off += int64(len(b))
	}
	return h.Sum(nil)
}

// readSum reads the whole object and returns its size and SHA-256.
func readSum(t testing.TB, d storage.Driver, key string) (int64, []byte) {
	t.Helper()
	r, err := d.Reader(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Reader(%q): %v", key, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return n, h.Sum(nil)
}

func mustNotExist(t testing.TB, d storage.Driver, key string) {
	t.Helper()
	if _, err := d.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
}

// uploads lists the multipart uploads in progress under the prefix.
func uploads(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	out, err := gw.client().ListMultipartUploads(t.Context(), &s3sdk.ListMultipartUploadsInput{
		Bucket: &bucket, Prefix: &prefix,
	})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// waitParts waits until the one upload under key has n parts stored.
func waitParts(t testing.TB, bucket, key string, n int) {
	t.Helper()
	client := gw.client()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := client.ListMultipartUploads(t.Context(), &s3sdk.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &key})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Uploads) == 1 {
			parts, err := client.ListParts(t.Context(), &s3sdk.ListPartsInput{Bucket: &bucket, Key: &key, UploadId: out.Uploads[0].UploadId})
			if err != nil {
				t.Fatal(err)
			}
			if len(parts.Parts) == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload of %q never had %d parts", key, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMultipartStreamsAndReadsBack(t *testing.T) {
	const size = 64 << 20 // 13 parts of 5 MiB
	p := newFaultProxy(t)
	cfg := testConfig()
	cfg.Endpoint = p.url
	cfg.ServerSideEncryption = "AES256"
	d := newTestDriver(t, cfg)
	ctx := t.Context()
	const key = "layers/aes256/large"

	w, err := d.Writer(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	want := writePattern(t, w, size, 1<<20+3)
	// Parts are stored, but nothing is visible before Commit.
	if got := p.count("UploadPart"); got < 8 {
		t.Errorf("%d parts uploaded before Commit, want the writes to stream", got)
	}
	mustNotExist(t, d, key)
	if got := uploads(t, cfg.Bucket, cfg.Prefix+"/"); len(got) != 1 {
		t.Fatalf("uploads in progress = %q, want one", got)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for op, want := range map[string]int{"CreateMultipartUpload": 1, "UploadPart": 13, "CompleteMultipartUpload": 1, "PutObject": 0} {
		if got := p.count(op); got != want {
			t.Errorf("%s sent %d times, want %d", op, got, want)
		}
	}
	if got := p.sseHeader("CreateMultipartUpload"); got != "AES256" {
		t.Errorf("CreateMultipartUpload SSE header = %q, want AES256", got)
	}
	if got := uploads(t, cfg.Bucket, cfg.Prefix+"/"); len(got) != 0 {
		t.Errorf("uploads in progress after Commit = %q", got)
	}

	n, sum := readSum(t, d, key)
	if n != size || !bytes.Equal(sum, want) {
		t.Fatalf("read back %d bytes with sha256 %x, wrote %d with %x", n, sum, int64(size), want)
	}
	if info, err := d.Stat(ctx, key); err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v", info, err)
	}

	// Ranges across part boundaries: each boundary, several parts at once,
	// the short last part.
	const ps = MinPartSize
	ranges := [][2]int64{{0, ps + 1}, {ps - 3, 2*ps + 6}, {size - 1<<20 - 5, -1}, {size - 1, 1}, {size - 2*ps - 1, 2*ps + 1}}
	for k := int64(1); k*ps < size; k++ {
		ranges = append(ranges, [2]int64{k*ps - 1, 2}, [2]int64{k*ps - 4097, 8192})
	}
	for _, rg := range ranges {
		r, err := d.Reader(ctx, key, rg[0], rg[1])
		if err != nil {
			t.Fatalf("Reader(%d, %d): %v", rg[0], rg[1], err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("read range %v: %v", rg, err)
		}
		n := rg[1]
		if n < 0 {
			n = size - rg[0]
		}
		want := make([]byte, n)
		testPattern().fill(want, rg[0])
		if !bytes.Equal(got, want) {
			t.Fatalf("range %v: %d bytes, content differs", rg, len(got))
		}
	}
	if _, err := d.Reader(ctx, key, size-1, 2); !errors.Is(err, storage.ErrInvalidRange) {
		t.Fatalf("Reader past the end = %v, want ErrInvalidRange", err)
	}
}

func TestSinglePutUpToPartSize(t *testing.T) {
	p := newFaultProxy(t)
	cfg := testConfig()
	cfg.Endpoint = p.url
	cfg.ServerSideEncryption = "AES256"
	d := newTestDriver(t, cfg)
	tests := []struct {
		size       int64
		puts, mpus int
	}{
		{size: 0, puts: 1},
		{size: 100, puts: 1},
		{size: MinPartSize, puts: 1},
		{size: MinPartSize + 1, mpus: 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			p.reset()
			key := fmt.Sprintf("obj/%d", tc.size)
			w, err := d.Writer(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			want := writePattern(t, w, tc.size, 64<<10)
			if tc.mpus == 0 && p.count("PutObject")+p.count("CreateMultipartUpload") != 0 {
				t.Fatal("requests sent before the first part was full")
			}
			if err := w.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := p.count("PutObject"); got != tc.puts {
				t.Errorf("PutObject sent %d times, want %d", got, tc.puts)
			}
			if got := p.count("CreateMultipartUpload"); got != tc.mpus {
				t.Errorf("CreateMultipartUpload sent %d times, want %d", got, tc.mpus)
			}
			if tc.puts > 0 && p.sseHeader("PutObject") != "AES256" {
				t.Errorf("PutObject SSE header = %q, want AES256", p.sseHeader("PutObject"))
			}
			if n, sum := readSum(t, d, key); n != tc.size || !bytes.Equal(sum, want) {
				t.Fatalf("read back %d bytes, wrote %d (or content differs)", n, tc.size)
			}
		})
	}
}

func TestCancelAbortsUpload(t *testing.T) {
	cfg := testConfig()
	d := newTestDriver(t, cfg)
	prefix := cfg.Prefix + "/"

	// start writes 12 MiB: two parts on their way, the rest buffered.
	start := func(t *testing.T, ctx context.Context, key string) storage.Writer {
		t.Helper()
		w, err := d.Writer(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		writePattern(t, w, 12<<20, 1<<20)
		if got := uploads(t, cfg.Bucket, prefix); len(got) != 1 {
			t.Fatalf("uploads in progress = %q, want one", got)
		}
		return w
	}

	t.Run("Cancel", func(t *testing.T) {
		w := start(t, t.Context(), "cancel/obj")
		if err := w.Cancel(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := uploads(t, cfg.Bucket, prefix); len(got) != 0 {
			t.Fatalf("uploads left after Cancel: %q", got)
		}
		mustNotExist(t, d, "cancel/obj")
	})
	t.Run("CancelWithDeadContext", func(t *testing.T) {
		w := start(t, t.Context(), "cancel/dead")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := w.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		if got := uploads(t, cfg.Bucket, prefix); len(got) != 0 {
			t.Fatalf("uploads left after Cancel: %q", got)
		}
	})
	t.Run("CommitWithDeadContext", func(t *testing.T) {
		w := start(t, t.Context(), "cancel/commit")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := w.Commit(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Commit = %v, want context.Canceled", err)
		}
		if got := uploads(t, cfg.Bucket, prefix); len(got) != 0 {
			t.Fatalf("uploads left after a failed Commit: %q", got)
		}
		mustNotExist(t, d, "cancel/commit")
		if err := w.Cancel(t.Context()); err != nil {
			t.Fatalf("Cancel after a failed Commit: %v", err)
		}
	})
	t.Run("WriterContextCanceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		w := start(t, ctx, "cancel/writerctx")
		cancel()
		// The part uploads stop; the next part to ship fails.
		var err error
		for i := 0; i < 20 && err == nil; i++ {
			_, err = w.Write(make([]byte, 1<<20))
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Write after the Writer's context ended = %v, want context.Canceled", err)
		}
		if err := w.Commit(t.Context()); err == nil {
			t.Fatal("Commit after a failed Write succeeded")
		}
		if got := uploads(t, cfg.Bucket, prefix); len(got) != 0 {
			t.Fatalf("uploads left: %q", got)
		}
		mustNotExist(t, d, "cancel/writerctx")
	})
}

func TestAbortStaleUploads(t *testing.T) {
	cfg := testConfig()
	d := newTestDriver(t, cfg)
	ctx := t.Context()
	client := gw.client()

	// A Writer abandoned with a part stored, as a crashed process leaves it.
	w, err := d.Writer(ctx, "layers/aes256/abandoned")
	if err != nil {
		t.Fatal(err)
	}
	writePattern(t, w, MinPartSize+1<<20, 1<<20)
	// A crashed process has no part in flight; wait for the part to land
	// (an abort racing a part upload may leave the upload alive, as S3
	// documents too).
	waitParts(t, cfg.Bucket, cfg.Prefix+"/layers/aes256/abandoned", 1)
	// An upload of another store in the same bucket must survive.
	otherKey := "other-" + rand.Text() + "/obj"
	other, err := client.CreateMultipartUpload(ctx, &s3sdk.CreateMultipartUploadInput{Bucket: &cfg.Bucket, Key: &otherKey})
	if err != nil {
		t.Fatal(err)
	}
	defer client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3sdk.AbortMultipartUploadInput{
		Bucket: &cfg.Bucket, Key: &otherKey, UploadId: other.UploadId,
	})

	if n, err := d.AbortStaleUploads(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("AbortStaleUploads(1h) = %d, %v; want 0 (the upload is fresh)", n, err)
	}
	if got := uploads(t, cfg.Bucket, cfg.Prefix+"/"); len(got) != 1 {
		t.Fatalf("uploads = %q, want the abandoned one", got)
	}
	if n, err := d.AbortStaleUploads(ctx, 0); err != nil || n != 1 {
		t.Fatalf("AbortStaleUploads(0) = %d, %v; want 1", n, err)
	}
	if got := uploads(t, cfg.Bucket, cfg.Prefix+"/"); len(got) != 0 {
		t.Fatalf("uploads left: %q", got)
	}
	if got := uploads(t, cfg.Bucket, otherKey); len(got) != 1 {
		t.Fatalf("the other store's upload is gone: %q", got)
	}
	if n, err := d.AbortStaleUploads(ctx, 0); err != nil || n != 0 {
		t.Fatalf("second AbortStaleUploads = %d, %v; want 0", n, err)
	}
	// The abandoned Writer can no longer publish anything.
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit of an aborted upload succeeded")
	}
	mustNotExist(t, d, "layers/aes256/abandoned")
}

func TestPartRetries(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		faults  []fault
		size    int64
		fails   bool
		wantOps int // requests of op, failed ones included
	}{
		{name: "part failures within MaxRetries", op: "UploadPart", faults: []fault{faultSlowDown, faultInternal, faultReset}, size: 12 << 20, wantOps: 3 + 3},
		{name: "part failures beyond MaxRetries", op: "UploadPart", faults: []fault{faultSlowDown, faultSlowDown, faultReset, faultInternal}, size: 12 << 20, fails: true, wantOps: 4},
		{name: "single PUT retried by the SDK", op: "PutObject", faults: []fault{faultSlowDown, faultReset}, size: 1 << 10, wantOps: 3},
		{name: "single PUT failures beyond MaxRetries", op: "PutObject", faults: []fault{faultSlowDown, faultInternal, faultSlowDown, faultInternal}, size: 1 << 10, fails: true, wantOps: 4},
		{name: "start retried by the SDK", op: "CreateMultipartUpload", faults: []fault{faultInternal}, size: 6 << 20, wantOps: 2},
		{name: "complete retried by the SDK", op: "CompleteMultipartUpload", faults: []fault{faultSlowDown}, size: 6 << 20, wantOps: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFaultProxy(t)
			cfg := testConfig()
			cfg.Endpoint = p.url
			cfg.Concurrency = 1 // one part at a time: the faults hit the same part
			cfg.MaxRetries = 3
			cfg.MaxBackoff = 50 * time.Millisecond
			d := newTestDriver(t, cfg)
			ctx := t.Context()
			p.failNext(tc.op, tc.faults...)

			w, err := d.Writer(ctx, "retry/obj")
			if err != nil {
				t.Fatal(err)
			}
			var (
				want []byte
				werr error
			)
			// writePattern would t.Fatal on the failing Write; do it here.
			func() {
				h := sha256.New()
				buf := make([]byte, 1<<20)
				for off := int64(0); off < tc.size && werr == nil; off += int64(len(buf)) {
					b := buf[:min(int64(len(buf)), tc.size-off)]
					testPattern().fill(b, off)
					h.Write(b)
					_, werr = w.Write(b)
				}
				want = h.Sum(nil)
			}()
			if werr == nil {
				werr = w.Commit(ctx)
			} else if err := w.Cancel(ctx); err != nil {
				t.Fatalf("Cancel after a failed Write: %v", err)
			}
			if got := p.count(tc.op); got != tc.wantOps {
				t.Errorf("%s sent %d times, want %d", tc.op, got, tc.wantOps)
			}
			if got := uploads(t, cfg.Bucket, cfg.Prefix+"/"); len(got) != 0 {
				t.Fatalf("uploads left: %q", got)
			}
			if tc.fails {
				if werr == nil {
					t.Fatal("upload succeeded despite more failures than MaxRetries")
				}
				// The last injected fault is the cause, not the
				// cancellation it triggers.
				if code, _ := errorCode(werr); code != tc.faults[len(tc.faults)-1].String() {
					t.Fatalf("error %v: code %q, want the last injected fault", werr, code)
				}
				mustNotExist(t, d, "retry/obj")
				return
			}
			if werr != nil {
				t.Fatal(werr)
			}
			if n, sum := readSum(t, d, "retry/obj"); n != tc.size || !bytes.Equal(sum, want) {
				t.Fatalf("read back %d bytes, wrote %d (or content differs)", n, tc.size)
			}
		})
	}
}

// TestMemoryBounded writes 256 MiB through one Writer and samples the heap:
// it must grow by at most (Concurrency+1)*PartSize plus a little SDK state.
func TestMemoryBounded(t *testing.T) {
	const (
		size  = 256 << 20
		slack = 8 << 20
	)
	cfg := testConfig()
	cfg.PartSize = MinPartSize
	cfg.Concurrency = 4
	bound := int64(cfg.Concurrency+1) * cfg.PartSize
	d := newTestDriver(t, cfg)
	ctx := t.Context()

	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	w, err := d.Writer(ctx, "mem/obj")
	if err != nil {
		t.Fatal(err)
	}
	want := writePattern(t, w, size, 256<<10)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap in use grew by %.1f MiB writing %d MiB (bound %d MiB + %d MiB slack)", float64(grew)/(1<<20), size>>20, bound>>20, slack>>20)
	if grew > bound+slack {
		t.Fatalf("heap grew by %d bytes, more than (Concurrency+1)*PartSize = %d + %d", grew, bound, slack)
	}
	if n, sum := readSum(t, d, "mem/obj"); n != size || !bytes.Equal(sum, want) {
		t.Fatalf("read back %d bytes, wrote %d (or content differs)", n, int64(size))
	}
	if err := d.Delete(ctx, "mem/obj"); err != nil {
		t.Fatal(err)
	}
}

func TestKeysUnderPrefix(t *testing.T) {
	cfg := testConfig()
	base := cfg.Prefix
	cfg.Prefix = "/" + base + "/" // slashes around the prefix are ignored
	d := newTestDriver(t, cfg)
	ctx := t.Context()
	client := gw.client()
	w, err := d.Writer(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: &cfg.Bucket, Key: aws.String(base + "/a/b")}); err != nil {
		t.Fatalf("object not at <prefix>/<key>: %v", err)
	}
	// Objects that the driver did not write: a sibling prefix sharing the
	// prefix's first bytes, a folder marker and an unreadable name inside
	// the prefix. Walk reports none of them.
	for _, k := range []string{base + "x/a/c", base + "/dir/", base + `/a\c`} {
		if _, err := client.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: &cfg.Bucket, Key: aws.String(k), Body: strings.NewReader("")}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	var keys []string
	if err := d.Walk(ctx, "", func(info storage.Info) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"a/b"}) {
		t.Fatalf("Walk = %q, want [a/b]", keys)
	}
	// The prefix counts against S3's 1024-byte key limit.
	long := strings.Repeat("k/", 510) + "kk" // 1022 bytes: valid alone
	if _, err := d.Writer(ctx, long); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("Writer(1022-byte key under a prefix) = %v, want ErrInvalidKey", err)
	}
}

func TestWalkPaginates(t *testing.T) {
	const n = 1100 // ListObjectsV2 returns at most 1000 keys a page
	d := newTestDriver(t, testConfig())
	ctx := t.Context()
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("p/%05d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for _, k := range want {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			w, err := d.Writer(ctx, k)
			if err == nil {
				err = w.Commit(ctx)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := d.Walk(ctx, "p/", func(info storage.Info) error {
		got = append(got, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Walk returned %d keys, want %d in order", len(got), len(want))
	}
}

func TestConfig(t *testing.T) {
	valid := Config{Bucket: "b", Region: "us-east-1"}
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{name: "minimal", mod: func(*Config) {}},
		{name: "no bucket", mod: func(c *Config) { c.Bucket = "" }, want: []string{"bucket is empty"}},
		{name: "bad prefix", mod: func(c *Config) { c.Prefix = "a//b" }, want: []string{"prefix"}},
		{name: "bad endpoint", mod: func(c *Config) { c.Endpoint = "127.0.0.1:9000" }, want: []string{"endpoint"}},
		{name: "small parts", mod: func(c *Config) { c.PartSize = 1 << 20 }, want: []string{"part size"}},
		{name: "huge parts", mod: func(c *Config) { c.PartSize = 6 << 30 }, want: []string{"part size"}},
		{name: "kms", mod: func(c *Config) { c.ServerSideEncryption = "aws:kms" }, want: []string{"server-side encryption"}},
		{name: "secret alone", mod: func(c *Config) { c.SecretAccessKey = "s" }, want: []string{"without an access key ID"}},
		{name: "key alone", mod: func(c *Config) { c.AccessKeyID = "k" }, want: []string{"without a secret"}},
		{name: "concurrency", mod: func(c *Config) { c.Concurrency = -1 }, want: []string{"concurrency"}},
		{name: "every problem at once", mod: func(c *Config) {
			c.Bucket, c.PartSize, c.ServerSideEncryption = "", 1, "x"
		}, want: []string{"bucket", "part size", "server-side encryption"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.mod(&cfg)
			d, err := New(t.Context(), cfg)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if d.partSize != DefaultPartSize || d.concurrency != DefaultConcurrency || d.maxRetries != DefaultMaxRetries {
					t.Fatalf("defaults not applied: %d, %d, %d", d.partSize, d.concurrency, d.maxRetries)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("no region", func(t *testing.T) {
		t.Setenv("AWS_REGION", "")
		t.Setenv("AWS_DEFAULT_REGION", "")
		if _, err := New(t.Context(), Config{Bucket: "b"}); err == nil || !strings.Contains(err.Error(), "region") {
			t.Fatalf("New without a region = %v", err)
		}
	})
	t.Run("no retries", func(t *testing.T) {
		cfg := valid
		cfg.MaxRetries = -1
		d, err := New(t.Context(), cfg)
		if err != nil || d.maxRetries != 0 {
			t.Fatalf("New = %v, maxRetries %d; want 0", err, d.maxRetries)
		}
	})
}

func TestBackoff(t *testing.T) {
	b := backoff{max: time.Second}
	for attempt := 1; attempt <= 40; attempt++ {
		window := min(time.Second, retryBase<<min(attempt-1, 31))
		for range 50 {
			got, err := b.BackoffDelay(attempt, nil)
			if err != nil || got < 0 || got >= window {
				t.Fatalf("attempt %d: delay %v, %v; want in [0, %v)", attempt, got, err, window)
			}
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		bad                bool
	}{
		{in: "bytes 0-9/10", first: 0, last: 9, total: 10},
		{in: "bytes 5-5/6", first: 5, last: 5, total: 6},
		{in: "bytes 0-9/*", bad: true},
		{in: "bytes 9-0/10", bad: true},
		{in: "bytes 0-10/10", bad: true},
		{in: "bytes */10", bad: true},
		{in: "items 0-1/2", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range tests {
		first, last, total, err := parseContentRange(tc.in)
		if tc.bad != (err != nil) || !tc.bad && (first != tc.first || last != tc.last || total != tc.total) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tc.in, first, last, total, err)
		}
	}
}
