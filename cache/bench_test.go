package cache_test

import (
	"testing"

	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/store"
)

// benchSetup returns a cache over a store holding 20 books.
func benchSetup(b *testing.B, bc backendCase) (*cache.Books, *store.Store, []int64) {
	b.Helper()
	st := openStore(b)
	c := newBooks(b, st, bc.opts(b))
	var ids []int64
	for i := range 20 {
		bk := sampleBook(i % 6)
		bk.ISBN = "" // unique ISBNs are not the point here
		ids = append(ids, mustCreate(b, st, bk).ID)
	}
	return c, st, ids
}

func BenchmarkGetHit(b *testing.B) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			c, _, ids := benchSetup(b, bc)
			ctx := testCtx(b)
			if _, err := c.Get(ctx, ids[0]); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(ctx, ids[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkListHit(b *testing.B) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			c, _, _ := benchSetup(b, bc)
			ctx := testCtx(b)
			if _, err := c.List(ctx, store.ListOptions{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.List(ctx, store.ListOptions{}); err != nil {
					b.Fatal(err)
				}
			}
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
