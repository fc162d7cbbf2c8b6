package fs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/storage/storagetest"
)

// newTestDriver opens a Driver on dir and closes it when the test ends.
func newTestDriver(t testing.TB, dir string) *Driver {
	t.Helper()
	d, err := New(Config{Root: dir})
	if err != nil {
		t.Fatalf("New(%q): %v", dir, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		return newTestDriver(t, t.TempDir())
	})
}

func put(t testing.TB, d storage.Driver, key string, data []byte) {
	t.Helper()
	w, err := d.Writer(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

func readAll(t testing.TB, d storage.Driver, key string) ([]byte, error) {
	t.Helper()
	r, err := d.Reader(t.Context(), key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func walkKeys(t testing.TB, d storage.Driver, prefix string) []string {
	t.Helper()
	var keys []string
	err := d.Walk(t.Context(), prefix, func(info storage.Info) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk(%q): %v", prefix, err)
	}
	return keys
}

// stagingEntries lists the staging directory directly on disk.
func stagingEntries(t testing.TB, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, stagingDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New with an empty root succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Root: file}); err == nil {
		t.Error("New on a regular file succeeded")
	}
	// A missing root, even nested, is created 0700.
	root := filepath.Join(t.TempDir(), "x", "y")
	newTestDriver(t, root)
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("root = %v, %v; want a private directory", fi, err)
	}
}

func TestLayoutAndPermissions(t *testing.T) {
	root := t.TempDir()
	d := newTestDriver(t, root)
	put(t, d, "layers/aes256/obj", []byte("data"))

	b, err := os.ReadFile(filepath.Join(root, "layers", "aes256", "obj"))
	if err != nil || string(b) != "data" {
		t.Fatalf("object file = %q, %v", b, err)
	}
	for _, p := range []string{"layers", "layers/aes256", stagingDir} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, %v; want a directory without group/other access", p, fi, err)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "layers", "aes256", "obj"))
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("object mode %v, %v; want no group/other access", fi.Mode(), err)
	}
	if names := stagingEntries(t, root); len(names) != 0 {
		t.Errorf("staging after Commit: %q", names)
	}

	w, err := d.Writer(t.Context(), "layers/aes256/other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("pending")); err != nil {
		t.Fatal(err)
	}
	if names := stagingEntries(t, root); len(names) != 1 {
		t.Errorf("staging during a write: %q, want one file", names)
	}
	if err := w.Cancel(t.Context()); err != nil {
		t.Fatal(err)
	}
	if names := stagingEntries(t, root); len(names) != 0 {
		t.Errorf("staging after Cancel: %q", names)
	}
	if err := d.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if names := stagingEntries(t, root); len(names) != 0 {
		t.Errorf("staging after Ping: %q", names)
	}
}

func TestStagingNameIsNoKey(t *testing.T) {
	for _, k := range []string{stagingDir, stagingDir + "/x", "a/" + stagingDir} {
		if storage.ValidKey(k) {
			t.Errorf("ValidKey(%q) = true; the staging directory must be unreachable", k)
		}
	}
	// Names that look like temp directories are ordinary keys and survive
	// a restart.
	root := t.TempDir()
	d := newTestDriver(t, root)
	put(t, d, ".tmp/x", []byte("x"))
	put(t, d, "staging/y", []byte("y"))
	d.Close()
	d = newTestDriver(t, root)
	if got := walkKeys(t, d, ""); !slices.Equal(got, []string{".tmp/x", "staging/y"}) {
		t.Fatalf("Walk = %q", got)
	}
}

func TestDeletePrunesEmptyDirectories(t *testing.T) {
	root := t.TempDir()
	d := newTestDriver(t, root)
	put(t, d, "a/b/c", []byte("c"))
	put(t, d, "a/x", []byte("x"))
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(root, p))
		return err == nil
	}
	if err := d.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if exists("a/b") || !exists("a") {
		t.Fatalf("after deleting a/b/c: a/b exists=%v, a exists=%v; want false, true", exists("a/b"), exists("a"))
	}
	if err := d.Delete(t.Context(), "a/x"); err != nil {
		t.Fatal(err)
	}
	if exists("a") || !exists(".") || !exists(stagingDir) {
		t.Fatal("want a pruned and the root and staging directory kept")
	}
	// Deleting a prefix never removes a directory, even an empty one.
	if err := os.MkdirAll(filepath.Join(root, "empty", "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(t.Context(), "empty/dir"); err != nil || !exists("empty/dir") {
		t.Fatalf("Delete(directory) = %v, exists=%v; want nil and kept", err, exists("empty/dir"))
	}
}

