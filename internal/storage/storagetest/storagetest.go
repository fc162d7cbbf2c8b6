// Package storagetest is the conformance suite for storage.Driver: every
// driver (fs now, s3 later) passes Run unchanged.
//
// Beyond the storage.Driver doc comments, the suite pins down behaviour the
// contract leaves implicit:
//
//   - Every method rejects an invalid key with storage.ErrInvalidKey; Walk
//     rejects a prefix that no valid key can start with ("a/" and "" are
//     fine prefixes).
//   - A key that is only a prefix of other keys ("dir" when "dir/x" exists)
//     is not an object: Stat and Reader report storage.ErrNotFound and
//     Delete is a no-op that leaves "dir/x" alone.
//   - A Writer is finished by its first Commit or Cancel: a later Commit or
//     Write fails, and Cancel after a successful Commit fails without
//     removing the object.
//   - A canceled or expired context fails Writer, Commit (nothing becomes
//     visible), Reader, Stat, Delete (nothing is removed), Walk (also between
//     two calls of fn) and Ping with an error that wraps the context's error.
//   - A Reader opened before an overwrite or Delete returns the version it
//     opened, or an error, never a mix of versions.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/storage"
)

// Run runs the conformance suite. newDriver must return a new, empty driver
// that shares no objects with any other call; it is called once per subtest,
// and subtests run in parallel.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d storage.Driver)
	}{
		{"WriteCommitRead", testWriteCommitRead},
		{"InvisibleBeforeCommit", testInvisibleBeforeCommit},
		{"CancelLeavesNothing", testCancel},
		{"WriterFinishedOnce", testWriterFinishedOnce},
		{"Overwrite", testOverwrite},
		{"ReaderRanges", testReaderRanges},
		{"ReaderSnapshot", testReaderSnapshot},
		{"Stat", testStat},
		{"DeleteIdempotent", testDelete},
		{"Walk", testWalk},
		{"WalkRandomKeys", testWalkRandom},
		{"InvalidKeys", testInvalidKeys},
		{"ContextCanceled", testContext},
		{"Ping", testPing},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"ConcurrentNewDirectoryWithDeletes", testConcurrentDirChurn},
		{"LargeObject", testLargeObject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newDriver(t))
		})
	}
}

// put writes data under key and commits it.
func put(t testing.TB, d storage.Driver, key string, data []byte) {
	t.Helper()
	if err := tryPut(context.Background(), d, key, data); err != nil {
		t.Fatal(err)
	}
}

// tryPut is put for goroutines, which must not call t.Fatal.
func tryPut(ctx context.Context, d storage.Driver, key string, data []byte) error {
	w, err := d.Writer(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Cancel(ctx)
		return err
	}
	if got := w.Size(); got != int64(len(data)) {
		w.Cancel(ctx)
		return errors.New("Size() does not match the bytes written")
	}
	return w.Commit(ctx)
}

