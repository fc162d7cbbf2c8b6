// Package lifecycle parses ECR lifecycle policies and evaluates them over a
// repository's images. It does no I/O: the caller lists the images, passes
// the clock's now, and deletes what Evaluate returns.
//
// Grammar (ECR's, plus one Coffer extension):
//
//	{"rules": [{
//	    "rulePriority": 1,                         // unique, >= 1
//	    "description": "...",                      // optional
//	    "selection": {
//	        "tagStatus": "tagged"|"untagged"|"any",
//	        "tagPrefixList": ["prod"],             // tagged only; or:
//	        "tagPatternList": ["prod*-v?"],        // tagged only; '*' wildcards (at most 4)
//	        "countType": "imageCountMoreThan"|"sinceImagePushed"|"sinceImagePulled",
//	        "countUnit": "days",                   // the two since* types only
//	        "countNumber": 14                      // >= 1
//	    },
//	    "action": {"type": "expire"}
//	}]}
//
// sinceImagePulled is Coffer's extension: days since the image was last
// pulled (an image never pulled counts from its push).
//
// Evaluation follows ECR's documented rules: rules run in rulePriority
// order; each rule selects from every image its tag filter matches (images
// a higher-priority rule expired are still counted, "identified as if not
// expired"); an image is expired by at most one rule; an image that matched
// the tag filter of a higher-priority rule is never expired by a
// lower-priority one; tagged rules never select untagged images and
// untagged rules never select tagged ones; a rule with tagStatus any must
// have the largest rulePriority; images expire oldest first.
package lifecycle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Tag statuses and count types as the policy spells them.
const (
	TagStatusTagged   = "tagged"
	TagStatusUntagged = "untagged"
	TagStatusAny      = "any"

	CountImagesMoreThan = "imageCountMoreThan"
	CountSincePushed    = "sinceImagePushed"
	CountSincePulled    = "sinceImagePulled" // Coffer extension
	CountUnitDays       = "days"

	ActionExpire = "expire"

	maxWildcards = 4
	maxRules     = 50 // ECR's documented maximum per policy
)

// Policy is a parsed lifecycle policy, rules sorted by priority.
type Policy struct {
	Rules []Rule `json:"rules"`
}

// Rule is one lifecycle rule.
type Rule struct {
	RulePriority int       `json:"rulePriority"`
	Description  string    `json:"description,omitempty"`
	Selection    Selection `json:"selection"`
	Action       Action    `json:"action"`
}

// Selection chooses the images a rule expires.
type Selection struct {
	TagStatus      string   `json:"tagStatus"`
	TagPrefixList  []string `json:"tagPrefixList,omitempty"`
	TagPatternList []string `json:"tagPatternList,omitempty"`
	CountType      string   `json:"countType"`
	CountUnit      string   `json:"countUnit,omitempty"`
	CountNumber    int64    `json:"countNumber"`
}

// Action is what happens to a selected image (only expire).
type Action struct {
	Type string `json:"type"`
}

// Error is a validation failure; Field names the offending member as a
// JSON path (e.g. "rules[0].selection.countUnit").
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func errf(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// wire shapes with pointers, so missing members are told from zero values.
type wirePolicy struct {
	Rules *[]wireRule `json:"rules"`
}

type wireRule struct {
	RulePriority *int           `json:"rulePriority"`
	Description  *string        `json:"description"`
	Selection    *wireSelection `json:"selection"`
	Action       *wireAction    `json:"action"`
}

type wireSelection struct {
	TagStatus      *string  `json:"tagStatus"`
	TagPrefixList  []string `json:"tagPrefixList"`
	TagPatternList []string `json:"tagPatternList"`
	CountType      *string  `json:"countType"`
	CountUnit      *string  `json:"countUnit"`
	CountNumber    *int64   `json:"countNumber"`
}

type wireAction struct {
	Type *string `json:"type"`
}

// Parse validates a policy text strictly (unknown members are errors) and
// returns it with rules in priority order.
func Parse(text []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	var w wirePolicy
	if err := dec.Decode(&w); err != nil {
		return nil, errf("", "policy is not valid JSON or has an unknown member: %v", err)
	}
	if dec.More() {
		return nil, errf("", "policy has trailing data after the JSON object")
	}
	if w.Rules == nil {
		return nil, errf("rules", "is required")
	}
	if len(*w.Rules) == 0 {
		return nil, errf("rules", "must contain at least one rule")
	}
	if len(*w.Rules) > maxRules {
		return nil, errf("rules", "at most %d rules are allowed", maxRules)
	}
	p := &Policy{}
	prios := map[int]bool{}
	untagged := 0
	for i, wr := range *w.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		r, err := parseRule(at, wr)
		if err != nil {
			return nil, err
		}
		if prios[r.RulePriority] {
			return nil, errf(at+".rulePriority", "%d is used by another rule; priorities must be unique", r.RulePriority)
		}
		prios[r.RulePriority] = true
		if r.Selection.TagStatus == TagStatusUntagged {
			untagged++
			if untagged > 1 {
				return nil, errf(at+".selection.tagStatus", "only one rule may select untagged images")
			}
		}
		p.Rules = append(p.Rules, r)
	}
	sort.SliceStable(p.Rules, func(i, j int) bool { return p.Rules[i].RulePriority < p.Rules[j].RulePriority })
	for i, r := range p.Rules {
		if r.Selection.TagStatus == TagStatusAny && i != len(p.Rules)-1 {
			return nil, errf("rules.rulePriority", "the rule with tagStatus any (priority %d) must have the highest rulePriority", r.RulePriority)
		}
	}
	return p, nil
}

