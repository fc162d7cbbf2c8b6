package fs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/cofferhq/coffer/internal/storage"
)

const (
	// stagingDir holds in-flight Writers. Its leading backslash makes it a
	// name no valid key can produce (see doc.go).
	stagingDir = `\staging`
	dirPerm    = 0o700
	filePerm   = 0o600
	// maxNameLen is NAME_MAX on Linux and the BSDs.
	maxNameLen = 255
	// maxPublishAttempts bounds how often Commit recreates a parent that
	// vanished before its rename.
	maxPublishAttempts = 5
	// maxDurableDirs bounds the memory spent remembering synced directories;
	// forgetting only costs extra fsyncs.
	maxDurableDirs = 1 << 16
)

// Config configures a Driver.
type Config struct {
	// Root is the directory that holds every object. It is created (0700)
	// if missing.
	Root string
}

// Driver stores objects as files under one root directory. It implements
// storage.Driver and is safe for concurrent use.
type Driver struct {
	root *os.Root

	// ns orders namespace changes: Commit holds it shared while it creates
	// parent directories and renames into place; Delete holds it exclusively
	// while it removes a file and prunes the directories that became empty.
	ns sync.RWMutex

	// mu guards durable and gen. durable holds directories (as key
	// prefixes) whose own entry in their parent has been fsynced since they
	// were last created; gen counts directory removals so a Commit that
	// raced one does not mark a directory it never synced.
	mu      sync.Mutex
	durable map[string]struct{}
	gen     uint64
}

var _ storage.Driver = (*Driver)(nil)

// New opens (creating if needed) the store at cfg.Root and removes staging
// files left behind by a crash.
func New(cfg Config) (*Driver, error) {
	if cfg.Root == "" {
		return nil, errors.New("fs: config: root is empty")
	}
	_, statErr := os.Stat(cfg.Root)
	if err := os.MkdirAll(cfg.Root, dirPerm); err != nil {
		return nil, fmt.Errorf("fs: create root: %w", err)
	}
	if errors.Is(statErr, iofs.ErrNotExist) {
		// Best effort: make the new root's own entry durable.
		_ = syncPath(filepath.Dir(cfg.Root))
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("fs: open root: %w", err)
	}
	d := &Driver{root: root, durable: make(map[string]struct{})}
	if err := d.initStaging(); err != nil {
		root.Close()
		return nil, err
	}
	return d, nil
}

// initStaging creates the staging directory or empties it.
func (d *Driver) initStaging() error {
	switch err := d.root.Mkdir(stagingDir, dirPerm); {
	case err == nil:
		if err := d.syncDir("."); err != nil {
			return fmt.Errorf("fs: create staging directory: %w", err)
		}
		return nil
	case !errors.Is(err, iofs.ErrExist):
		return fmt.Errorf("fs: create staging directory: %w", err)
	}
	dir, err := d.root.Open(stagingDir)
	if err != nil {
		return fmt.Errorf("fs: open staging directory: %w", err)
	}
	fi, err := dir.Stat()
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	var entries []iofs.DirEntry
	if err == nil {
		// Read everything first: removing entries while reading a
		// directory in batches can skip some.
		entries, err = dir.ReadDir(-1)
	}
	dir.Close()
	if err != nil {
		return fmt.Errorf("fs: read staging directory: %w", err)
	}
	for _, e := range entries {
		if err := d.root.RemoveAll(stagingDir + "/" + e.Name()); err != nil {
			return fmt.Errorf("fs: remove leftover staging file: %w", err)
		}
	}
	return nil
}

// Close releases the root directory. The Driver is unusable afterwards;
// Readers already returned stay readable.
func (d *Driver) Close() error {
	return d.root.Close()
}

// checkKey applies storage.ValidKey plus this driver's segment length limit.
func checkKey(key string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("fs: key %q: %w", key, storage.ErrInvalidKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if len(seg) > maxNameLen {
			return fmt.Errorf("fs: key %q: segment longer than %d bytes: %w", key, maxNameLen, storage.ErrInvalidKey)
		}
	}
	return nil
}

// isNotFound reports errors meaning "no such object": the path or one of
// its parents is missing, or a parent is a file.
func isNotFound(err error) bool {
	return errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Writer starts a new object under key in a staging file.
func (d *Driver) Writer(ctx context.Context, key string) (storage.Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fs: writer %q: %w", key, err)
	}
	tmp := stagingDir + "/" + rand.Text()
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("fs: writer %q: create staging file: %w", key, err)
	}
	return newWriter(d, key, tmp, f), nil
}

// Reader returns exactly the bytes [offset, offset+length) of the object; a
// negative length means to the end.
func (d *Driver) Reader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fs: read %q: %w", key, err)
	}
	f, err := d.root.Open(key)
	if isNotFound(err) {
		return nil, fmt.Errorf("fs: read %q: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: read %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fs: read %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() || d.isSymlink(key) {
		f.Close()
		return nil, fmt.Errorf("fs: read %q: not a regular file: %w", key, storage.ErrNotFound)
	}
	size := fi.Size()
	switch {
	case offset < 0 || offset > size:
		f.Close()
		return nil, fmt.Errorf("fs: read %q: offset %d outside size %d: %w", key, offset, size, storage.ErrInvalidRange)
	case length < 0:
		length = size - offset
	case length > size-offset:
		f.Close()
		return nil, fmt.Errorf("fs: read %q: range %d+%d past size %d: %w", key, offset, length, size, storage.ErrInvalidRange)
	}
	return &reader{SectionReader: io.NewSectionReader(f, offset, length), f: f}, nil
}