// read returns the range of key, or the error of Reader or of reading.
func read(ctx context.Context, d storage.Driver, key string, off, n int64) ([]byte, error) {
	r, err := d.Reader(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// get reads the whole object.
func get(t testing.TB, d storage.Driver, key string) []byte {
	t.Helper()
	b, err := read(t.Context(), d, key, 0, -1)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

// mustGet fails unless key holds want.
func mustGet(t testing.TB, d storage.Driver, key string, want []byte) {
	t.Helper()
	if got := get(t, d, key); !bytes.Equal(got, want) {
		t.Fatalf("read %q: got %d bytes %.40q, want %d bytes %.40q", key, len(got), got, len(want), want)
	}
}

// mustNotExist fails unless Stat and Reader report ErrNotFound for key.
func mustNotExist(t testing.TB, d storage.Driver, key string) {
	t.Helper()
	if _, err := d.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
	if _, err := read(t.Context(), d, key, 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Reader(%q) = %v, want ErrNotFound", key, err)
	}
}

// walkInfos lists everything under prefix.
func walkInfos(t testing.TB, d storage.Driver, prefix string) []storage.Info {
	t.Helper()
	var infos []storage.Info
	err := d.Walk(t.Context(), prefix, func(info storage.Info) error {
		infos = append(infos, info)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk(%q): %v", prefix, err)
	}
	return infos
}

// walkKeys lists the keys under prefix.
func walkKeys(t testing.TB, d storage.Driver, prefix string) []string {
	t.Helper()
	var keys []string
	for _, info := range walkInfos(t, d, prefix) {
		keys = append(keys, info.Key)
	}
	return keys
}

func testWriteCommitRead(t *testing.T, d storage.Driver) {
	keys := []string{
		"a",
		"a1/b/c",
		"layers/aes256/0f2c6d3e-8c1b-4d7a-9a51-3b1f0d6e2c44",
		"manifests/5d3f8e0a-1b2c-4d5e-8f90-a1b2c3d4e5f6/sha256:" + strings.Repeat("ab", 32),
		".tmp/x",                   // "." prefixes are ordinary segments
		"..x/y../...",              // so are dots that are not "." or ".."
		"sp ace/ü-ñí/~!@#$%^&*()+", // spaces, UTF-8, punctuation
	}
	ctx := t.Context()
	start := time.Now()
	for _, key := range keys {
		w, err := d.Writer(ctx, key)
		if err != nil {
			t.Fatalf("Writer(%q): %v", key, err)
		}
		for _, part := range []string{"hello, ", "", "world"} {
			n, err := w.Write([]byte(part))
			if err != nil || n != len(part) {
				t.Fatalf("Write(%q) = %d, %v", part, n, err)
			}
		}
		if w.Size() != 12 {
			t.Fatalf("Size() = %d, want 12", w.Size())
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("Commit(%q): %v", key, err)
		}
		mustGet(t, d, key, []byte("hello, world"))
		info, err := d.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", key, err)
		}
		if info.Key != key || info.Size != 12 {
			t.Fatalf("Stat(%q) = %+v, want key %q size 12", key, info, key)
		}
		if info.ModTime.Before(start.Add(-time.Minute)) || info.ModTime.After(time.Now().Add(time.Minute)) {
			t.Fatalf("Stat(%q).ModTime = %v, not around %v", key, info.ModTime, start)
		}
	}
	slices.Sort(keys)
	if got := walkKeys(t, d, ""); !slices.Equal(got, keys) {
		t.Fatalf("Walk(\"\") = %q, want %q", got, keys)
	}
}

func testInvisibleBeforeCommit(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	w, err := d.Writer(ctx, "new/obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("pending")); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, d, "new/obj")
	if keys := walkKeys(t, d, ""); len(keys) != 0 {
		t.Fatalf("Walk lists uncommitted objects: %q", keys)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mustGet(t, d, "new/obj", []byte("pending"))

	// While a replacement is in flight the old version stays visible.
	w, err = d.Writer(ctx, "new/obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("replacement")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, d, "new/obj", []byte("pending"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mustGet(t, d, "new/obj", []byte("replacement"))
}

func testCancel(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	put(t, d, "keep", []byte("v1"))

	w, err := d.Writer(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("v2 that must never show")); err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	mustGet(t, d, "keep", []byte("v1"))
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Cancel succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after Cancel succeeded")
	}
	mustGet(t, d, "keep", []byte("v1"))

	for _, data := range [][]byte{nil, []byte("discarded")} {
		w, err := d.Writer(ctx, "gone/obj")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Cancel(ctx); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		mustNotExist(t, d, "gone/obj")
	}
	if got := walkKeys(t, d, ""); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("Walk after Cancel = %q, want [keep]", got)
	}
}

func testWriterFinishedOnce(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	w, err := d.Writer(ctx, "once")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("second Commit succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if err := w.Cancel(ctx); err == nil {
		t.Fatal("Cancel after Commit succeeded")
	}
	mustGet(t, d, "once", []byte("v1"))
}

func testOverwrite(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	versions := [][]byte{
		bytes.Repeat([]byte("long version "), 1000),
		[]byte("short"),
		{},
		[]byte("last"),
	}
	for _, v := range versions {
		put(t, d, "dir/obj", v)
		mustGet(t, d, "dir/obj", v)
		info, err := d.Stat(ctx, "dir/obj")
		if err != nil || info.Size != int64(len(v)) {
			t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(v))
		}
	}
	if got := walkKeys(t, d, ""); !slices.Equal(got, []string{"dir/obj"}) {
		t.Fatalf("Walk = %q, want one key", got)
	}
}

func testReaderRanges(t *testing.T, d storage.Driver) {
	data := []byte("0123456789abcdefghij")
	size := int64(len(data))
	put(t, d, "r/obj", data)
	put(t, d, "r/empty", nil)
	tests := []struct {
		name      string
		key       string
		off, n    int64
		want      string
		wantRange bool
	}{
		{name: "whole", key: "r/obj", off: 0, n: size, want: string(data)},
		{name: "whole to end", key: "r/obj", off: 0, n: -1, want: string(data)},
		{name: "start", key: "r/obj", off: 0, n: 3, want: "012"},
		{name: "middle", key: "r/obj", off: 7, n: 5, want: "789ab"},
		{name: "end", key: "r/obj", off: size - 3, n: 3, want: "hij"},
		{name: "middle to end", key: "r/obj", off: 15, n: -1, want: "fghij"},
		{name: "negative length other than -1", key: "r/obj", off: 18, n: -7, want: "ij"},
		{name: "zero length at start", key: "r/obj", off: 0, n: 0, want: ""},
		{name: "zero length at end", key: "r/obj", off: size, n: 0, want: ""},
		{name: "to end from end", key: "r/obj", off: size, n: -1, want: ""},
		{name: "offset past end", key: "r/obj", off: size + 1, n: 0, wantRange: true},
		{name: "offset past end to end", key: "r/obj", off: size + 1, n: -1, wantRange: true},
		{name: "length past end", key: "r/obj", off: size - 1, n: 2, wantRange: true},
		{name: "length past end from start", key: "r/obj", off: 0, n: size + 1, wantRange: true},
		{name: "negative offset", key: "r/obj", off: -1, n: 1, wantRange: true},
		{name: "overflowing length", key: "r/obj", off: 1, n: 1<<63 - 1, wantRange: true},
		{name: "empty whole", key: "r/empty", off: 0, n: -1, want: ""},
		{name: "empty zero", key: "r/empty", off: 0, n: 0, want: ""},
		{name: "empty past end", key: "r/empty", off: 1, n: -1, wantRange: true},
		{name: "empty length past end", key: "r/empty", off: 0, n: 1, wantRange: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(t.Context(), d, tc.key, tc.off, tc.n)
			if tc.wantRange {
				if !errors.Is(err, storage.ErrInvalidRange) {
					t.Fatalf("Reader(%d, %d) = %q, %v; want ErrInvalidRange", tc.off, tc.n, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Reader(%d, %d) = %q, %v; want %q", tc.off, tc.n, got, err, tc.want)
			}
		})
	}
	if _, err := read(t.Context(), d, "r/missing", 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Reader(missing) = %v, want ErrNotFound", err)
	}
	// A range check against a missing object is still ErrNotFound.
	if _, err := read(t.Context(), d, "r/missing", 5, 5); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Reader(missing, 5, 5) = %v, want ErrNotFound", err)
	}
}

func testReaderSnapshot(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	v1 := bytes.Repeat([]byte{'a'}, 1<<20+1)
	v2 := bytes.Repeat([]byte{'b'}, 1<<19+3)
	put(t, d, "snap", v1)

	r, err := d.Reader(ctx, "snap", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 10)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	put(t, d, "snap", v2)
	rest, err := io.ReadAll(r)
	r.Close()
	if err == nil && !bytes.Equal(append(head, rest...), v1) {
		t.Fatalf("Reader opened before an overwrite returned %d bytes of a mixed version", len(head)+len(rest))
	}

	r, err = d.Reader(ctx, "snap", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "snap"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err == nil && !bytes.Equal(got, v2) {
		t.Fatalf("Reader opened before Delete returned %d bytes, want v2 (%d)", len(got), len(v2))
	}
	mustNotExist(t, d, "snap")
}

func testStat(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	for _, size := range []int{0, 1, 4097, 1<<20 + 1} {
		key := "stat/" + strings.Repeat("s", 1+size%7)
		put(t, d, key, bytes.Repeat([]byte{'x'}, size))
		info, err := d.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != key || info.Size != int64(size) || info.ModTime.IsZero() {
			t.Fatalf("Stat(%q) = %+v, want size %d", key, info, size)
		}
	}
	put(t, d, "dir/x", []byte("x"))
	mustNotExist(t, d, "missing")
	mustNotExist(t, d, "dir")       // a prefix of a key is not an object
	mustNotExist(t, d, "di")        // nor is a string prefix
	mustNotExist(t, d, "dir/x/y")   // nothing lives under an object
	mustNotExist(t, d, "dir/x/y/z") // however deep
}

func testDelete(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	if err := d.Delete(ctx, "never/existed"); err != nil {
		t.Fatalf("Delete(missing) = %v", err)
	}
	put(t, d, "del/obj", []byte("x"))
	for range 2 {
		if err := d.Delete(ctx, "del/obj"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		mustNotExist(t, d, "del/obj")
	}

	// Deleting a prefix or a path under an object touches nothing.
	put(t, d, "p/q", []byte("q"))
	for _, key := range []string{"p", "p/q/r", "p/q/r/s"} {
		if err := d.Delete(ctx, key); err != nil {
			t.Fatalf("Delete(%q) = %v", key, err)
		}
	}
	mustGet(t, d, "p/q", []byte("q"))

	// Deleting the last object of a deep directory leaves siblings and lets
	// the same directory be written again.
	put(t, d, "deep/a/b/c", []byte("c"))
	put(t, d, "deep/a/x", []byte("x"))
	if err := d.Delete(ctx, "deep/a/b/c"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, d, "deep/a/x", []byte("x"))
	put(t, d, "deep/a/b/d", []byte("d"))
	mustGet(t, d, "deep/a/b/d", []byte("d"))
	if err := d.Delete(ctx, "deep/a/b/d"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "deep/a/x"); err != nil {
		t.Fatal(err)
	}
	if got := walkKeys(t, d, ""); !slices.Equal(got, []string{"p/q"}) {
		t.Fatalf("Walk after deletes = %q, want [p/q]", got)
	}
	put(t, d, "deep/a/b/c", []byte("again"))
	mustGet(t, d, "deep/a/b/c", []byte("again"))
}
