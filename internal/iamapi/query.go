package iamapi

import (
	"cmp"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of the decoder.
const (
	maxBody      = 64 << 10 // bytes of form body
	maxListIndex = 1000     // highest N in Name.member.N
	maxTags      = 50       // AWS's tags per entity
)

// query is one decoded Query-protocol request: each parameter exactly once.
type query struct {
	v map[string]string
}

// readQuery decodes the request's parameters: the form body of a POST (at
// most maxBody bytes) together with the URL query, or the URL query of a
// GET. A parameter given twice is an error rather than a guess.
func readQuery(w http.ResponseWriter, r *http.Request) (query, error) {
	raw := []string{r.URL.RawQuery}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct == "application/x-www-form-urlencoded" {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return query{}, newError("RequestEntityTooLarge", http.StatusRequestEntityTooLarge, "The request body exceeds %d bytes.", maxBody)
			}
			if err != nil {
				return query{}, validationError("The request body could not be read.")
			}
			raw = append(raw, string(body))
		}
	default:
		return query{}, newError("MethodNotAllowed", http.StatusMethodNotAllowed, "The Query protocol accepts only GET and POST.")
	}
	return parseQuery(raw...)
}

// parseQuery decodes application/x-www-form-urlencoded strings.
func parseQuery(raws ...string) (query, error) {
	q := query{v: make(map[string]string)}
	for _, raw := range raws {
		if raw == "" {
			continue
		}
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return query{}, validationError("The request parameters are not valid form encoding.")
		}
		for k, vs := range vals {
			if _, dup := q.v[k]; dup || len(vs) != 1 {
				return query{}, validationError("The parameter %s appears more than once.", printable(k))
			}
			if !utf8.ValidString(k) || !utf8.ValidString(vs[0]) {
				return query{}, validationError("The request parameters are not valid UTF-8.")
			}
			q.v[k] = vs[0]
		}
	}
	return q, nil
}

// str returns a scalar parameter ("" when absent).
func (q query) str(name string) string { return q.v[name] }

// required checks that every named scalar is present and non-empty.
func (q query) required(names ...string) error {
	for _, n := range names {
		if q.v[n] == "" {
			return missing(n)
		}
	}
	return nil
}

// has reports whether any parameter is name or lies under name.
func (q query) has(name string) bool {
	for k := range q.v {
		if k == name || strings.HasPrefix(k, name+".") {
			return true
		}
	}
	return false
}

// int returns an optional integer parameter within [lo, hi].
func (q query) int(name string, lo, hi int) (n int, ok bool, err error) {
	s, ok := q.v[name]
	if !ok || s == "" {
		return 0, false, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil {
		return 0, false, validationError("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be a number", printable(s), lowerFirst(name))
	}
	if n < lo {
		return 0, false, validationError("1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value greater than or equal to %d", n, lowerFirst(name), lo)
	}
	if n > hi {
		return 0, false, validationError("1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value less than or equal to %d", n, lowerFirst(name), hi)
	}
	return n, true, nil
}

// bool returns an optional boolean parameter.
func (q query) bool(name string) (bool, error) {
	switch strings.ToLower(q.v[name]) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, validationError("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be true or false", printable(q.v[name]), lowerFirst(name))
}

// list returns the scalar list Name.member.1, Name.member.2, ... in index
// order. botocore sends an empty list as a bare "Name=".
func (q query) list(name string) ([]string, error) {
	items, err := q.members(name, false)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.fields[""]
	}
	return out, nil
}

// structs returns the structure list Name.member.N.Field in index order,
// each as field -> value; a field outside fields is an error.
func (q query) structs(name string, fields ...string) ([]map[string]string, error) {
	items, err := q.members(name, true)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(items))
	for i, it := range items {
		for f := range it.fields {
			if !slices.Contains(fields, f) {
				return nil, validationError("The parameter %s.member.%d.%s is not recognized.", name, it.index, printable(f))
			}
		}
		out[i] = it.fields
	}
	return out, nil
}

