package feed_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/feed"
)

// testTimeout bounds every wait; nothing should come close.
const testTimeout = 10 * time.Second

// errDown is what the fake history answers while it is failing.
var errDown = errors.New("history: database unavailable")

// event is a change with its position on "books" (and on its book's
// channel, which the feed must ignore).
func event(epoch string, offset uint64) events.Event {
	return events.Event{
		ID: epoch + strconv.FormatUint(offset, 10), Type: events.BookUpdated, BookID: 1,
		Positions: []events.Position{
			{Channel: events.ChannelBooks, Offset: offset, Epoch: epoch},
			{Channel: events.BookChannel(1), Offset: offset, Epoch: epoch},
		},
	}
}

// history is an in-memory feed.History: the events of one epoch with
// offsets 1..n, of which those at or below pruned are gone.
type history struct {
	mu     sync.Mutex
	epoch  string
	events []events.Event // events[i] has offset i+1
	pruned uint64
	err    error
	calls  []uint64 // the after of every call, in order
	called chan struct{}
}

func newHistory() *history { return &history{epoch: "A", called: make(chan struct{})} }

func (h *history) Since(ctx context.Context, after uint64, limit int) ([]events.Event, events.Position, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, after)
	close(h.called)
	h.called = make(chan struct{})
	if err := ctx.Err(); err != nil {
		return nil, events.Position{}, err
	}
	if h.err != nil {
		return nil, events.Position{}, h.err
	}
	cur := uint64(len(h.events))
	pos := events.Position{Channel: events.ChannelBooks, Offset: cur, Epoch: h.epoch}
	from := max(after, h.pruned)
	if from >= cur {
		return nil, pos, nil
	}
	to := min(cur, from+uint64(limit))
	return slices.Clone(h.events[from:to]), pos, nil
}

// commit appends n events and returns them, as the store would commit them.
func (h *history) commit(n int) []events.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]events.Event, n)
	for i := range out {
		out[i] = event(h.epoch, uint64(len(h.events)+1))
		h.events = append(h.events, out[i])
	}
	return out
}

// reset starts a new epoch with n events, as if the history were rebuilt.
func (h *history) reset(epoch string, n int) {
	h.mu.Lock()
	h.epoch, h.events, h.pruned = epoch, nil, 0
	h.mu.Unlock()
	h.commit(n)
}

func (h *history) prune(upTo uint64) {
	h.mu.Lock()
	h.pruned = upTo
	h.mu.Unlock()
}

func (h *history) fail(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

func (h *history) callsSoFar() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// waitCalls blocks until the history has been read n times.
func (h *history) waitCalls(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for {
		h.mu.Lock()
		got, ch := len(h.calls), h.called
		h.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("history read %d times, want %d", got, n)
		}
	}
}

// sink records what the feed hands on, in order: "A7" for the delivery of
// offset 7 of epoch A, "!A7" for Incomplete with last position A7. It is
// also the feed's Observer.
type sink struct {
	mu         sync.Mutex
	log        []string
	gapsFilled int
	incomplete int
	changed    chan struct{}
	// block, when set, makes the first Deliver wait until it is closed.
	block chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{})} }

func (s *sink) update(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *sink) deliver(ev events.Event) {
	pos, _ := ev.Position(events.ChannelBooks)
	s.mu.Lock()
	block := s.block
	s.block = nil
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	s.update(func() { s.log = append(s.log, pos.Epoch+strconv.FormatUint(pos.Offset, 10)) })
}

func (s *sink) incompleteAt(last events.Position) {
	if last.Channel != events.ChannelBooks {
		panic("Incomplete for channel " + last.Channel)
	}
	s.update(func() { s.log = append(s.log, "!"+last.Epoch+strconv.FormatUint(last.Offset, 10)) })
}

func (s *sink) GapFilled(n int)   { s.update(func() { s.gapsFilled += n }) }
func (s *sink) StreamIncomplete() { s.update(func() { s.incomplete++ }) }
func (s *sink) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gapsFilled, s.incomplete
}

// waitFor blocks until the log has n entries and returns them.
func (s *sink) waitFor(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		got, ch := slices.Clone(s.log), s.changed
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("feed handed on %v, want %d entries", got, n)
		}
	}
}

