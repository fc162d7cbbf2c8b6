package storagetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/storage"
)

// version returns the content of version v (1..255) of an object: v
// repeated, with a length that differs per version, so a reader can tell a
// complete version from a torn or mixed one.
func version(v byte) []byte {
	return bytes.Repeat([]byte{v}, 32<<10+int(v)*4099)
}

// checkVersion reports whether b is exactly one complete version.
func checkVersion(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty object")
	}
	if want := version(b[0]); !bytes.Equal(b, want) {
		return fmt.Errorf("torn object: %d bytes starting with version %d, want %d bytes", len(b), b[0], len(want))
	}
	return nil
}

// writeChunked writes data in uneven chunks.
func writeChunked(w io.Writer, data []byte, r *rand.Rand) error {
	for len(data) > 0 {
		n := min(len(data), 1+r.IntN(20000))
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func testConcurrentSameKey(t *testing.T, d storage.Driver) {
	const (
		key     = "same/key"
		writers = 6
		rounds  = 5
	)
	ctx := t.Context()
	var (
		writersWG, readersWG sync.WaitGroup
		done                 atomic.Bool
		reads                atomic.Int64
	)
	for i := range writers {
		writersWG.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for round := range rounds {
				v := byte(1 + i*rounds + round)
				w, err := d.Writer(ctx, key)
				if err != nil {
					t.Errorf("Writer: %v", err)
					return
				}
				if err := writeChunked(w, version(v), r); err != nil {
					w.Cancel(ctx)
					t.Errorf("Write: %v", err)
					return
				}
				if err := w.Commit(ctx); err != nil {
					t.Errorf("Commit version %d: %v", v, err)
					return
				}
			}
		})
	}
	for range 3 {
		readersWG.Go(func() {
			for !done.Load() {
				b, err := read(ctx, d, key, 0, -1)
				if errors.Is(err, storage.ErrNotFound) {
					continue // before the first Commit
				}
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if err := checkVersion(b); err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
			}
		})
	}
	writersWG.Wait()
	done.Store(true)
	readersWG.Wait()
	if t.Failed() {
		return
	}
	if err := checkVersion(get(t, d, key)); err != nil {
		t.Fatalf("final object: %v", err)
	}
	if keys := walkKeys(t, d, ""); len(keys) != 1 || keys[0] != key {
		t.Fatalf("Walk = %q, want only %q", keys, key)
	}
	t.Logf("%d complete reads during %d commits", reads.Load(), writers*rounds)
}

// testConcurrentDirChurn commits objects into directories that are brand new
// while other goroutines keep emptying them, so a driver that prunes empty
// directories races its own Commits. Every Commit must succeed and its
// object must be readable until its own writer deletes it.
func testConcurrentDirChurn(t *testing.T, d storage.Driver) {
	const (
		rounds  = 10
		writers = 4
		perRun  = 25
	)
	ctx := t.Context()
	for round := range rounds {
		dir := fmt.Sprintf("churn/%d/sub", round)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		// The deleter creates and deletes a sibling over and over.
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				sib := fmt.Sprintf("%s/sib-%d", dir, j)
				if err := tryPut(ctx, d, sib, []byte("sibling")); err != nil {
					t.Errorf("Commit %q: %v", sib, err)
					return
				}
				if err := d.Delete(ctx, sib); err != nil {
					t.Errorf("Delete %q: %v", sib, err)
					return
				}
			}
		})
		// Writers commit, check and delete, so the directory keeps emptying;
		// the last object of each writer stays.
		var writersWG sync.WaitGroup
		for i := range writers {
			writersWG.Go(func() {
				for k := range perRun {
					key := fmt.Sprintf("%s/w%d-%d", dir, i, k)
					if err := tryPut(ctx, d, key, []byte(key)); err != nil {
						t.Errorf("Commit %q: %v", key, err)
						return
					}
					if b, err := read(ctx, d, key, 0, -1); err != nil || string(b) != key {
						t.Errorf("read %q after Commit = %q, %v", key, b, err)
						return
					}
					if k == perRun-1 {
						break
					}
					if err := d.Delete(ctx, key); err != nil {
						t.Errorf("Delete %q: %v", key, err)
						return
					}
				}
			})
		}
		writersWG.Wait()
		close(stop)
		wg.Wait()
		if t.Failed() {
			return
		}
		var want []string
		for i := range writers {
			want = append(want, fmt.Sprintf("%s/w%d-%d", dir, i, perRun-1))
		}
		if got := walkKeys(t, d, dir+"/"); !slices.Equal(got, filterPrefix(want, "")) {
			t.Fatalf("round %d: Walk = %q, want %q", round, got, want)
		}
	}
}

// pattern is deterministic pseudo-random content with a period that is not
// a power of two, so swapped or shifted blocks of any usual buffer size show.
type pattern struct {
	block []byte
}

func newPattern() *pattern {
	block := make([]byte, 1<<20+7)
	r := rand.NewChaCha8([32]byte{'c', 'o', 'f', 'f', 'e', 'r'})
	r.Read(block)
	return &pattern{block: block}
}

// fill writes the content at offset off into p.
func (p *pattern) fill(b []byte, off int64) {
	for len(b) > 0 {
		i := int(off % int64(len(p.block)))
		n := copy(b, p.block[i:])
		b, off = b[n:], off+int64(n)
	}
}

func testLargeObject(t *testing.T, d storage.Driver) {
	const size = 64 << 20
	ctx := t.Context()
	pat := newPattern()
	w, err := d.Writer(ctx, "large/object")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(ctx)
	// Odd write sizes, small and large, never aligned with a buffer.
	sizes := []int{1, 7, 4093, 65537, 1<<20 + 13, 333333, 2<<20 + 1}
	h := sha256.New()
	buf := make([]byte, 2<<20+1)
	var off int64
	for i := 0; off < size; i++ {
		n := int(min(int64(sizes[i%len(sizes)]), size-off))
		chunk := buf[:n]
		pat.fill(chunk, off)
		h.Write(chunk)
		if m, err := w.Write(chunk); err != nil || m != n {
			t.Fatalf("Write at %d = %d, %v", off, m, err)
		}
		off += int64(n)
	}
	if w.Size() != size {
		t.Fatalf("Size() = %d, want %d", w.Size(), size)
	}
	want := h.Sum(nil)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := d.Stat(ctx, "large/object")
	if err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}

	r, err := d.Reader(ctx, "large/object", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	n, err := io.CopyBuffer(h, r, make([]byte, 12345))
	r.Close()
	if err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		t.Fatalf("sha256 read back %x, wrote %x", got, want)
	}

	// Ranges inside the large object, across buffer-sized boundaries.
	for _, rg := range [][2]int64{{size/2 - 1, 3000001}, {1<<20 - 5, 10}, {size - 17, 17}, {123456789 % size, 1}} {
		got, err := read(ctx, d, "large/object", rg[0], rg[1])
		if err != nil {
			t.Fatalf("range %v: %v", rg, err)
		}
		want := make([]byte, rg[1])
		pat.fill(want, rg[0])
		if !bytes.Equal(got, want) {
			t.Fatalf("range %v: content differs", rg)
		}
	}
	if err := d.Delete(ctx, "large/object"); err != nil {
		t.Fatal(err)
	}
}
