package rootkey

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// maxFileSize bounds what LoadFile reads; a key file is 64 bytes.
const maxFileSize = 4096

// ErrInsecureFile reports a key file that is not a regular file or that its
// group or other users may access.
var ErrInsecureFile = errors.New("rootkey: insecure key file")

// LoadFile reads a key file written by WriteFile (or by hand, in the Parse
// form). It refuses a file whose mode grants any permission to group or
// others (mode & 0o077 != 0), checking the opened file itself so a swap
// between check and read is impossible; symlinks are followed and the target
// is checked. The permission check is skipped on Windows, which has no such
// mode bits.
func LoadFile(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rootkey: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("rootkey: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecureFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %#o, readable or writable by group or others; run chmod 600 %s",
			ErrInsecureFile, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("rootkey: read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformed, path, maxFileSize)
	}
	k, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// WriteFile stores key at path in the file form, mode 0600. It never replaces
// an existing file (O_EXCL; the error then matches fs.ErrExist), and fsyncs
// the file and then its directory so the key survives a crash once WriteFile
// returns. If writing the file fails, the partial file is removed; if only
// the directory sync fails, the complete file stays and the error is
// returned. A crash part-way can leave a short file, which LoadFile rejects
// rather than silently using another key.
func WriteFile(path string, key *Key) error {
	data, err := key.MarshalFile()
	if err != nil {
		return err
	}
	defer clear(data)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("rootkey: %w", err)
	}
	if err := writeSync(f, data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("rootkey: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("rootkey: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func writeSync(f *os.File, data []byte) error {
	// The umask can only clear bits, but a default ACL on the directory
	// can add group access; set the mode explicitly.
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("rootkey: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("rootkey: sync directory: %w", err)
	}
	return nil
}
