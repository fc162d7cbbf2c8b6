package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"
)

func TestStreamIsDeterministicAndSized(t *testing.T) {
	t.Parallel()
	read := func(seed string, n int64) []byte {
		b, err := io.ReadAll(newStream(seed, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := read("x", 3<<20+7), read("x", 3<<20+7)
	if len(a) != 3<<20+7 || !bytes.Equal(a, b) {
		t.Fatalf("stream not deterministic or wrong size: %d bytes", len(a))
	}
	if bytes.Equal(read("y", 64), a[:64]) {
		t.Fatal("different seeds gave the same bytes")
	}
	if bytes.Equal(a[:64], make([]byte, 64)) {
		t.Fatal("stream is zeros")
	}
}

func TestLayerDigestMatchesContent(t *testing.T) {
	t.Parallel()
	img, err := newTestImage("test", 3, 100<<10)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range img.layers {
		rc, _ := l.Compressed()
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != l.digest.Hex {
			t.Errorf("layer %s: content hashes to %s, digest says %s", l.seed, got, l.digest.Hex)
		}
	}
	again, err := newTestImage("test", 3, 100<<10)
	if err != nil {
		t.Fatal(err)
	}
	if again.digest != img.digest {
		t.Errorf("manifest digest not deterministic: %s then %s", img.digest, again.digest)
	}
	if want := 3*100<<10 + img.bytes - img.layerBytes(); img.bytes != want || img.bytes <= img.layerBytes() {
		t.Errorf("bytes %d, layers %d: config missing", img.bytes, img.layerBytes())
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"one", []float64{7}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentile(d, 0.5), percentile(d, 0.99); p50 != 50 || p99 != 99 {
		t.Errorf("p50 %v p99 %v, want 50 and 99", p50, p99)
	}
}

func TestNum(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{1234567: "1,234,567", 8000: "8,000", 527.4: "527", 29.64: "29.6", 1.104: "1.10"} {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestProcReaders(t *testing.T) {
	t.Parallel()
	if _, err := readSysCPU(); err != nil {
		t.Fatalf("no /proc/stat (the harness needs Linux): %v", err)
	}
	if _, err := procCPU(0); err != nil {
		t.Errorf("procCPU(self): %v", err)
	}
}
