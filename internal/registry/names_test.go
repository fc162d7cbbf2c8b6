package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRepoName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"ab", true},
		{"team/app", true},
		{"a.b_c-d/e1/f", true},
		{strings.Repeat("a", 256), true},
		{"a", false},
		{strings.Repeat("a", 257), false},
		{"Team/app", false},
		{"team//app", false},
		{"/team", false},
		{"team/", false},
		{"team/../app", false},
		{"a--b", true},
		{"a__b", true},
		{"a___b", false},
		{"a._b", false},
		{"-ab", false},
		{"ab-", false},
		{"a b", false},
		{"a/b/_catalog", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseRepoName(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseRepoName(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrNameInvalid) {
				t.Fatalf("error %v is not ErrNameInvalid", err)
			}
		})
	}
}

func TestParseDigest(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"sha256:" + hex, true},
		{"sha256:" + strings.ToUpper(hex), false},
		{"sha256:" + hex[:63], false},
		{"sha512:" + hex + hex, false},
		{"sha256:", false},
		{"sha256", false},
		{"", false},
		{"sha256:" + hex + "/../x", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseDigest(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseDigest(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrDigestInvalid) {
				t.Fatalf("error %v is not ErrDigestInvalid", err)
			}
		})
	}
}

func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"team/app", "sha256:" + strings.Repeat("0", 64), "v1.0", "a//b", "sha256:../../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseRepoName(s); err == nil {
			if strings.Contains(string(n), "..") || strings.HasPrefix(string(n), "/") || strings.Contains(string(n), "//") {
				t.Fatalf("accepted unsafe name %q", n)
			}
		}
		if d, err := ParseDigest(s); err == nil {
			if len(d.Hex()) != 64 || strings.ContainsAny(d.Hex(), "/.") {
				t.Fatalf("accepted bad digest %q", d)
			}
		}
		if ValidTag(s) && (len(s) > 128 || strings.ContainsAny(s, "/:@")) {
			t.Fatalf("accepted bad tag %q", s)
		}
	})
}

func TestWildcardMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "latest", true},
		{"release-*", "release-1.2", true},
		{"release-*", "prerelease-1", false},
		{"*-rc*", "1.0-rc2", true},
		{"v*.*", "v1", false},
		{"latest", "latest", true},
		{"latest", "latest2", false},
		{"a*a*a*a*b", strings.Repeat("a", 5000), false}, // linear-time
	} {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
}
