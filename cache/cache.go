// Package cache is a read cache in front of the book store. Books wraps a
// Store, serves Get and List from the cache and passes everything else
// through; it has the same method set as rest.BookStore, so the REST layer
// takes it unchanged.
//
// # Correctness: generations
//
// Every cached value lives in a namespace: "book:<id>" for Get(id), "list"
// for every List page (a page depends on every book). Each namespace has a
// generation, and all of them share the generation "all". A write (Create,
// Update, Delete, Invalidate) bumps "list" and "book:<id>" before it
// returns, so a write is acknowledged only after its invalidation. A reader
// captures the generations of its entry's namespace, reads the store on a
// miss, and stores the value tagged with them only if they are still
// current: a reader that read the database before a concurrent write can
// never store its stale value after the write's invalidation. A lookup
// returns an entry only if its tag equals the current generations, so even
// a value stored late could never be served; the store's condition keeps
// such a value from displacing a current entry. Generations never repeat
// (see generationTTL for Redis losing its data), which is what makes a
// tag comparison sufficient. Errors (store.ErrNotFound included) are never
// cached.
//
// Concurrent misses of one entry at one generation load it once
// (singleflight). Callers joining a load share its result; since they saw
// the same generation, the load started after every write they may know
// of.
//
// # Backends
//
// Without Options.Redis the cache is an in-process map (for one embedded
// instance). With Redis, generations and entries live in Redis (keys of
// redisconn.Keys, under the "{cache}" hash tag), shared by every instance,
// with a local layer in front (below). Each lookup, conditional store,
// bump and check is one round trip (a Lua script). Entries expire after
// Options.TTL as a safety net.
//
// # Local layer
//
// In front of Redis each instance keeps copies of values Redis returned as
// hits (never of values it loaded from the store: only what Redis
// confirmed as current), tagged with the generations they were current at,
// at most Options.MaxEntries of them, each expiring with its Redis entry at
// the latest. A copy is served only after a freshness check that started
// after the read began: one script that returns the current generations of
// a set of namespaces. If the copy's namespace is still at its tag, the
// copy is served; otherwise it is dropped and the read is a Redis lookup.
//
// Why that keeps read-your-writes across instances: a write on any
// instance bumps its generations in Redis before it is acknowledged. A
// read that begins after that acknowledgement is served from a copy only
// after a check that began later still, so the check sees the bump (or a
// later one) and the copy's tag, from before the bump, is stale.
// Generations never repeat, so no older tag can match again. Hence the
// batching rule: at most one check is in flight per Books, and a reader
// arriving while one is in flight never joins it (it may have read the
// generations before a write the reader knows of was acknowledged); it
// waits for the next check, which starts when the one in flight ends and
// carries every namespace queued meanwhile (up to 256). A check that fails
// or times out (Options.OpTimeout) serves nothing: its readers take the
// normal path, and the failure counts for the breaker like any other.
//
// Why it is faster: under concurrency one check serves many readers, and
// a check transfers a few generations instead of an entry to decode. A
// lone reader still pays a round trip, just a cheaper one. Options.NoLocal
// turns the layer off. Changes this instance writes or learns of (bump,
// Invalidate) drop the local copies they make stale at once, which saves
// a check; correctness rests on the check alone.
//
// # Redis failures
//
// Every Redis call has its own timeout (Options.OpTimeout). After a
// failure a breaker opens for Options.BreakerCooldown: reads go straight to
// the store and nothing is stored, so requests do not wait on a dead Redis
// one after another. A write whose bump fails still succeeds; the failed
// bump is remembered and re-applied before this instance uses the cache
// again, and until it succeeds the cache stays bypassed here (the local
// layer included: its copies may predate the pending bumps). Residual
// risk: another instance that can reach Redis while this one cannot keeps
// serving what was cached before this instance's write, until the bump is
// re-applied, the entry's TTL ends (a local copy dies with its entry), or
// the write's change event reaches that instance (the caller passes every
// committed change to Invalidate).
// When too many bumps are pending, they are replaced by one bump of "all".
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/bookhub/bookhub/redisconn"
	"github.com/bookhub/bookhub/store"
)

