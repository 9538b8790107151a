package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/relay"
	"github.com/bookhub/bookhub/store"
)

// waitTimeout bounds every wait for the relay to do something.
const waitTimeout = 15 * time.Second

// watch lets tests wait for a condition on state that several goroutines
// change: every change calls changed, and waiters re-check their condition.
type watch struct {
	mu sync.Mutex
	ch chan struct{}
}

func newWatch() *watch { return &watch{ch: make(chan struct{})} }

func (w *watch) changed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

func (w *watch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// until waits until cond holds, re-checking it after every change.
func (w *watch) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		ch := w.next() // before checking, so no change is missed
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
	}
}

// faultyBus is an in-process bus that fails while down.
type faultyBus struct {
	*events.Memory
	down atomic.Bool
}

var errBusDown = errors.New("bus down")

func (b *faultyBus) Publish(ctx context.Context, ev events.Event) error {
	if b.down.Load() {
		return errBusDown
	}
	return b.Memory.Publish(ctx, ev)
}

// sink records what reaches the bus, by "books" offset.
type sink struct {
	w    *watch
	mu   sync.Mutex
	seen map[uint64]int
	evs  []events.Event
}

func (s *sink) handle(ev events.Event) {
	pos, _ := ev.Position(events.ChannelBooks)
	s.mu.Lock()
	s.seen[pos.Offset]++
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
	s.w.changed()
}

// has reports whether every offset in offs reached the bus.
func (s *sink) has(offs ...uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range offs {
		if s.seen[o] == 0 {
			return false
		}
	}
	return true
}

func (s *sink) counts() map[uint64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

func (s *sink) events() []events.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.evs)
}

// observer records the relay's metrics hooks.
type observer struct {
	w       *watch
	mu      sync.Mutex
	relayed map[string]int
	failed  int
	stats   []store.OutboxStats
}

func (o *observer) Relayed(path string, n int) {
	o.mu.Lock()
	o.relayed[path] += n
	o.mu.Unlock()
	o.w.changed()
}

func (o *observer) RelayFailed() {
	o.mu.Lock()
	o.failed++
	o.mu.Unlock()
	o.w.changed()
}

func (o *observer) Outbox(st store.OutboxStats) {
	o.mu.Lock()
	o.stats = append(o.stats, st)
	o.mu.Unlock()
	o.w.changed()
}

func (o *observer) snapshot() (relayed map[string]int, failed int, last store.OutboxStats, samples int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	relayed = make(map[string]int, len(o.relayed))
	for k, v := range o.relayed {
		relayed[k] = v
	}
	if len(o.stats) > 0 {
		last = o.stats[len(o.stats)-1]
	}
	return relayed, o.failed, last, len(o.stats)
}

// watchedStore is the store as the relay sees it, telling the watch when
// rows were marked or claimed.
type watchedStore struct {
	*store.Store
	w *watch
}

func (s watchedStore) MarkPublished(ctx context.Context, seqs []int64) error {
	defer s.w.changed()
	return s.Store.MarkPublished(ctx, seqs)
}

func (s watchedStore) ClaimUnpublished(ctx context.Context, olderThan time.Time, limit int, publish func([]store.Change) []int64) (int, error) {
	defer s.w.changed()
	return s.Store.ClaimUnpublished(ctx, olderThan, limit, publish)
}

// render is a small stand-in for the application's rendering: a book titled
// "poison" cannot be rendered.
func render(c store.Change) (events.Event, error) {
	if c.Book.Title == "poison" {
		return events.Event{}, errors.New("cannot render poison")
	}
	book, err := json.Marshal(map[string]any{"id": c.Book.ID, "title": c.Book.Title, "version": c.Book.Version})
	if err != nil {
		return events.Event{}, err
	}
	return events.Event{
		ID: c.EventID, Type: c.Type, BookID: c.Book.ID, Book: book, At: c.At, Origin: c.Origin,
		Positions: []events.Position{
			{Channel: events.ChannelBooks, Offset: c.Offset, Epoch: c.Epoch},
			{Channel: events.BookChannel(c.Book.ID), Offset: c.BookOffset, Epoch: c.Epoch},
		},
	}, nil
}

type driverCase struct {
	name string
	url  func(t *testing.T) string
}

var driverCases = []driverCase{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "books.db") }},
	{"mysql", func(t *testing.T) string { return testenv.MySQL(t) }},
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// env is one instance: a store, its relay, and the bus it publishes to.
type env struct {
	t     *testing.T
	w     *watch
	store *store.Store
	bus   *faultyBus
	sink  *sink
	obs   *observer
	relay *relay.Relay
	run   sync.Once
}

type envConfig struct {
	url string
	// noHandoff leaves OnCommit unset, as if the process died after each
	// commit: only the sweep publishes.
	noHandoff bool
	// bus and sink are shared with another instance when set.
	bus  *faultyBus
	sink *sink
	w    *watch
}

