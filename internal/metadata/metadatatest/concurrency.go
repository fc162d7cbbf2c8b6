package metadatatest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata"
)

func concurrencyTests() []testCase {
	return []testCase{
		{"Concurrent/TagMoves", testConcurrentTagMoves},
		{"Concurrent/ImmutableFreshTag", testConcurrentImmutable},
		{"Concurrent/CommitUploadSameDigest", testConcurrentCommitUpload},
		{"Concurrent/UpdateUploadCAS", testConcurrentUpdateUpload},
	}
}

// testConcurrentTagMoves has 32 writers move one tag 128 times while
// readers resolve it. Every put must succeed, and the PreviousTag values
// must form one chain through all 128 digests: that is what serializable
// tag moves look like from outside.
func testConcurrentTagMoves(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	layer := addBlob(t, s, r, "layer")
	const writers, perWriter = 32, 4
	type put struct{ digest, prev string }
	results := make([][]put, writers)
	digests := map[string]bool{}
	for w := range writers {
		for i := range perWriter {
			digests[digestOf(fmt.Sprintf("m-%d-%d", w, i))] = true
		}
	}

	var done atomic.Bool
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for !done.Load() {
				m, err := s.ResolveTag(ctx, r.ID, "latest")
				if errors.Is(err, metadata.ErrNotFound) {
					continue // before the first put
				}
				if err != nil {
					t.Errorf("resolve during moves: %v", err)
					return
				}
				if !digests[m.Digest] || m.ObjectKey == "" {
					t.Errorf("resolved to unknown manifest %+v", m)
					return
				}
			}
		})
	}
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for i := range perWriter {
				m := newManifest(r, fmt.Sprintf("m-%d-%d", w, i))
				res, err := s.PutManifest(ctx, metadata.PutManifest{
					Manifest:  m,
					Refs:      []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}},
					Tag:       "latest",
					Immutable: func(string) bool { return false },
				})
				if err != nil {
					t.Errorf("writer %d put %d: %v", w, i, err)
					return
				}
				if !res.Created {
					t.Errorf("writer %d put %d: not created", w, i)
				}
				results[w] = append(results[w], put{m.Digest, res.PreviousTag})
			}
		})
	}
	writersWG.Wait()
	done.Store(true)
	readers.Wait()
	if t.Failed() {
		return
	}

	prevs := map[string]int{}
	starts := 0
	for _, rs := range results {
		for _, p := range rs {
			if p.prev == "" {
				starts++
				continue
			}
			if !digests[p.prev] {
				t.Errorf("PreviousTag %s is no pushed digest", p.prev)
			}
			prevs[p.prev]++
		}
	}
	if starts != 1 {
		t.Errorf("%d puts saw a new tag, want exactly 1", starts)
	}
	var last []string
	for d := range digests {
		switch prevs[d] {
		case 0:
			last = append(last, d)
		case 1:
		default:
			t.Errorf("digest %s was replaced %d times: tag moves interleaved", d, prevs[d])
		}
	}
	if len(last) != 1 {
		t.Fatalf("%d digests were never replaced, want exactly the final one", len(last))
	}
	got, err := s.ResolveTag(ctx, r.ID, "latest")
	must(t, "resolve final", err)
	if got.Digest != last[0] {
		t.Errorf("tag points at %s, but the chain of PreviousTag ends at %s", got.Digest, last[0])
	}
	for d := range digests {
		if _, err := s.GetManifest(ctx, r.ID, d); err != nil {
			t.Errorf("manifest %s: %v", d, err)
		}
	}
}

// testConcurrentImmutable races 32 pushes to a fresh immutable tag: 16 of
// one digest A and 16 of distinct digests. Exactly one digest wins the tag;
// every push of it succeeds, every other push fails with ErrTagImmutable and
// leaves nothing behind.
func testConcurrentImmutable(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	layer := addBlob(t, s, r, "layer")
	const n = 32
	type outcome struct {
		digest string
		res    metadata.PutManifestResult
		err    error
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		content := "A"
		if i%2 == 1 {
			content = fmt.Sprintf("B%d", i)
		}
		wg.Go(func() {
			m := newManifest(r, content)
			res, err := s.PutManifest(ctx, metadata.PutManifest{
				Manifest:  m,
				Refs:      []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}},
				Tag:       "v1",
				Immutable: func(string) bool { return true },
			})
			out[i] = outcome{m.Digest, res, err}
		})
	}
	wg.Wait()

	got, err := s.ResolveTag(ctx, r.ID, "v1")
	must(t, "resolve", err)
	winner := got.Digest
	wins, created, attempts := 0, 0, 0
	for _, o := range out {
		if o.digest == winner {
			attempts++
		}
		switch {
		case o.err == nil:
			wins++
			if o.digest != winner {
				t.Errorf("push of %s succeeded but the tag is on %s", o.digest, winner)
			}
			if o.res.PreviousTag != "" {
				t.Errorf("push of %s moved an immutable tag from %s", o.digest, o.res.PreviousTag)
			}
			if o.res.Created {
				created++
			}
		case errors.Is(o.err, metadata.ErrTagImmutable):
			if o.digest == winner {
				t.Errorf("push of the winning digest failed: %v", o.err)
			}
		default:
			t.Errorf("push of %s: unexpected error %v", o.digest, o.err)
		}
	}
	if wins != attempts || created != 1 {
		t.Errorf("%d pushes succeeded (%d created), want all %d pushes of the winner, one created", wins, created, attempts)
	}
	for _, o := range out {
		_, err := s.GetManifest(ctx, r.ID, o.digest)
		if o.digest == winner && err != nil {
			t.Errorf("winning manifest: %v", err)
		}
		if o.digest != winner && !errors.Is(err, metadata.ErrNotFound) {
			t.Errorf("losing manifest %s was written (err %v)", o.digest, err)
		}
	}
}

