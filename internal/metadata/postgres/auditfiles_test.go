package postgres

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestAuditFiles: files registered through two stores (replicas) are
// listed once, in registration order, by the next digest; a failed digest
// changes nothing; concurrent digests never chain to the same head
// (issue #9, the shared audit trail).
func TestAuditFiles(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	a, b := openStore(t, fastCfg(dsn)), openStore(t, fastCfg(dsn))
	ctx := t.Context()
	if h, err := a.AuditHead(ctx); err != nil || h != (AuditHead{}) {
		t.Fatalf("head before any digest: %+v, %v", h, err)
	}
	for i, s := range []*Store{a, b, a} {
		f := AuditFile{Object: fmt.Sprintf("f%d", i), SHA256: "h", Oldest: "o", Newest: "n", Events: int64(i + 1), Replica: fmt.Sprint(i % 2)}
		if err := s.RegisterAuditFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := b.RegisterAuditFile(ctx, f); err != nil { // again: no-op
			t.Fatal(err)
		}
	}
	boom := errors.New("object store down")
	err := a.DigestAuditFiles(ctx, 10, func(AuditHead, []AuditFile) (AuditHead, error) { return AuditHead{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("failed digest: %v", err)
	}
	var seen []string
	err = b.DigestAuditFiles(ctx, 2, func(h AuditHead, fs []AuditFile) (AuditHead, error) {
		if h != (AuditHead{}) {
			t.Errorf("first digest's head = %+v", h)
		}
		for _, f := range fs {
			seen = append(seen, f.Object)
		}
		return AuditHead{Object: "d1", SHA256: "s1", Signature: "g1", End: 100}, nil
	})
	if err != nil || fmt.Sprint(seen) != "[f0 f1]" {
		t.Fatalf("first digest listed %v, %v; want [f0 f1] (limit 2)", seen, err)
	}
	if h, _ := a.AuditHead(ctx); h.Object != "d1" || h.End != 100 {
		t.Fatalf("head after the first digest: %+v", h)
	}
	if p, err := b.PendingAuditFiles(ctx); err != nil || len(p) != 1 || p[0].Object != "f2" || p[0].Events != 3 {
		t.Fatalf("pending after the first digest: %+v, %v; want f2", p, err)
	}

	// Concurrent digests: each chains to the previous one's head.
	var mu sync.Mutex
	heads := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 6 {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			err := s.DigestAuditFiles(ctx, 10, func(h AuditHead, fs []AuditFile) (AuditHead, error) {
				mu.Lock()
				defer mu.Unlock()
				if heads[h.Object] {
					t.Errorf("two digests chained to %s", h.Object)
				}
				heads[h.Object] = true
				if h.Object == "d1" && (len(fs) != 1 || fs[0].Object != "f2") {
					t.Errorf("the digest after d1 lists %v; want [f2]", fs)
				}
				return AuditHead{Object: fmt.Sprintf("c%d", i), End: int64(200 + i)}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(heads) != 6 {
		t.Fatalf("%d distinct heads chained to; want 6", len(heads))
	}
}
