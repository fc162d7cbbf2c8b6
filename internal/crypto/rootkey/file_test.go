package rootkey

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestWriteFileLoadFile(t *testing.T) {
	t.Parallel()
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.key")
	if err := WriteFile(path, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %#o, want 0600", fi.Mode().Perm())
	}
	got, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Matches(k.CheckValue()) {
		t.Fatal("loaded key differs")
	}
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, other); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteFile error = %v, want fs.ErrExist", err)
	}
	if again, err := LoadFile(path); err != nil || !again.Matches(k.CheckValue()) {
		t.Fatalf("existing key file was replaced (err %v)", err)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	err := WriteFile(filepath.Join(t.TempDir(), "no", "such", "root.key"), k)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	good, err := k.MarshalFile()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		wantErr error // nil means success
	}{
		{"0600", string(good), 0o600, nil},
		{"0400", string(good), 0o400, nil},
		{"0700", string(good), 0o700, nil},
		{"0640 group read", string(good), 0o640, ErrInsecureFile},
		{"0604 world read", string(good), 0o604, ErrInsecureFile},
		{"0644", string(good), 0o644, ErrInsecureFile},
		{"0620 group write", string(good), 0o620, ErrInsecureFile},
		{"0601 world exec", string(good), 0o601, ErrInsecureFile},
		{"malformed", "coffer-root-key-v1\nnot base64\n", 0o600, ErrMalformed},
		{"empty", "", 0o600, ErrMalformed},
		{"oversized", string(good) + strings.Repeat(" ", maxFileSize), 0o600, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "root.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := LoadFile(path)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !got.Matches(k.CheckValue()) {
					t.Fatal("loaded key differs")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			assertNoSecret(t, k, err.Error())
			if tt.wantErr == ErrInsecureFile && !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("error does not say how to fix it: %v", err)
			}
		})
	}
}

func TestLoadFileNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(dir); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("directory: error = %v, want ErrInsecureFile", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: error = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadFileSymlink(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target.key")
	if err := WriteFile(target, k); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "root.key")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadFile(link); err != nil || !got.Matches(k.CheckValue()) {
		t.Fatalf("through symlink: %v", err)
	}
	// The target's mode is what counts, not the link's.
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(link); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("world-readable target: error = %v, want ErrInsecureFile", err)
	}
}
