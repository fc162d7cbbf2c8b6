package cache_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/cache"
	"github.com/cofferhq/coffer/internal/metadata/metadatatest"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

// long is a TTL no test outlives: whatever such a cache answers after a
// write it did not see comes from memory.
const long = time.Hour

// open returns a fresh SQLite store and a cache in front of it.
func open(t testing.TB, ttl time.Duration) (*sqlite.Store, *cache.Store) {
	t.Helper()
	inner, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	return inner, cache.New(inner, cache.Config{TTL: ttl})
}

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// repo creates an AES256 repository through s.
func repo(t testing.TB, s metadata.Store, name string) metadata.Repository {
	t.Helper()
	r := metadata.Repository{ID: uuid.NewString(), Name: name, Domain: "aes256", EncryptionType: metadata.EncryptionAES256,
		TagMutability: metadata.TagMutable, TagMutabilityExclusions: []string{"dev-*"}, CreatedAt: time.Now().UTC()}
	if err := s.CreateRepository(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// push stores a manifest for content (one layer, annotated) through s and
// points tag at it.
func push(t testing.TB, s metadata.Store, r metadata.Repository, content, tag string) metadata.Manifest {
	t.Helper()
	ctx := t.Context()
	layer := metadata.Blob{Domain: r.Domain, Digest: digestOf("layer " + content), Size: 1,
		ObjectKey: "layers/aes256/" + uuid.NewString(), CreatedAt: time.Now().UTC()}
	if _, _, err := s.CommitBlob(ctx, r.ID, layer); err != nil {
		t.Fatal(err)
	}
	d := digestOf(content)
	m := metadata.Manifest{RepoID: r.ID, Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: int64(len(content)), ObjectKey: "manifests/" + r.ID + "/" + d, PushedAt: time.Now().UTC(),
		Annotations: map[string]string{"content": content}, ImageSize: 1}
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: tag,
		Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func resolve(t testing.TB, s metadata.Store, r metadata.Repository, tag string) string {
	t.Helper()
	m, err := s.ResolveTag(t.Context(), r.ID, tag)
	if err != nil {
		t.Fatalf("resolve %s: %v", tag, err)
	}
	return m.Digest
}

func scanOnPush(t testing.TB, s metadata.Store, name string) bool {
	t.Helper()
	r, err := s.GetRepository(t.Context(), name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return r.ScanOnPush
}

func setScanOnPush(t testing.TB, s metadata.Store, name string, v bool) {
	t.Helper()
	if _, err := s.UpdateRepository(t.Context(), name, func(r *metadata.Repository) error { r.ScanOnPush = v; return nil }); err != nil {
		t.Fatal(err)
	}
}

// Misses are not cached: a repository or tag created afterwards is found
// at once, even behind the cache's back.
func TestMissNotCached(t *testing.T) {
	t.Parallel()
	inner, c := open(t, long)
	if _, err := c.GetRepository(t.Context(), "later"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("get absent = %v", err)
	}
	r := repo(t, inner, "later")
	if _, err := c.ResolveTag(t.Context(), r.ID, "v1"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("resolve absent = %v", err)
	}
	m := push(t, inner, r, "one", "v1")
	if resolve(t, c, r, "v1") != m.Digest {
		t.Error("tag created behind the cache not found")
	}
	if _, err := c.GetRepository(t.Context(), "later"); err != nil {
		t.Errorf("repository created behind the cache: %v", err)
	}
}

// Every invalidating write through the cache is seen by the next read,
// whatever it changed.
func TestInvalidation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tests := []struct {
		name  string
		write func(t *testing.T, c *cache.Store, r metadata.Repository)
		check func(t *testing.T, c *cache.Store, r metadata.Repository)
	}{
		{"UpdateRepository",
			func(t *testing.T, c *cache.Store, r metadata.Repository) { setScanOnPush(t, c, r.Name, true) },
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if !scanOnPush(t, c, r.Name) {
					t.Error("stale repository")
				}
			}},
		{"PutManifest moves the tag",
			func(t *testing.T, c *cache.Store, r metadata.Repository) { push(t, c, r, "two", "v1") },
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if resolve(t, c, r, "v1") != digestOf("two") {
					t.Error("stale tag")
				}
			}},
		{"DeleteTag",
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if err := c.DeleteTag(ctx, r.ID, "v1"); err != nil {
					t.Fatal(err)
				}
			},
			tagGone},
		{"DeleteManifest",
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if _, err := c.DeleteManifest(ctx, r.ID, digestOf("one")); err != nil {
					t.Fatal(err)
				}
			},
			tagGone},
		{"DeleteImage",
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if _, err := c.DeleteImage(ctx, r.ID, "", "v1"); err != nil {
					t.Fatal(err)
				}
			},
			tagGone},
		{"DeleteRepository",
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if _, err := c.DeleteRepository(ctx, r.Name); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if _, err := c.GetRepository(ctx, r.Name); !errors.Is(err, metadata.ErrNotFound) {
					t.Errorf("get deleted repository = %v", err)
				}
				tagGone(t, c, r)
			}},
		{"RecordPull",
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				if err := c.RecordPull(ctx, r.ID, digestOf("one"), time.Now()); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, c *cache.Store, r metadata.Repository) {
				m, err := c.ResolveTag(ctx, r.ID, "v1")
				if err != nil || m.LastPulledAt.IsZero() {
					t.Errorf("LastPulledAt after RecordPull = %v, %v", m.LastPulledAt, err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, c := open(t, long)
			r := repo(t, c, "app")
			push(t, c, r, "one", "v1")
			scanOnPush(t, c, r.Name) // fill both tables
			resolve(t, c, r, "v1")
			g := c.Generation()
			tc.write(t, c, r)
			if c.Generation() == g {
				t.Error("the write did not bump the generation")
			}
			tc.check(t, c, r)
		})
	}
}

