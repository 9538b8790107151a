// Package feed turns what the bus delivers (at least once, and in the order
// Redis happened to receive publishes from several instances) into the
// stream the hub needs: every event of the "books" channel exactly once, in
// offset order, with no gap.
//
// Events arrive with their position on "books". The next expected offset is
// delivered at once; an older one is a duplicate and dropped; a newer one
// opens a gap. A gap usually closes by itself within milliseconds (two
// instances' publishes crossed in flight), so the feed waits FillDelay for
// the missing events before it reads them from the durable history. If the
// history cannot fill the gap (the database is down, or the events were
// pruned) within GiveUpAfter, the feed says so through Options.Incomplete
// before it moves on: no subscriber ever sees a gap silently.
//
// A lost event at the tail has no later event to reveal it, so the feed
// also reads the history after every bus reconnect (Resync) and every
// CheckInterval.
//
// Offsets are comparable only within an epoch. When the history's epoch
// changes (it was reset), the feed calls Incomplete, drops what it held for
// the old epoch and continues in the new one. Epochs are random, so an
// event of another epoch on the bus restarts the stream only once the
// history confirms that epoch is current; a late duplicate from the old
// epoch is dropped.
//
// Because "books" carries every change in commit order, a book's own channel
// is a subsequence of it: ordering "books" orders every channel.
package feed

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/bookhub/bookhub/events"
)

// History reads the durable history of the "books" channel.
type History interface {
	// Since returns up to limit events with an offset above after, in
	// offset order, and the channel's current position.
	Since(ctx context.Context, after uint64, limit int) ([]events.Event, events.Position, error)
}

// Observer receives metrics hooks; methods must not block.
type Observer interface {
	// GapFilled counts events the feed read from history because the bus
	// had not delivered them.
	GapFilled(n int)
	// StreamIncomplete counts gaps the history could not fill.
	StreamIncomplete()
}

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// History and Deliver are required. Deliver receives every event once,
	// in offset order, on the feed's goroutine; it must not block.
	History History
	Deliver func(events.Event)
	// Incomplete is told the last position delivered before events the
	// feed could not recover; delivery resumes after the gap.
	Incomplete func(last events.Position)
	Logger     *slog.Logger
	Observer   Observer
	// FillDelay is how long a gap may stay open before the history is
	// read. Default 50ms.
	FillDelay time.Duration
	// GiveUpAfter is how long the feed tries to fill a gap before it
	// declares the stream incomplete. Default 5s.
	GiveUpAfter time.Duration
	// CheckInterval is how often the history is read for events lost at
	// the tail. Default 5s.
	CheckInterval time.Duration
	// MaxHeld bounds the events held behind a gap. Default 10000.
	MaxHeld int
}

// Defaults for zero Options fields.
const (
	DefaultFillDelay     = 50 * time.Millisecond
	DefaultGiveUpAfter   = 5 * time.Second
	DefaultCheckInterval = 5 * time.Second
	DefaultMaxHeld       = 10000
	fillBatch            = 500
	inboxSize            = 1 << 16
)

// Feed orders the bus's events. Create it with New, run it with Run.
type Feed struct {
	opts   Options
	log    *slog.Logger
	obs    Observer
	inbox  chan events.Event
	resync chan struct{}

	// Owned by Run's goroutine.
	epoch    string
	last     uint64
	held     map[uint64]events.Event
	gapSince time.Time
}

