package policy

import (
	"encoding/base64"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Conditions. A Condition block is ANDed across operators and across the
// keys of each operator; the values listed for one key are ORed (AWS:
// "If there are multiple values for a single condition key, AWS evaluates
// the condition using a logical OR operation").

type opKind uint8

const (
	opString opKind = iota
	opStringIC
	opStringLike
	opNumEq
	opNumLt
	opNumLe
	opNumGt
	opNumGe
	opDateEq
	opDateLt
	opDateLe
	opDateGt
	opDateGe
	opBool
	opBinary
	opIP
	opArn
	opNull
)

type opInfo struct {
	op  opKind
	neg bool
}

// operators maps every base operator name (case-sensitive, as AWS spells
// them) to its kind and whether it is the negated form.
var operators = map[string]opInfo{
	"StringEquals":              {opString, false},
	"StringNotEquals":           {opString, true},
	"StringEqualsIgnoreCase":    {opStringIC, false},
	"StringNotEqualsIgnoreCase": {opStringIC, true},
	"StringLike":                {opStringLike, false},
	"StringNotLike":             {opStringLike, true},
	"NumericEquals":             {opNumEq, false},
	"NumericNotEquals":          {opNumEq, true},
	"NumericLessThan":           {opNumLt, false},
	"NumericLessThanEquals":     {opNumLe, false},
	"NumericGreaterThan":        {opNumGt, false},
	"NumericGreaterThanEquals":  {opNumGe, false},
	"DateEquals":                {opDateEq, false},
	"DateNotEquals":             {opDateEq, true},
	"DateLessThan":              {opDateLt, false},
	"DateLessThanEquals":        {opDateLe, false},
	"DateGreaterThan":           {opDateGt, false},
	"DateGreaterThanEquals":     {opDateGe, false},
	"Bool":                      {opBool, false},
	"BinaryEquals":              {opBinary, false},
	"IpAddress":                 {opIP, false},
	"NotIpAddress":              {opIP, true},
	"ArnEquals":                 {opArn, false},
	"ArnNotEquals":              {opArn, true},
	"ArnLike":                   {opArn, false},
	"ArnNotLike":                {opArn, true},
	"Null":                      {opNull, false},
}

type setKind uint8

const (
	setNone setKind = iota
	setForAll
	setForAny
)

type cval struct {
	pat  pattern // String* operators
	arn  *arnPattern
	num  float64
	time time.Time
	pfx  netip.Prefix
	b    bool // Bool and Null
	bin  []byte
}

type cond struct {
	op       opKind
	neg      bool
	ifExists bool
	set      setKind
	key      string // lower-cased: condition keys are case-insensitive
	vals     []cval
}

// parseOperator splits "ForAnyValue:StringLikeIfExists" into its parts.
func parseOperator(name string) (opInfo, setKind, bool, string) {
	set := setNone
	base := name
	if b, ok := strings.CutPrefix(base, "ForAllValues:"); ok {
		set, base = setForAll, b
	} else if b, ok := strings.CutPrefix(base, "ForAnyValue:"); ok {
		set, base = setForAny, b
	}
	ifExists := false
	if b, ok := strings.CutSuffix(base, "IfExists"); ok {
		ifExists, base = true, b
	}
	info, ok := operators[base]
	if !ok {
		return opInfo{}, 0, false, "unknown condition operator " + strconv.Quote(name)
	}
	if info.op == opNull && (ifExists || set != setNone) {
		return opInfo{}, 0, false, "the Null operator takes no IfExists suffix or set prefix: " + strconv.Quote(name)
	}
	return info, set, ifExists, ""
}

// parseConditions parses a Condition block.
func parseConditions(v *jvalue, field string, vars bool) ([]cond, error) {
	if v.kind != jObject {
		return nil, errf(field, "must be an object mapping condition operators to keys")
	}
	var out []cond
	for i, name := range v.keys {
		ofield := field + "." + name
		info, set, ifExists, msg := parseOperator(name)
		if msg != "" {
			return nil, errf(ofield, msg)
		}
		block := v.vals[i]
		if block.kind != jObject {
			return nil, errf(ofield, "must be an object mapping condition keys to values")
		}
		if len(block.keys) == 0 {
			return nil, errf(ofield, "must name at least one condition key")
		}
		for j, key := range block.keys {
			kfield := ofield + "." + key
			if !validKey(key) {
				return nil, errf(kfield, "invalid condition key "+strconv.Quote(key))
			}
			c := cond{op: info.op, neg: info.neg, ifExists: ifExists, set: set, key: strings.ToLower(key)}
			raw, err := scalarList(block.vals[j], kfield, true)
			if err != nil {
				return nil, err
			}
			for n, s := range raw {
				cv, msg := parseCondValue(info.op, s, vars)
				if msg != "" {
					f := kfield
					if block.vals[j].kind == jArray {
						f += "[" + strconv.Itoa(n) + "]"
					}
					return nil, errf(f, msg)
				}
				c.vals = append(c.vals, cv)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// scalarList reads a string or a non-empty list of strings. With scalars,
// JSON numbers and booleans are accepted and kept as written, as AWS does
// for condition values ("NumericLessThan": {"s3:max-keys": 10}).
func scalarList(v *jvalue, field string, scalars bool) ([]string, error) {
	one := func(e *jvalue, f string) (string, error) {
		switch e.kind {
		case jString:
			return e.s, nil
		case jNumber, jBool:
			if scalars {
				return e.s, nil
			}
		}
		if scalars {
			return "", errf(f, "must be a string, number or boolean, not "+e.kind.String())
		}
		return "", errf(f, "must be a string, not "+e.kind.String())
	}
	if v.kind != jArray {
		s, err := one(v, field)
		if err != nil {
			if scalars {
				return nil, errf(field, "must be a string, number, boolean or a list of them, not "+v.kind.String())
			}
			return nil, errf(field, "must be a string or a list of strings, not "+v.kind.String())
		}
		return []string{s}, nil
	}
	if len(v.arr) == 0 {
		return nil, errf(field, "must not be an empty list")
	}
	out := make([]string, 0, len(v.arr))
	for i, e := range v.arr {
		s, err := one(e, field+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseCondValue(op opKind, s string, vars bool) (cval, string) {
	var cv cval
	switch op {
	case opString, opStringIC:
		p, msg := compile(s, compileOpts{vars: vars})
		cv.pat = p
		return cv, msg
	case opStringLike:
		p, msg := compile(s, compileOpts{wild: true, vars: vars})
		cv.pat = p
		return cv, msg
	case opNumEq, opNumLt, opNumLe, opNumGt, opNumGe:
		f, ok := parseNumber(s)
		if !ok {
			return cv, "not a number: " + strconv.Quote(s)
		}
		cv.num = f
	case opDateEq, opDateLt, opDateLe, opDateGt, opDateGe:
		t, ok := parseDate(s)
		if !ok {
			return cv, "not an ISO 8601 date or epoch seconds: " + strconv.Quote(s)
		}
		cv.time = t
	case opBool, opNull:
		b, ok := parseBool(s)
		if !ok {
			return cv, "must be \"true\" or \"false\", not " + strconv.Quote(s)
		}
		cv.b = b
	case opBinary:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return cv, "not base64: " + strconv.Quote(s)
		}
		cv.bin = b
	case opIP:
		p, ok := parseCIDR(s)
		if !ok {
			return cv, "not an IP address or CIDR block: " + strconv.Quote(s)
		}
		cv.pfx = p
	case opArn:
		a, msg := compileARN(s, vars)
		if msg != "" {
			return cv, msg + ": " + strconv.Quote(s)
		}
		cv.arn = a
	}
	return cv, ""
}

// parseNumber accepts decimal numbers only ("10", "-1.5", "2e3"); strconv
// alone would also take hex floats, "Inf", "NaN" and underscores.
func parseNumber(s string) (float64, bool) {
	if s == "" || len(s) > 64 {
		return 0, false
	}
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-':
		default:
			return 0, false
		}
	}
	if !digits {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// parseDate accepts what AWS documents for Date operators: ISO 8601
// (extended form with or without seconds, fraction and zone; a bare date;
// the basic form 20060102T150405Z) or POSIX epoch seconds.
func parseDate(s string) (time.Time, bool) {
	if s == "" || len(s) > 64 {
		return time.Time{}, false
	}
	allDigits := true
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			allDigits = false
			break
		}
	}
	if allDigits {
		if len(s) > 12 { // beyond year 33658: not a plausible epoch in seconds
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	var layouts []string
	switch {
	case len(s) == 10:
		layouts = []string{time.DateOnly}
	case len(s) >= 15 && s[8] == 'T' && s[4] != '-':
		layouts = []string{"20060102T150405Z0700", "20060102T150405"}
	case len(s) > 10 && s[10] == 'T':
		layouts = []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04Z07:00", "2006-01-02T15:04"}
	default:
		return time.Time{}, false
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func parseBool(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// parseCIDR accepts a CIDR block or a bare address (a /32 or /128). Host
// bits are masked off, so 10.1.2.3/8 means 10.0.0.0/8. Zones are refused.
func parseCIDR(s string) (netip.Prefix, bool) {
	if strings.IndexByte(s, '%') >= 0 {
		return netip.Prefix{}, false
	}
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// eval evaluates one condition (one operator, one key) against r.
//
// AWS semantics, in order:
//   - Null: "true" holds when the key is absent, "false" when present.
//   - A key that is absent (or has no values): ...IfExists operators are
//     true; ForAllValues is true ("returns true if ... the key is missing");
//     ForAnyValue is false; a negated operator (StringNotEquals,
//     NotIpAddress, ArnNotLike, ...) is true ("if the key is not present,
//     the condition returns true" for negated matching operators); any
//     other operator is false.
//   - ForAllValues: every request value must satisfy the operator;
//     ForAnyValue: at least one must. For a negated operator "satisfy" means
//     matching none of the policy values.
//   - No set prefix: the positive form holds when some request value matches
//     some policy value; the negated form is its complement. (AWS warns
//     against single-valued operators on multivalued keys; this reading is
//     the one that makes a negated Deny fail closed.)
func (c *cond) eval(r *Request) bool {
	v := r.lookup(c.key)
	n := v.n()
	if c.op == opNull {
		for i := range c.vals {
			if c.vals[i].b == (n == 0) {
				return true
			}
		}
		return false
	}
	if n == 0 {
		switch {
		case c.ifExists, c.set == setForAll:
			return true
		case c.set == setForAny:
			return false
		}
		return c.neg
	}
	switch c.set {
	case setForAll:
		for i := 0; i < n; i++ {
			if c.matchAny(v.at(i), r) == c.neg {
				return false
			}
		}
		return true
	case setForAny:
		for i := 0; i < n; i++ {
			if c.matchAny(v.at(i), r) != c.neg {
				return true
			}
		}
		return false
	}
	for i := 0; i < n; i++ {
		if c.matchAny(v.at(i), r) {
			return !c.neg
		}
	}
	return c.neg
}

// matchAny reports whether the request value s matches at least one policy
// value under the positive form of the operator.
func (c *cond) matchAny(s string, r *Request) bool {
	switch c.op {
	case opString, opStringLike:
		for i := range c.vals {
			if c.vals[i].pat.match(s, false, r) {
				return true
			}
		}
	case opStringIC:
		for i := range c.vals {
			want, ok := c.vals[i].pat.expand(r)
			if ok && strings.EqualFold(want, s) {
				return true
			}
		}
	case opNumEq, opNumLt, opNumLe, opNumGt, opNumGe:
		f, ok := parseNumber(s)
		if !ok {
			return false
		}
		for i := range c.vals {
			if cmpOK(c.op-opNumEq, cmpFloat(f, c.vals[i].num)) {
				return true
			}
		}
	case opDateEq, opDateLt, opDateLe, opDateGt, opDateGe:
		t, ok := parseDate(s)
		if !ok {
			return false
		}
		for i := range c.vals {
			if cmpOK(c.op-opDateEq, t.Compare(c.vals[i].time)) {
				return true
			}
		}
	case opBool:
		b, ok := parseBool(s)
		if !ok {
			return false
		}
		for i := range c.vals {
			if c.vals[i].b == b {
				return true
			}
		}
	case opBinary:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return false
		}
		for i := range c.vals {
			if string(c.vals[i].bin) == string(b) {
				return true
			}
		}
	case opIP:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return false
		}
		a = a.Unmap().WithZone("")
		for i := range c.vals {
			if c.vals[i].pfx.Contains(a) {
				return true
			}
		}
	case opArn:
		for i := range c.vals {
			if c.vals[i].arn.match(s, r) {
				return true
			}
		}
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpOK applies a comparison (0 eq, 1 lt, 2 le, 3 gt, 4 ge, the order of
// the opNum* and opDate* constants) to the result of comparing request to
// policy value.
func cmpOK(rel opKind, c int) bool {
	switch rel {
	case 0:
		return c == 0
	case 1:
		return c < 0
	case 2:
		return c <= 0
	case 3:
		return c > 0
	case 4:
		return c >= 0
	}
	return false
}