func tagGone(t *testing.T, c *cache.Store, r metadata.Repository) {
	t.Helper()
	if _, err := c.ResolveTag(t.Context(), r.ID, "v1"); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("resolve deleted tag = %v", err)
	}
}

// A write behind the cache's back (straight to the inner store, as
// another process would make it) is not seen while the entry is valid,
// which shows the second read was answered from memory; it is seen once
// the TTL has run out, and at once with TTL 0.
func TestWriteBehindCache(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ttl, wait time.Duration
		fresh     bool
	}{
		{"hit within the TTL", long, 0, false},
		{"expired", 50 * time.Millisecond, 100 * time.Millisecond, true},
		{"TTL 0 caches nothing", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inner, c := open(t, tc.ttl)
			r := repo(t, c, "app")
			m1 := push(t, c, r, "one", "v1")
			if scanOnPush(t, c, "app") || resolve(t, c, r, "v1") != m1.Digest {
				t.Fatal("first reads")
			}
			setScanOnPush(t, inner, "app", true)
			m2 := push(t, inner, r, "two", "v1")
			time.Sleep(tc.wait)
			if got := scanOnPush(t, c, "app"); got != tc.fresh {
				t.Errorf("GetRepository saw the write = %v, want %v", got, tc.fresh)
			}
			if got := resolve(t, c, r, "v1") == m2.Digest; got != tc.fresh {
				t.Errorf("ResolveTag saw the write = %v, want %v", got, tc.fresh)
			}
		})
	}
}

// Values are copied in and out: editing what a read returned changes
// neither the cache nor other readers' values.
func TestCopies(t *testing.T) {
	t.Parallel()
	_, c := open(t, long)
	r := repo(t, c, "app")
	push(t, c, r, "one", "v1")
	for range 3 { // a miss, then hits
		got, err := c.GetRepository(t.Context(), "app")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.TagMutabilityExclusions, []string{"dev-*"}) {
			t.Fatalf("exclusions = %v", got.TagMutabilityExclusions)
		}
		got.TagMutabilityExclusions[0] = "mutated"
		m, err := c.ResolveTag(t.Context(), r.ID, "v1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Annotations["content"] != "one" || len(m.Annotations) != 1 {
			t.Fatalf("annotations = %v", m.Annotations)
		}
		m.Annotations["content"] = "mutated"
		m.Annotations["extra"] = "x"
	}
}

// The clone functions copy every field that shares memory; a reference
// field added to Repository or Manifest fails here until it is handled.
func TestCopiesCoverReferenceFields(t *testing.T) {
	cloned := map[string]bool{
		"Repository.TagMutabilityExclusions": true,
		"Manifest.Annotations":               true,
		"Manifest.Tags":                      true,
	}
	for _, v := range []any{metadata.Repository{}, metadata.Manifest{}} {
		for _, f := range reflectFields(v) {
			if f.shared && !cloned[f.name] {
				t.Errorf("%s shares memory and is not copied by the cache (cloneRepository/cloneManifest)", f.name)
			}
		}
	}
}