// New validates opts and fills defaults.
func New(opts Options) (*Feed, error) {
	if opts.History == nil || opts.Deliver == nil {
		return nil, errors.New("feed: Options.History and Deliver are required")
	}
	if opts.FillDelay <= 0 {
		opts.FillDelay = DefaultFillDelay
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = DefaultGiveUpAfter
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = DefaultMaxHeld
	}
	f := &Feed{
		opts: opts, log: opts.Logger, obs: opts.Observer,
		inbox:  make(chan events.Event, inboxSize),
		resync: make(chan struct{}, 1),
		held:   make(map[uint64]events.Event),
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.obs == nil {
		f.obs = nopObserver{}
	}
	if f.opts.Incomplete == nil {
		f.opts.Incomplete = func(events.Position) {}
	}
	return f, nil
}

// Handle is the bus handler. It never blocks: when the inbox is full the
// event is dropped and the feed reads it back from history instead.
func (f *Feed) Handle(ev events.Event) {
	select {
	case f.inbox <- ev:
	default:
		f.Resync()
	}
}

// Resync asks the feed to read the history for anything it missed, as after
// the bus reconnects. It never blocks.
func (f *Feed) Resync() {
	select {
	case f.resync <- struct{}{}:
	default:
	}
}

// Run starts after the current position of "books" (events committed before
// are history, not news), then orders events until ctx is done.
func (f *Feed) Run(ctx context.Context) error {
	if err := f.start(ctx); err != nil {
		return err
	}
	check := time.NewTicker(f.opts.CheckInterval)
	defer check.Stop()
	fill := time.NewTimer(time.Hour)
	fill.Stop()
	defer fill.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-f.inbox:
			if f.accept(ctx, ev) {
				fill.Reset(f.opts.FillDelay)
			}
		case <-fill.C:
			if len(f.held) == 0 {
				// The gap closed on the bus before the timer fired (the
				// usual reordering): nothing to read.
				continue
			}
			if f.fill(ctx) {
				fill.Reset(f.retryDelay())
			}
		case <-f.resync:
			if f.fill(ctx) {
				fill.Reset(f.retryDelay())
			}
		case <-check.C:
			if f.fill(ctx) {
				fill.Reset(f.retryDelay())
			}
		}
	}
}