func TestKeyConflicts(t *testing.T) {
	root := t.TempDir()
	d := newTestDriver(t, root)
	put(t, d, "a/b", []byte("object"))
	put(t, d, "x/y/z", []byte("deep"))
	for _, key := range []string{"a/b/c", "a/b/c/d", "x/y", "x"} {
		w, err := d.Writer(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("conflict")); err != nil {
			t.Fatal(err)
		}
		err = w.Commit(t.Context())
		if err == nil || errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Commit(%q) = %v, want a conflict error", key, err)
		}
		if err := w.Cancel(t.Context()); err != nil {
			t.Errorf("Cancel after failed Commit: %v", err)
		}
	}
	for key, want := range map[string]string{"a/b": "object", "x/y/z": "deep"} {
		if got, err := readAll(t, d, key); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
	}
	if names := stagingEntries(t, root); len(names) != 0 {
		t.Errorf("staging after failed commits: %q", names)
	}
}

func TestLongSegments(t *testing.T) {
	d := newTestDriver(t, t.TempDir())
	ok := "k/" + strings.Repeat("s", maxNameLen)
	put(t, d, ok, []byte("x"))
	if _, err := d.Stat(t.Context(), ok); err != nil {
		t.Fatal(err)
	}
	long := "k/" + strings.Repeat("s", maxNameLen+1)
	if _, err := d.Writer(t.Context(), long); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Writer(256-byte segment) = %v, want ErrInvalidKey", err)
	}
	if _, err := d.Stat(t.Context(), long); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Stat(256-byte segment) = %v, want ErrInvalidKey", err)
	}
	// No valid key can start with a prefix holding an over-long segment.
	if err := d.Walk(t.Context(), long+"/", func(storage.Info) error { return nil }); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Walk(long prefix) = %v, want ErrInvalidKey", err)
	}
}

func TestSymlinkInsideRootIsNoObject(t *testing.T) {
	root := t.TempDir()
	d := newTestDriver(t, root)
	put(t, d, "real", []byte("real"))
	if err := os.Symlink("real", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(t.Context(), "alias"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(symlink) = %v, want ErrNotFound", err)
	}
	if _, err := readAll(t, d, "alias"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Reader(symlink) = %v, want ErrNotFound", err)
	}
	if got := walkKeys(t, d, ""); !slices.Equal(got, []string{"real"}) {
		t.Errorf("Walk = %q, want [real]", got)
	}
	if err := d.Delete(t.Context(), "alias"); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, d, "real"); err != nil || string(got) != "real" {
		t.Errorf("real after deleting the alias = %q, %v", got, err)
	}
}

