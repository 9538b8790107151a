package cache_test

import (
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/redisconn"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

var _ rest.BookStore = (*cache.Books)(nil)

func TestNewRefuses(t *testing.T) {
	st := openStore(t)
	tests := []struct {
		name string
		next cache.Store
		o    cache.Options
	}{
		{"ErrNilStore", nil, cache.Options{}},
		{"ErrNegativeTTL", st, cache.Options{TTL: -1}},
		{"ErrNegativeOpTimeout", st, cache.Options{OpTimeout: -1}},
		{"ErrNegativeCooldown", st, cache.Options{BreakerCooldown: -1}},
		{"ErrNegativeMaxEntries", st, cache.Options{MaxEntries: -1}},
		{"ErrBadPrefix", st, cache.Options{Keys: redisconn.Keys{Prefix: "{x}"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := cache.New(tt.next, tt.o); err == nil {
				t.Fatalf("New = %v, want an error", c)
			}
		})
	}
}

func TestHitMissAndRoundTrip(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			ctx := testCtx(t)
			st := openStore(t)
			cnt := newCounting(st)
			obs := &observer{}
			o := bc.opts(t)
			o.Observer = obs
			c := newBooks(t, cnt, o)
			b := mustCreate(t, c, sampleBook(1))

			want, err := st.Get(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				got, err := c.Get(ctx, b.ID)
				if err != nil {
					t.Fatalf("get %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("get %d = %#v, want the store's %#v", i, got, want)
				}
			}
			if n := cnt.gets.Load(); n != 1 {
				t.Errorf("store Get called %d times, want 1", n)
			}
			if h, m := obs.served(), obs.misses.Load(); h != 2 || m != 1 {
				t.Errorf("hits %d misses %d, want 2 and 1", h, m)
			}

			wantPage, err := st.List(ctx, store.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				got, err := c.List(ctx, store.ListOptions{Limit: store.DefaultLimit, Sort: "id"})
				if err != nil {
					t.Fatalf("list %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, wantPage) {
					t.Fatalf("list %d = %#v, want the store's %#v", i, got, wantPage)
				}
			}
			// Limit 0 and Sort "" share the entry of their defaults.
			if _, err := c.List(ctx, store.ListOptions{}); err != nil {
				t.Fatal(err)
			}
			if n := cnt.lists.Load(); n != 1 {
				t.Errorf("store List called %d times, want 1", n)
			}
		})
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			ctx := testCtx(t)
			cnt := newCounting(openStore(t))
			c := newBooks(t, cnt, bc.opts(t))
			for range 2 {
				if _, err := c.Get(ctx, 999); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get(999) = %v, want ErrNotFound", err)
				}
				if _, err := c.List(ctx, store.ListOptions{Sort: "bogus"}); !errors.Is(err, store.ErrInvalidQuery) {
					t.Fatalf("List(bogus) = %v, want ErrInvalidQuery", err)
				}
			}
			if g, l := cnt.gets.Load(), cnt.lists.Load(); g != 2 || l != 2 {
				t.Errorf("store called %d/%d times, want 2/2: errors must not be cached", g, l)
			}
		})
	}
}

