package cache_test

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/redisconn"
	"github.com/bookhub/bookhub/store"
)

// TestReadYourWritesAcrossInstances: two instances share one Redis and one
// database; a write acknowledged on A is visible to a read on B right
// after, while other readers on B keep re-populating the cache, with B's
// local layer holding a copy from before the write (and without the
// layer).
func TestReadYourWritesAcrossInstances(t *testing.T) {
	for _, d := range drivers {
		for _, noLocal := range []bool{false, true} {
			name := d.name
			if noLocal {
				name += "/NoLocal"
			}
			t.Run(name, func(t *testing.T) {
				readYourWritesAcross(t, d.url(t), noLocal)
			})
		}
	}
}

func readYourWritesAcross(t *testing.T, url string, noLocal bool) {
	ctx := testCtx(t)
	st := openStoreURL(t, url)
	o := sharedRedisOptions(t)
	o.NoLocal = noLocal
	a := newBooks(t, st, o)
	bo := o
	bo.Redis = openRedis(t, testenv.Redis(t), o.Keys) // B has its own connections
	obs := &observer{}
	bo.Observer = obs
	b := newBooks(t, st, bo)
	book := mustCreate(t, a, sampleBook(1))

	// Background readers on B race with the writes to populate it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = b.Get(ctx, book.ID)
				_, _ = b.List(ctx, store.ListOptions{})
			}
		})
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	const iterations = 300
	for i := int64(1); i <= iterations; i++ {
		w, err := a.Update(ctx, book.ID, 0, func(x *store.Book) error { x.Stock = i; return nil })
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Get(ctx, book.ID)
		if err != nil || got.Version < w.Version || got.Stock != i {
			t.Fatalf("iteration %d: B.Get = stock %d version %d, %v; want at least version %d stock %d",
				i, got.Stock, got.Version, err, w.Version, i)
		}
		p, err := b.List(ctx, store.ListOptions{})
		if err != nil || len(p.Books) != 1 || p.Books[0].Version < w.Version {
			t.Fatalf("iteration %d: B.List = %+v, %v; want version %d", i, p, err, w.Version)
		}
		// Leave B a local copy of both, which the next write makes stale
		// (nothing tells B of it but Redis).
		for range 2 {
			_, _ = b.Get(ctx, book.ID)
			_, _ = b.List(ctx, store.ListOptions{})
		}
	}
	if h := obs.localHits.Load(); !noLocal && h < iterations {
		t.Errorf("%d local hits on B in %d iterations: the local layer was hardly used", h, iterations)
	}
}

// TestCacheOnOffIdentical: a sequence of writes and reads gives the same
// values through the cache as straight from the store.
func TestCacheOnOffIdentical(t *testing.T) {
	for _, d := range drivers {
		for _, bc := range backends {
			t.Run(d.name+"/"+bc.name, func(t *testing.T) {
				ctx := testCtx(t)
				st := openStoreURL(t, d.url(t))
				c := newBooks(t, st, bc.opts(t))
				var ids []int64
				check := func(step string) {
					t.Helper()
					for _, id := range append(ids, 9999) {
						want, werr := st.Get(ctx, id)
						for range 3 { // a miss, a hit, a local hit
							got, err := c.Get(ctx, id)
							if !reflect.DeepEqual(got, want) || !errors.Is(err, werr) && (err == nil) != (werr == nil) {
								t.Fatalf("%s: Get(%d) = %#v, %v; store %#v, %v", step, id, got, err, want, werr)
							}
						}
					}
					for _, o := range []store.ListOptions{{}, {Limit: 2, Sort: "-title"}, {Author: "author b"}, {Query: "itle", Sort: "updated_at"}} {
						want, err := st.List(ctx, o)
						if err != nil {
							t.Fatal(err)
						}
						for range 3 {
							got, err := c.List(ctx, o)
							if err != nil || !reflect.DeepEqual(got, want) {
								t.Fatalf("%s: List(%+v) = %#v, %v; store %#v", step, o, got, err, want)
							}
						}
					}
				}
				check("empty")
				for i := range 4 {
					ids = append(ids, mustCreate(t, c, sampleBook(i)).ID)
					check("create")
				}
				for _, id := range ids[:2] {
					if _, err := c.Update(ctx, id, 0, func(b *store.Book) error { b.Supplier = ""; b.ISBN = ""; b.Stock += 3; return nil }); err != nil {
						t.Fatal(err)
					}
					check("update")
				}
				if _, err := c.Delete(ctx, ids[3], 0); err != nil {
					t.Fatal(err)
				}
				check("delete")
			})
		}
	}
}

// privateRedis returns Options on a throwaway Redis the test may stop,
// with a settable breaker clock.
func privateRedis(t *testing.T, obs cache.Observer) (*testenv.RedisServer, cache.Options, *testenv.Clock) {
	t.Helper()
	srv := testenv.StartRedis(t)
	keys := redisconn.Keys{Prefix: testenv.Prefix(t)}
	clk := newClock()
	return srv, cache.Options{
		Redis:           openRedis(t, srv.URL(), keys),
		Keys:            keys,
		Observer:        obs,
		Now:             clk.Now,
		BreakerCooldown: time.Second,
	}, clk
}

