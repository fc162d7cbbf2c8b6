package storage

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"layers/aes256/0f2c6d3e-8c1b-4d7a-9a51-3b1f0d6e2c44", true},
		{"manifests/repo/sha256:" + strings.Repeat("ab", 32), true},
		{".a", true},
		{"..a", true},
		{"a..", true},
		{"...", true},
		{".tmp/x", true},
		{"sp ace/ü~!@#$%^&*()", true},
		{strings.Repeat("k", 255), true},
		{strings.Repeat("k", 256), false}, // a filesystem cannot store the segment
		{strings.Repeat(strings.Repeat("k", 255)+"/", 3) + strings.Repeat("k", 255), true}, // 1023 bytes

		{"", false},
		{strings.Repeat(strings.Repeat("k", 255)+"/", 4) + "k", false}, // 1025 bytes
		{"bad-\xff-utf8", false}, // S3 rejects invalid UTF-8
		{"/abs", false},
		{"a/", false},
		{"/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/..", false},
		{"a/../b", false},
		{"a/./b", false},
		{"./a", false},
		{`a\b`, false},
		{`\staging`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\tb", false},
		{"a\x1fb", false},
		{"a\x7fb", false},
	}
	for _, tc := range tests {
		t.Run(strings.ToValidUTF8(tc.key[:min(len(tc.key), 24)], "?"), func(t *testing.T) {
			if got := ValidKey(tc.key); got != tc.want {
				t.Errorf("ValidKey(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
}

// FuzzValidKey checks accepted keys against an independent oracle: each is
// already a clean, local, slash-separated path (path.Clean, filepath.IsLocal)
// free of backslashes and control bytes.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", `a\b`, ".", "a/", "\x00", "a/./b", "..a/b.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !ValidKey(key) {
			return
		}
		if path.Clean(key) != key || !filepath.IsLocal(key) || key == "." {
			t.Fatalf("accepted %q, which is not a clean local path", key)
		}
		if len(key) > 1024 || strings.ContainsFunc(key, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted %q", key)
		}
	})
}
