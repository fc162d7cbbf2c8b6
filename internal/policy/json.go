package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// The document is first read into a small tree of jvalue. encoding/json's
// struct decoding cannot report duplicate keys (it keeps the last one, which
// would let "Effect":"Deny","Effect":"Allow" slip through review), cannot
// tell a missing element from an empty one, and cannot bound nesting, so
// the tree is built from the token stream instead.

type jkind uint8

const (
	jString jkind = iota + 1
	jNumber
	jBool
	jNull
	jArray
	jObject
)

func (k jkind) String() string {
	switch k {
	case jString:
		return "a string"
	case jNumber:
		return "a number"
	case jBool:
		return "a boolean"
	case jNull:
		return "null"
	case jArray:
		return "a list"
	case jObject:
		return "an object"
	}
	return "unknown"
}

type jvalue struct {
	kind jkind
	s    string // string value, number literal as written, "true"/"false"
	arr  []*jvalue
	keys []string // object keys in document order
	vals []*jvalue
}

// get returns the member named key of an object.
func (v *jvalue) get(key string) (*jvalue, bool) {
	for i, k := range v.keys {
		if k == key {
			return v.vals[i], true
		}
	}
	return nil, false
}

// maxDepth bounds nesting. The deepest legal place is a condition value list
// (document > Statement list > statement > Condition > operator > key > list
// > scalar = 7 levels); anything deeper is malformed anyway.
const maxDepth = 8

// decodeJSON parses doc strictly: valid UTF-8, one value, no duplicate keys,
// nesting at most maxDepth.
func decodeJSON(doc []byte) (*jvalue, error) {
	if !utf8.Valid(doc) {
		return nil, errf("", "policy document is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := readValue(dec, "", 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errf("", "unexpected data after the policy document")
	}
	return v, nil
}

func syntaxErr(err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errf("", fmt.Sprintf("syntax error at offset %d: %s", se.Offset, se.Error()))
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errf("", "unexpected end of policy document")
	}
	return errf("", "syntax error: "+err.Error())
}

func readValue(dec *json.Decoder, path string, depth int) (*jvalue, error) {
	if depth > maxDepth {
		return nil, errf(path, "nesting is too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err)
	}
	switch t := tok.(type) {
	case string:
		return &jvalue{kind: jString, s: t}, nil
	case json.Number:
		return &jvalue{kind: jNumber, s: string(t)}, nil
	case bool:
		return &jvalue{kind: jBool, s: strconv.FormatBool(t)}, nil
	case nil:
		return &jvalue{kind: jNull}, nil
	case json.Delim:
		switch t {
		case '[':
			v := &jvalue{kind: jArray}
			for i := 0; dec.More(); i++ {
				e, err := readValue(dec, path+"["+strconv.Itoa(i)+"]", depth+1)
				if err != nil {
					return nil, err
				}
				v.arr = append(v.arr, e)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, syntaxErr(err)
			}
			return v, nil
		case '{':
			v := &jvalue{kind: jObject}
			var seen map[string]bool // for large objects, so duplicate checks stay linear
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, syntaxErr(err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errf(path, "object key is not a string")
				}
				child := k
				if path != "" {
					child = path + "." + k
				}
				dup := false
				if seen != nil {
					dup = seen[k]
				} else {
					_, dup = v.get(k)
					if len(v.keys) >= 16 {
						seen = make(map[string]bool, 2*len(v.keys))
						for _, k := range v.keys {
							seen[k] = true
						}
					}
				}
				if dup {
					return nil, errf(child, "duplicate key")
				}
				if seen != nil {
					seen[k] = true
				}
				e, err := readValue(dec, child, depth+1)
				if err != nil {
					return nil, err
				}
				v.keys = append(v.keys, k)
				v.vals = append(v.vals, e)
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, syntaxErr(err)
			}
			return v, nil
		}
	}
	return nil, errf(path, "unexpected JSON token")
}