// TestWritesInvalidate: after each kind of write, Get and List show it.
func TestWritesInvalidate(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, c *cache.Books, b store.Book) (want *store.Book)
	}{
		{"Create", func(t *testing.T, c *cache.Books, _ store.Book) *store.Book {
			nb := mustCreate(t, c, sampleBook(2))
			return &nb
		}},
		{"Update", func(t *testing.T, c *cache.Books, b store.Book) *store.Book {
			nb, err := c.Update(testCtx(t), b.ID, b.Version, func(x *store.Book) error { x.Stock = 77; x.Title = "New"; return nil })
			if err != nil {
				t.Fatal(err)
			}
			return &nb
		}},
		{"Delete", func(t *testing.T, c *cache.Books, b store.Book) *store.Book {
			if _, err := c.Delete(testCtx(t), b.ID, 0); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"FailedUpdateStillCorrect", func(t *testing.T, c *cache.Books, b store.Book) *store.Book {
			if _, err := c.Update(testCtx(t), b.ID, b.Version+5, func(*store.Book) error { return nil }); !errors.Is(err, store.ErrStale) {
				t.Fatalf("stale update = %v, want ErrStale", err)
			}
			return &b
		}},
	}
	for _, bc := range backends {
		for _, tt := range tests {
			t.Run(bc.name+"/"+tt.name, func(t *testing.T) {
				ctx := testCtx(t)
				st := openStore(t)
				c := newBooks(t, st, bc.opts(t))
				b := mustCreate(t, c, sampleBook(1))
				// Fill the cache.
				if _, err := c.Get(ctx, b.ID); err != nil {
					t.Fatal(err)
				}
				if _, err := c.List(ctx, store.ListOptions{}); err != nil {
					t.Fatal(err)
				}
				want := tt.write(t, c, b)

				id := b.ID
				if want != nil {
					id = want.ID
				}
				got, err := c.Get(ctx, id)
				switch {
				case want == nil && !errors.Is(err, store.ErrNotFound):
					t.Errorf("Get after delete = %v, %v; want ErrNotFound", got, err)
				case want != nil && (err != nil || !reflect.DeepEqual(got, *want)):
					t.Errorf("Get = %#v, %v; want %#v", got, err, *want)
				}
				gotPage, err := c.List(ctx, store.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				wantPage, err := st.List(ctx, store.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(gotPage, wantPage) {
					t.Errorf("List = %#v, want the store's %#v", gotPage, wantPage)
				}
			})
		}
	}
}

// TestStalePopulate: a reader that read the database before a write must
// not store its value after the write's invalidation.
func TestStalePopulate(t *testing.T) {
	reads := []struct {
		name string
		read func(c *cache.Books, id int64) (int64, error) // returns the book's stock
	}{
		{"Get", func(c *cache.Books, id int64) (int64, error) {
			b, err := c.Get(testCtx(t), id)
			return b.Stock, err
		}},
		{"List", func(c *cache.Books, id int64) (int64, error) {
			p, err := c.List(testCtx(t), store.ListOptions{})
			if err != nil || len(p.Books) != 1 {
				return 0, errors.Join(err, errors.New("want one book"))
			}
			return p.Books[0].Stock, nil
		}},
	}
	for _, bc := range backends {
		for _, rd := range reads {
			t.Run(bc.name+"/"+rd.name, func(t *testing.T) {
				ctx := testCtx(t)
				cnt := newCounting(openStore(t))
				c := newBooks(t, cnt, bc.opts(t))
				b := mustCreate(t, c, sampleBook(1)) // stock 1

				h := cnt.holdNext()
				type result struct {
					stock int64
					err   error
				}
				done := make(chan result, 1)
				go func() {
					s, err := rd.read(c, b.ID)
					done <- result{s, err}
				}()
				<-h.read // the reader has the old row
				if _, err := c.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Stock = 2; return nil }); err != nil {
					t.Fatal(err)
				}
				// A reader after the write caches the new value.
				if s, err := rd.read(c, b.ID); err != nil || s != 2 {
					t.Fatalf("read after the write = %d, %v; want 2", s, err)
				}
				close(h.release)
				if r := <-done; r.err != nil || r.stock != 1 {
					t.Fatalf("held read = %d, %v; want the old stock 1", r.stock, r.err)
				}
				reads := cnt.gets.Load() + cnt.lists.Load()
				for i := range 2 {
					s, err := rd.read(c, b.ID)
					if err != nil || s != 2 {
						t.Fatalf("read %d after the held one = %d, %v; want 2 (a stale value was served)", i, s, err)
					}
				}
				// The held reader's store was refused rather than
				// replacing the current entry with a dead one.
				if n := cnt.gets.Load() + cnt.lists.Load() - reads; n != 0 {
					t.Errorf("%d store reads after the held read returned, want 0: its stale value displaced the current entry", n)
				}
			})
		}
	}
}