// expect waits for the log to have len(want) entries and compares them.
func (s *sink) expect(t *testing.T, want ...string) {
	t.Helper()
	if got := s.waitFor(t, len(want)); !slices.Equal(got, want) {
		t.Fatalf("feed handed on %v\nwant            %v", got, want)
	}
}

// fixture is a running feed over a fake history.
type fixture struct {
	feed *feed.Feed
	hist *history
	sink *sink
}

// quick are options for tests: short delays, no periodic check unless a
// test asks for one.
func quick(o *feed.Options) {
	o.FillDelay = 10 * time.Millisecond
	o.GiveUpAfter = 50 * time.Millisecond
	o.CheckInterval = time.Hour
}

// start runs a feed and returns once it has read its starting position,
// so that events the test commits afterwards are news to it.
func start(t *testing.T, hist *history, configure ...func(*feed.Options)) *fixture {
	t.Helper()
	f := newFixture(t, hist, configure...)
	calls := len(hist.callsSoFar())
	f.run(t)
	hist.waitCalls(t, calls+1)
	return f
}

// newFixture creates the feed without running it.
func newFixture(t *testing.T, hist *history, configure ...func(*feed.Options)) *fixture {
	t.Helper()
	s := newSink()
	opts := feed.Options{
		History: hist, Deliver: s.deliver, Incomplete: s.incompleteAt, Observer: s,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	quick(&opts)
	for _, c := range configure {
		c(&opts)
	}
	f, err := feed.New(opts)
	if err != nil {
		t.Fatalf("feed.New: %v", err)
	}
	return &fixture{feed: f, hist: hist, sink: s}
}

func (f *fixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.feed.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

// handle gives the feed the events with the given offsets, as the bus
// would deliver them.
func (f *fixture) handle(evs []events.Event, offsets ...uint64) {
	for _, off := range offsets {
		f.feed.Handle(evs[off-1])
	}
}

func TestNew(t *testing.T) {
	deliver := func(events.Event) {}
	for name, opts := range map[string]feed.Options{
		"ErrNoHistory": {Deliver: deliver},
		"ErrNoDeliver": {History: newHistory()},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := feed.New(opts); err == nil {
				t.Fatal("New accepted incomplete options")
			}
		})
	}
}

func TestDeliversInOrderOnce(t *testing.T) {
	f := start(t, newHistory())
	evs := f.hist.commit(100)
	for _, ev := range evs {
		f.feed.Handle(ev)
	}
	want := make([]string, len(evs))
	for i := range want {
		want[i] = "A" + strconv.Itoa(i+1)
	}
	f.sink.expect(t, want...)
	if calls := f.hist.callsSoFar(); len(calls) != 1 {
		t.Errorf("history read %d times (after %v), want only the start", len(calls), calls)
	}
}

func TestDropsDuplicates(t *testing.T) {
	f := start(t, newHistory())
	evs := f.hist.commit(4)
	f.handle(evs, 1, 1, 2, 1, 3, 2, 3, 3)
	f.handle(evs, 4) // a barrier: everything before it has been judged
	f.sink.expect(t, "A1", "A2", "A3", "A4")
}

func TestEventsWithoutABooksOffsetAreIgnored(t *testing.T) {
	f := start(t, newHistory())
	evs := f.hist.commit(2)
	f.feed.Handle(events.Event{ID: "no-position"})
	f.feed.Handle(events.Event{ID: "other-channel", Positions: []events.Position{{Channel: "books:1", Offset: 1, Epoch: "A"}}})
	// Offset 0 is "before the first event": never a real event. Taking it
	// as one, in a new epoch, would wrap the expected offset around.
	f.feed.Handle(event("B", 0))
	f.handle(evs, 1, 2)
	f.sink.expect(t, "A1", "A2")
	if _, incomplete := f.sink.counts(); incomplete != 0 {
		t.Errorf("%d incomplete streams, want none", incomplete)
	}
}

