package storagetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/storage"
)

// filterPrefix is the model of Walk: the sorted keys starting with prefix.
func filterPrefix(keys []string, prefix string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func testWalk(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	// '-' < '.' < '/' < '0' < 'A' < 'a' < '~': directory boundaries must not
	// disturb lexical key order ("w/a-c" < "w/a/b" even though "a" < "a-c").
	keys := []string{
		"w/a-c", "w/a/b", "w/a/c/d", "w/a/c.e", "w/a/c-", "w/a0", "w/ab",
		"w/b/x", "w/A", "w/~", "w/a/c/d0", "x", "xy/z",
	}
	r := rand.New(rand.NewPCG(1, 2))
	shuffled := slices.Clone(keys)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		put(t, d, k, []byte(k))
	}
	// Neither an in-flight nor a canceled write shows up.
	pending, err := d.Writer(ctx, "w/zz-pending")
	if err != nil {
		t.Fatal(err)
	}
	defer pending.Cancel(ctx)
	if _, err := pending.Write([]byte("pending")); err != nil {
		t.Fatal(err)
	}
	canceled, err := d.Writer(ctx, "w/zz-canceled")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := canceled.Write([]byte("canceled")); err != nil {
		t.Fatal(err)
	}
	if err := canceled.Cancel(ctx); err != nil {
		t.Fatal(err)
	}

	prefixes := []string{
		"", "w", "w/", "w/a", "w/a/", "w/a/c", "w/a/c/", "w/a/b", "w/a/b/",
		"w/b/x", "w/zz", "w/a/c/d", "x", "xy", "nomatch", "w/a/c/d/e", "w/a-",
	}
	for _, prefix := range prefixes {
		t.Run("prefix="+prefix, func(t *testing.T) {
			infos := walkInfos(t, d, prefix)
			var got []string
			for _, info := range infos {
				got = append(got, info.Key)
				if info.Size != int64(len(info.Key)) || info.ModTime.IsZero() {
					t.Errorf("Walk info %+v: want size %d and a ModTime", info, len(info.Key))
				}
			}
			if want := filterPrefix(keys, prefix); !slices.Equal(got, want) {
				t.Fatalf("Walk(%q) = %q, want %q", prefix, got, want)
			}
		})
	}

	errStop := errors.New("stop")
	calls := 0
	err = d.Walk(ctx, "w/", func(storage.Info) error {
		calls++
		if calls == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != 2 {
		t.Fatalf("Walk with failing fn = %v after %d calls, want errStop after 2", err, calls)
	}
}

// testWalkRandom checks Walk against a model on many random keys. Directory
// segments start with 'd' and object names with 'f', so no key is a
// directory of another (which some drivers cannot store).
func testWalkRandom(t *testing.T, d storage.Driver) {
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "-._~0aZ"
	seg := func(first byte) string {
		b := []byte{first}
		for range r.IntN(3) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		return string(b)
	}
	set := make(map[string]bool)
	for range 150 {
		var parts []string
		for range r.IntN(3) {
			parts = append(parts, seg('d'))
		}
		parts = append(parts, seg('f'))
		set[strings.Join(parts, "/")] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
		put(t, d, k, nil)
	}
	slices.Sort(keys)
	prefixes := []string{""}
	for _, k := range keys[:20] {
		prefixes = append(prefixes, k, k[:len(k)/2], k[:len(k)-1])
		if i := strings.LastIndexByte(k, '/'); i >= 0 {
			prefixes = append(prefixes, k[:i+1])
		}
	}
	for _, p := range prefixes {
		if got, want := walkKeys(t, d, p), filterPrefix(keys, p); !slices.Equal(got, want) {
			t.Fatalf("Walk(%q) = %q, want %q", p, got, want)
		}
	}
}

// invalidKeys fail storage.ValidKey; the ones marked prefixOK can still
// begin a valid key, so Walk accepts them as prefixes.
var invalidKeys = []struct {
	key      string
	prefixOK bool
}{
	{key: "", prefixOK: true},
	{key: "a/", prefixOK: true},
	{key: ".", prefixOK: true},  // ".x" is valid
	{key: "..", prefixOK: true}, // "..x" is valid
	{key: "a/..", prefixOK: true},
	{key: "../x"},
	{key: "a/../b"},
	{key: "/abs"},
	{key: "a//b"},
	{key: "a/./b"},
	{key: `a\b`},
	{key: "a\x00b"},
	{key: "a\nb"},
	{key: "a\x7fb"},
	{key: strings.Repeat("k", 1025)},
}

func testInvalidKeys(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	for _, tc := range invalidKeys {
		t.Run("key="+strings.ToValidUTF8(tc.key[:min(len(tc.key), 16)], "?"), func(t *testing.T) {
			check := func(method string, err error) {
				t.Helper()
				if !errors.Is(err, storage.ErrInvalidKey) {
					t.Errorf("%s(%q) = %v, want ErrInvalidKey", method, tc.key, err)
				}
			}
			w, err := d.Writer(ctx, tc.key)
			if w != nil {
				w.Cancel(ctx)
			}
			check("Writer", err)
			r, err := d.Reader(ctx, tc.key, 0, -1)
			if r != nil {
				r.Close()
			}
			check("Reader", err)
			_, err = d.Stat(ctx, tc.key)
			check("Stat", err)
			check("Delete", d.Delete(ctx, tc.key))
			if !tc.prefixOK {
				check("Walk", d.Walk(ctx, tc.key, func(storage.Info) error { return nil }))
			}
		})
	}
	if keys := walkKeys(t, d, ""); len(keys) != 0 {
		t.Fatalf("invalid keys left objects: %q", keys)
	}
}

func testContext(t *testing.T, d storage.Driver) {
	put(t, d, "ctx/a", []byte("a"))
	put(t, d, "ctx/b", []byte("b"))
	put(t, d, "ctx/c", []byte("c"))

	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithTimeout(t.Context(), -time.Second)
	defer cancel2()

	for _, tc := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"canceled", canceled, context.Canceled},
		{"expired", expired, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			check := func(method string, err error) {
				t.Helper()
				if !errors.Is(err, tc.want) {
					t.Errorf("%s = %v, want %v", method, err, tc.want)
				}
			}
			w, err := d.Writer(ctx, "ctx/new")
			if w != nil {
				w.Cancel(t.Context())
			}
			check("Writer", err)
			r, err := d.Reader(ctx, "ctx/a", 0, -1)
			if r != nil {
				r.Close()
			}
			check("Reader", err)
			_, err = d.Stat(ctx, "ctx/a")
			check("Stat", err)
			check("Delete", d.Delete(ctx, "ctx/a"))
			check("Walk", d.Walk(ctx, "", func(storage.Info) error { return nil }))
			check("Ping", d.Ping(ctx))

			// Commit with a dead context publishes nothing.
			w, err = d.Writer(t.Context(), "ctx/commit")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			check("Commit", w.Commit(ctx))
			w.Cancel(t.Context())
			mustNotExist(t, d, "ctx/commit")
			mustGet(t, d, "ctx/a", []byte("a"))
		})
	}

	// Walk notices a cancellation between two calls of fn.
	ctx, cancel3 := context.WithCancel(t.Context())
	defer cancel3()
	calls := 0
	err := d.Walk(ctx, "ctx/", func(storage.Info) error {
		calls++
		cancel3()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("Walk canceled in fn = %v after %d calls, want context.Canceled after 1", err, calls)
	}
}

func testPing(t *testing.T, d storage.Driver) {
	for range 3 {
		if err := d.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if keys := walkKeys(t, d, ""); len(keys) != 0 {
		t.Fatalf("Ping left objects: %q", keys)
	}
}