// newEnv opens a store on cfg.url and a relay with opts (Store, Bus, Render
// and Observer filled in). The relay runs once start is called.
func newEnv(t *testing.T, cfg envConfig, opts relay.Options) *env {
	t.Helper()
	e := &env{t: t, w: cfg.w, bus: cfg.bus, sink: cfg.sink}
	if e.w == nil {
		e.w = newWatch()
	}
	if e.bus == nil {
		e.bus = &faultyBus{Memory: events.NewMemory()}
		t.Cleanup(func() { e.bus.Close() })
	}
	if e.sink == nil {
		e.sink = &sink{w: e.w, seen: make(map[uint64]int)}
		if err := e.bus.Subscribe(testContext(t), e.sink.handle); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	e.obs = &observer{w: e.w, relayed: make(map[string]int)}
	sopts := store.Options{URL: cfg.url, Logger: testLogger(t), Origin: t.Name()}
	if !cfg.noHandoff {
		// e.relay is set below, before the first write.
		sopts.OnCommit = func(c store.Change) { e.relay.Handoff(c) }
	}
	s, err := store.Open(testContext(t), sopts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	e.store = s
	opts.Store, opts.Bus, opts.Render, opts.Observer = watchedStore{Store: s, w: e.w}, e.bus, render, e.obs
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if e.relay, err = relay.New(opts); err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	return e
}

// start runs the relay until the test ends, and checks that it stops.
func (e *env) start() {
	e.t.Helper()
	e.run.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.relay.Run(ctx)
		}()
		e.t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitTimeout):
				e.t.Error("Run did not return after its context was cancelled")
			}
		})
	})
}

func (e *env) create(title string) store.Book {
	e.t.Helper()
	b, err := e.store.Create(testContext(e.t), store.Book{Title: title, Author: "A"})
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return b
}

func (e *env) stats() store.OutboxStats {
	e.t.Helper()
	st, err := e.store.OutboxStats(testContext(e.t))
	if err != nil {
		e.t.Fatalf("OutboxStats: %v", err)
	}
	return st
}

// allPublished reports whether the outbox has no unpublished row left.
func (e *env) allPublished() bool { return e.stats().Unpublished == 0 }

// fastSweep makes the sweep take rows a millisecond old, every 10ms.
func fastSweep(o relay.Options) relay.Options {
	o.SweepInterval, o.SweepGrace = 10*time.Millisecond, time.Millisecond
	return o
}

// noSweep keeps the sweep from running during a test.
func noSweep(o relay.Options) relay.Options {
	o.SweepInterval, o.SweepGrace = time.Hour, time.Hour
	return o
}

func forEachDriver(t *testing.T, test func(t *testing.T, url func(t *testing.T) string)) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) { test(t, d.url) })
	}
}

