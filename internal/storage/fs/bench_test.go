package fs

import (
	"fmt"
	"testing"
)

// BenchmarkWriteCommit measures Writer+Write+Commit (with its fsyncs) for
// objects of several sizes, written in the chunk sizes callers use: 32 KiB
// (io.Copy) and 64 KiB+28 (an envelope chunk with nonce and tag).
func BenchmarkWriteCommit(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 256 << 20} {
		for _, chunk := range []int{32 << 10, 64<<10 + 28} {
			b.Run(fmt.Sprintf("size=%s/write=%d", sizeName(size), chunk), func(b *testing.B) {
				d := newTestDriver(b, b.TempDir())
				buf := make([]byte, chunk)
				for i := range buf {
					buf[i] = byte(i * 7)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					// A few keys in rotation: the object is overwritten, so
					// large sizes do not fill the disk.
					w, err := d.Writer(b.Context(), fmt.Sprintf("bench/%d", i%4))
					if err != nil {
						b.Fatal(err)
					}
					for left := size; left > 0; left -= chunk {
						if _, err := w.Write(buf[:min(chunk, left)]); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Commit(b.Context()); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkWrite measures only the buffered write path (Writer, Write,
// Cancel; no fsync), which is what bufSize tunes.
func BenchmarkWrite(b *testing.B) {
	const size = 64 << 20
	for _, chunk := range []int{4 << 10, 32 << 10, 64<<10 + 28, 1 << 20} {
		b.Run(fmt.Sprintf("size=64MiB/write=%d", chunk), func(b *testing.B) {
			d := newTestDriver(b, b.TempDir())
			buf := make([]byte, chunk)
			b.SetBytes(size)
			for b.Loop() {
				w, err := d.Writer(b.Context(), "bench/obj")
				if err != nil {
					b.Fatal(err)
				}
				for left := size; left > 0; left -= chunk {
					if _, err := w.Write(buf[:min(chunk, left)]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Cancel(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
