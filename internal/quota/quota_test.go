package quota

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cofferhq/coffer/internal/metadata"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"10GiB", 10 << 30, false},
		{"10 GiB", 10 << 30, false},
		{"500MB", 500e6, false},
		{"3KiB", 3072, false},
		{"2TB", 2e12, false},
		{"7B", 7, false},
		{"1.5GiB", 0, true},
		{"-1", 0, true},
		{"10GB ", 10e9, false},
		{"10gib", 0, true},
		{"GiB", 0, true},
		{"9223372036854775807TiB", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v", tc.in, got, err)
			}
		})
	}
	for s, want := range map[Size]string{0: "0B", 7: "7B", 3072: "3KiB", 10 << 30: "10GiB", 1536 << 20: "1536MiB", 1e9: "1000000000B"} {
		if got := s.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestRulesFor(t *testing.T) {
	t.Parallel()
	def := metadata.Quota{MaxImages: 100, MaxBytes: 1 << 30}
	r, err := New(def, []Rule{
		{Repositories: "team/*", MaxBytes: ptr(Size(10 << 30))},
		{Repositories: "infra/*-cache", MaxImages: ptr(int64(0)), MaxBytes: ptr(Size(0))},
		{Repositories: "team/big", MaxImages: ptr(int64(5))}, // shadowed by team/*
		{Repositories: "solo", MaxImages: ptr(int64(1))},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]metadata.Quota{
		"team/app":           {MaxImages: 100, MaxBytes: 10 << 30},
		"team/a/b":           {MaxImages: 100, MaxBytes: 10 << 30},
		"team/big":           {MaxImages: 100, MaxBytes: 10 << 30},
		"infra/build-cache":  {},
		"infra/build-cache2": def,
		"solo":               {MaxImages: 1, MaxBytes: 1 << 30},
		"solo2":              def,
		"teams/app":          def,
	} {
		if got := r.For(name); got != want {
			t.Errorf("For(%q) = %+v, want %+v", name, got, want)
		}
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := New(metadata.Quota{MaxImages: -1}, []Rule{
		{MaxImages: ptr(int64(1))},
		{Repositories: "Team/(x)", MaxImages: ptr(int64(1))},
		{Repositories: "a", MaxImages: ptr(int64(-2))},
		{Repositories: "b"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"default limits", "quotas[0]: repositories is required", "quotas[1]: repositories \"Team/(x)\"",
		"quotas[2]: max_images must not be negative", "quotas[3]: set max_images"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRuleYAML(t *testing.T) {
	t.Parallel()
	var rules []Rule
	doc := "- {repositories: \"team/*\", max_images: 10, max_bytes: 10GiB}\n- {repositories: x, max_bytes: 1048576}\n"
	if err := yaml.Unmarshal([]byte(doc), &rules); err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || *rules[0].MaxImages != 10 || *rules[0].MaxBytes != 10<<30 || rules[1].MaxImages != nil || *rules[1].MaxBytes != 1<<20 {
		t.Fatalf("decoded %+v", rules)
	}
	if err := yaml.Unmarshal([]byte("- {repositories: x, max_bytes: lots}"), &rules); err == nil {
		t.Fatal("a bad size decoded")
	}
}