// TestSingleflight: concurrent misses of one key load it once.
func TestSingleflight(t *testing.T) {
	const n = 16
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			st := openStore(t)
			cnt := newCounting(st)
			c := newBooks(t, cnt, bc.opts(t))
			b := mustCreate(t, st, sampleBook(1))

			var joined sync.WaitGroup
			joined.Add(n)
			cache.SetJoined(c, joined.Done)
			h := cnt.holdNext()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Go(func() {
					got, err := c.Get(testCtx(t), b.ID)
					if err == nil && got.ID != b.ID {
						err = errors.New("wrong book")
					}
					errs <- err
				})
			}
			<-h.read
			joined.Wait() // all n are in the one load
			close(h.release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if g := cnt.gets.Load(); g != 1 {
				t.Errorf("store Get called %d times for %d concurrent misses, want 1", g, n)
			}
		})
	}
}

// TestListPositionAndCursor: pages keep NextCursor and Position, and
// following the cursors through the cache gives the store's pages.
func TestListPositionAndCursor(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			ctx := testCtx(t)
			st := openStore(t)
			c := newBooks(t, st, bc.opts(t))
			for i := range 5 {
				mustCreate(t, c, sampleBook(i))
			}
			min := int64(1000)
			opts := store.ListOptions{Limit: 2, Sort: "-price", MinPriceCents: &min}
			pages := 0
			for {
				want, err := st.List(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				for range 2 { // miss, then hit
					got, err := c.List(ctx, opts)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("page %d = %#v, want %#v", pages, got, want)
					}
				}
				if want.Position.Offset != 5 || want.Position.Epoch == "" {
					t.Errorf("position %+v, want offset 5 with an epoch", want.Position)
				}
				pages++
				if want.NextCursor == "" {
					break
				}
				opts.Cursor = want.NextCursor
			}
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
		})
	}
}

// TestCallersCannotCorruptTheCache: a caller modifying the page it got
// does not change what the next caller gets.
func TestCallersCannotCorruptTheCache(t *testing.T) {
	ctx := testCtx(t)
	c := newBooks(t, openStore(t), cache.Options{})
	mustCreate(t, c, sampleBook(1))
	p, err := c.List(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Books[0].Title = "scribbled"
	p2, err := c.List(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Books[0].Title == "scribbled" {
		t.Fatal("the cached page shares its books with callers")
	}
}

// TestMemoryCap: a tiny cap evicts but never serves a wrong value.
func TestMemoryCap(t *testing.T) {
	ctx := testCtx(t)
	st := openStore(t)
	c := newBooks(t, st, cache.Options{MaxEntries: 2})
	var ids []int64
	for i := range 5 {
		ids = append(ids, mustCreate(t, c, sampleBook(i)).ID)
	}
	for round := range 3 {
		for _, id := range ids {
			got, err := c.Get(ctx, id)
			want, _ := st.Get(ctx, id)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d Get(%d) = %v, %v; want %v", round, id, got, err, want)
			}
			if _, err := c.Update(ctx, id, 0, func(b *store.Book) error { b.Stock++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestInvalidate: a change made behind the cache's back shows once the
// caller passes its event to Invalidate.
func TestInvalidate(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			ctx := testCtx(t)
			st := openStore(t)
			c := newBooks(t, st, bc.opts(t))
			b := mustCreate(t, st, sampleBook(1))
			if _, err := c.Get(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := c.List(ctx, store.ListOptions{}); err != nil {
				t.Fatal(err)
			}
			nb, err := st.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Stock = 9; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := c.Get(ctx, b.ID); got.Stock != b.Stock {
				t.Fatalf("before Invalidate: stock %d, want the cached %d", got.Stock, b.Stock)
			}
			if err := c.Invalidate(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Get(ctx, b.ID); err != nil || !reflect.DeepEqual(got, nb) {
				t.Errorf("Get after Invalidate = %v, %v; want %v", got, err, nb)
			}
			if p, err := c.List(ctx, store.ListOptions{}); err != nil || p.Books[0].Stock != 9 {
				t.Errorf("List after Invalidate = %v, %v; want stock 9", p, err)
			}
		})
	}
}
