package sqlstore

import (
	"encoding/json"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
)

// jsonValue is what the stores keep in a JSON text column: a list or a map
// for which empty means none.
type jsonValue interface {
	[]string | []metadata.Part | map[string]string
}

// encodeJSON encodes v, or returns empty when v has no entries; what names
// the column's content in an error.
func encodeJSON[T jsonValue](v T, empty, what string) (string, error) {
	if len(v) == 0 {
		return empty, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(b), nil
}

// decodeJSON decodes s; no entries decode as nil. what names the column's
// content in an error.
func decodeJSON[T jsonValue](s, what string) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// EncodeStrings encodes a string list column; nil and empty both become "[]".
func EncodeStrings(v []string) (string, error) { return encodeJSON(v, "[]", "string list") }

// DecodeStrings decodes a string list column; an empty list decodes as nil.
func DecodeStrings(s string) ([]string, error) { return decodeJSON[[]string](s, "string list") }

// EncodeAnnotations encodes an annotations column. An empty map encodes
// as "", which the stores write as NULL; a non-empty map never encodes
// as "".
func EncodeAnnotations(m map[string]string) (string, error) {
	return encodeJSON(m, "", "annotations")
}

// DecodeAnnotations decodes a non-NULL annotations column; an empty object
// decodes as nil.
func DecodeAnnotations(s string) (map[string]string, error) {
	return decodeJSON[map[string]string](s, "annotations")
}

// EncodeParts encodes an upload's parts column; nil and empty both become
// "[]".
func EncodeParts(parts []metadata.Part) (string, error) { return encodeJSON(parts, "[]", "parts") }

// DecodeParts decodes an upload's parts column; an empty list decodes as
// nil.
func DecodeParts(s string) ([]metadata.Part, error) { return decodeJSON[[]metadata.Part](s, "parts") }

// PartKeys returns the storage keys of the parts a parts column lists, in
// order.
func PartKeys(s string) ([]string, error) {
	parts, err := DecodeParts(s)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(parts))
	for i, p := range parts {
		keys[i] = p.ObjectKey
	}
	return keys, nil
}