func parseRule(at string, w wireRule) (Rule, error) {
	var r Rule
	if w.RulePriority == nil {
		return r, errf(at+".rulePriority", "is required")
	}
	if *w.RulePriority < 1 {
		return r, errf(at+".rulePriority", "must be a positive integer, got %d", *w.RulePriority)
	}
	r.RulePriority = *w.RulePriority
	if w.Description != nil {
		r.Description = *w.Description
	}
	if w.Action == nil || w.Action.Type == nil {
		return r, errf(at+".action.type", "is required")
	}
	if *w.Action.Type != ActionExpire {
		return r, errf(at+".action.type", "must be %q, got %q", ActionExpire, *w.Action.Type)
	}
	r.Action.Type = ActionExpire
	s := w.Selection
	sel := at + ".selection"
	if s == nil {
		return r, errf(sel, "is required")
	}
	if s.TagStatus == nil {
		return r, errf(sel+".tagStatus", "is required")
	}
	switch *s.TagStatus {
	case TagStatusTagged:
		switch {
		case len(s.TagPrefixList) > 0 && len(s.TagPatternList) > 0:
			return r, errf(sel+".tagPatternList", "cannot be used together with tagPrefixList")
		case len(s.TagPrefixList) == 0 && len(s.TagPatternList) == 0:
			return r, errf(sel+".tagPrefixList", "tagPrefixList or tagPatternList is required when tagStatus is tagged")
		}
		for i, p := range s.TagPrefixList {
			if p == "" {
				return r, errf(fmt.Sprintf("%s.tagPrefixList[%d]", sel, i), "must not be empty")
			}
		}
		for i, p := range s.TagPatternList {
			if p == "" {
				return r, errf(fmt.Sprintf("%s.tagPatternList[%d]", sel, i), "must not be empty")
			}
			if n := strings.Count(p, "*"); n > maxWildcards {
				return r, errf(fmt.Sprintf("%s.tagPatternList[%d]", sel, i), "has %d wildcards; at most %d are allowed", n, maxWildcards)
			}
		}
	case TagStatusUntagged, TagStatusAny:
		if len(s.TagPrefixList) > 0 {
			return r, errf(sel+".tagPrefixList", "is allowed only when tagStatus is tagged")
		}
		if len(s.TagPatternList) > 0 {
			return r, errf(sel+".tagPatternList", "is allowed only when tagStatus is tagged")
		}
	default:
		return r, errf(sel+".tagStatus", "must be tagged, untagged or any, got %q", *s.TagStatus)
	}
	if s.CountType == nil {
		return r, errf(sel+".countType", "is required")
	}
	switch *s.CountType {
	case CountImagesMoreThan:
		if s.CountUnit != nil {
			return r, errf(sel+".countUnit", "is not allowed when countType is %s", CountImagesMoreThan)
		}
	case CountSincePushed, CountSincePulled:
		if s.CountUnit == nil {
			return r, errf(sel+".countUnit", "is required when countType is %s", *s.CountType)
		}
		if *s.CountUnit != CountUnitDays {
			return r, errf(sel+".countUnit", "must be %q, got %q", CountUnitDays, *s.CountUnit)
		}
		r.Selection.CountUnit = CountUnitDays
	default:
		return r, errf(sel+".countType", "must be imageCountMoreThan, sinceImagePushed or sinceImagePulled, got %q", *s.CountType)
	}
	if s.CountNumber == nil {
		return r, errf(sel+".countNumber", "is required")
	}
	if *s.CountNumber < 1 {
		return r, errf(sel+".countNumber", "must be a positive integer, got %d", *s.CountNumber)
	}
	r.Selection.TagStatus = *s.TagStatus
	r.Selection.TagPrefixList = s.TagPrefixList
	r.Selection.TagPatternList = s.TagPatternList
	r.Selection.CountType = *s.CountType
	r.Selection.CountNumber = *s.CountNumber
	return r, nil
}

// Image is what evaluation needs to know about one image (manifest).
type Image struct {
	Digest       string
	Tags         []string
	PushedAt     time.Time
	LastPulledAt time.Time // zero: never pulled
}

// Expiry is one image a policy expires and the rule that expires it.
type Expiry struct {
	Image        Image
	RulePriority int
}

