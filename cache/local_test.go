package cache_test

import (
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/store"
)

// checkLog records the namespaces of every check a Books ran.
type checkLog struct {
	mu     sync.Mutex
	checks [][]string
}

func (l *checkLog) ran(nss []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checks = append(l.checks, slices.Clone(nss))
}

func (l *checkLog) all() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.checks)
}

func (l *checkLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.checks)
}

func bookNS(id int64) string { return "book:" + strconv.FormatInt(id, 10) }

// secondInstance returns Options for another Books on the same Redis and
// keys as o, with connections of its own.
func secondInstance(t *testing.T, url string, o cache.Options) cache.Options {
	t.Helper()
	bo := o
	bo.Redis = openRedis(t, url, o.Keys)
	bo.Observer = nil
	return bo
}

// TestLocalHitAfterCheck: the first read misses, the second is a Redis
// hit that leaves a local copy, the third is served from it after one
// check of its namespace, which costs one Redis command.
func TestLocalHitAfterCheck(t *testing.T) {
	ctx := testCtx(t)
	obs := &observer{}
	o := sharedRedisOptions(t)
	o.Observer = obs
	cmds := &cmdCounter{}
	o.Redis.AddHook(cmds)
	cnt := newCounting(openStore(t))
	c := newBooks(t, cnt, o)
	log := &checkLog{}
	cache.SetCheckHooks(c, log.ran, nil)
	b := mustCreate(t, c, sampleBook(1))
	want, err := cnt.Store.Get(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		if _, err := c.Get(ctx, b.ID); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if n := cache.LocalLen(c); n != 1 {
		t.Fatalf("%d local copies after a Redis hit, want 1", n)
	}
	before := cmds.n.Load()
	got, err := c.Get(ctx, b.ID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("local read = %#v, %v; want %#v", got, err, want)
	}
	if n := cmds.n.Load() - before; n != 1 {
		t.Errorf("local hit sent %d Redis commands, want 1 (the check)", n)
	}
	if got, want := log.all(), [][]string{{bookNS(b.ID)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("checks %v, want %v", got, want)
	}
	if h, r, m := obs.localHits.Load(), obs.hits.Load(), obs.misses.Load(); h != 1 || r != 1 || m != 1 {
		t.Errorf("local hits %d, Redis hits %d, misses %d; want 1, 1, 1", h, r, m)
	}
	if n := cnt.gets.Load(); n != 1 {
		t.Errorf("store Get called %d times, want 1", n)
	}

	// Lists: the same, under the one namespace "list".
	wantPage, err := cnt.Store.List(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p, err := c.List(ctx, store.ListOptions{})
		if err != nil || !reflect.DeepEqual(p, wantPage) {
			t.Fatalf("list %d = %#v, %v; want %#v", i, p, err, wantPage)
		}
	}
	if got := log.all(); len(got) != 2 || !reflect.DeepEqual(got[1], []string{"list"}) {
		t.Errorf("checks %v, want a second one of [list]", got)
	}
	if h := obs.localHits.Load(); h != 2 {
		t.Errorf("local hits %d, want 2", h)
	}
}

// TestCheckInFlightIsNotJoined: a reader arriving while a check is in
// flight, which read the generations before a write the reader knows was
// acknowledged, waits for the next check and sees the write.
func TestCheckInFlightIsNotJoined(t *testing.T) {
	ctx := testCtx(t)
	st := openStore(t)
	o := sharedRedisOptions(t)
	a := newBooks(t, st, o)
	b := newBooks(t, st, secondInstance(t, testenv.Redis(t), o))
	bk := mustCreate(t, a, sampleBook(1))
	for range 3 { // the third read is a local hit
		if _, err := b.Get(ctx, bk.ID); err != nil {
			t.Fatal(err)
		}
	}

	ranFirst := make(chan struct{})
	release := make(chan struct{})
	queued := make(chan struct{}, 1)
	log := &checkLog{}
	var first atomic.Bool
	cache.SetCheckHooks(b, func(nss []string) {
		log.ran(nss)
		if first.CompareAndSwap(false, true) {
			close(ranFirst)
			<-release // the check has the old generations; hold it in flight
		}
	}, func(string) { queued <- struct{}{} })

	type result struct {
		b   store.Book
		err error
	}
	early := make(chan result, 1)
	go func() {
		got, err := b.Get(ctx, bk.ID)
		early <- result{got, err}
	}()
	<-ranFirst
	w, err := a.Update(ctx, bk.ID, 0, func(x *store.Book) error { x.Stock = 99; return nil })
	if err != nil {
		t.Fatal(err)
	}
	late := make(chan result, 1)
	go func() {
		got, err := b.Get(ctx, bk.ID) // begins after the write's acknowledgement
		late <- result{got, err}
	}()
	<-queued
	close(release)

	if r := <-early; r.err != nil || r.b.Version != bk.Version {
		t.Errorf("read begun before the write = version %d, %v; want the old %d (its check began before the write)", r.b.Version, r.err, bk.Version)
	}
	if r := <-late; r.err != nil || !reflect.DeepEqual(r.b, w) {
		t.Fatalf("read begun after the write = %+v, %v; want the write %+v: it was served by the check in flight", r.b, r.err, w)
	}
	if n := log.len(); n != 2 {
		t.Errorf("%d checks, want 2", n)
	}
}

// TestChecksBatch: readers queued behind a check in flight share the next
// check, at most 256 namespaces each.
func TestChecksBatch(t *testing.T) {
	ctx := testCtx(t)
	st := openStore(t)
	o := sharedRedisOptions(t)
	c := newBooks(t, st, o)
	const books = 300
	var ids []int64
	for i := range books {
		bk := sampleBook(i % 6)
		bk.ISBN = "" // unique ISBNs are not the point here
		ids = append(ids, mustCreate(t, c, bk).ID)
	}
	for _, id := range ids {
		for range 2 { // a miss, then a Redis hit that leaves a local copy
			if _, err := c.Get(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := cache.LocalLen(c); n != books {
		t.Fatalf("%d local copies, want %d", n, books)
	}

	ranFirst := make(chan struct{})
	release := make(chan struct{})
	var queued sync.WaitGroup
	log := &checkLog{}
	var first atomic.Bool
	cache.SetCheckHooks(c, func(nss []string) {
		log.ran(nss)
		if first.CompareAndSwap(false, true) {
			close(ranFirst)
			<-release
		}
	}, func(string) { queued.Done() })

	var wg sync.WaitGroup
	errs := make(chan error, 2*books+1)
	get := func(id int64) {
		got, err := c.Get(ctx, id)
		if err == nil && got.ID != id {
			t.Errorf("Get(%d) returned book %d", id, got.ID)
		}
		errs <- err
	}
	wg.Go(func() { get(ids[0]) })
	<-ranFirst
	queued.Add(2 * books)
	for _, id := range ids {
		for range 2 { // two readers per namespace: they share a check
			wg.Go(func() { get(id) })
		}
	}
	queued.Wait()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checks := log.all()
	var sizes []int
	seen := map[string]bool{}
	for _, nss := range checks[1:] {
		sizes = append(sizes, len(nss))
		for _, ns := range nss {
			if seen[ns] {
				t.Errorf("namespace %s in two checks after the first", ns)
			}
			seen[ns] = true
		}
	}
	// Queue order decides which 256 go first; what matters is the split.
	if !reflect.DeepEqual(sizes, []int{256, books - 256}) {
		t.Errorf("checks after the first carried %v namespaces, want [256 %d]", sizes, books-256)
	}
}

// TestLocalOutage: a failing check serves nothing from the local layer
// (it counts an error with op "check", opens the breaker and reads the
// store); after a crash Redis comes back empty, and a copy another
// instance still holds is not served; after a freeze the re-applied bump
// makes it stale.
func TestLocalOutage(t *testing.T) {
	tests := []struct {
		name          string
		fail, recover func(*testenv.RedisServer)
		// changeWhileDown writes the change through the store directly:
		// a restart loses every generation, so even a write whose bump
		// nobody re-applies is seen. A freeze keeps them; the change goes
		// through the cache, whose pending bump is re-applied.
		behindTheBack bool
	}{
		{"Crash", (*testenv.RedisServer).Stop, (*testenv.RedisServer).Start, true},
		{"Freeze", (*testenv.RedisServer).Freeze, (*testenv.RedisServer).Thaw, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			obs := &observer{}
			srv, o, clk := privateRedis(t, obs)
			cnt := newCounting(openStore(t))
			c := newBooks(t, cnt, o)
			other := newBooks(t, cnt, secondInstance(t, srv.URL(), o))
			bk := mustCreate(t, c, sampleBook(1))
			for range 3 {
				for _, x := range []*cache.Books{c, other} {
					if _, err := x.Get(ctx, bk.ID); err != nil {
						t.Fatal(err)
					}
				}
			}
			if obs.localHits.Load() != 1 {
				t.Fatalf("local hits %d before the outage, want 1", obs.localHits.Load())
			}

			tt.fail(srv)
			gets := cnt.gets.Load()
			if got, err := c.Get(ctx, bk.ID); err != nil || !reflect.DeepEqual(got, bk) {
				t.Fatalf("Get during outage = %+v, %v", got, err)
			}
			if n := obs.checkErrors.Load(); n != 1 {
				t.Errorf("%d check errors, want 1", n)
			}
			if n := cnt.gets.Load() - gets; n != 1 {
				t.Errorf("%d store reads for a Get whose check failed, want 1", n)
			}
			if obs.localHits.Load() != 1 {
				t.Error("a local copy was served although its check failed")
			}
			var w store.Book
			var err error
			if tt.behindTheBack {
				w, err = cnt.Update(ctx, bk.ID, 0, func(x *store.Book) error { x.Stock = 42; return nil })
			} else {
				w, err = c.Update(ctx, bk.ID, 0, func(x *store.Book) error { x.Stock = 42; return nil })
			}
			if err != nil {
				t.Fatal(err)
			}

			tt.recover(srv)
			clk.Advance(2 * time.Second)
			readers := []*cache.Books{other, c} // other first: its breaker never opened
			if !tt.behindTheBack {
				readers = []*cache.Books{c, other} // c re-applies its bump first
			}
			for _, x := range readers {
				for i := range 3 {
					got, err := x.Get(ctx, bk.ID)
					if err != nil || !reflect.DeepEqual(got, w) {
						t.Fatalf("Get %d after recovery = %+v, %v; want the write %+v", i, got, err, w)
					}
				}
			}
			hits := obs.localHits.Load()
			if _, err := c.Get(ctx, bk.ID); err != nil {
				t.Fatal(err)
			}
			if obs.localHits.Load() != hits+1 {
				t.Error("the local layer serves nothing after recovery")
			}
		})
	}
}

// TestLocalCap: past Options.MaxEntries copies are evicted, and every read
// still returns the current value.
func TestLocalCap(t *testing.T) {
	ctx := testCtx(t)
	st := openStore(t)
	o := sharedRedisOptions(t)
	o.MaxEntries = 3
	c := newBooks(t, st, o)
	var ids []int64
	for i := range 8 {
		bk := sampleBook(i % 6)
		bk.ISBN = ""
		ids = append(ids, mustCreate(t, c, bk).ID)
	}
	for round := range 3 {
		if round > 0 { // drops local copies, which the reads refill
			if _, err := c.Update(ctx, ids[round], 0, func(b *store.Book) error { b.Stock++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			want, err := st.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if got, err := c.Get(ctx, id); err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("round %d Get(%d) = %+v, %v; want %+v", round, id, got, err, want)
				}
			}
			if _, err := c.List(ctx, store.ListOptions{Limit: 1 + int(id%5)}); err != nil {
				t.Fatal(err)
			}
			if n := cache.LocalLen(c); n > 3 {
				t.Fatalf("%d local copies, cap 3", n)
			}
		}
	}
	if n := cache.LocalLen(c); n != 3 {
		t.Errorf("%d local copies at the end, want the cap 3", n)
	}
}

// TestLocalExpiresWithEntry: a local copy lives no longer than the Redis
// entry it copies; an expired copy is not checked, the read goes to Redis.
func TestLocalExpiresWithEntry(t *testing.T) {
	ctx := testCtx(t)
	obs := &observer{}
	o := sharedRedisOptions(t)
	o.Observer = obs
	clk := newClock()
	o.Now = clk.Now
	o.TTL = time.Minute
	c := newBooks(t, openStore(t), o)
	log := &checkLog{}
	cache.SetCheckHooks(c, log.ran, nil)
	bk := mustCreate(t, c, sampleBook(1))
	for range 3 {
		if _, err := c.Get(ctx, bk.ID); err != nil {
			t.Fatal(err)
		}
	}
	if log.len() != 1 {
		t.Fatalf("%d checks, want 1", log.len())
	}
	clk.Advance(time.Minute + time.Millisecond) // the entry is at most 1 min old
	if _, err := c.Get(ctx, bk.ID); err != nil {
		t.Fatal(err)
	}
	if log.len() != 1 {
		t.Error("an expired local copy was checked")
	}
	if h := obs.localHits.Load(); h != 1 {
		t.Errorf("local hits %d, want 1", h)
	}
}

// TestInvalidateDropsLocal: a change event drops the local copies it makes
// stale, so the next read needs no check to find out.
func TestInvalidateDropsLocal(t *testing.T) {
	ctx := testCtx(t)
	o := sharedRedisOptions(t)
	c := newBooks(t, openStore(t), o)
	log := &checkLog{}
	cache.SetCheckHooks(c, log.ran, nil)
	bk := mustCreate(t, c, sampleBook(1))
	for range 2 {
		if _, err := c.Get(ctx, bk.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.List(ctx, store.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.List(ctx, store.ListOptions{Limit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := cache.LocalLen(c); n != 3 {
		t.Fatalf("%d local copies, want 3", n)
	}
	if err := c.Invalidate(ctx, bk.ID); err != nil {
		t.Fatal(err)
	}
	if n := cache.LocalLen(c); n != 0 {
		t.Errorf("%d local copies after Invalidate, want 0", n)
	}
	if _, err := c.Get(ctx, bk.ID); err != nil {
		t.Fatal(err)
	}
	if n := log.len(); n != 0 {
		t.Errorf("%d checks, want 0", n)
	}
}