// Store is what Books wraps and what it provides: the method set of
// rest.BookStore (declared again here so that cache does not import rest).
// *store.Store satisfies it.
type Store interface {
	Create(ctx context.Context, b store.Book) (store.Book, error)
	Get(ctx context.Context, id int64) (store.Book, error)
	Update(ctx context.Context, id int64, ifVersion int64, apply func(*store.Book) error) (store.Book, error)
	Delete(ctx context.Context, id int64, ifVersion int64) (store.Book, error)
	List(ctx context.Context, opts store.ListOptions) (store.Page, error)
	Ping(ctx context.Context) error
	Epoch() string
}

var _ Store = (*store.Store)(nil)

// Layers reported to an Observer.
const (
	LayerMemory = "memory"
	LayerRedis  = "redis"
	// LayerLocal is the in-process layer in front of Redis.
	LayerLocal = "local"
)

// Operations reported to Observer.Error.
const (
	OpLookup     = "lookup"
	OpStore      = "store"
	OpInvalidate = "invalidate"
	// OpCheck is the freshness check of the local layer (a Redis call).
	OpCheck = "check"
)

// Observer receives cache events for metrics. Its methods are called
// concurrently and must not block. layer is LayerMemory, LayerRedis or
// LayerLocal.
type Observer interface {
	// Hit counts a read served from the cache layer.
	Hit(layer string)
	// Miss counts a read the layer could not serve. For LayerMemory and
	// LayerRedis it went to the store (reads that bypassed the cache while
	// the breaker was open included); for LayerLocal it went on to Redis,
	// and is counted there again as a hit or a miss.
	Miss(layer string)
	// Invalidation counts one bump (of one or more namespaces).
	Invalidation(layer string)
	// Error counts a failed backend operation (OpLookup, OpStore,
	// OpInvalidate, OpCheck).
	Error(layer, op string)
}

// Defaults for zero Options fields.
const (
	DefaultTTL             = 60 * time.Second
	DefaultOpTimeout       = 100 * time.Millisecond
	DefaultBreakerCooldown = time.Second
	DefaultMaxEntries      = 10000
)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Redis, when set, shares the cache between instances; nil keeps it in
	// process. The client is the caller's; Books never closes it.
	Redis redis.UniversalClient
	// Keys names the Redis keys (redisconn.Keys.CacheGeneration and
	// CacheEntry).
	Keys redisconn.Keys
	// TTL bounds how long an entry lives, as a safety net behind the
	// generations. Default DefaultTTL.
	TTL time.Duration
	// MaxEntries caps the in-process cache: its entries (a full cache
	// evicts an approximately random one) and its per-book generations
	// (past the cap all are dropped, which invalidates everything). With
	// Redis it caps the local layer's copies the same way. Default
	// DefaultMaxEntries.
	MaxEntries int
	// NoLocal turns off the local layer in front of Redis (see "Local
	// layer" in the package doc), so that every read is a Redis lookup.
	// Without Redis it has no effect.
	NoLocal bool
	// OpTimeout bounds one Redis call. Default DefaultOpTimeout.
	OpTimeout time.Duration
	// BreakerCooldown is how long reads bypass Redis after it failed.
	// Default DefaultBreakerCooldown.
	BreakerCooldown time.Duration
	// Observer receives hits, misses, invalidations and errors; nil = none.
	Observer Observer
	// Logger reports Redis failures (at most once per cooldown); nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock of the breaker; nil means time.Now. For tests.
	Now func() time.Time
}

// Books is a Store that caches Get and List of the Store it wraps. It is
// safe for concurrent use.
type Books struct {
	next    Store
	be      backend
	obs     Observer
	brk     *breaker
	flights singleflight.Group
	// local and check are the local layer in front of Redis; nil without
	// Redis or with Options.NoLocal.
	local *localLayer
	check *checker
	// joined, when set (by tests only), is called once a miss has joined
	// or started its load, so a test can wait for every caller to be in.
	joined func()
}

var _ Store = (*Books)(nil)

