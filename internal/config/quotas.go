package config

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/quota"
)

// Quotas in the file (docs/quotas.md):
//
//	quota_max_images: 1000        # default for every repository (also a flag)
//	quota_max_bytes: 50GiB        # default (also a flag)
//	quotas:                       # overrides; the first matching pattern wins
//	  - repositories: "team/*"
//	    max_images: 100           # left out: the default; 0: no limit
//	    max_bytes: 10GiB
//	  - repositories: "infra/*-cache"
//	    max_bytes: 0

// quotaKeys are the keys of one quotas entry.
var quotaKeys = map[string]bool{"repositories": true, "max_images": true, "max_bytes": true}

// decodeQuotas decodes the quotas list strictly: each entry a mapping of
// quotaKeys only, every problem reported with its line.
func decodeQuotas(n *yaml.Node) ([]quota.Rule, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errors.New("want a list of {repositories, max_images, max_bytes} entries")
	}
	var errs []error
	rules := make([]quota.Rule, 0, len(n.Content))
	for i, e := range n.Content {
		if e.Kind != yaml.MappingNode {
			errs = append(errs, fmt.Errorf("line %d: quotas[%d] is not a mapping", e.Line, i))
			continue
		}
		ok := true
		for k := 0; k+1 < len(e.Content); k += 2 {
			if key := e.Content[k]; !quotaKeys[key.Value] {
				errs = append(errs, fmt.Errorf("line %d: quotas[%d]: unknown key %q", key.Line, i, key.Value))
				ok = false
			}
		}
		var r quota.Rule
		if err := e.Decode(&r); err != nil {
			errs = append(errs, fmt.Errorf("line %d: quotas[%d]: %v", e.Line, i, err))
			ok = false
		}
		if ok {
			rules = append(rules, r)
		}
	}
	return rules, errors.Join(errs...)
}

// QuotaRules returns the configured quotas: the default limits and the
// per-repository rules. Validate reports the same errors.
func (c Config) QuotaRules() (*quota.Rules, error) {
	size, err := quota.ParseSize(c.QuotaMaxBytes)
	if err != nil {
		return nil, err
	}
	return quota.New(metadata.Quota{MaxImages: int64(c.QuotaMaxImages), MaxBytes: int64(size)}, c.Quotas)
}

func (c Config) quotaProblems() []error {
	var errs []error
	if c.QuotaMaxImages < 0 {
		errs = append(errs, c.problem(sQuotaMaxImages, "%d must not be negative (0 is no limit)", c.QuotaMaxImages))
	}
	size, err := quota.ParseSize(c.QuotaMaxBytes)
	if err != nil {
		errs = append(errs, c.problem(sQuotaMaxBytes, "%v", err))
	}
	if _, err := quota.New(metadata.Quota{MaxBytes: int64(size)}, c.Quotas); err != nil {
		errs = append(errs, &SettingError{Setting: "quotas", Source: fileSource(c.File, 0), Err: err})
	}
	return errs
}
