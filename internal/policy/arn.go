package policy

import "strings"

// ARN matching for the Arn* condition operators. AWS: "Each of the six
// colon-delimited components of the ARN is checked separately and each can
// include multi-character match wildcards (*) or single-character match
// wildcards (?)." The sixth component (the resource) is everything after
// the fifth colon, so it may itself contain colons.

type arnPattern struct {
	whole pattern
	any   bool // the value "*": every value matches
	comps [6][]tok
}

// compileARN compiles an Arn* condition value.
func compileARN(raw string, vars bool) (*arnPattern, string) {
	if raw == "*" {
		return &arnPattern{any: true, whole: pattern{raw: raw}}, ""
	}
	p, msg := compile(raw, compileOpts{wild: true, vars: vars})
	if msg != "" {
		return nil, msg
	}
	a := &arnPattern{whole: p}
	c := 0
	var cur []tok
	for _, t := range p.toks {
		if t.kind != tLit || c == 5 {
			cur = append(cur, t)
			continue
		}
		s := t.s
		for c < 5 {
			i := strings.IndexByte(s, ':')
			if i < 0 {
				break
			}
			if i > 0 {
				cur = append(cur, tok{kind: tLit, s: s[:i]})
			}
			a.comps[c] = cur
			cur = nil
			c++
			s = s[i+1:]
		}
		if s != "" {
			cur = append(cur, tok{kind: tLit, s: s})
		}
	}
	a.comps[c] = cur
	if c != 5 {
		return nil, "ARN must have six colon-separated parts (arn:partition:service:region:account:resource)"
	}
	if len(a.comps[0]) != 1 || a.comps[0][0].kind != tLit || a.comps[0][0].s != "arn" {
		return nil, "ARN must begin with \"arn:\""
	}
	return a, ""
}

// match reports whether the ARN s matches a for request r.
func (a *arnPattern) match(s string, r *Request) bool {
	if a.any {
		return true
	}
	var parts [6]string
	if !splitARN(s, &parts) {
		return false
	}
	var buf [maxVars]string
	vals := buf[:a.whole.nvars]
	if a.whole.nvars > 0 && !a.whole.resolve(r, vals) {
		return false
	}
	for i := range parts {
		if !globMatch(a.comps[i], vals, parts[i], false) {
			return false
		}
	}
	return true
}

// splitARN cuts s at its first five colons.
func splitARN(s string, parts *[6]string) bool {
	for i := 0; i < 5; i++ {
		j := strings.IndexByte(s, ':')
		if j < 0 {
			return false
		}
		parts[i] = s[:j]
		s = s[j+1:]
	}
	parts[5] = s
	return true
}