// isSymlink reports whether the last element of key is a symbolic link.
// os.Root follows links that stay inside the root; objects are never links.
func (d *Driver) isSymlink(key string) bool {
	fi, err := d.root.Lstat(key)
	return err == nil && fi.Mode()&iofs.ModeSymlink != 0
}

// reader is a bounded view of an open object file.
type reader struct {
	*io.SectionReader
	f *os.File
}

// Close closes the underlying file.
func (r *reader) Close() error { return r.f.Close() }

// Stat describes a committed object, or reports storage.ErrNotFound.
func (d *Driver) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := checkKey(key); err != nil {
		return storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, fmt.Errorf("fs: stat %q: %w", key, err)
	}
	fi, err := d.root.Lstat(key)
	if isNotFound(err) {
		return storage.Info{}, fmt.Errorf("fs: stat %q: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Info{}, fmt.Errorf("fs: stat %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.Info{}, fmt.Errorf("fs: stat %q: not a regular file: %w", key, storage.ErrNotFound)
	}
	return storage.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object and prunes parent directories left empty.
// Deleting a missing key, or a key that is only a prefix of other keys, is
// not an error.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: delete %q: %w", key, err)
	}
	d.ns.Lock()
	defer d.ns.Unlock()
	fi, err := d.root.Lstat(key)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fs: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil
	}
	// Under the exclusive lock no Commit can turn key into a directory, so
	// Remove unlinks exactly the file just seen.
	if err := d.root.Remove(key); err != nil && !isNotFound(err) {
		return fmt.Errorf("fs: delete %q: %w", key, err)
	}
	d.prune(path.Dir(key))
	return nil
}

// prune removes dir and its ancestors while they are empty directories. The
// caller holds d.ns exclusively, so no Commit is between creating a parent
// and renaming into it, and no Commit can replace dir with a file.
func (d *Driver) prune(dir string) {
	for dir != "." {
		fi, err := d.root.Lstat(dir)
		if err != nil || !fi.IsDir() {
			return
		}
		// The removal and the bookkeeping are one step for syncParents.
		d.mu.Lock()
		err = d.root.Remove(dir) // fails with ENOTEMPTY unless empty
		if err == nil {
			d.gen++
			delete(d.durable, dir)
		}
		d.mu.Unlock()
		if err != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// Walk calls fn for every committed object whose key starts with prefix, in
// lexical key order. A prefix that no valid key can start with is
// storage.ErrInvalidKey.
func (d *Driver) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if prefix != "" && !storage.ValidKey(prefix) && !storage.ValidKey(prefix+"x") {
		return fmt.Errorf("fs: walk prefix %q: %w", prefix, storage.ErrInvalidKey)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: walk %q: %w", prefix, err)
	}
	// Start in the deepest directory the prefix names completely and filter
	// its entries by the rest: "layers/ae" lists "layers", names "ae*".
	dir, name := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, name = prefix[:i], prefix[i+1:]
	}
	return d.walkDir(ctx, dir, name, fn)
}

// walkDir visits dir ("" is the root) in key order, keeping only entries
// whose name starts with namePrefix.
func (d *Driver) walkDir(ctx context.Context, dir, namePrefix string, fn func(storage.Info) error) error {
	open := dir
	if open == "" {
		open = "."
	}
	f, err := d.root.Open(open)
	if isNotFound(err) || errors.Is(err, syscall.ENAMETOOLONG) {
		return nil // nothing under this prefix, or it vanished meanwhile
	}
	if err != nil {
		return fmt.Errorf("fs: walk %q: %w", dir, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fs: walk %q: %w", dir, err)
	}

	type item struct {
		sortKey string // name, plus "/" for a directory: key order
		entry   iofs.DirEntry
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), namePrefix) || (dir == "" && e.Name() == stagingDir) {
			continue
		}
		switch {
		case e.IsDir():
			items = append(items, item{e.Name() + "/", e})
		case e.Type().IsRegular():
			items = append(items, item{e.Name(), e})
		}
	}
	// Every key under directory "a" starts with "a/", so comparing "a/"
	// with sibling file names orders whole keys lexically ("a-c" < "a/b").
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.sortKey, b.sortKey) })

	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fs: walk %q: %w", dir, err)
		}
		key := it.entry.Name()
		if dir != "" {
			key = dir + "/" + key
		}
		if !storage.ValidKey(key) {
			continue // not something this driver wrote
		}
		if it.entry.IsDir() {
			if err := d.walkDir(ctx, key, "", fn); err != nil {
				return err
			}
			continue
		}
		fi, err := it.entry.Info()
		if isNotFound(err) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return fmt.Errorf("fs: walk %q: %w", key, err)
		}
		if err := fn(storage.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Ping creates and removes a small file in the staging directory.
func (d *Driver) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: ping: %w", err)
	}
	name := stagingDir + "/ping-" + rand.Text()
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fmt.Errorf("fs: ping: %w", err)
	}
	_, werr := f.Write([]byte("ping"))
	cerr := f.Close()
	rerr := d.root.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("fs: ping: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory inside the root.
func (d *Driver) syncDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncPath fsyncs a directory by path (used only for the root's parent).
func syncPath(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