type member struct {
	index  int
	fields map[string]string
}

func (q query) members(name string, structured bool) ([]member, error) {
	prefix := name + ".member."
	byIndex := make(map[int]map[string]string)
	for k, v := range q.v {
		if k == name {
			if v != "" {
				return nil, validationError("The parameter %s must be a list (%s.member.N).", name, name)
			}
			continue
		}
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			if strings.HasPrefix(k, name+".") {
				return nil, validationError("The parameter %s is not recognized.", printable(k))
			}
			continue
		}
		idx, field, dotted := strings.Cut(rest, ".")
		if dotted != structured || (structured && field == "") {
			return nil, validationError("The parameter %s is not recognized.", printable(k))
		}
		n, err := strconv.Atoi(idx)
		if err != nil || n < 1 || n > maxListIndex || idx[0] == '0' || idx[0] == '+' {
			return nil, validationError("The parameter %s has an invalid list index.", printable(k))
		}
		if byIndex[n] == nil {
			byIndex[n] = make(map[string]string)
		}
		byIndex[n][field] = v
	}
	out := make([]member, 0, len(byIndex))
	for n, f := range byIndex {
		out = append(out, member{index: n, fields: f})
	}
	slices.SortFunc(out, func(a, b member) int { return cmp.Compare(a.index, b.index) })
	return out, nil
}

// tags decodes Name.member.N.Key / .Value into a map, with AWS's limits.
func (q query) tags(name string) (map[string]string, error) {
	items, err := q.structs(name, "Key", "Value")
	if err != nil || len(items) == 0 {
		return nil, err
	}
	if len(items) > maxTags {
		return nil, newError("LimitExceeded", http.StatusConflict, "Cannot exceed quota for TagsPerEntity: %d", maxTags)
	}
	out := make(map[string]string, len(items))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		k, v := it["Key"], it["Value"]
		if k == "" || utf8.RuneCountInString(k) > 128 {
			return nil, validationError("1 validation error detected: Value at 'tags.member.key' failed to satisfy constraint: Member must have length between 1 and 128")
		}
		if _, ok := it["Value"]; !ok {
			return nil, missing("Tags.member.Value")
		}
		if utf8.RuneCountInString(v) > 256 {
			return nil, validationError("1 validation error detected: Value at 'tags.member.value' failed to satisfy constraint: Member must have length less than or equal to 256")
		}
		if seen[strings.ToLower(k)] {
			return nil, newError("InvalidInput", http.StatusBadRequest, "Duplicate tag keys found. Please note that Tag keys are case insensitive.")
		}
		seen[strings.ToLower(k)] = true
		out[k] = v
	}
	return out, nil
}

// pageParams reads Marker and MaxItems (AWS's default 100, at most 1000).
func (q query) pageParams() (after string, maxItems int, err error) {
	maxItems, ok, err := q.int("MaxItems", 1, 1000)
	if err != nil {
		return "", 0, err
	}
	if !ok {
		maxItems = 100
	}
	if m := q.str("Marker"); m != "" {
		b, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil || !utf8.Valid(b) {
			return "", 0, validationError("Invalid Marker.")
		}
		after = string(b)
	}
	return after, maxItems, nil
}

// paginate sorts items by key and returns the page after the key after
// (exclusive), the marker of the next page, and whether there is one.
// Markers are opaque to clients: the last key returned, base64url.
func paginate[T any](items []T, key func(T) string, after string, maxItems int) (page []T, marker string, truncated bool) {
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	start := 0
	if after != "" {
		start, _ = slices.BinarySearchFunc(items, after, func(it T, k string) int {
			if key(it) <= k {
				return -1
			}
			return 1
		})
	}
	items = items[start:]
	if len(items) <= maxItems {
		return items, "", false
	}
	page = items[:maxItems]
	return page, base64.RawURLEncoding.EncodeToString([]byte(key(page[len(page)-1]))), true
}

// printable quotes attacker-chosen text for an error message: at most 64
// bytes, control characters dropped.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
}
