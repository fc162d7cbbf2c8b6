package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"testing"
)

// benchSize is the plaintext per benchmark iteration.
const benchSize = 16 << 20

// benchCases are the layer counts and segment shifts benchmarked.
var benchCases = []struct {
	nslots int
	shift  uint8
}{{1, 16}, {2, 16}, {1, 20}, {2, 20}}

func benchName(nslots int, shift uint8) string {
	return fmt.Sprintf("slots=%d/seg=%dKiB", nslots, (1<<shift)>>10)
}

// BenchmarkWriter encrypts 16 MiB per iteration, written in 32 KiB chunks as
// io.Copy from a request body would.
func BenchmarkWriter(b *testing.B) {
	src := pattern(benchSize)
	for _, c := range benchCases {
		b.Run(benchName(c.nslots, c.shift), func(b *testing.B) {
			h := mustHeader(b, c.shift, c.nslots)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				w, err := NewWriter(io.Discard, h, testIdentity, testKeys[:c.nslots]...)
				if err != nil {
					b.Fatal(err)
				}
				for p := src; len(p) > 0; p = p[32<<10:] {
					if _, err := w.Write(p[:32<<10]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReader decrypts 16 MiB per iteration, through io.Copy (which uses
// WriteTo) and through plain 32 KiB Reads (as behind a digest verifier).
func BenchmarkReader(b *testing.B) {
	pt := pattern(benchSize)
	for _, c := range benchCases {
		h := mustHeader(b, c.shift, c.nslots)
		keys := testKeys[:c.nslots]
		body := encrypt(b, h, testIdentity, pt, keys)[h.Len():]
		for _, mode := range []string{"copy", "read"} {
			b.Run(benchName(c.nslots, c.shift)+"/"+mode, func(b *testing.B) {
				b.SetBytes(benchSize)
				b.ReportAllocs()
				buf := make([]byte, 32<<10)
				for b.Loop() {
					r, err := NewReader(bytes.NewReader(body), h, testIdentity, benchSize, keys...)
					if err != nil {
						b.Fatal(err)
					}
					if mode == "read" {
						r = struct{ io.Reader }{r} // hide WriteTo
					}
					n, err := io.CopyBuffer(io.Discard, r, buf)
					if err != nil || n != benchSize {
						b.Fatal(n, err)
					}
				}
			})
		}
	}
}

// BenchmarkGCMBaseline is the ceiling: bare AES-256-GCM sealing 64 KiB in
// place, one layer, on this machine.
func BenchmarkGCMBaseline(b *testing.B) {
	block, err := aes.NewCipher(testKeys[0])
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10, 64<<10+16)
	nonce := make([]byte, 12)
	b.SetBytes(64 << 10)
	for b.Loop() {
		aead.Seal(buf[:0], nonce, buf, nil)
	}
}
