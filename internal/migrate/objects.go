package migrate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cofferhq/coffer/internal/storage"
)

// copyObjects copies every source object the target lacks (or holds with
// another size, or with Verify another SHA-256) and returns the source's
// keys and sizes.
func copyObjects(ctx context.Context, cfg Config, rep *Report) (map[string]int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	keys := make(map[string]int64)
	work := make(chan storage.Info)
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		done     int
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel(err)
	}
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for info := range work {
				copied, verified, err := copyObject(ctx, cfg, info)
				if err != nil {
					fail(err)
					continue // drain
				}
				mu.Lock()
				if copied {
					rep.Copied++
				} else {
					rep.Skipped++
				}
				if verified {
					rep.Verified++
				}
				done++
				if done%ProgressEvery == 0 {
					fmt.Fprintf(cfg.Progress, "objects: %d done\n", done)
				}
				mu.Unlock()
			}
		}()
	}
	walkErr := cfg.SourceDriver.Walk(ctx, "", func(info storage.Info) error {
		keys[info.Key] = info.Size
		rep.Objects++
		rep.Bytes += info.Size
		select {
		case work <- info:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if walkErr != nil {
		return nil, fmt.Errorf("migrate: list source objects: %w", walkErr)
	}
	return keys, nil
}

// copyObject copies one object unless the target has it already. It
// reports whether it wrote the object and whether it read it back.
func copyObject(ctx context.Context, cfg Config, info storage.Info) (copied, verified bool, err error) {
	ti, err := cfg.TargetDriver.Stat(ctx, info.Key)
	switch {
	case err == nil && ti.Size == info.Size && !cfg.Verify:
		return false, false, nil
	case err == nil && ti.Size == info.Size:
		want, err := hashObject(ctx, cfg.SourceDriver, info.Key)
		if err != nil {
			return false, false, fmt.Errorf("migrate: source: %w", err)
		}
		got, err := hashObject(ctx, cfg.TargetDriver, info.Key)
		if err != nil {
			return false, false, fmt.Errorf("migrate: target: %w", err)
		}
		if got == want {
			return false, true, nil
		}
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return false, false, fmt.Errorf("migrate: target: %w", err)
	}

	r, err := cfg.SourceDriver.Reader(ctx, info.Key, 0, -1)
	if err != nil {
		return false, false, fmt.Errorf("migrate: source: %w", err)
	}
	defer r.Close()
	w, err := cfg.TargetDriver.Writer(ctx, info.Key)
	if err != nil {
		return false, false, fmt.Errorf("migrate: target: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(w, io.TeeReader(r, h)); err != nil {
		w.Cancel(context.WithoutCancel(ctx))
		return false, false, fmt.Errorf("migrate: copy %s: %w", info.Key, err)
	}
	if w.Size() != info.Size {
		w.Cancel(context.WithoutCancel(ctx))
		return false, false, fmt.Errorf("migrate: copy %s: read %d bytes, want %d (is the source server stopped?)", info.Key, w.Size(), info.Size)
	}
	if err := w.Commit(ctx); err != nil {
		return false, false, fmt.Errorf("migrate: copy %s: %w", info.Key, err)
	}
	if !cfg.Verify {
		return true, false, nil
	}
	var want [sha256.Size]byte
	h.Sum(want[:0])
	got, err := hashObject(ctx, cfg.TargetDriver, info.Key)
	if err != nil {
		return true, false, fmt.Errorf("migrate: read back: %w", err)
	}
	if got != want {
		return true, false, fmt.Errorf("%w: object %s reads back with another SHA-256", ErrMismatch, info.Key)
	}
	return true, true, nil
}

// hashObject reads an object whole and returns its SHA-256.
func hashObject(ctx context.Context, d storage.Driver, key string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	r, err := d.Reader(ctx, key, 0, -1)
	if err != nil {
		return sum, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return sum, fmt.Errorf("read %s: %w", key, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// compareObjects checks that the target holds every source object with
// its size, and counts the target's objects the source does not have.
func compareObjects(ctx context.Context, cfg Config, keys map[string]int64, rep *Report) error {
	seen := 0
	var errs []error
	err := cfg.TargetDriver.Walk(ctx, "", func(info storage.Info) error {
		size, ok := keys[info.Key]
		switch {
		case !ok:
			rep.Extra++
		case size != info.Size:
			errs = append(errs, fmt.Errorf("object %s: %d bytes in the source, %d in the target", info.Key, size, info.Size))
			seen++
		default:
			seen++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: list target objects: %w", err)
	}
	if seen != len(keys) {
		errs = append(errs, fmt.Errorf("%d of the source's %d objects are not in the target", len(keys)-seen, len(keys)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrMismatch, errors.Join(errs...))
	}
	return nil
}
