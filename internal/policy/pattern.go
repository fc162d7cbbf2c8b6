package policy

import (
	"strings"
	"unicode/utf8"
)

// A pattern is a compiled Action, Resource, Principal-free string or
// condition value: a sequence of tokens. Literal text, the wildcards '*' and
// '?' (only where the element allows wildcards), and policy variables
// (Version 2012-10-17 only, only in Resource/NotResource and in the values
// of String and Arn condition operators, as AWS documents).
//
// Compiling at Parse time keeps Evaluate free of allocation and makes the
// ${*} / ${?} / ${$} escapes trivial: they become literal tokens.

type tokKind uint8

const (
	tLit  tokKind = iota // s is literal text
	tStar                // '*': any sequence of characters, including none
	tAny                 // '?': exactly one character
	tVar                 // ${s} or ${s, 'def'}: s is the lower-cased key
)

type tok struct {
	kind   tokKind
	hasDef bool
	vi     uint16 // index of the variable's resolved value
	s      string
	def    string
}

type pattern struct {
	toks  []tok
	nvars int
	lit   bool   // no wildcards and no variables: matching is string equality
	raw   string // as written in the document
}

// maxVars bounds the variables in one value; each costs a context lookup per
// evaluation. No real policy comes close.
const maxVars = 16

// compileOpts says what a value may contain.
type compileOpts struct {
	wild bool // '*' and '?' are wildcards
	vars bool // ${...} are policy variables
}

