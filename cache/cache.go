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
// instance). With Redis, generations and entries live in Redis only (keys
// of redisconn.Keys, under the "{cache}" hash tag), and there is no
// in-process layer in front: a write acknowledged on instance A has bumped
// the generations in Redis, so a read on instance B right after misses
// and reads the store (read-your-writes across instances). Each lookup,
// conditional store and bump is one round trip (a Lua script). Entries
// expire after Options.TTL as a safety net.
//
// # Redis failures
//
// Every Redis call has its own timeout (Options.OpTimeout). After a
// failure a breaker opens for Options.BreakerCooldown: reads go straight to
// the store and nothing is stored, so requests do not wait on a dead Redis
// one after another. A write whose bump fails still succeeds; the failed
// bump is remembered and re-applied before this instance uses the cache
// again, and until it succeeds the cache stays bypassed here. Residual
// risk: another instance that can reach Redis while this one cannot keeps
// serving what was cached before this instance's write, until the bump is
// re-applied, the entry's TTL ends, or the write's change event reaches
// that instance (the caller passes every committed change to Invalidate).
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
)

// Operations reported to Observer.Error.
const (
	OpLookup     = "lookup"
	OpStore      = "store"
	OpInvalidate = "invalidate"
)

// Observer receives cache events for metrics. Its methods are called
// concurrently and must not block. layer is LayerMemory or LayerRedis.
type Observer interface {
	// Hit counts a read served from the cache.
	Hit(layer string)
	// Miss counts a read that went to the store, including reads that
	// bypassed the cache while the breaker was open.
	Miss(layer string)
	// Invalidation counts one bump (of one or more namespaces).
	Invalidation(layer string)
	// Error counts a failed backend operation (OpLookup, OpStore,
	// OpInvalidate).
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
	// (past the cap all are dropped, which invalidates everything).
	// Default DefaultMaxEntries.
	MaxEntries int
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
	if o.Redis != nil {
		be = newRedisBackend(o.Redis, o.Keys, o.TTL)
	} else {
		be = newMemoryBackend(o.MaxEntries, o.TTL, o.Now)
	}
	return &Books{
		next: next,
		be:   be,
		obs:  o.Observer,
		brk:  newBreaker(be, o, o.Logger.With("component", "cache", "layer", be.layer())),
	}, nil
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

// read serves ns/key from the cache or loads it, once per generation for
// concurrent misses, and stores it if the generation has not moved.
func (c *Books) read(ctx context.Context, ns, key string, load func(context.Context) (any, error)) (any, error) {
	layer := c.be.layer()
	if !c.brk.usable(ctx) {
		c.obs.Miss(layer)
		return load(ctx)
	}
	octx, cancel := c.brk.opCtx(ctx)
	v, gen, ok, err := c.be.lookup(octx, ns, key)
	cancel()
	if err != nil {
		c.brk.fail(ctx, OpLookup, err)
		c.obs.Miss(layer)
		return load(ctx)
	}
	if ok {
		c.obs.Hit(layer)
		return v, nil
	}
	c.obs.Miss(layer)
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
func (c *Books) bump(ctx context.Context, nss ...string) error {
	ctx = context.WithoutCancel(ctx)
	return c.brk.bump(ctx, nss)
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