// Readers racing a writer never see a value older than the last write
// that returned before the read began (run with -race: readers also edit
// what they get).
func TestConcurrent(t *testing.T) {
	t.Parallel()
	_, c := open(t, long)
	r := repo(t, c, "app")
	ms := [2]metadata.Manifest{push(t, c, r, "zero", "v1"), push(t, c, r, "one", "x")}

	// seq is odd while a write is in progress; after write i returns it is
	// 2i, and v1 points at ms[i%2], ScanOnPush is i%2 == 1.
	var seq atomic.Uint64
	stop := make(chan struct{})
	done := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				s1 := seq.Load()
				m, err := c.ResolveTag(t.Context(), r.ID, "v1")
				if err != nil {
					done <- err
					return
				}
				repo, err := c.GetRepository(t.Context(), "app")
				if err != nil {
					done <- err
					return
				}
				m.Annotations["mine"] = "x"
				repo.TagMutabilityExclusions[0] = "mine"
				if s1%2 == 0 && seq.Load() == s1 {
					i := s1 / 2
					if m.Digest != ms[i%2].Digest || repo.ScanOnPush != (i%2 == 1) {
						done <- errors.New("stale read after a completed write")
						return
					}
				}
			}
		}()
	}
	for i := uint64(1); i <= 200; i++ {
		seq.Add(1) // odd: writing
		if _, err := c.PutManifest(t.Context(), metadata.PutManifest{Manifest: ms[i%2], Tag: "v1"}); err != nil {
			t.Fatal(err)
		}
		setScanOnPush(t, c, "app", i%2 == 1)
		seq.Add(1) // even: write i done
	}
	close(stop)
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// The cache passes the metadata contract suite: with a TTL no test
// outlives, any write through it that failed to invalidate would show.
func TestContract(t *testing.T) {
	metadatatest.Run(t, func(t *testing.T) metadata.Store {
		_, c := open(t, long)
		return c
	})
}

// Unwrap returns the inner store.
func TestUnwrap(t *testing.T) {
	t.Parallel()
	inner, c := open(t, long)
	if c.Unwrap() != metadata.Store(inner) {
		t.Error("Unwrap did not return the inner store")
	}
}

// A full table makes room: it never holds more than MaxEntries.
func TestBounded(t *testing.T) {
	t.Parallel()
	m := cache.NewMap[int, int](10)
	now := time.Now()
	for i := range 100 {
		m.Put(i, i, 0, now)
	}
	if m.Len() != 10 {
		t.Errorf("len = %d, want 10", m.Len())
	}
	if v, ok := m.Get(99, 0, now, time.Second); !ok || v != 99 {
		t.Errorf("last entry = %v %v", v, ok)
	}
	if _, ok := m.Get(99, 1, now, time.Second); ok {
		t.Error("entry of another generation used")
	}
	if _, ok := m.Get(99, 0, now.Add(time.Second), time.Second); ok {
		t.Error("entry as old as the TTL used")
	}
	m.Put(5, 5, 3, now)
	m.Put(5, 4, 2, now) // an older read does not replace a newer one
	if v, ok := m.Get(5, 3, now, time.Second); !ok || v != 5 {
		t.Errorf("newer entry replaced by an older read: %v %v", v, ok)
	}
}

// Invalidate (another replica's write) makes writes behind the cache's back
// visible at once without running OnWrite, which runs once per write made
// through the cache, after the generation has moved.
func TestInvalidateAndOnWrite(t *testing.T) {
	t.Parallel()
	inner, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	var c *cache.Store
	var writes atomic.Int64
	var genAtWrite atomic.Uint64
	c = cache.New(inner, cache.Config{TTL: long, OnWrite: func() {
		writes.Add(1)
		genAtWrite.Store(c.Generation())
	}})
	r := repo(t, c, "app")
	if writes.Load() != 1 || genAtWrite.Load() != c.Generation() || c.Generation() == 0 {
		t.Fatalf("after one write: OnWrite ran %d times at generation %d (now %d)", writes.Load(), genAtWrite.Load(), c.Generation())
	}
	m1 := push(t, c, r, "one", "v1")
	if scanOnPush(t, c, "app") || resolve(t, c, r, "v1") != m1.Digest {
		t.Fatal("first reads")
	}
	n := writes.Load()
	setScanOnPush(t, inner, "app", true)
	m2 := push(t, inner, r, "two", "v1")
	if scanOnPush(t, c, "app") {
		t.Fatal("a write behind the cache was seen before Invalidate")
	}
	g := c.Generation()
	c.Invalidate()
	if c.Generation() == g {
		t.Error("Invalidate did not move the generation")
	}
	if !scanOnPush(t, c, "app") || resolve(t, c, r, "v1") != m2.Digest {
		t.Error("after Invalidate the cache still answers the old values")
	}
	if writes.Load() != n {
		t.Errorf("OnWrite ran %d times for Invalidate and reads; want 0", writes.Load()-n)
	}
}
