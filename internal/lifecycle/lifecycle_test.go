package lifecycle

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func ago(d float64) time.Time { return now.Add(-time.Duration(d * 24 * float64(time.Hour))) }

func img(digest string, pushedDaysAgo float64, tags ...string) Image {
	return Image{Digest: digest, Tags: tags, PushedAt: ago(pushedDaysAgo)}
}

func mustParse(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// got lists "digest@priority" in Evaluate's order.
func got(p *Policy, imgs []Image) []string {
	var out []string
	for _, e := range Evaluate(p, imgs, now) {
		out = append(out, e.Image.Digest+"@"+strconv.Itoa(e.RulePriority))
	}
	return out
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		images []Image
		want   []string
	}{
		{
			// ECR docs: "Filtering on image age" — expire untagged images older than 14 days.
			name: "untagged older than 14 days",
			policy: `{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
				"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},
				"action":{"type":"expire"}}]}`,
			images: []Image{img("a", 20), img("b", 15), img("c", 13), img("d", 30, "v1")},
			want:   []string{"a@1", "b@1"},
		},
		{
			// SPEC USE-08: > 30 days: pushed 31 days ago goes, 29 days ago stays.
			name: "USE-08 any older than 30 days",
			policy: `{"rules":[{"rulePriority":1,
				"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},
				"action":{"type":"expire"}}]}`,
			images: []Image{img("old", 31, "x"), img("new", 29, "y")},
			want:   []string{"old@1"},
		},
		{
			// ECR docs: "Filtering on image count" — keep only one untagged image.
			name: "keep one untagged",
			policy: `{"rules":[{"rulePriority":1,"description":"Keep only one untagged image, expire all others",
				"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},
				"action":{"type":"expire"}}]}`,
			images: []Image{img("a", 3), img("b", 2), img("c", 1), img("t", 5, "latest")},
			want:   []string{"a@1", "b@1"},
		},
		{
			// ECR docs: keep the last N images with a tag prefix.
			name: "keep last 2 prod",
			policy: `{"rules":[{"rulePriority":1,
				"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":2},
				"action":{"type":"expire"}}]}`,
			images: []Image{img("p1", 4, "prod-1"), img("p2", 3, "prod-2"), img("p3", 2, "prod-3"), img("p4", 1, "prod-4"), img("d", 9, "dev-1"), img("u", 9)},
			want:   []string{"p1@1", "p2@1"},
		},
		{
			// ECR docs "Filtering on multiple rules", example 1.
			name: "multiple rules, disjoint kept images",
			policy: `{"rules":[
				{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["alpha"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
				{"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`,
			images: []Image{img("A", 10, "alpha-1", "beta-1"), img("B", 9, "alpha-2", "beta-2"), img("C", 8, "alpha-3"), img("D", 7, "beta-3")},
			want:   []string{"A@1", "B@1"},
		},
		{
			// ECR docs "Filtering on multiple rules", example 2: image C
			// matched rule 1's filter, so rule 2 cannot expire it.
			name: "multiple rules, higher priority protects",
			policy: `{"rules":[
				{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["alpha"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
				{"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`,
			images: []Image{img("A", 10, "alpha-1", "beta-1"), img("B", 9, "alpha-2", "beta-2"), img("C", 8, "alpha-3", "beta-3"), img("D", 7, "beta-4")},
			want:   []string{"A@1", "B@1"},
		},
		{
			// ECR docs: all prefixes of a list must match some tag.
			name: "all prefixes must match",
			policy: `{"rules":[{"rulePriority":1,
				"selection":{"tagStatus":"tagged","tagPrefixList":["alpha","beta"],"countType":"imageCountMoreThan","countNumber":1},
				"action":{"type":"expire"}}]}`,
			images: []Image{img("A", 10, "alpha-1", "beta-1"), img("B", 9, "alpha-2"), img("C", 8, "alpha-3", "beta-3")},
			want:   []string{"A@1"},
		},
		{
			name: "pattern wildcards",
			policy: `{"rules":[{"rulePriority":1,
				"selection":{"tagStatus":"tagged","tagPatternList":["prod*-v*-rc"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1},
				"action":{"type":"expire"}}]}`,
			images: []Image{img("a", 5, "prod-eu-v1-rc"), img("b", 5, "prod-eu-v1"), img("c", 5, "prodv2-rc"), img("d", 0.5, "prod-v3-rc")},
			want:   []string{"a@1"},
		},
		{
			// tagged rules never touch untagged images, any runs last and
			// does not expire what a higher rule matched.
			name: "tagged, untagged, any",
			policy: `{"rules":[
				{"rulePriority":10,"selection":{"tagStatus":"tagged","tagPrefixList":["release"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
				{"rulePriority":20,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},
				{"rulePriority":30,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`,
			images: []Image{img("r1", 20, "release-1"), img("r2", 10, "release-2"), img("u1", 9), img("u2", 2), img("f1", 30, "feature"), img("f2", 1, "feature-2")},
			// r1 by 10 (r2 kept, protected); u1 by 20 (u2 protected);
			// any keeps the newest (f2) and may expire only f1.
			want: []string{"f1@30", "r1@10", "u1@20"},
		},
		{
			name: "sinceImagePulled extension",
			policy: `{"rules":[{"rulePriority":1,
				"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},
				"action":{"type":"expire"}}]}`,
			images: []Image{
				{Digest: "pulled-recently", PushedAt: ago(100), LastPulledAt: ago(2)},
				{Digest: "pulled-long-ago", PushedAt: ago(100), LastPulledAt: ago(40)},
				{Digest: "never-pulled-old", PushedAt: ago(31)},
				{Digest: "never-pulled-new", PushedAt: ago(29)},
			},
			want: []string{"pulled-long-ago@1", "never-pulled-old@1"},
		},
		{
			name: "no images",
			policy: `{"rules":[{"rulePriority":1,
				"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.policy)
			g := got(p, tt.images)
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("expired %v, want %v", g, tt.want)
			}
		})
	}
}

func TestEvaluateOrderIndependent(t *testing.T) {
	p := mustParse(t, `{"rules":[{"rulePriority":1,
		"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}`)
	a := []Image{img("a", 1), img("b", 2), img("c", 3), img("d", 4)}
	b := []Image{a[2], a[0], a[3], a[1]}
	if x, y := got(p, a), got(p, b); !reflect.DeepEqual(x, y) || !reflect.DeepEqual(x, []string{"d@1", "c@1"}) {
		t.Fatalf("got %v and %v", x, y)
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(sel string) string {
		return `{"rules":[{"rulePriority":1,"selection":` + sel + `,"action":{"type":"expire"}}]}`
	}
	tests := []struct {
		name, policy, field string
	}{
		{"not json", `{`, ""},
		{"unknown member", `{"rules":[],"x":1}`, ""},
		{"no rules", `{}`, "rules"},
		{"empty rules", `{"rules":[]}`, "rules"},
		{"no priority", `{"rules":[{"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`, "rules[0].rulePriority"},
		{"zero priority", `{"rules":[{"rulePriority":0,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`, "rules[0].rulePriority"},
		{"bad action", `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"delete"}}]}`, "rules[0].action.type"},
		{"bad tagStatus", rule(`{"tagStatus":"some","countType":"imageCountMoreThan","countNumber":1}`), "rules[0].selection.tagStatus"},
		{"tagged without prefix", rule(`{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1}`), "rules[0].selection.tagPrefixList"},
		{"both lists", rule(`{"tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1}`), "rules[0].selection.tagPatternList"},
		{"prefix on untagged", rule(`{"tagStatus":"untagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1}`), "rules[0].selection.tagPrefixList"},
		{"too many wildcards", rule(`{"tagStatus":"tagged","tagPatternList":["*a*b*c*d*"],"countType":"imageCountMoreThan","countNumber":1}`), "rules[0].selection.tagPatternList[0]"},
		{"bad countType", rule(`{"tagStatus":"any","countType":"sinceForever","countNumber":1}`), "rules[0].selection.countType"},
		{"unit with count", rule(`{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1}`), "rules[0].selection.countUnit"},
		{"missing unit", rule(`{"tagStatus":"any","countType":"sinceImagePushed","countNumber":1}`), "rules[0].selection.countUnit"},
		{"bad unit", rule(`{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"hours","countNumber":1}`), "rules[0].selection.countUnit"},
		{"zero count", rule(`{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":0}`), "rules[0].selection.countNumber"},
		{"duplicate priority", `{"rules":[
			{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
			{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`, "rules[1].rulePriority"},
		{"two untagged", `{"rules":[
			{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
			{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}`, "rules[1].selection.tagStatus"},
		{"any not last", `{"rules":[
			{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
			{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}`, "rules.rulePriority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.policy))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Field != tt.field {
				t.Fatalf("field = %q, want %q (%v)", e.Field, tt.field, err)
			}
		})
	}
}

func TestWildcard(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"abc", "abc", true}, {"abc", "abcd", false}, {"*", "", true}, {"a*", "a", true},
		{"*c", "abc", true}, {"a*c", "ac", true}, {"a*c", "abcb", false}, {"a*b*c", "aXbYc", true},
		{"a*a", "a", false}, {"**", "x", true},
	} {
		if wildcard(c.p, c.s) != c.ok {
			t.Errorf("wildcard(%q, %q) = %v", c.p, c.s, !c.ok)
		}
	}
}

func TestKeepIndexChildren(t *testing.T) {
	exp := func(ds ...string) []Expiry {
		var out []Expiry
		for _, d := range ds {
			out = append(out, Expiry{Image: Image{Digest: d}})
		}
		return out
	}
	digests := func(es []Expiry) string {
		var out []string
		for _, e := range es {
			out = append(out, e.Image.Digest)
		}
		return strings.Join(out, ",")
	}
	children := map[string][]string{
		"idx-kept":   {"a", "b"},
		"idx-gone":   {"c", "b"},
		"idx-nested": {"idx-inner"},
		"idx-inner":  {"d"},
	}
	for _, tc := range []struct {
		in   []Expiry
		want string
	}{
		{exp("a", "c", "idx-gone"), "c,idx-gone"},                       // a stays under idx-kept
		{exp("b", "c", "idx-gone"), "c,idx-gone"},                       // b: idx-kept still holds it
		{exp("idx-inner", "d"), ""},                                     // idx-nested keeps idx-inner, which keeps d
		{exp("idx-nested", "idx-inner", "d"), "idx-nested,idx-inner,d"}, // all go together
		{exp("e"), "e"}, // no index
	} {
		if got := digests(KeepIndexChildren(tc.in, children)); got != tc.want {
			t.Errorf("KeepIndexChildren(%s) = %q, want %q", digests(tc.in), got, tc.want)
		}
	}
}
