package cache_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/redisconn"
	"github.com/bookhub/bookhub/store"
)

// testCtx returns a context that ends before the test's own deadline.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens a fresh SQLite store in a temporary folder.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	return openStoreURL(t, filepath.Join(t.TempDir(), "books.db"))
}

// drivers are the databases a test may run on.
var drivers = []struct {
	name string
	url  func(t testing.TB) string
}{
	{"SQLite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "books.db") }},
	{"MySQL", testenv.MySQL},
}

// openStoreURL opens the store at url.
func openStoreURL(t testing.TB, url string) *store.Store {
	t.Helper()
	st, err := store.Open(testCtx(t), store.Options{
		URL:    url,
		Logger: slog.New(slog.DiscardHandler),
		Origin: "test-instance",
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openRedis connects to url and deletes keys' prefix at the end.
func openRedis(t testing.TB, url string, keys redisconn.Keys) *redisconn.Client {
	t.Helper()
	c, err := redisconn.Open(url, redisconn.Options{DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, keys.Prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		_ = iter.Err() // a stopped private server has nothing to clean
	})
	return c
}

// sharedRedisOptions returns Options on the shared test Redis under a
// prefix of this test's own.
func sharedRedisOptions(t testing.TB) cache.Options {
	t.Helper()
	keys := redisconn.Keys{Prefix: testenv.Prefix(t)}
	return cache.Options{Redis: openRedis(t, testenv.Redis(t), keys), Keys: keys}
}

// backendCase names a way to configure the cache.
type backendCase struct {
	name string
	opts func(t testing.TB) cache.Options
}

// backends: "Redis" has the local layer in front, as by default.
var backends = []backendCase{
	{"Memory", func(testing.TB) cache.Options { return cache.Options{} }},
	{"Redis", sharedRedisOptions},
	{"RedisNoLocal", func(t testing.TB) cache.Options {
		o := sharedRedisOptions(t)
		o.NoLocal = true
		return o
	}},
}

func newBooks(t testing.TB, next cache.Store, o cache.Options) *cache.Books {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := cache.New(next, o)
	if err != nil {
		t.Fatalf("cache.New: %v", err)
	}
	return c
}

// counting wraps the real store, counts reads and can hold one read after
// it read the database, until the test releases it.
type counting struct {
	cache.Store
	gets, lists atomic.Int64

	mu   sync.Mutex
	hold *hold // next read to hold, if any
}

// hold is one held read: read is closed once the store was read, release
// lets it return.
type hold struct {
	read    chan struct{}
	release chan struct{}
}

func newCounting(st cache.Store) *counting { return &counting{Store: st} }

// holdNext arms a hold for the next Get or List.
func (c *counting) holdNext() *hold {
	h := &hold{read: make(chan struct{}), release: make(chan struct{})}
	c.mu.Lock()
	c.hold = h
	c.mu.Unlock()
	return h
}

func (c *counting) wait() {
	c.mu.Lock()
	h := c.hold
	c.hold = nil
	c.mu.Unlock()
	if h != nil {
		close(h.read)
		<-h.release
	}
}

func (c *counting) Get(ctx context.Context, id int64) (store.Book, error) {
	c.gets.Add(1)
	b, err := c.Store.Get(ctx, id)
	c.wait()
	return b, err
}

func (c *counting) List(ctx context.Context, o store.ListOptions) (store.Page, error) {
	c.lists.Add(1)
	p, err := c.Store.List(ctx, o)
	c.wait()
	return p, err
}

// observer counts what the cache reports. hits and misses are those of
// the backend (a miss went to the store); the local layer's are apart.
type observer struct {
	hits, misses, invalidations, errors atomic.Int64
	localHits, localMisses, checkErrors atomic.Int64
}

func (o *observer) Hit(layer string) {
	if layer == cache.LayerLocal {
		o.localHits.Add(1)
		return
	}
	o.hits.Add(1)
}

func (o *observer) Miss(layer string) {
	if layer == cache.LayerLocal {
		o.localMisses.Add(1)
		return
	}
	o.misses.Add(1)
}

// served counts the reads served from any layer.
func (o *observer) served() int64 { return o.hits.Load() + o.localHits.Load() }

func (o *observer) Invalidation(string) { o.invalidations.Add(1) }

func (o *observer) Error(_, op string) {
	if op == cache.OpCheck {
		o.checkErrors.Add(1)
	}
	o.errors.Add(1)
}

func newClock() *testenv.Clock { return testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

// sampleBook has every field set, so round trips are checked in full.
func sampleBook(n int) store.Book {
	isbns := []string{"9780262033848", "9780131103627", "9780201633610", "9780596007126", "9781491950357", "9780134190440"}
	return store.Book{
		Title:      "Title " + string(rune('A'+n)),
		Author:     "Author " + string(rune('A'+n%3)),
		ISBN:       isbns[n%len(isbns)],
		PriceCents: int64(1000 + n*7),
		Stock:      int64(n),
		CostCents:  int64(400 + n),
		Supplier:   "Supplier ünïcode " + string(rune('a'+n)),
	}
}

func mustCreate(t testing.TB, s cache.Store, b store.Book) store.Book {
	t.Helper()
	got, err := s.Create(testCtx(t), b)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return got
}

// cmdCounter is a go-redis hook counting the commands a client sends.
type cmdCounter struct{ n atomic.Int64 }

// count is the commands sent so far; 0 for a nil counter (no Redis).
func (c *cmdCounter) count() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