// TestRedisOutage: while Redis is down reads come from the store, writes
// succeed, and after recovery nothing stale is served.
func TestRedisOutage(t *testing.T) {
	tests := []struct {
		name          string
		fail, recover func(*testenv.RedisServer)
	}{
		// A crash: connections are refused, and Redis comes back empty.
		{"Crash", (*testenv.RedisServer).Stop, (*testenv.RedisServer).Start},
		// A hang: calls time out, and Redis comes back with its old
		// entries, which only the re-applied bump invalidates.
		{"Freeze", (*testenv.RedisServer).Freeze, (*testenv.RedisServer).Thaw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			obs := &observer{}
			srv, o, clk := privateRedis(t, obs)
			cnt := newCounting(openStore(t))
			c := newBooks(t, cnt, o)
			b := mustCreate(t, c, sampleBook(1))
			if _, err := c.Get(ctx, b.ID); err != nil { // cached
				t.Fatal(err)
			}
			if _, err := c.List(ctx, store.ListOptions{}); err != nil {
				t.Fatal(err)
			}

			tt.fail(srv)
			// The first read finds Redis failing and reads the store.
			if got, err := c.Get(ctx, b.ID); err != nil || got.Version != b.Version {
				t.Fatalf("Get during outage = %v, %v", got, err)
			}
			errs := obs.errors.Load()
			if errs == 0 {
				t.Fatal("no backend error reported")
			}
			// Within the cooldown reads bypass Redis: no more errors, no wait.
			gets := cnt.gets.Load()
			start := time.Now()
			for range 20 {
				if _, err := c.Get(ctx, b.ID); err != nil {
					t.Fatal(err)
				}
			}
			if e := obs.errors.Load(); e != errs {
				t.Errorf("%d more backend errors while the breaker is open, want 0", e-errs)
			}
			if n := cnt.gets.Load() - gets; n != 20 {
				t.Errorf("%d store reads for 20 bypassed Gets", n)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("20 bypassed reads took %v: they waited on Redis", d)
			}
			// A write succeeds although its invalidation fails.
			w, err := c.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Stock = 42; return nil })
			if err != nil {
				t.Fatalf("Update during outage = %v, want success", err)
			}
			// Past the cooldown, with Redis still down: still the store.
			clk.Advance(2 * time.Second)
			if got, err := c.Get(ctx, b.ID); err != nil || got.Stock != 42 {
				t.Fatalf("Get after cooldown, Redis down = %v, %v", got, err)
			}

			tt.recover(srv)
			clk.Advance(2 * time.Second)
			for i := range 3 {
				got, err := c.Get(ctx, b.ID)
				if err != nil || !reflect.DeepEqual(got, w) {
					t.Fatalf("Get %d after recovery = %+v, %v; want the write %+v", i, got, err, w)
				}
				p, err := c.List(ctx, store.ListOptions{})
				if err != nil || len(p.Books) != 1 || p.Books[0].Stock != 42 {
					t.Fatalf("List %d after recovery = %+v, %v; want stock 42", i, p, err)
				}
			}
			// And the cache works again: the last reads were hits.
			hits := obs.served()
			if _, err := c.Get(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			if obs.served() != hits+1 {
				t.Error("Get after recovery was not served from the cache")
			}
		})
	}
}

// TestCanceledCallerDoesNotTrip: a read whose own context ends does not
// open the breaker for everyone else.
func TestCanceledCallerDoesNotTrip(t *testing.T) {
	ctx := testCtx(t)
	obs := &observer{}
	o := sharedRedisOptions(t)
	o.Observer = obs
	st := openStore(t)
	c := newBooks(t, st, o)
	b := mustCreate(t, c, sampleBook(1))
	dead, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(dead, b.ID); err == nil {
		t.Fatal("Get with a canceled context succeeded")
	}
	if _, err := c.Get(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if obs.served() != 1 {
		t.Errorf("hits = %d, want 1: the canceled read opened the breaker", obs.served())
	}
}

// TestPendingOverflowInvalidatesAll: when more failed bumps pile up than
// are remembered one by one, recovery invalidates everything. Redis here
// refuses writes (out of memory) but answers reads.
func TestPendingOverflowInvalidatesAll(t *testing.T) {
	ctx := testCtx(t)
	srv, o, clk := privateRedis(t, nil)
	admin := openRedis(t, srv.URL(), redisconn.Keys{Prefix: "admin-unused:"})
	st := openStore(t)
	c := newBooks(t, st, o)
	b := mustCreate(t, st, sampleBook(1))
	if _, err := c.Get(ctx, b.ID); err != nil { // cached
		t.Fatal(err)
	}
	// A change behind the cache's back, whose own event never arrives.
	nb, err := st.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Stock = 5; return nil })
	if err != nil {
		t.Fatal(err)
	}

	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	for id := int64(1000); id < 1000+1100; id++ { // other books
		if err := c.Invalidate(ctx, id); err == nil {
			t.Fatalf("Invalidate(%d) succeeded on a Redis that refuses writes", id)
		}
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if got, err := c.Get(ctx, b.ID); err != nil || !reflect.DeepEqual(got, nb) {
		t.Fatalf("Get after recovery = %+v, %v; want %+v: the overflow did not invalidate everything", got, err, nb)
	}
}

// TestCorruptEntryIsAMiss: an entry that does not decode (another
// version's encoding, a bug) is read from the store and replaced.
func TestCorruptEntryIsAMiss(t *testing.T) {
	ctx := testCtx(t)
	o := sharedRedisOptions(t)
	cnt := newCounting(openStore(t))
	c := newBooks(t, cnt, o)
	b := mustCreate(t, c, sampleBook(1))
	if _, err := c.Get(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	key := o.Keys.CacheEntry("book:"+strconv.FormatInt(b.ID, 10), "")
	raw, err := o.Redis.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	tag, _, _ := strings.Cut(raw, "|")
	if err := o.Redis.Set(ctx, key, tag+"|Bgarbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := c.Get(ctx, b.ID)
		if err != nil || got.ID != b.ID || got.Title != b.Title {
			t.Fatalf("Get over a corrupt entry = %+v, %v", got, err)
		}
	}
	if n := cnt.gets.Load(); n != 2 {
		t.Errorf("store Get called %d times, want 2 (the corrupt entry was replaced)", n)
	}
}