// testConcurrentCommitUpload commits 40 uploads of the same content at once:
// 32 spread over 4 repositories of the shared domain and 8 in one KMS
// repository. Each domain stores exactly one blob; every repository ends up
// linked to it and every session is gone.
func testConcurrentCommitUpload(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	var repos []metadata.Repository
	for i := range 4 {
		repos = append(repos, aesRepo(t, s, fmt.Sprintf("aes%d", i)))
	}
	k := kmsRepo(t, s, "kms")
	type job struct {
		repo   metadata.Repository
		upload metadata.Upload
		blob   metadata.Blob
	}
	var jobs []job
	for i := range 32 {
		r := repos[i%4]
		jobs = append(jobs, job{repo: r, upload: uploadWithParts(t, s, r, 1)})
	}
	for range 8 {
		jobs = append(jobs, job{repo: k, upload: uploadWithParts(t, s, k, 1)})
	}
	for i := range jobs {
		jobs[i].blob = newBlob(jobs[i].repo, "same content")
		jobs[i].blob.ObjectKey = jobs[i].upload.Parts[0].ObjectKey
	}
	stored := make([]metadata.Blob, len(jobs))
	inserted := make([]bool, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			var err error
			stored[i], inserted[i], err = s.CommitUpload(ctx, j.upload.ID, j.blob)
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, domain := range []string{"aes256", k.Domain} {
		var winner metadata.Blob
		n, keys := 0, map[string]bool{}
		for i, j := range jobs {
			if j.repo.Domain != domain {
				continue
			}
			keys[j.blob.ObjectKey] = true
			if inserted[i] {
				n++
				winner = stored[i]
			}
		}
		if n != 1 {
			t.Fatalf("domain %s: %d commits inserted, want exactly 1", domain, n)
		}
		if !keys[winner.ObjectKey] {
			t.Errorf("domain %s: stored object %s is no committed part", domain, winner.ObjectKey)
		}
		for i, j := range jobs {
			if j.repo.Domain == domain && stored[i].ObjectKey != winner.ObjectKey {
				t.Errorf("domain %s: commit %d got object %s, winner %s", domain, i, stored[i].ObjectKey, winner.ObjectKey)
			}
		}
		got, err := s.GetBlob(ctx, domain, digestOf("same content"))
		must(t, "get blob", err)
		checkBlob(t, got, winner)
	}
	for _, r := range append(repos, k) {
		if _, err := s.BlobLinked(ctx, r.ID, digestOf("same content")); err != nil {
			t.Errorf("repository %s not linked: %v", r.Name, err)
		}
	}
	for _, j := range jobs {
		if _, err := s.GetUpload(ctx, j.upload.ID); !errors.Is(err, metadata.ErrNotFound) {
			t.Errorf("upload %s survived its commit (err %v)", j.upload.ID, err)
		}
	}
}

// testConcurrentUpdateUpload has 16 clients race to append 1-byte chunks to
// one session with compare-and-set until it holds 200 bytes. Exactly one
// update may win per expected size, and the parts list must be exactly the
// winners' parts in order: no lost or duplicated chunk.
func testConcurrentUpdateUpload(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	u := uploadWithParts(t, s, r, 0)
	const total, clients = 200, 16
	var mu sync.Mutex
	winners := map[int64]string{} // expected size -> part key of the winner
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for attempt := 0; ; attempt++ {
				cur, err := s.GetUpload(ctx, u.ID)
				if err != nil {
					t.Errorf("client %d: get: %v", c, err)
					return
				}
				if cur.Size >= total {
					return
				}
				key := fmt.Sprintf("layers/aes256/c%d-a%d", c, attempt)
				next := cur
				next.Size = cur.Size + 1
				next.Parts = append(slices.Clone(cur.Parts), metadata.Part{ObjectKey: key, Size: 1})
				next.HashState = []byte(key)
				err = s.UpdateUpload(ctx, next, cur.Size)
				switch {
				case err == nil:
					mu.Lock()
					if prev, dup := winners[cur.Size]; dup {
						t.Errorf("two winners at size %d: %s and %s", cur.Size, prev, key)
					}
					winners[cur.Size] = key
					mu.Unlock()
				case errors.Is(err, metadata.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("client %d: update: %v", c, err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := s.GetUpload(ctx, u.ID)
	must(t, "get final", err)
	if got.Size != total || len(got.Parts) != total || len(winners) != total {
		t.Fatalf("final size %d with %d parts and %d winners, want %d each", got.Size, len(got.Parts), len(winners), total)
	}
	for i, p := range got.Parts {
		if p.ObjectKey != winners[int64(i)] {
			t.Fatalf("part %d is %s, but the update from size %d was won by %s", i, p.ObjectKey, i, winners[int64(i)])
		}
	}
	if string(got.HashState) != winners[total-1] {
		t.Errorf("hash state %q is not the last winner's %q", got.HashState, winners[total-1])
	}
	t.Logf("%d conflicts over %d updates", conflicts.Load(), total)
}