func TestNewValidates(t *testing.T) {
	s, err := store.Open(testContext(t), store.Options{URL: driverCases[0].url(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	valid := relay.Options{Store: s, Bus: events.NewMemory(), Render: render}
	tests := []struct {
		name   string
		change func(*relay.Options)
		ok     bool
	}{
		{"OK", func(*relay.Options) {}, true},
		{"NoStore", func(o *relay.Options) { o.Store = nil }, false},
		{"NoBus", func(o *relay.Options) { o.Bus = nil }, false},
		{"NoRender", func(o *relay.Options) { o.Render = nil }, false},
		{"NegativeSweepInterval", func(o *relay.Options) { o.SweepInterval = -time.Second }, false},
		{"NegativeSweepGrace", func(o *relay.Options) { o.SweepGrace = -time.Second }, false},
		{"NegativePublishTimeout", func(o *relay.Options) { o.PublishTimeout = -time.Second }, false},
		{"NegativeHistoryMaxAge", func(o *relay.Options) { o.HistoryMaxAge = -time.Second }, false},
		{"NegativePruneInterval", func(o *relay.Options) { o.PruneInterval = -time.Second }, false},
		{"NegativeStatsInterval", func(o *relay.Options) { o.StatsInterval = -time.Second }, false},
		{"NegativeQueueSize", func(o *relay.Options) { o.QueueSize = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.change(&o)
			r, err := relay.New(o)
			if tt.ok && (err != nil || r == nil) {
				t.Fatalf("New = %v, %v; want a relay", r, err)
			}
			if !tt.ok && err == nil {
				t.Fatal("New accepted invalid options")
			}
		})
	}
}

func TestHandoffPublishesAtOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, url func(*testing.T) string) {
		e := newEnv(t, envConfig{url: url(t)}, noSweep(relay.Options{}))
		e.start()
		var books []store.Book
		for i := range 3 {
			books = append(books, e.create(fmt.Sprintf("Book %d", i)))
		}
		e.w.until(t, "three events published and marked", func() bool { return e.sink.has(1, 2, 3) && e.allPublished() })

		if got := e.sink.counts(); len(got) != 3 || got[1] != 1 || got[2] != 1 || got[3] != 1 {
			t.Errorf("offsets published %v, want 1, 2 and 3 once each", got)
		}
		relayed, failed, _, _ := e.obs.snapshot()
		if relayed["handoff"] != 3 || relayed["sweep"] != 0 || failed != 0 {
			t.Errorf("observer: relayed %v, failed %d; want 3 by hand-off, none failed", relayed, failed)
		}
		hist, _, err := e.store.History(testContext(t), events.ChannelBooks, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range e.sink.events() {
			want, err := render(hist[i])
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != want.ID || ev.BookID != books[i].ID || !slices.Equal(ev.Positions, want.Positions) || !ev.At.Equal(want.At) {
				t.Errorf("event %d = %+v, want %+v", i, ev, want)
			}
		}
	})
}

func TestSweepPublishesAfterBusOutage(t *testing.T) {
	forEachDriver(t, func(t *testing.T, url func(*testing.T) string) {
		e := newEnv(t, envConfig{url: url(t)}, fastSweep(relay.Options{}))
		e.bus.down.Store(true)
		e.start()
		for i := range 3 {
			e.create(fmt.Sprintf("Book %d", i))
		}
		e.w.until(t, "a failed publish", func() bool { _, failed, _, _ := e.obs.snapshot(); return failed > 0 })
		if st := e.stats(); st.Unpublished != 3 {
			t.Errorf("%d rows unpublished while the bus is down, want 3", st.Unpublished)
		}
		if got := e.sink.counts(); len(got) != 0 {
			t.Errorf("events reached a bus that is down: %v", got)
		}

		e.bus.down.Store(false)
		e.w.until(t, "every change published once the bus is back", func() bool { return e.sink.has(1, 2, 3) && e.allPublished() })
		// The observer hears of a sweep's batch just after its marks land,
		// so wait for it rather than read it at the instant of the marks.
		e.w.until(t, "the sweep's publishes counted", func() bool {
			relayed, _, _, _ := e.obs.snapshot()
			return relayed["sweep"] > 0
		})
	})
}

func TestFullQueueLeftToSweep(t *testing.T) {
	forEachDriver(t, func(t *testing.T, url func(*testing.T) string) {
		e := newEnv(t, envConfig{url: url(t)}, fastSweep(relay.Options{QueueSize: 1}))
		// Not running yet: the queue takes the first change, drops the rest.
		for i := range 5 {
			e.create(fmt.Sprintf("Book %d", i))
		}
		e.start()
		// The sweep reports after its claim commits, so wait for the report
		// too, not only for the rows to be marked.
		e.w.until(t, "every change published, the dropped ones by the sweep", func() bool {
			relayed, _, _, _ := e.obs.snapshot()
			return e.sink.has(1, 2, 3, 4, 5) && e.allPublished() && relayed["sweep"] >= 4
		})
	})
}

// TestSweepPublishesWhatACrashLeft: rows committed by an instance that died
// before publishing are published by another instance's sweep.
func TestSweepPublishesWhatACrashLeft(t *testing.T) {
	forEachDriver(t, func(t *testing.T, url func(*testing.T) string) {
		u := url(t)
		crashed := newEnv(t, envConfig{url: u, noHandoff: true}, noSweep(relay.Options{}))
		for i := range 3 {
			crashed.create(fmt.Sprintf("Book %d", i))
		}
		survivor := newEnv(t, envConfig{url: u}, fastSweep(relay.Options{}))
		survivor.start()
		survivor.w.until(t, "the other instance's changes published", func() bool {
			return survivor.sink.has(1, 2, 3) && survivor.allPublished()
		})
	})
}

// TestRenderErrorCountedAndSkipped: a change that cannot be rendered can
// never be published, so it is counted, logged and marked done (the feeds
// read it from the history): it must not hold back the changes after it,
// nor pruning, nor be retried forever.
func TestRenderErrorCountedAndSkipped(t *testing.T) {
	tests := []struct {
		name string
		// noHandoff: the sweep alone publishes; otherwise the three
		// changes wait in the hand-off queue and go out as one batch.
		noHandoff bool
	}{
		{"HandoffBatch", false},
		{"Sweep", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, url func(*testing.T) string) {
				e := newEnv(t, envConfig{url: url(t), noHandoff: tt.noHandoff}, fastSweep(relay.Options{}))
				e.create("fine 1")
				e.create("poison")
				e.create("fine 2")
				e.start()
				// Offset 3 must not wait behind offset 2.
				e.w.until(t, "the renderable changes published and every row done", func() bool {
					return e.sink.has(1, 3) && e.allPublished()
				})
				// At least once: with this test's tiny SweepGrace the sweep may
				// see the row before the hand-off path's batched mark lands.
				if _, failed, _, _ := e.obs.snapshot(); failed == 0 {
					t.Error("the render error was not counted")
				}
				if got := e.sink.counts(); got[2] != 0 {
					t.Errorf("the unrenderable change reached the bus %d times", got[2])
				}
			})
		})
	}
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	tests := []struct {
		name string
		// publishing tells whether Run is inside a publish (to a bus that
		// never answers) when its ctx is cancelled.
		publishing bool
	}{
		{"Idle", false},
		{"DuringAPublish", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(testContext(t), store.Options{URL: driverCases[0].url(t), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			entered := make(chan struct{}, 1)
			r, err := relay.New(noSweep(relay.Options{Store: s, Bus: blockingBus{entered: entered}, Render: render,
				PublishTimeout: time.Hour, Logger: testLogger(t)}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.Run(ctx)
			}()
			if tt.publishing {
				if _, err := s.Create(testContext(t), store.Book{Title: "Stuck", Author: "A"}); err != nil {
					t.Fatal(err)
				}
				changes, _, err := s.History(testContext(t), events.ChannelBooks, 0, 1)
				if err != nil || len(changes) != 1 {
					t.Fatalf("History = %v, %v", changes, err)
				}
				r.Handoff(changes[0])
				select {
				case <-entered:
				case <-time.After(waitTimeout):
					t.Fatal("the relay never published")
				}
			}
			cancel()
			select {
			case <-done:
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return after its context was cancelled")
			}
		})
	}
}

// blockingBus accepts a publish and never answers until its ctx ends.
type blockingBus struct{ entered chan<- struct{} }

func (b blockingBus) Publish(ctx context.Context, _ events.Event) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestPruneAndStatsReported(t *testing.T) {
	forEachDriver(t, func(t *testing.T, url func(*testing.T) string) {
		e := newEnv(t, envConfig{url: url(t)}, fastSweep(relay.Options{
			HistorySize: 2, HistoryMaxAge: time.Nanosecond,
			PruneInterval: 10 * time.Millisecond, StatsInterval: 10 * time.Millisecond,
		}))
		e.bus.down.Store(true)
		var first store.Book
		for i := range 5 {
			b := e.create(fmt.Sprintf("Book %d", i))
			if i == 0 {
				first = b
			}
		}
		e.start()
		e.w.until(t, "stats with every row unpublished", func() bool {
			_, _, last, n := e.obs.snapshot()
			return n > 0 && last.Rows == 5 && last.Unpublished == 5
		})
		if _, _, last, _ := e.obs.snapshot(); !last.OldestUnpublished.Equal(first.UpdatedAt) {
			t.Errorf("oldest unpublished %v, want the first row's commit time %v", last.OldestUnpublished, first.UpdatedAt)
		}

		e.bus.down.Store(false)
		e.w.until(t, "stats after publishing and pruning to 2 rows", func() bool {
			_, _, last, _ := e.obs.snapshot()
			return last.Rows == 2 && last.Unpublished == 0 && last.OldestUnpublished.IsZero()
		})
		hist, pos, err := e.store.History(testContext(t), events.ChannelBooks, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || hist[0].Offset != 4 || pos.Offset != 5 {
			t.Errorf("history after pruning starts at %v of %d, want offsets 4 and 5", hist, pos.Offset)
		}
	})
}

// TestSweepsOfTwoInstancesDoNotDuplicate: instances sweeping the same outbox
// at once publish each row once.
func TestSweepsOfTwoInstancesDoNotDuplicate(t *testing.T) {
	forEachDriver(t, func(t *testing.T, url func(*testing.T) string) {
		const rows = 40
		u := url(t)
		a := newEnv(t, envConfig{url: u, noHandoff: true}, fastSweep(relay.Options{}))
		b := newEnv(t, envConfig{url: u, noHandoff: true, bus: a.bus, sink: a.sink, w: a.w}, fastSweep(relay.Options{}))
		want := make([]uint64, rows)
		for i := range rows {
			want[i] = uint64(i + 1)
			if i%2 == 0 {
				a.create(fmt.Sprintf("A%d", i))
			} else {
				b.create(fmt.Sprintf("B%d", i))
			}
		}
		a.start()
		b.start()
		a.w.until(t, "every row published", func() bool { return a.sink.has(want...) && a.allPublished() })
		for off, n := range a.sink.counts() {
			if n != 1 {
				t.Errorf("offset %d published %d times", off, n)
			}
		}
		ra, _, _, _ := a.obs.snapshot()
		rb, _, _, _ := b.obs.snapshot()
		t.Logf("instance a swept %d, instance b %d", ra["sweep"], rb["sweep"])
	})
}
