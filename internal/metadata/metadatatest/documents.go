package metadatatest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata"
)

func documentTests() []testCase {
	return []testCase{
		{"Documents/CRUD", testDocsCRUD},
		{"Documents/RollbackOnError", testDocsRollback},
		{"Documents/CompareAndSet", testDocsCAS},
		{"Documents/ReadOnlyView", testDocsView},
	}
}

func testDocsCRUD(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	err := s.UpdateDocs(ctx, func(tx metadata.DocTx) error {
		for _, k := range []string{"bob", "alice", "al"} {
			v, err := tx.Put(metadata.Document{Kind: "user", Key: k, Data: []byte(`{"n":"` + k + `"}`)})
			if err != nil || v != 1 {
				return fmt.Errorf("put %s = %d, %v", k, v, err)
			}
		}
		_, err := tx.Put(metadata.Document{Kind: "group", Key: "alice", Data: []byte("g")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.ViewDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get("user", "alice")
		if err != nil || string(d.Data) != `{"n":"alice"}` || d.Version != 1 {
			return fmt.Errorf("get = %+v, %v", d, err)
		}
		if _, err := tx.Get("user", "carol"); !errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("get missing = %v", err)
		}
		all, err := tx.List("user", "")
		if err != nil || len(all) != 3 || all[0].Key != "al" || all[1].Key != "alice" || all[2].Key != "bob" {
			return fmt.Errorf("list = %+v, %v", all, err)
		}
		pre, err := tx.List("user", "al")
		if err != nil || len(pre) != 2 {
			return fmt.Errorf("list prefix = %+v, %v", pre, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.UpdateDocs(ctx, func(tx metadata.DocTx) error {
		if _, err := tx.Put(metadata.Document{Kind: "user", Key: "bob", Data: []byte("x")}); !errors.Is(err, metadata.ErrExists) {
			return fmt.Errorf("create existing = %v", err)
		}
		if err := tx.Delete("user", "bob"); err != nil {
			return err
		}
		if err := tx.Delete("user", "bob"); !errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("delete missing = %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testDocsRollback(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.UpdateDocs(ctx, func(tx metadata.DocTx) error {
		if _, err := tx.Put(metadata.Document{Kind: "k", Key: "a", Data: []byte("1")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateDocs = %v", err)
	}
	s.ViewDocs(ctx, func(tx metadata.DocTx) error {
		if _, err := tx.Get("k", "a"); !errors.Is(err, metadata.ErrNotFound) {
			t.Fatalf("rolled-back document visible: %v", err)
		}
		return nil
	})
}

// Concurrent compare-and-set increments lose no update.
func testDocsCAS(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	if err := s.UpdateDocs(ctx, func(tx metadata.DocTx) error {
		_, err := tx.Put(metadata.Document{Kind: "counter", Key: "c", Data: []byte("0")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	const n = 16
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var v int64
				s.ViewDocs(ctx, func(tx metadata.DocTx) error {
					d, err := tx.Get("counter", "c")
					v = d.Version
					return err
				})
				err := s.UpdateDocs(ctx, func(tx metadata.DocTx) error {
					_, err := tx.Put(metadata.Document{Kind: "counter", Key: "c", Data: []byte("x"), Version: v})
					return err
				})
				if err == nil {
					return
				}
				if !errors.Is(err, metadata.ErrConflict) {
					t.Error(err)
					return
				}
				conflicts.Add(1)
			}
		}()
	}
	wg.Wait()
	s.ViewDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get("counter", "c")
		if err != nil || d.Version != n+1 {
			t.Fatalf("version = %d, %v; want %d", d.Version, err, n+1)
		}
		return nil
	})
}

func testDocsView(t *testing.T, s metadata.Store) {
	err := s.ViewDocs(t.Context(), func(tx metadata.DocTx) error {
		_, err := tx.Put(metadata.Document{Kind: "k", Key: "a", Data: []byte("1")})
		return err
	})
	if err == nil {
		t.Fatal("ViewDocs allowed a write")
	}
}
