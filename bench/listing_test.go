package main

import (
	"slices"
	"strings"
	"testing"
)

// TestListingShape: the loader's rows are what the full walks expect:
// Tags tags, each naming one of the Tagged manifests, Untagged manifests
// with none, both lists in primary-key order without repeats.
func TestListingShape(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3, 1000, 10_001} {
		s := newListingShape(n)
		ms, tags := s.rows("repo")
		if len(ms) != s.images() || len(tags) != s.Tags || s.Tags != n {
			t.Fatalf("%d: %d manifests, %d tags; shape %+v", n, len(ms), len(tags), s)
		}
		if !slices.IsSortedFunc(ms, func(a, b listingManifest) int { return strings.Compare(a.digest, b.digest) }) ||
			!slices.IsSortedFunc(tags, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) }) {
			t.Fatalf("%d: rows not in key order", n)
		}
		tagged := map[string]int{}
		for i, tg := range tags {
			if i > 0 && tags[i-1][0] == tg[0] {
				t.Fatalf("%d: tag %s twice", n, tg[0])
			}
			tagged[tg[1]]++
		}
		for i, m := range ms {
			if i > 0 && ms[i-1].digest == m.digest {
				t.Fatalf("%d: digest %s twice", n, m.digest)
			}
		}
		if len(tagged) != s.Tagged || s.images()-len(tagged) != s.Untagged {
			t.Errorf("%d: %d tagged manifests, want %d; shape %+v", n, len(tagged), s.Tagged, s)
		}
	}
}