// TestContainment plants symlinks inside the root that point outside it and
// proves that no method reads, writes, lists or deletes through them.
func TestContainment(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	d := newTestDriver(t, root)
	put(t, d, "in/dir/obj", []byte("inside"))
	rel, err := filepath.Rel(filepath.Join(root, "in", "dir"), outside)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"abs":          outside, // absolute directory link
		"in/dir/up":    rel,     // relative ../../.. escape
		"leak":         secret,  // link to an outside file
		"in/dotdot":    "../..", // the root's parent
		"in/dir/inner": "../../../" + filepath.Base(root) + "/../" + filepath.Base(outside),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	outsideBefore := dirListing(t, outside)

	for _, key := range []string{
		"abs/secret", "in/dir/up/secret", "leak", "in/dotdot/" + filepath.Base(outside) + "/secret",
		"in/dir/inner/secret",
	} {
		t.Run("read "+key, func(t *testing.T) {
			// The planted link does escape for a plain path lookup.
			if b, err := os.ReadFile(filepath.Join(root, key)); err != nil || string(b) != "top secret" {
				t.Fatalf("link %q does not reach the outside file: %q, %v", key, b, err)
			}
			if b, err := readAll(t, d, key); err == nil || bytes.Contains(b, []byte("secret")) {
				t.Errorf("Reader(%q) = %q, %v; want an error", key, b, err)
			}
			if info, err := d.Stat(ctx, key); err == nil {
				t.Errorf("Stat(%q) = %+v; want an error", key, info)
			}
			d.Delete(ctx, key) // may fail; must not touch the outside file
			if b, err := os.ReadFile(secret); err != nil || string(b) != "top secret" {
				t.Fatalf("outside file after Delete(%q): %q, %v", key, b, err)
			}
		})
	}
	for _, key := range []string{"abs/planted", "in/dir/up/planted", "abs/new/dir/planted", "in/dotdot/planted"} {
		t.Run("write "+key, func(t *testing.T) {
			w, err := d.Writer(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("planted")); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(ctx); err == nil {
				t.Errorf("Commit(%q) through an outside link succeeded", key)
			}
			w.Cancel(ctx)
		})
	}
	if got := walkKeys(t, d, ""); !slices.Equal(got, []string{"in/dir/obj"}) {
		t.Errorf("Walk = %q; want only the real object", got)
	}

	// Committing over the link "leak" replaces the link, not its target.
	put(t, d, "leak", []byte("replaced"))
	if b, err := os.ReadFile(secret); err != nil || string(b) != "top secret" {
		t.Fatalf("outside file after overwriting the link: %q, %v", b, err)
	}
	if b, err := readAll(t, d, "leak"); err != nil || string(b) != "replaced" {
		t.Fatalf("leak = %q, %v", b, err)
	}
	if after := dirListing(t, outside); !slices.Equal(after, outsideBefore) {
		t.Fatalf("outside directory changed: %q -> %q", outsideBefore, after)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "planted")); err == nil {
		t.Fatal("a file was planted next to the root")
	}
}

// TestStagingSymlinkOutside replaces the staging directory with a link out
// of the root: New refuses it, and a running Driver writes nothing outside.
func TestStagingSymlinkOutside(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	d := newTestDriver(t, root)
	staging := filepath.Join(root, stagingDir)
	if err := os.Remove(staging); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, staging); err != nil {
		t.Fatal(err)
	}
	if w, err := d.Writer(t.Context(), "k"); err == nil {
		w.Write([]byte("x"))
		if w.Commit(t.Context()) == nil {
			t.Error("Commit through a staging link succeeded")
		}
	}
	if err := d.Ping(t.Context()); err == nil {
		t.Error("Ping through a staging link succeeded")
	}
	if _, err := New(Config{Root: root}); err == nil {
		t.Error("New accepted a staging link out of the root")
	}
	if got := dirListing(t, outside); len(got) != 0 {
		t.Fatalf("files written outside the root: %q", got)
	}
}

func dirListing(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestDurableDirectoryBookkeeping checks the memory of synced directories
// that lets Commit skip re-syncing ancestors: it grows with commits and
// forgets pruned directories, which may come back as new, unsynced ones.
func TestDurableDirectoryBookkeeping(t *testing.T) {
	d := newTestDriver(t, t.TempDir())
	durable := func(dir string) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		_, ok := d.durable[dir]
		return ok
	}
	put(t, d, "a/b/c", []byte("c"))
	put(t, d, "a/x", []byte("x"))
	if !durable("a/b") || !durable("a") {
		t.Fatal("committed directories are not remembered as durable")
	}
	if err := d.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if durable("a/b") || !durable("a") {
		t.Fatal("a pruned directory is still remembered, or a kept one forgotten")
	}
	// A Commit that raced a pruning (gen moved on) remembers nothing.
	gen, unsynced, err := func() (uint64, []string, error) {
		w, err := d.Writer(t.Context(), "n/m/o")
		if err != nil {
			return 0, nil, err
		}
		ww := w.(*writer)
		if err := ww.seal(t.Context()); err != nil {
			return 0, nil, err
		}
		ww.state = stateCommitted
		return d.publish(ww.tmp, ww.key)
	}()
	if err != nil || !slices.Equal(unsynced, []string{"n/m", "n"}) {
		t.Fatalf("publish = %v, %q; want both new directories unsynced", err, unsynced)
	}
	if err := d.Delete(t.Context(), "a/x"); err != nil { // prunes "a"
		t.Fatal(err)
	}
	if err := d.syncParents("n/m/o", gen, unsynced); err != nil {
		t.Fatal(err)
	}
	if durable("n/m") || durable("n") {
		t.Fatal("directories remembered although a pruning raced the Commit")
	}
}
