package s3

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
)

// benchSize is the object size of the throughput benchmarks.
const benchSize = 256 << 20

// The benchmarks measure the driver against the versitygw that TestMain
// started (posix backend on the local disk), so they include the server's
// own cost (MD5 ETags, writes, for multipart a final copy of the parts):
//
//	go test -run '^$' -bench . -benchtime 3x -count 3 ./internal/storage/s3
func BenchmarkWrite(b *testing.B) {
	chunk := make([]byte, 1<<20)
	testPattern().fill(chunk, 0)
	for _, bc := range []struct {
		partSize    int64
		concurrency int
	}{
		{DefaultPartSize, DefaultConcurrency},
		{DefaultPartSize, 1},
		{DefaultPartSize, 8},
		{MinPartSize, DefaultConcurrency},
		{64 << 20, 2},
	} {
		b.Run(fmt.Sprintf("size=256MiB/part=%dMiB/concurrency=%d", bc.partSize>>20, bc.concurrency), func(b *testing.B) {
			cfg := testConfig()
			cfg.PartSize = bc.partSize
			cfg.Concurrency = bc.concurrency
			d := newTestDriver(b, cfg)
			ctx := b.Context()
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				w, err := d.Writer(ctx, "bench/write")
				if err != nil {
					b.Fatal(err)
				}
				for range benchSize / len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			d.Delete(ctx, "bench/write")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	d := newTestDriver(b, testConfig())
	ctx := b.Context()
	w, err := d.Writer(ctx, "bench/read")
	if err != nil {
		b.Fatal(err)
	}
	writePattern(b, w, benchSize, 1<<20)
	if err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	defer d.Delete(ctx, "bench/read")
	buf := make([]byte, 256<<10)
	for _, bc := range []struct {
		name        string
		off, length int64
	}{
		{"size=256MiB/whole", 0, -1},
		{"size=64MiB/range", 100 << 20, 64 << 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := bc.length
			if n < 0 {
				n = benchSize - bc.off
			}
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				r, err := d.Reader(ctx, "bench/read", bc.off, bc.length)
				if err != nil {
					b.Fatal(err)
				}
				got, err := io.CopyBuffer(io.Discard, r, buf)
				r.Close()
				if err != nil || got != n {
					b.Fatalf("read %d bytes, %v; want %d", got, err, n)
				}
			}
		})
	}
}

// BenchmarkServerPut is the reference for BenchmarkWrite: one plain SDK
// PutObject of the whole object from memory, no driver and no multipart
// assembly on the server.
func BenchmarkServerPut(b *testing.B) {
	data := make([]byte, benchSize)
	testPattern().fill(data, 0)
	client := gw.client()
	key := "bench/ref-" + b.Name()
	b.SetBytes(benchSize)
	for b.Loop() {
		_, err := client.PutObject(b.Context(), &s3sdk.PutObjectInput{
			Bucket: aws.String(testBucket), Key: &key,
			Body: bytes.NewReader(data), ContentLength: aws.Int64(benchSize),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	client.DeleteObject(b.Context(), &s3sdk.DeleteObjectInput{Bucket: aws.String(testBucket), Key: &key})
}