// start reads the current position, retrying until the database answers.
func (f *Feed) start(ctx context.Context) error {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		_, cur, err := f.opts.History.Since(ctx, ^uint64(0), 1)
		if err == nil {
			f.epoch, f.last = cur.Epoch, cur.Offset
			return nil
		}
		f.log.Warn("feed: reading the position of books", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// retryDelay spaces history reads while a gap stays open.
func (f *Feed) retryDelay() time.Duration { return max(f.opts.FillDelay, 250*time.Millisecond) }

// accept takes one event from the bus and reports whether a gap opened.
func (f *Feed) accept(ctx context.Context, ev events.Event) (gapOpened bool) {
	pos, ok := ev.Position(events.ChannelBooks)
	if !ok || pos.Offset == 0 {
		// Offset 0 is the position before the first event, never an
		// event's; taken as one it would wrap f.last around.
		f.log.Warn("feed: event without a books offset", "event_id", ev.ID)
		return false
	}
	if pos.Epoch != f.epoch {
		if !f.epochIsCurrent(ctx, pos.Epoch) {
			// A late duplicate from before the history was reset: switching
			// back to its epoch would restart the stream twice.
			f.log.Warn("feed: event of a stale epoch dropped", "event_id", ev.ID, "epoch", pos.Epoch)
			return false
		}
		// The history was reset: earlier offsets mean nothing any more.
		f.log.Warn("feed: books epoch changed; the stream restarts", "old", f.epoch, "new", pos.Epoch)
		f.restart(pos.Epoch, pos.Offset-1)
	}
	switch {
	case pos.Offset <= f.last:
		return false // a duplicate: at-least-once publishing, or already filled
	case pos.Offset == f.last+1:
		f.deliver(ev)
		f.drain()
		return false
	}
	if _, dup := f.held[pos.Offset]; dup {
		return false
	}
	f.held[pos.Offset] = ev
	if len(f.held) > f.opts.MaxHeld {
		f.giveUp("too many events held behind the gap")
		return false
	}
	if f.gapSince.IsZero() {
		f.gapSince = time.Now()
		return true
	}
	return false
}

// epochIsCurrent asks the history whether epoch is the channel's, since
// epochs are random and cannot be ordered. When the history cannot answer,
// the bus is believed: it only carries events that were committed.
func (f *Feed) epochIsCurrent(ctx context.Context, epoch string) bool {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, cur, err := f.opts.History.Since(qctx, ^uint64(0), 1)
	if err != nil {
		f.log.Warn("feed: cannot confirm a new epoch", "epoch", epoch, "err", err)
		return true
	}
	return cur.Epoch == epoch
}

// restart tells subscribers that the stream is incomplete, then continues
// in epoch after offset last; events held for the old epoch are dropped.
func (f *Feed) restart(epoch string, last uint64) {
	f.incomplete()
	f.epoch, f.last = epoch, last
	clear(f.held)
	f.gapSince = time.Time{}
}

func (f *Feed) deliver(ev events.Event) {
	f.last++
	f.opts.Deliver(ev)
}

// drain delivers held events that have become contiguous.
func (f *Feed) drain() {
	for {
		ev, ok := f.held[f.last+1]
		if !ok {
			break
		}
		delete(f.held, f.last+1)
		f.deliver(ev)
	}
	if len(f.held) == 0 {
		f.gapSince = time.Time{}
	}
}

// fill reads the history after the last delivered offset and reports
// whether a gap is still open (so the caller retries).
func (f *Feed) fill(ctx context.Context) (stillOpen bool) {
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		evs, cur, err := f.opts.History.Since(qctx, f.last, fillBatch)
		cancel()
		if err != nil {
			if len(f.held) == 0 {
				f.log.Debug("feed: history check failed", "err", err)
				return false
			}
			if time.Since(f.gapSince) >= f.opts.GiveUpAfter {
				f.log.Warn("feed: history unavailable to fill a gap", "after", f.last, "err", err)
				f.giveUp("history unavailable")
				return false
			}
			return true
		}
		if cur.Epoch != f.epoch {
			// The history was reset. Waiting for the next live event to
			// notice would leave subscribers stale, and a held gap open,
			// for as long as no one writes: restart from its position now.
			f.log.Warn("feed: books epoch changed in history; the stream restarts", "old", f.epoch, "new", cur.Epoch)
			f.restart(cur.Epoch, cur.Offset)
			return false
		}
		filled := 0
		for _, ev := range evs {
			pos, _ := ev.Position(events.ChannelBooks)
			if pos.Offset <= f.last {
				continue
			}
			if pos.Offset > f.last+1 {
				// Pruned from history before this instance saw it.
				f.log.Warn("feed: history no longer holds missing events", "after", f.last, "next", pos.Offset)
				f.incomplete()
				f.last = pos.Offset - 1
			}
			delete(f.held, pos.Offset)
			f.deliver(ev)
			filled++
			f.drain()
		}
		if filled > 0 {
			f.obs.GapFilled(filled)
		}
		if len(evs) == fillBatch {
			continue
		}
		if len(f.held) > 0 {
			// Held events beyond what history holds: they were committed,
			// so history must have the offsets below them unless pruned.
			if time.Since(f.gapSince) >= f.opts.GiveUpAfter {
				f.giveUp("history does not hold the missing events")
				return false
			}
			return true
		}
		return false
	}
	return false
}

// giveUp tells subscribers the stream is incomplete after the last
// delivered position, then delivers what is held, in order.
func (f *Feed) giveUp(why string) {
	f.log.Warn("feed: stream incomplete", "after", f.last, "reason", why, "held", len(f.held))
	f.incomplete()
	for _, off := range slices.Sorted(maps.Keys(f.held)) {
		f.last = off - 1
		f.deliver(f.held[off])
	}
	clear(f.held)
	f.gapSince = time.Time{}
}

func (f *Feed) incomplete() {
	f.obs.StreamIncomplete()
	f.opts.Incomplete(events.Position{Channel: events.ChannelBooks, Offset: f.last, Epoch: f.epoch})
}

type nopObserver struct{}

func (nopObserver) GapFilled(int)     {}
func (nopObserver) StreamIncomplete() {}
