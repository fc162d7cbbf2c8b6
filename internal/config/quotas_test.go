package config

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata"
)

func TestQuotas(t *testing.T) {
	t.Parallel()
	file := `version: 1
quota_max_images: 1000
quota_max_bytes: 50GiB
quotas:
  - repositories: "team/*"
    max_images: 100
    max_bytes: 10GiB
  - {repositories: "infra/*-cache", max_bytes: 0}
`
	c, err := load(t, file, nil, "--config", "$FILE")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := c.QuotaRules()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]metadata.Quota{
		"team/app":          {MaxImages: 100, MaxBytes: 10 << 30},
		"infra/build-cache": {MaxImages: 1000},
		"other":             {MaxImages: 1000, MaxBytes: 50 << 30},
	} {
		if got := rules.For(name); got != want {
			t.Errorf("For(%q) = %+v, want %+v", name, got, want)
		}
	}

	// Flags and the environment set the default; nothing set, no limit.
	c, err = load(t, "", map[string]string{"COFFER_QUOTA_MAX_BYTES": "500MB"}, "--quota-max-images", "7")
	if err != nil {
		t.Fatal(err)
	}
	if rules, _ := c.QuotaRules(); rules.For("x") != (metadata.Quota{MaxImages: 7, MaxBytes: 500e6}) {
		t.Errorf("flag and env default = %+v", rules.For("x"))
	}
	c, err = load(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rules, _ := c.QuotaRules(); !rules.For("x").IsZero() {
		t.Errorf("default quota = %+v", rules.For("x"))
	}
}

func TestQuotaErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file string
		args       []string
		want       []string
	}{
		{"bad default size", "", []string{"--quota-max-bytes", "lots"}, []string{`quota_max_bytes (flag --quota-max-bytes): "lots" is not a size`}},
		{"negative images", "", []string{"--quota-max-images", "-1"}, []string{"quota_max_images (flag --quota-max-images): -1 must not be negative"}},
		{"not a list", "version: 1\nquotas: {repositories: x}\n", nil, []string{"quotas (file", "line 2): want a list"}},
		{"unknown key and bad entry", "version: 1\nquotas:\n  - repositories: x\n    max_image: 3\n  - y\n", nil,
			[]string{`line 4: quotas[0]: unknown key "max_image"`, "line 5: quotas[1] is not a mapping"}},
		{"bad size in a rule", "version: 1\nquotas:\n  - {repositories: x, max_bytes: 1.5GiB}\n", nil, []string{"line 3: quotas[0]:", `"1.5GiB" is not a size`}},
		{"bad rules", "version: 1\nquotas:\n  - {repositories: \"A*\", max_images: 1}\n  - {repositories: b}\n", nil,
			[]string{`quotas[0]: repositories "A*" is not a repository name pattern`, "quotas[1]: set max_images, max_bytes or both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", "$FILE"}, args...)
			}
			_, err := load(t, tc.file, nil, args...)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
