package server

import (
	"crypto/subtle"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// tokenMemo remembers the Authorization header values whose registry token
// verified, with the principal it names, so that a client's every request
// does not pay the Basic decoding, the HMAC and the JSON decoding again: a
// docker client sends the same header until it logs in anew.
//
// A hit means the very same bytes as a header that verified; the header
// is compared in constant time, the index is a seeded hash of it (seeded
// per process, so nobody outside can aim at an entry). What a token names
// never changes, nor does the signing key in a process's life, so no write
// invalidates an entry and replicas have nothing to share: what the
// principal may do is decided per request by the decision point, which
// reads the current policies. Expiry is checked on every hit. Bounded:
// emptied when full.
//
// The entries hold live tokens: the memo is never formatted or logged.
type tokenMemo struct {
	seed maphash.Seed
	mu   sync.RWMutex
	m    map[uint64]memoEntry
}

type memoEntry struct {
	header    string
	principal auth.Principal
	expires   int64 // Unix seconds: the token's ExpiresAt
}

// maxTokenMemo bounds tokenMemo.
const maxTokenMemo = 4096

func newTokenMemo() *tokenMemo {
	return &tokenMemo{seed: maphash.MakeSeed(), m: make(map[uint64]memoEntry)}
}

// get returns the principal of header if header verified before and its
// token has not expired at now.
func (t *tokenMemo) get(header string, now time.Time) (auth.Principal, bool) {
	if header == "" {
		return auth.Principal{}, false
	}
	h := maphash.String(t.seed, header)
	t.mu.RLock()
	e, ok := t.m[h]
	t.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(e.header), []byte(header)) != 1 || now.Unix() >= e.expires {
		return auth.Principal{}, false
	}
	return e.principal, true
}

// put remembers that header carries a token that verified, naming p and
// expiring at expires (Unix seconds).
func (t *tokenMemo) put(header string, p auth.Principal, expires int64) {
	h := maphash.String(t.seed, header)
	t.mu.Lock()
	if len(t.m) >= maxTokenMemo {
		clear(t.m)
	}
	t.m[h] = memoEntry{header: strings.Clone(header), principal: p, expires: expires}
	t.mu.Unlock()
}