// compile turns raw into a pattern; err is the problem, without field.
func compile(raw string, o compileOpts) (pattern, string) {
	p := pattern{raw: raw}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.toks = append(p.toks, tok{kind: tLit, s: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case o.wild && c == '*':
			flush()
			if n := len(p.toks); n == 0 || p.toks[n-1].kind != tStar {
				p.toks = append(p.toks, tok{kind: tStar}) // "**" == "*"
			}
			i++
		case o.wild && c == '?':
			flush()
			p.toks = append(p.toks, tok{kind: tAny})
			i++
		case o.vars && c == '$' && i+1 < len(raw) && raw[i+1] == '{':
			end := strings.IndexByte(raw[i:], '}')
			if end < 0 {
				return p, "policy variable \"${\" is not closed with \"}\""
			}
			body := strings.TrimSpace(raw[i+2 : i+end])
			i += end + 1
			switch body {
			case "*", "?", "$":
				lit.WriteString(body) // escapes: the character itself, literally
				continue
			}
			t, msg := parseVar(body)
			if msg != "" {
				return p, msg
			}
			if p.nvars == maxVars {
				return p, "too many policy variables in one value"
			}
			flush()
			t.vi = uint16(p.nvars)
			p.nvars++
			p.toks = append(p.toks, t)
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	p.lit = p.nvars == 0 && (len(p.toks) == 0 || (len(p.toks) == 1 && p.toks[0].kind == tLit))
	return p, ""
}

// parseVar parses the inside of ${...}: key, optionally followed by a
// comma and a default in single quotes, in which two quotes in a row stand
// for one (AWS: "surround the default value with single quotes and separate
// the variable text and the default value with a comma and space").
func parseVar(body string) (tok, string) {
	key, def, hasDef := body, "", false
	if c := strings.IndexByte(body, ','); c >= 0 {
		key = strings.TrimSpace(body[:c])
		rest := strings.TrimSpace(body[c+1:])
		if len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
			return tok{}, "policy variable default must be in single quotes: ${" + body + "}"
		}
		inner := rest[1 : len(rest)-1]
		var b strings.Builder
		for i := 0; i < len(inner); i++ {
			if inner[i] == '\'' {
				if i+1 < len(inner) && inner[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				return tok{}, "policy variable default has an unescaped quote: ${" + body + "}"
			}
			b.WriteByte(inner[i])
		}
		def, hasDef = b.String(), true
	}
	if !validKey(key) {
		return tok{}, "invalid policy variable ${" + body + "}"
	}
	return tok{kind: tVar, s: strings.ToLower(key), def: def, hasDef: hasDef}, ""
}

// validKey reports whether k looks like a condition key: "prefix:name",
// printable ASCII without spaces, quotes, braces or wildcards.
func validKey(k string) bool {
	if len(k) < 3 || len(k) > 256 {
		return false
	}
	colon := strings.IndexByte(k, ':')
	if colon <= 0 || colon == len(k)-1 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(":/_.-@+=", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// resolve fills vals with the value of each variable of p for r. It
// reports false when a variable has no value and no default: AWS treats the
// element as not matching ("If there is no value for the variable ... the
// policy element is evaluated as false" / "the statement might be invalid").
// A multivalued key cannot be a variable (AWS: "you can't use multivalued
// context keys as policy variables"), so it counts as missing.
func (p *pattern) resolve(r *Request, vals []string) bool {
	for i := range p.toks {
		t := &p.toks[i]
		if t.kind != tVar {
			continue
		}
		v := r.lookup(t.s)
		switch {
		case v.n() == 1:
			vals[t.vi] = v.at(0)
		case t.hasDef:
			vals[t.vi] = t.def
		default:
			return false
		}
	}
	return true
}

// match reports whether s matches p for request r (variables resolved from
// r). fold makes literal comparison ASCII case-insensitive (action names).
func (p *pattern) match(s string, fold bool, r *Request) bool {
	if p.lit {
		if len(p.toks) == 0 {
			return s == ""
		}
		if fold {
			return asciiEqualFold(p.toks[0].s, s)
		}
		return p.toks[0].s == s
	}
	if p.nvars == 0 {
		return globMatch(p.toks, nil, s, fold)
	}
	var buf [maxVars]string
	vals := buf[:p.nvars]
	if !p.resolve(r, vals) {
		return false
	}
	return globMatch(p.toks, vals, s, fold)
}

// expand returns the text of a wildcard-free pattern with its variables
// substituted, or false when a variable has no value. It allocates when
// there are variables; only StringEqualsIgnoreCase uses it.
func (p *pattern) expand(r *Request) (string, bool) {
	if p.nvars == 0 {
		if len(p.toks) == 0 {
			return "", true
		}
		return p.toks[0].s, true
	}
	var buf [maxVars]string
	vals := buf[:p.nvars]
	if !p.resolve(r, vals) {
		return "", false
	}
	var b strings.Builder
	for i := range p.toks {
		b.WriteString(tokText(&p.toks[i], vals))
	}
	return b.String(), true
}

func tokText(t *tok, vals []string) string {
	if t.kind == tVar {
		return vals[t.vi]
	}
	return t.s
}

// globMatch matches s against toks with the classic two-pointer algorithm:
// on a mismatch only the most recent '*' is extended by one character, so
// the work is O(len(pattern) * len(s)) in the worst case and there is no
// exponential backtracking (a later '*' can absorb anything an earlier one
// could). Literal text (including resolved variables) is compared byte by
// byte; '?' and the star advance one UTF-8 character at a time, so '?'
// matches one character as AWS documents, not one byte.
func globMatch(toks []tok, vals []string, s string, fold bool) bool {
	n := len(toks)
	i, j, k := 0, 0, 0 // token, offset within a literal token, position in s
	starI, starK := -1, 0
	for {
		if i < n {
			t := &toks[i]
			switch t.kind {
			case tStar:
				i++
				j = 0
				starI, starK = i, k
				continue
			case tAny:
				if k < len(s) {
					k += runeLen(s[k:])
					i++
					continue
				}
			default:
				lit := tokText(t, vals)
				if j == len(lit) {
					i++
					j = 0
					continue
				}
				if k < len(s) && byteEq(lit[j], s[k], fold) {
					j++
					k++
					continue
				}
			}
		} else if k == len(s) {
			return true
		}
		// Mismatch, or pattern used up with input left: let the last star
		// absorb one more character and retry from just after it.
		if starI < 0 || starK >= len(s) {
			return false
		}
		starK += runeLen(s[starK:])
		i, j, k = starI, 0, starK
	}
}

func runeLen(s string) int {
	if s[0] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRuneInString(s)
	return n
}

func byteEq(a, b byte, fold bool) bool {
	if a == b {
		return true
	}
	if !fold {
		return false
	}
	return lower(a) == lower(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}