// New returns a cache in front of next.
func New(next Store, o Options) (*Books, error) {
	if next == nil {
		return nil, errors.New("cache: nil store")
	}
	if o.TTL < 0 || o.OpTimeout < 0 || o.BreakerCooldown < 0 || o.MaxEntries < 0 {
		return nil, errors.New("cache: negative option")
	}
	if err := o.Keys.Validate(); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	o.TTL = orDefault(o.TTL, DefaultTTL)
	o.OpTimeout = orDefault(o.OpTimeout, DefaultOpTimeout)
	o.BreakerCooldown = orDefault(o.BreakerCooldown, DefaultBreakerCooldown)
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	var be backend
	var rb *redisBackend
	if o.Redis != nil {
		rb = newRedisBackend(o.Redis, o.Keys, o.TTL)
		be = rb
	} else {
		be = newMemoryBackend(o.MaxEntries, o.TTL, o.Now)
	}
	c := &Books{
		next: next,
		be:   be,
		obs:  o.Observer,
		brk:  newBreaker(be, o, o.Logger.With("component", "cache", "layer", be.layer())),
	}
	if rb != nil && !o.NoLocal {
		c.local = newLocalLayer(o.MaxEntries, o.Now)
		c.check = &checker{
			run:     rb.generations,
			fail:    func(ctx context.Context, err error) { c.brk.fail(ctx, OpCheck, err) },
			timeout: o.OpTimeout,
		}
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Namespaces.
const (
	nsAll  = "all"
	nsList = "list"
)

func bookNS(id int64) string { return "book:" + strconv.FormatInt(id, 10) }

// Get returns the book from the cache or, on a miss, from the store.
func (c *Books) Get(ctx context.Context, id int64) (store.Book, error) {
	v, err := c.read(ctx, bookNS(id), "", func(ctx context.Context) (any, error) {
		return c.next.Get(ctx, id)
	})
	if err != nil {
		return store.Book{}, err
	}
	return v.(store.Book), nil
}

// List returns the page from the cache or, on a miss, from the store. The
// whole page is cached, NextCursor and Position included, under a
// canonical encoding of opts.
func (c *Books) List(ctx context.Context, opts store.ListOptions) (store.Page, error) {
	v, err := c.read(ctx, nsList, listKey(opts), func(ctx context.Context) (any, error) {
		return c.next.List(ctx, opts)
	})
	if err != nil {
		return store.Page{}, err
	}
	p := v.(store.Page)
	// The cached page and its concurrent readers share the backing array.
	p.Books = slices.Clone(p.Books)
	return p, nil
}

// read serves ns/key from the local layer, the backend or the store: see
// readLocal and lookup.
func (c *Books) read(ctx context.Context, ns, key string, load func(context.Context) (any, error)) (any, error) {
	if !c.brk.usable(ctx) {
		c.obs.Miss(c.be.layer())
		return load(ctx)
	}
	if c.local != nil {
		v, ok, err := c.readLocal(ctx, ns, key)
		if ok {
			return v, nil
		}
		if err != nil && !c.brk.usable(ctx) { // the check opened the breaker
			c.obs.Miss(c.be.layer())
			return load(ctx)
		}
	}
	return c.lookup(ctx, ns, key, load)
}

// readLocal serves the local copy of ns/key if a check that started after
// this call finds its tag current. A stale copy is dropped; a failed check
// (already counted and reported to the breaker) serves nothing and returns
// its error.
func (c *Books) readLocal(ctx context.Context, ns, key string) (any, bool, error) {
	e, ok := c.local.get(ns, key)
	if !ok {
		c.obs.Miss(LayerLocal)
		return nil, false, nil
	}
	tag, err := c.check.current(ctx, ns)
	if err != nil {
		c.obs.Miss(LayerLocal)
		return nil, false, err
	}
	if tag != e.tag {
		c.local.dropStale(ns, key, e.tag)
		c.obs.Miss(LayerLocal)
		return nil, false, nil
	}
	c.obs.Hit(LayerLocal)
	return e.v, true, nil
}

// lookup serves ns/key from the backend or loads it, once per generation
// for concurrent misses, and stores it if the generation has not moved. A
// backend hit is copied into the local layer.
func (c *Books) lookup(ctx context.Context, ns, key string, load func(context.Context) (any, error)) (any, error) {
	layer := c.be.layer()
	var start time.Time
	if c.local != nil {
		start = c.local.now()
	}
	octx, cancel := c.brk.opCtx(ctx)
	f, err := c.be.lookup(octx, ns, key)
	cancel()
	if err != nil {
		c.brk.fail(ctx, OpLookup, err)
		c.obs.Miss(layer)
		return load(ctx)
	}
	if f.ok {
		c.obs.Hit(layer)
		if c.local != nil && f.ttl > 0 {
			// The entry's remaining TTL counted from before the call: the
			// copy dies no later than the entry.
			c.local.put(ns, key, localEntry{tag: f.gen, expires: start.Add(f.ttl), v: f.v})
		}
		return f.v, nil
	}
	c.obs.Miss(layer)
	gen := f.gen
	ch := c.flights.DoChan(ns+"\x00"+key+"\x00"+gen, func() (any, error) {
		v, err := load(ctx)
		if err != nil {
			return nil, err
		}
		octx, cancel := c.brk.opCtx(ctx)
		defer cancel()
		if err := c.be.store(octx, ns, key, gen, v); err != nil {
			c.brk.fail(ctx, OpStore, err)
		}
		return v, nil
	})
	if c.joined != nil {
		c.joined()
	}
	select {
	case r := <-ch:
		if r.Err != nil && r.Shared && ctx.Err() == nil && isContextErr(r.Err) {
			// The caller that led the flight gave up; this one has not.
			return load(ctx)
		}
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, fmt.Errorf("cache: wait for load of %s: %w", ns, ctx.Err())
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Writes wait for their invalidation, at most Options.OpTimeout (a frozen
// Redis costs each write that much; a failed bump does not fail the write).

// Create creates the book, then invalidates "list" and the new book.
// When the store fails, "list" is invalidated all the same: the write may
// have been committed.
func (c *Books) Create(ctx context.Context, b store.Book) (store.Book, error) {
	nb, err := c.next.Create(ctx, b)
	if err != nil {
		c.afterWrite(ctx, nsList)
		return nb, err
	}
	c.afterWrite(ctx, nsList, bookNS(nb.ID))
	return nb, nil
}

// Update updates the book, then invalidates "list" and the book, whatever
// the store answered (an error may follow a commit).
func (c *Books) Update(ctx context.Context, id int64, ifVersion int64, apply func(*store.Book) error) (store.Book, error) {
	b, err := c.next.Update(ctx, id, ifVersion, apply)
	c.afterWrite(ctx, nsList, bookNS(id))
	return b, err
}

// Delete deletes the book, then invalidates "list" and the book, whatever
// the store answered.
func (c *Books) Delete(ctx context.Context, id int64, ifVersion int64) (store.Book, error) {
	b, err := c.next.Delete(ctx, id, ifVersion)
	c.afterWrite(ctx, nsList, bookNS(id))
	return b, err
}

// afterWrite invalidates after a write. Its error is dropped on purpose:
// bump has already remembered the namespaces for a retry before the cache
// is used again, and counted the failure; a committed write must not fail
// because its cache could not be told.
func (c *Books) afterWrite(ctx context.Context, nss ...string) {
	_ = c.bump(ctx, nss...)
}

// Invalidate bumps "list" and "book:<bookID>". The caller passes it every
// committed change this instance learns of (from the event bus), so that
// changes made elsewhere invalidate too once their event arrives. A failed
// bump is remembered and re-applied before the cache is used again; the
// error is for logs and metrics.
func (c *Books) Invalidate(ctx context.Context, bookID int64) error {
	if err := c.bump(ctx, nsList, bookNS(bookID)); err != nil {
		return fmt.Errorf("cache: invalidate book %d: %w", bookID, err)
	}
	return nil
}

// bump invalidates nss, or remembers them when the backend fails. It is
// applied even when ctx is done: a write that committed must invalidate.
// Local copies of nss are dropped after the bump, whatever its outcome:
// they would fail their next check anyway (or, with the bump pending, not
// be consulted until it is re-applied).
func (c *Books) bump(ctx context.Context, nss ...string) error {
	ctx = context.WithoutCancel(ctx)
	err := c.brk.bump(ctx, nss)
	if c.local != nil {
		c.local.drop(nss)
	}
	return err
}

// Ping passes through to the store.
func (c *Books) Ping(ctx context.Context) error { return c.next.Ping(ctx) }

// Epoch passes through to the store.
func (c *Books) Epoch() string { return c.next.Epoch() }

type nopObserver struct{}

func (nopObserver) Hit(string)           {}
func (nopObserver) Miss(string)          {}
func (nopObserver) Invalidation(string)  {}
func (nopObserver) Error(string, string) {}