func TestReorderedArrivalWaitsForTheBus(t *testing.T) {
	f := start(t, newHistory(), func(o *feed.Options) { o.FillDelay = 20 * time.Millisecond })
	evs := f.hist.commit(3)
	f.handle(evs, 1, 3, 2) // two instances' publishes crossed in flight
	f.sink.expect(t, "A1", "A2", "A3")
	// The gap closed long before FillDelay: nothing may read the history
	// for it, now or when the fill timer would have fired. Proving that
	// something does not happen takes a bounded wait.
	<-time.After(10 * 20 * time.Millisecond)
	if calls := f.hist.callsSoFar(); len(calls) != 1 {
		t.Fatalf("history read after %v, want only the start read", calls[1:])
	}
	if filled, _ := f.sink.counts(); filled != 0 {
		t.Errorf("GapFilled(%d), want none", filled)
	}
}

func TestLostEventIsFilledFromHistory(t *testing.T) {
	f := start(t, newHistory())
	evs := f.hist.commit(4)
	f.handle(evs, 1, 3, 4) // 2 was lost between Redis and this instance
	f.sink.expect(t, "A1", "A2", "A3", "A4")
	if filled, incomplete := f.sink.counts(); filled != 1 || incomplete != 0 {
		t.Errorf("GapFilled %d, StreamIncomplete %d; want 1, 0", filled, incomplete)
	}
	if calls := f.hist.callsSoFar(); len(calls) < 2 || calls[1] != 1 {
		t.Errorf("history reads after %v, want a read after offset 1", calls)
	}
}

func TestHistoryFailingGivesUp(t *testing.T) {
	f := start(t, newHistory())
	evs := f.hist.commit(5)
	f.hist.fail(errDown)
	began := time.Now()
	f.handle(evs, 1, 3, 4)
	// Incomplete names the last position delivered before the gap; the
	// held events follow, in order.
	f.sink.expect(t, "A1", "!A1", "A3", "A4")
	if waited := time.Since(began); waited < 50*time.Millisecond {
		t.Errorf("gave up after %v, before GiveUpAfter", waited)
	}
	if _, incomplete := f.sink.counts(); incomplete != 1 {
		t.Errorf("StreamIncomplete %d, want 1", incomplete)
	}

	t.Run("ContinuesAfterRecovery", func(t *testing.T) {
		f.hist.fail(nil)
		f.handle(evs, 5)
		f.sink.expect(t, "A1", "!A1", "A3", "A4", "A5")
	})
}

func TestPrunedHistoryIsIncompleteThenContinues(t *testing.T) {
	f := start(t, newHistory())
	evs := f.hist.commit(7)
	f.handle(evs, 1)
	f.sink.expect(t, "A1")
	f.hist.prune(3) // 2 and 3 were lost and are no longer in history
	f.handle(evs, 5)
	f.sink.expect(t, "A1", "!A1", "A4", "A5", "A6", "A7")
	f.handle(evs, 4, 6, 7) // late duplicates
	more := f.hist.commit(1)
	f.feed.Handle(more[0])
	f.sink.expect(t, "A1", "!A1", "A4", "A5", "A6", "A7", "A8")
}

func TestTailLoss(t *testing.T) {
	// The last event has no successor to reveal its loss.
	t.Run("FoundByResync", func(t *testing.T) {
		f := start(t, newHistory())
		evs := f.hist.commit(3)
		f.handle(evs, 1, 2)
		f.sink.expect(t, "A1", "A2")
		f.feed.Resync() // the bus reconnected
		f.sink.expect(t, "A1", "A2", "A3")
		if filled, _ := f.sink.counts(); filled != 1 {
			t.Errorf("GapFilled %d, want 1", filled)
		}
	})
	t.Run("FoundByCheckInterval", func(t *testing.T) {
		f := start(t, newHistory(), func(o *feed.Options) { o.CheckInterval = 20 * time.Millisecond })
		evs := f.hist.commit(3)
		f.handle(evs, 1, 2)
		f.sink.expect(t, "A1", "A2", "A3")
	})
	t.Run("PrunedFoundByResync", func(t *testing.T) {
		f := start(t, newHistory())
		evs := f.hist.commit(4)
		f.handle(evs, 1)
		f.sink.expect(t, "A1")
		f.hist.prune(2)
		f.feed.Resync()
		f.sink.expect(t, "A1", "!A1", "A3", "A4")
	})
	t.Run("HistoryDownIsNotIncomplete", func(t *testing.T) {
		// Nothing is known to be missing, so nothing is declared.
		f := start(t, newHistory(), func(o *feed.Options) { o.CheckInterval = 20 * time.Millisecond })
		evs := f.hist.commit(2)
		f.hist.fail(errDown)
		f.handle(evs, 1)
		f.feed.Resync()
		calls := len(f.hist.callsSoFar())
		f.hist.waitCalls(t, calls+2) // two checks failed
		f.hist.fail(nil)
		f.sink.expect(t, "A1", "A2")
		if _, incomplete := f.sink.counts(); incomplete != 0 {
			t.Errorf("StreamIncomplete %d, want 0", incomplete)
		}
	})
}

