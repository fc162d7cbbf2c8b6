// Package quota resolves Coffer's per-repository limits (an extension:
// ECR has none) from configuration: a default for every repository and
// overrides for repository names matching a wildcard pattern. It parses
// and matches only; the limits are enforced by the metadata store inside
// the transaction that adds an image or a blob link (metadata.Quota), and
// docs/quotas.md describes what counts.
//
// What it trusts: the configuration is the operator's. Patterns are
// compiled to anchored regular expressions (RE2: linear time), so a
// pattern cannot make matching slow.
package quota

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Size is a number of bytes, written in configuration as a whole number
// with an optional unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB,
// GiB, TiB (powers of 1024), e.g. "10GiB", "500MB", "1048576".
type Size int64

var units = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first, so "GiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize reads a Size; the empty string is 0 (no limit).
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 10GiB, 500MB or 1048576", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(n * mult), nil
}

// String writes the size in the largest binary unit that divides it.
func (s Size) String() string {
	for i := 3; i >= 0; i-- {
		if m := units[i].mult; s != 0 && int64(s)%m == 0 {
			return strconv.FormatInt(int64(s)/m, 10) + units[i].suffix
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// UnmarshalText implements encoding.TextUnmarshaler (YAML scalars).
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Rule overrides the default limits for the repositories whose names match
// Repositories, a pattern in which '*' matches any run of characters ('/'
// included) and everything else is literal: "team/*", "*-cache", "prod".
// A limit left out (nil) is the default's; 0 is no limit.
type Rule struct {
	Repositories string `yaml:"repositories"`
	MaxImages    *int64 `yaml:"max_images"`
	MaxBytes     *Size  `yaml:"max_bytes"`
}

// Rules are the configured quotas. The first rule whose pattern matches a
// repository's name applies, on top of Default.
type Rules struct {
	Default metadata.Quota
	Rules   []Rule

	compiled []*regexp.Regexp
}

// maxPattern bounds a pattern's length (a repository name has at most 256
// characters).
const maxPattern = 256

// patternRE is what a pattern may contain: repository name characters and
// '*'.
var patternRE = regexp.MustCompile(`^[a-z0-9._/*-]+$`)

// New validates the rules and returns them ready for For. Every problem is
// reported, each naming the rule by its index.
func New(def metadata.Quota, rules []Rule) (*Rules, error) {
	var errs []error
	if def.MaxImages < 0 || def.MaxBytes < 0 {
		errs = append(errs, errors.New("the default limits must not be negative"))
	}
	r := &Rules{Default: def, Rules: rules, compiled: make([]*regexp.Regexp, len(rules))}
	for i, rule := range rules {
		switch {
		case rule.Repositories == "":
			errs = append(errs, fmt.Errorf("quotas[%d]: repositories is required", i))
		case len(rule.Repositories) > maxPattern || !patternRE.MatchString(rule.Repositories):
			errs = append(errs, fmt.Errorf("quotas[%d]: repositories %q is not a repository name pattern (lower-case letters, digits, . _ - / and *)", i, rule.Repositories))
		default:
			parts := strings.Split(rule.Repositories, "*")
			for j, p := range parts {
				parts[j] = regexp.QuoteMeta(p)
			}
			r.compiled[i] = regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`)
		}
		if rule.MaxImages != nil && *rule.MaxImages < 0 {
			errs = append(errs, fmt.Errorf("quotas[%d]: max_images must not be negative (0 is no limit)", i))
		}
		if rule.MaxBytes != nil && *rule.MaxBytes < 0 {
			errs = append(errs, fmt.Errorf("quotas[%d]: max_bytes must not be negative (0 is no limit)", i))
		}
		if rule.MaxImages == nil && rule.MaxBytes == nil {
			errs = append(errs, fmt.Errorf("quotas[%d]: set max_images, max_bytes or both (0 for no limit)", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// For returns the limits of the named repository: the first matching
// rule's, the default's where the rule leaves a limit out.
func (r *Rules) For(repository string) metadata.Quota {
	q := r.Default
	for i, re := range r.compiled {
		if !re.MatchString(repository) {
			continue
		}
		if m := r.Rules[i].MaxImages; m != nil {
			q.MaxImages = *m
		}
		if m := r.Rules[i].MaxBytes; m != nil {
			q.MaxBytes = int64(*m)
		}
		break
	}
	return q
}
