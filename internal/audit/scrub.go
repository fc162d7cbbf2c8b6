package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Limits on what one record carries of a request's parameters. CloudTrail
// caps a whole event at 256 KB; these keep Coffer's records well below.
const (
	maxScrubString = 32 << 10 // longer strings become a length and a hash
	maxScrubList   = 1000     // longer lists are cut, with a marker
	maxScrubDepth  = 32
)

// secretKeys are normalised key names (lower case, without '_', '-' and
// '.') that are never recorded; secretSuffixes catch compound names
// (newPassword, awsSecretAccessKey, registryToken).
var (
	secretKeys = map[string]bool{
		"token": true, "password": true, "passwd": true, "secret": true, "plaintext": true,
		"layerpartblob": true, "authorization": true, "credential": true, "privatekey": true,
		"tokencode": true, "authenticationcode1": true, "authenticationcode2": true,
		"samlassertion": true, "passphrase": true, "apikey": true,
	}
	secretSuffixes = []string{
		"password", "passwd", "passphrase", "secret", "secretkey", "secretaccesskey",
		"token", "privatekey", "plaintext", "apikey", "layerpartblob",
	}
	// notSecret are names ending like a secret that are not one:
	// pagination and idempotency tokens.
	notSecret = map[string]bool{
		"nexttoken": true, "paginationtoken": true, "continuationtoken": true, "clienttoken": true,
	}
)

// IsSecretKey reports whether a parameter named key is never recorded:
// passwords, secret keys, session and authorization tokens, plaintext,
// layer bytes.
func IsSecretKey(key string) bool {
	k := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, key)
	if notSecret[k] {
		return false
	}
	if secretKeys[k] {
		return true
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// Scrub returns a JSON-shaped copy of v (maps, lists, strings, numbers,
// booleans) without any map key named like a secret (IsSecretKey), at any
// depth. It is the defence in depth behind the doors, which put no secret
// in Params to begin with. Strings over 32 KiB are replaced by their
// length and SHA-256, lists are cut at 1000 items. Nil, and an empty map,
// give nil.
func Scrub(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
	case map[string]string:
		if len(x) == 0 {
			return nil
		}
	}
	out := scrub(v, 0)
	if m, ok := out.(map[string]any); ok && len(m) == 0 {
		return nil
	}
	return out
}

func scrub(v any, depth int) any {
	if depth > maxScrubDepth {
		return "<omitted: nested too deeply>"
	}
	switch x := v.(type) {
	case nil, bool, float64, float32, int, int64, int32, uint, uint64, uint32, json.Number:
		return x
	case string:
		return scrubString(x)
	case []byte:
		// Raw bytes are payload (layer parts, ciphertext), never audit.
		return fmt.Sprintf("<omitted: %d bytes>", len(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if !IsSecretKey(k) {
				m[k] = scrub(e, depth+1)
			}
		}
		return m
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if !IsSecretKey(k) {
				m[k] = scrubString(e)
			}
		}
		return m
	case map[string][]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if !IsSecretKey(k) {
				m[k] = scrub(e, depth+1)
			}
		}
		return m
	case []any:
		return scrubList(len(x), func(i int) any { return scrub(x[i], depth+1) })
	case []string:
		return scrubList(len(x), func(i int) any { return scrubString(x[i]) })
	case []map[string]any:
		return scrubList(len(x), func(i int) any { return scrub(x[i], depth+1) })
	}
	// Anything else (structs, typed maps) goes through its JSON form, so
	// its keys are scrubbed like everyone's.
	b, err := json.Marshal(v)
	if err != nil {
		return "<omitted: not representable as JSON>"
	}
	var g any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&g); err != nil {
		return "<omitted: not representable as JSON>"
	}
	return scrub(g, depth)
}

func scrubList(n int, item func(int) any) []any {
	out := make([]any, 0, min(n, maxScrubList+1))
	for i := 0; i < n && i < maxScrubList; i++ {
		out = append(out, item(i))
	}
	if n > maxScrubList {
		out = append(out, fmt.Sprintf("<omitted: %d more items>", n-maxScrubList))
	}
	return out
}

func scrubString(s string) any {
	if len(s) <= maxScrubString {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("<omitted: %d bytes, sha256:%s>", len(s), hex.EncodeToString(sum[:]))
}