// matches reports whether the rule's tag filter selects img.
func (s Selection) matches(img Image) bool {
	switch s.TagStatus {
	case TagStatusAny:
		return true
	case TagStatusUntagged:
		return len(img.Tags) == 0
	}
	if len(img.Tags) == 0 {
		return false
	}
	// Every prefix (pattern) must match at least one of the image's tags.
	for _, p := range s.TagPrefixList {
		if !anyTag(img.Tags, func(t string) bool { return strings.HasPrefix(t, p) }) {
			return false
		}
	}
	for _, p := range s.TagPatternList {
		if !anyTag(img.Tags, func(t string) bool { return wildcard(p, t) }) {
			return false
		}
	}
	return true
}

func anyTag(tags []string, f func(string) bool) bool {
	for _, t := range tags {
		if f(t) {
			return true
		}
	}
	return false
}

// wildcard matches s against pattern p in which '*' matches any run of
// characters (including none); every other character is literal.
func wildcard(p, s string) bool {
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// Evaluate returns the images p expires at now, oldest first (ties by
// digest). The input order does not matter.
func Evaluate(p *Policy, images []Image, now time.Time) []Expiry {
	imgs := append([]Image(nil), images...)
	// Newest first: count rules keep the first countNumber.
	sort.SliceStable(imgs, func(i, j int) bool {
		if !imgs[i].PushedAt.Equal(imgs[j].PushedAt) {
			return imgs[i].PushedAt.After(imgs[j].PushedAt)
		}
		return imgs[i].Digest > imgs[j].Digest
	})
	expired := map[string]int{}    // digest -> rule priority
	protected := map[string]bool{} // matched a higher-priority rule's filter
	var out []Expiry
	for _, r := range p.Rules {
		var matched []int
		for i, img := range imgs {
			if r.Selection.matches(img) {
				matched = append(matched, i)
			}
		}
		for n, i := range matched {
			img := imgs[i]
			if !r.Selection.selects(n, img, now) {
				continue
			}
			if _, done := expired[img.Digest]; done || protected[img.Digest] {
				continue
			}
			expired[img.Digest] = r.RulePriority
			out = append(out, Expiry{Image: img, RulePriority: r.RulePriority})
		}
		for _, i := range matched {
			protected[imgs[i].Digest] = true
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Image, out[j].Image
		if !a.PushedAt.Equal(b.PushedAt) {
			return a.PushedAt.Before(b.PushedAt)
		}
		return a.Digest < b.Digest
	})
	return out
}

// selects reports whether the rule's count criterion picks img, the n-th
// newest (from 0) of the images its filter matched.
func (s Selection) selects(n int, img Image, now time.Time) bool {
	switch s.CountType {
	case CountImagesMoreThan:
		return int64(n) >= s.CountNumber
	case CountSincePushed:
		return now.Sub(img.PushedAt) > days(s.CountNumber)
	case CountSincePulled:
		last := img.LastPulledAt
		if last.IsZero() || last.Before(img.PushedAt) {
			last = img.PushedAt
		}
		return now.Sub(last) > days(s.CountNumber)
	}
	return false
}

func days(n int64) time.Duration { return time.Duration(n) * 24 * time.Hour }

// Document kinds under which the metadata store keeps a repository's
// lifecycle policy and its last preview (key: the repository name). Both
// are deleted with the repository.
const (
	DocKind        = "ecr.lifecycle"
	PreviewDocKind = "ecr.lifecycle.preview"
)

// Stored is the lifecycle policy document.
type Stored struct {
	PolicyText      string    `json:"policyText"`
	LastEvaluatedAt time.Time `json:"lastEvaluatedAt,omitzero"`
}

// Plan is what a run of p over a repository's images expires at now,
// and what its preview shows: Evaluate, less the images an index that
// stays references (KeepIndexChildren; children maps an index's digest to
// its children's). The preview and the runner both call it, so they
// cannot disagree.
func Plan(p *Policy, images []Image, children map[string][]string, now time.Time) []Expiry {
	return KeepIndexChildren(Evaluate(p, images, now), children)
}

// KeepIndexChildren drops from exps the images that an index of the
// repository references while that index itself does not expire
// (children maps an index's digest to its children's): deleting them is
// refused while the index holds them, so a run keeps them, and a preview
// must not list them either. An image under a kept index stays even if
// another index that references it expires. Order is kept.
func KeepIndexChildren(exps []Expiry, children map[string][]string) []Expiry {
	if len(children) == 0 {
		return exps
	}
	expiring := make(map[string]bool, len(exps))
	for _, e := range exps {
		expiring[e.Image.Digest] = true
	}
	parents := map[string][]string{}
	for p, cs := range children {
		for _, c := range cs {
			parents[c] = append(parents[c], p)
		}
	}
	// A kept index keeps its children, which may be indexes themselves.
	for changed := true; changed; {
		changed = false
		for d := range expiring {
			for _, p := range parents[d] {
				if !expiring[p] {
					delete(expiring, d)
					changed = true
					break
				}
			}
		}
	}
	out := exps[:0:0]
	for _, e := range exps {
		if expiring[e.Image.Digest] {
			out = append(out, e)
		}
	}
	return out
}
