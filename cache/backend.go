package cache

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// backend keeps generations and tagged entries. gen is opaque to Books: a
// lookup that misses returns the current generation of the entry's
// namespace, and store stores the value only if it is still current.
// Values are store.Book or store.Page and are never modified after store.
type backend interface {
	// lookup returns the entry of ns/key if its tag is current; otherwise
	// ok is false and gen is the generation to pass to store.
	lookup(ctx context.Context, ns, key string) (found, error)
	// store sets ns/key to v tagged with gen, unless gen is no longer
	// current (then it does nothing and reports no error).
	store(ctx context.Context, ns, key, gen string, v any) error
	// bump gives every namespace of nss a generation it never had; nsAll
	// invalidates every namespace.
	bump(ctx context.Context, nss []string) error
	// layer is LayerMemory or LayerRedis.
	layer() string
}

// found is the answer of a lookup.
type found struct {
	// v is the value of a hit.
	v any
	// gen is the current generation (tag) of the namespace: on a miss the
	// one to pass to store, on a hit the entry's own.
	gen string
	// ttl is what remains of a hit's life; 0 when unknown.
	ttl time.Duration
	ok  bool
}

// memoryBackend is the in-process backend, for a single instance.
//
// Generations come from one counter, so no namespace ever gets a value
// twice. A namespace without an entry in gens is at generation base. When
// gens outgrows its cap (one entry per book ever written), or on a bump of
// "all", everything is dropped and base takes a fresh value, which turns
// every existing tag stale at once.
//
// Eviction: when the map is full, storing a new entry deletes the first
// key a map range yields, which Go randomises: approximately random
// eviction, O(1), with no bookkeeping on the hit path. Entries also expire
// after the TTL.
type memoryBackend struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu      sync.RWMutex
	next    uint64
	base    uint64
	gens    map[string]uint64
	entries map[entryKey]memEntry
}

type entryKey struct{ ns, key string }

type memEntry struct {
	gen     uint64
	expires time.Time
	v       any
}

func newMemoryBackend(max int, ttl time.Duration, now func() time.Time) *memoryBackend {
	return &memoryBackend{
		max:     max,
		ttl:     ttl,
		now:     now,
		next:    1,
		base:    1,
		gens:    make(map[string]uint64),
		entries: make(map[entryKey]memEntry),
	}
}

func (m *memoryBackend) layer() string { return LayerMemory }

// genLocked is the current generation of ns.
func (m *memoryBackend) genLocked(ns string) uint64 {
	if g, ok := m.gens[ns]; ok {
		return g
	}
	return m.base
}

func (m *memoryBackend) lookup(_ context.Context, ns, key string) (found, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	g := m.genLocked(ns)
	if e, ok := m.entries[entryKey{ns, key}]; ok && e.gen == g && m.now().Before(e.expires) {
		return found{v: e.v, ok: true}, nil // gen and ttl: no local layer to tell
	}
	return found{gen: strconv.FormatUint(g, 10)}, nil
}

func (m *memoryBackend) store(_ context.Context, ns, key, gen string, v any) error {
	g, err := strconv.ParseUint(gen, 10, 64)
	if err != nil {
		return nil // not a generation this backend handed out: never current
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.genLocked(ns) != g {
		return nil
	}
	k := entryKey{ns, key}
	if _, ok := m.entries[k]; !ok && len(m.entries) >= m.max {
		for victim := range m.entries {
			delete(m.entries, victim)
			break
		}
	}
	m.entries[k] = memEntry{gen: g, expires: m.now().Add(m.ttl), v: v}
	return nil
}

func (m *memoryBackend) bump(_ context.Context, nss []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ns := range nss {
		m.next++
		if ns == nsAll {
			m.resetLocked()
			continue
		}
		m.gens[ns] = m.next
		if ns != nsList {
			delete(m.entries, entryKey{ns, ""}) // a book's only entry; free it now
		}
	}
	if len(m.gens) > m.max {
		m.next++
		m.resetLocked()
	}
	return nil
}

// resetLocked makes every tag stale; m.next must be fresh.
func (m *memoryBackend) resetLocked() {
	m.base = m.next
	clear(m.gens)
	clear(m.entries)
}
