package policy

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// refMatch is the obviously-correct recursive glob the two-pointer matcher
// is checked against: '*' takes any run of characters, '?' one character,
// anything else itself; fold compares ASCII letters case-insensitively. It
// is memoised on (pattern offset, input offset) so fuzzing never stalls on
// its exponential cases.
func refMatch(p, s string, fold bool) bool {
	memo := make(map[[2]int]bool)
	var rec func(i, k int) bool
	rec = func(i, k int) bool {
		key := [2]int{i, k}
		if v, ok := memo[key]; ok {
			return v
		}
		var r bool
		switch {
		case i == len(p):
			r = k == len(s)
		case p[i] == '*':
			r = rec(i+1, k) || (k < len(s) && rec(i, k+runeLen(s[k:])))
		case p[i] == '?':
			r = k < len(s) && rec(i+1, k+runeLen(s[k:]))
		default:
			r = k < len(s) && byteEq(p[i], s[k], fold) && rec(i+1, k+1)
		}
		memo[key] = r
		return r
	}
	return rec(0, 0)
}

func globOf(t testing.TB, p string) pattern {
	t.Helper()
	pat, msg := compile(p, compileOpts{wild: true})
	if msg != "" {
		t.Fatalf("compile(%q): %s", p, msg)
	}
	return pat
}

func TestGlob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, input string
		fold, want           bool
	}{
		{"star matches everything", "*", "arn:aws:ecr:us-west-2:1:repository/a", false, true},
		{"star matches empty", "*", "", false, true},
		{"empty matches empty only", "", "", false, true},
		{"empty rejects text", "", "a", false, false},
		{"literal equal", "ecr:PutImage", "ecr:PutImage", false, true},
		{"literal differs", "ecr:PutImage", "ecr:PutImages", false, false},
		{"literal prefix only", "ecr:PutImages", "ecr:PutImage", false, false},
		{"trailing star", "ecr:Put*", "ecr:PutImage", false, true},
		{"trailing star empty rest", "ecr:Put*", "ecr:Put", false, true},
		{"leading star", "*Image", "ecr:PutImage", false, true},
		{"leading star miss", "*Image", "ecr:PutImages", false, false},
		{"middle star", "ecr:*Image", "ecr:BatchGetImage", false, true},
		{"two stars", "arn:aws:ecr:*:*:repository/*", repoARN, false, true},
		{"star spans slash", "arn:aws:ecr:*:111122223333:repository/*", "arn:aws:ecr:us-west-2:111122223333:repository/team/app", false, true},
		{"star spans colon", "arn:aws:ecr:*", repoARN, false, true},
		{"question one char", "ecr:?utImage", "ecr:PutImage", false, true},
		{"question not zero chars", "ecr:?PutImage", "ecr:PutImage", false, false},
		{"question not two chars", "a?c", "abbc", false, false},
		{"question multibyte char", "r?po", "rèpo", false, true},
		{"star backtracks", "a*b*c", "aXbYbZc", false, true},
		{"star backtracks miss", "a*b*c", "aXbYbZ", false, false},
		{"repeated suffix", "*aab", "aaaab", false, true},
		{"stars and questions", "*?*?", "a", false, false},
		{"stars and questions hit", "*?*?", "ab", false, true},
		{"case-sensitive resource", "arn:aws:ecr:*:*:repository/App", repoARN, false, false},
		{"fold action", "ECR:putimage", "ecr:PutImage", true, true},
		{"fold action wildcard", "ecr:batch*", "ecr:BatchGetImage", true, true},
		{"fold still checks", "ecr:batch*", "ecr:GetImage", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := globOf(t, tc.pattern)
			if got := p.match(tc.input, tc.fold, &Request{}); got != tc.want {
				t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.input, got, tc.want)
			}
			if ref := refMatch(tc.pattern, tc.input, tc.fold); ref != tc.want {
				t.Errorf("reference disagrees with the table for (%q, %q): %v", tc.pattern, tc.input, ref)
			}
		})
	}
}

// TestGlobLinear checks that the classic exponential inputs for naive
// backtracking matchers stay fast.
func TestGlobLinear(t *testing.T) {
	t.Parallel()
	p := globOf(t, strings.Repeat("a*", 200)+"b")
	s := strings.Repeat("a", 4000)
	start := time.Now()
	if p.match(s, false, &Request{}) {
		t.Fatal("matched")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*", ""}, {"a*b", "ab"}, {"a?c", "abc"}, {"*a*a*", "aaa"}, {"ecr:*", "ECR:PutImage"},
		{"?", "é"}, {"*?", "\xff"}, {"a*?b", "a\xe2\x82b"}, {"**", "x"},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, p, s string, fold bool) {
		// Policy documents are valid UTF-8, so patterns are; the input is
		// any string a caller may pass.
		if !utf8.ValidString(p) || len(p) > 32 || len(s) > 64 {
			return
		}
		pat, msg := compile(p, compileOpts{wild: true})
		if msg != "" {
			t.Fatalf("compile(%q): %s", p, msg)
		}
		got := pat.match(s, fold, &Request{})
		if want := refMatch(p, s, fold); got != want {
			t.Fatalf("match(%q, %q, fold=%v) = %v, reference %v", p, s, fold, got, want)
		}
	})
}
