package cache

import (
	"sync"
	"time"
)

// Map is a bounded, concurrency-safe map whose values are stamped with the
// generation and time of the read that produced them: the building block
// of Store, and of caches elsewhere keyed on Store.Generation.
type Map[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]stamped[V]
	max int
}

type stamped[V any] struct {
	v   V
	gen uint64
	at  time.Time
}

// NewMap returns a Map holding at most maxEntries values (at least 1).
func NewMap[K comparable, V any](maxEntries int) *Map[K, V] {
	return &Map[K, V]{m: make(map[K]stamped[V]), max: max(maxEntries, 1)}
}

// Get returns the value under k if it was stored with generation gen and
// its time is less than ttl before now.
func (c *Map[K, V]) Get(k K, gen uint64, now time.Time, ttl time.Duration) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.gen != gen || now.Sub(e.at) >= ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v under k with the generation and time read before v was
// read. An entry of a newer generation stays. When the map is full, one
// entry, chosen at random, makes room.
func (c *Map[K, V]) Put(k K, v V, gen uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[k]
	if ok && old.gen > gen {
		return
	}
	if !ok && len(c.m) >= c.max {
		for victim := range c.m { // map iteration starts at a random entry
			delete(c.m, victim)
			break
		}
	}
	c.m[k] = stamped[V]{v: v, gen: gen, at: at}
}

// Len returns the number of entries, valid or not.
func (c *Map[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