func TestEpochChange(t *testing.T) {
	t.Run("SeenOnTheBus", func(t *testing.T) {
		f := start(t, newHistory())
		evs := f.hist.commit(2)
		f.handle(evs, 1, 2)
		f.hist.reset("B", 2)
		f.feed.Handle(event("B", 1))
		f.feed.Handle(event("A", 2)) // a late duplicate of the old epoch is not news
		f.feed.Handle(event("B", 2))
		got := f.sink.waitFor(t, 5)
		if want := []string{"A1", "A2", "!A2", "B1", "B2"}; !slices.Equal(got[:5], want) {
			t.Fatalf("feed handed on %v, want %v first", got, want)
		}
	})
	t.Run("SeenInHistoryWhileAGapIsOpen", func(t *testing.T) {
		f := start(t, newHistory())
		evs := f.hist.commit(3)
		f.handle(evs, 1, 3) // 2 lost, and then the history is rebuilt
		f.hist.reset("B", 5)
		// No further live event arrives: the feed must not wait for one
		// to tell subscribers. It continues from the new epoch's position.
		f.sink.expect(t, "A1", "!A1")
		f.feed.Handle(event("B", 5)) // already history when the feed switched
		f.feed.Handle(event("B", 6))
		f.sink.expect(t, "A1", "!A1", "B6")
	})
}

func TestMaxHeldGivesUp(t *testing.T) {
	f := start(t, newHistory(), func(o *feed.Options) {
		o.MaxHeld = 3
		o.FillDelay, o.GiveUpAfter = time.Hour, time.Hour // only the bound can end the gap
	})
	evs := f.hist.commit(6)
	f.handle(evs, 1, 3, 4, 5)
	f.sink.expect(t, "A1")
	f.handle(evs, 6)
	f.sink.expect(t, "A1", "!A1", "A3", "A4", "A5", "A6")
}

func TestRunStartsAfterTheCurrentPosition(t *testing.T) {
	hist := newHistory()
	old := hist.commit(5) // committed before this instance started
	f := start(t, hist)
	f.handle(old, 3, 4, 5)
	f.feed.Resync()
	evs := f.hist.commit(1)
	f.feed.Handle(evs[0])
	f.sink.expect(t, "A6")
	f.feed.Resync()
	more := f.hist.commit(1)
	f.feed.Handle(more[0])
	f.sink.expect(t, "A6", "A7")
}

func TestRunRetriesTheStartPosition(t *testing.T) {
	hist := newHistory()
	hist.fail(errDown)
	f := newFixture(t, hist)
	f.run(t)
	hist.waitCalls(t, 2) // retried after a failure
	hist.fail(nil)
	hist.waitCalls(t, 3)
	evs := hist.commit(1)
	f.feed.Handle(evs[0])
	f.sink.expect(t, "A1")
}

func TestHandleNeverBlocks(t *testing.T) {
	hist := newHistory()
	f := newFixture(t, hist)
	release := make(chan struct{})
	f.sink.block = release // the feed's goroutine stalls in its first Deliver
	f.run(t)
	hist.waitCalls(t, 1)
	const n = 1<<16 + 100 // more than the inbox holds
	evs := hist.commit(n)
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		for _, ev := range evs {
			f.feed.Handle(ev)
		}
	}()
	select {
	case <-handled:
	case <-time.After(testTimeout):
		t.Fatal("Handle blocked while the feed was stalled")
	}
	close(release)
	got := f.sink.waitFor(t, n)
	for i, e := range got {
		if want := "A" + strconv.Itoa(i+1); e != want {
			t.Fatalf("entry %d is %s, want %s (%s)", i, e, want, strings.Join(got[max(0, i-3):i+1], " "))
		}
	}
	if filled, _ := f.sink.counts(); filled == 0 {
		t.Error("no event was read back from history, yet the inbox overflowed")
	}
}
