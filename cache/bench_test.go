package cache_test

import (
	"testing"

	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/store"
)

// benchSetup returns a cache over a store holding 20 books.
func benchSetup(b *testing.B, bc backendCase) (*cache.Books, *store.Store, []int64) {
	b.Helper()
	c, st, ids, _ := benchSetupCounted(b, bc)
	return c, st, ids
}

// benchSetupCounted is benchSetup that also counts the Redis commands the
// cache sends (nil without Redis).
func benchSetupCounted(b *testing.B, bc backendCase) (*cache.Books, *store.Store, []int64, *cmdCounter) {
	b.Helper()
	st := openStore(b)
	o := bc.opts(b)
	var cmds *cmdCounter
	if o.Redis != nil {
		cmds = &cmdCounter{}
		o.Redis.AddHook(cmds)
	}
	c := newBooks(b, st, o)
	var ids []int64
	for i := range 20 {
		bk := sampleBook(i % 6)
		bk.ISBN = "" // unique ISBNs are not the point here
		ids = append(ids, mustCreate(b, st, bk).ID)
	}
	return c, st, ids, cmds
}

// reportCmds reports the Redis commands per read since start.
func reportCmds(b *testing.B, cmds *cmdCounter, start int64) {
	b.Helper()
	if cmds != nil {
		b.ReportMetric(float64(cmds.count()-start)/float64(b.N), "redis-cmds/read")
	}
}

// benchHitParallel measures cached reads from GOMAXPROCS×32 goroutines
// (64 on two cores, like the 64 connections of the wrk runs in
// loadtest/RESULTS.md): the case the local layer's batched checks are for.
// redis-cmds/read is what one read costs Redis.
func benchHitParallel(b *testing.B, read func(c *cache.Books, ids []int64) error) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			c, _, ids, cmds := benchSetupCounted(b, bc)
			for range 3 { // a miss, a Redis hit, a local hit
				if err := read(c, ids); err != nil {
					b.Fatal(err)
				}
			}
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			start := cmds.count()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := read(c, ids); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportCmds(b, cmds, start)
		})
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	ctx := testCtx(b)
	benchHitParallel(b, func(c *cache.Books, ids []int64) error {
		_, err := c.Get(ctx, ids[0])
		return err
	})
}

func BenchmarkListHitParallel(b *testing.B) {
	ctx := testCtx(b)
	benchHitParallel(b, func(c *cache.Books, _ []int64) error {
		_, err := c.List(ctx, store.ListOptions{})
		return err
	})
}

func BenchmarkGetHit(b *testing.B) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			c, _, ids, cmds := benchSetupCounted(b, bc)
			ctx := testCtx(b)
			for range 3 { // a miss, a Redis hit, a local hit
				if _, err := c.Get(ctx, ids[0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			start := cmds.count()
			for b.Loop() {
				if _, err := c.Get(ctx, ids[0]); err != nil {
					b.Fatal(err)
				}
			}
			reportCmds(b, cmds, start)
		})
	}
}

func BenchmarkListHit(b *testing.B) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			c, _, _, cmds := benchSetupCounted(b, bc)
			ctx := testCtx(b)
			for range 3 {
				if _, err := c.List(ctx, store.ListOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			start := cmds.count()
			for b.Loop() {
				if _, err := c.List(ctx, store.ListOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			reportCmds(b, cmds, start)
		})
	}
}

// BenchmarkGetMiss measures Invalidate followed by a Get that misses,
// reads the store and stores the value.
func BenchmarkGetMiss(b *testing.B) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			c, _, ids := benchSetup(b, bc)
			ctx := testCtx(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Invalidate(ctx, ids[0]); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Get(ctx, ids[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStore is the baseline: the same reads without a cache (SQLite).
func BenchmarkStore(b *testing.B) {
	c, st, ids := benchSetup(b, backends[0])
	_ = c
	ctx := testCtx(b)
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Get(ctx, ids[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("List", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.List(ctx, store.ListOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRedisPing is the floor of a Redis hit: one round trip.
func BenchmarkRedisPing(b *testing.B) {
	o := sharedRedisOptions(b)
	ctx := testCtx(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := o.Redis.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
