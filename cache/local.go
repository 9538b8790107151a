package cache

import (
	"sync"
	"time"
)

// localLayer holds in-process copies of values that Redis returned as
// hits, each tagged with the Redis tag ("<gen of all>.<gen of ns>") it was
// current at. It never decides freshness itself: Books serves a copy only
// after a check (see checker) that began after the read did has found the
// tag still current in Redis. Values loaded from the store never enter it,
// only what Redis confirmed.
//
// A copy expires when its Redis entry would (the entry's remaining TTL at
// the hit), so the layer never outlives the safety net behind the
// generations. The layer is capped: when full, storing a new copy evicts
// the first entry of the first namespace a map range yields, which Go
// randomises: approximately random, O(1), no bookkeeping on the hit path.
// (It favours evicting books over list pages a little, since all pages
// share the one namespace "list".) Copies are grouped by namespace so that
// an invalidation drops a whole namespace at once.
type localLayer struct {
	max int
	now func() time.Time

	mu   sync.RWMutex
	n    int
	byNS map[string]map[string]localEntry
}

// localEntry is one copy. v is never modified after put.
type localEntry struct {
	tag     string
	expires time.Time
	v       any
}

func newLocalLayer(max int, now func() time.Time) *localLayer {
	return &localLayer{max: max, now: now, byNS: make(map[string]map[string]localEntry)}
}

// get returns the unexpired copy of ns/key.
func (l *localLayer) get(ns, key string) (localEntry, bool) {
	l.mu.RLock()
	e, ok := l.byNS[ns][key]
	l.mu.RUnlock()
	if !ok || !l.now().Before(e.expires) {
		return localEntry{}, false
	}
	return e, true
}

// put stores a copy of a Redis hit.
func (l *localLayer) put(ns, key string, e localEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.byNS[ns]
	if _, ok := m[key]; !ok {
		if l.n >= l.max {
			l.evictLocked()
			m = l.byNS[ns] // the eviction may have emptied and removed it
		}
		l.n++
	}
	if m == nil {
		m = make(map[string]localEntry, 1)
		l.byNS[ns] = m
	}
	m[key] = e
}

func (l *localLayer) evictLocked() {
	for ns, m := range l.byNS {
		for key := range m {
			l.deleteLocked(ns, m, key)
			return
		}
	}
}

func (l *localLayer) deleteLocked(ns string, m map[string]localEntry, key string) {
	delete(m, key)
	l.n--
	if len(m) == 0 {
		delete(l.byNS, ns)
	}
}

// dropStale deletes the copy of ns/key if it still carries tag: a reader
// found tag stale, and a fresher copy another reader stored meanwhile
// stays.
func (l *localLayer) dropStale(ns, key, tag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := l.byNS[ns]; m != nil {
		if e, ok := m[key]; ok && e.tag == tag {
			l.deleteLocked(ns, m, key)
		}
	}
}

// drop deletes every copy in nss; nsAll deletes everything. It saves the
// next reads a check that would fail anyway; correctness does not rest on
// it.
func (l *localLayer) drop(nss []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ns := range nss {
		if ns == nsAll {
			clear(l.byNS)
			l.n = 0
			return
		}
		l.n -= len(l.byNS[ns])
		delete(l.byNS, ns)
	}
}

// len is the number of copies held.
func (l *localLayer) len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.n
}
