// Package relay publishes the outbox to the event bus: every committed
// change reaches the bus at least once.
//
// The instance that commits a write hands its change to the relay at once
// (Handoff, wired to store.Options.OnCommit), so the normal path has no
// polling delay. A sweep publishes whatever that path could not: rows left
// by a crash between commit and publish, rows whose publish failed while
// Redis was down, rows dropped because the hand-off queue was full. The
// sweep only takes rows older than a grace period, so it does not race the
// hand-off path, and on MySQL it claims rows with SELECT ... FOR UPDATE SKIP
// LOCKED, so instances sweeping together never publish the same row at the
// same time. A row published twice anyway (a crash after publish, before it
// was marked) is a duplicate that receivers drop by its offset.
//
// The relay also prunes the outbox's published rows beyond the history
// retention and reports the outbox's size and lag.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/store"
)

// Store is the part of the store the relay needs; *store.Store satisfies it.
type Store interface {
	ClaimUnpublished(ctx context.Context, olderThan time.Time, limit int, publish func([]store.Change) []int64) (int, error)
	MarkPublished(ctx context.Context, seqs []int64) error
	Prune(ctx context.Context, maxAge time.Duration, keep uint64) (int64, error)
	OutboxStats(ctx context.Context) (store.OutboxStats, error)
}

var _ Store = (*store.Store)(nil)

// Observer receives metrics hooks; methods must not block.
type Observer interface {
	// Relayed counts changes published, by path: "handoff" or "sweep".
	Relayed(path string, n int)
	// RelayFailed counts failed publishes (the change stays in the outbox).
	RelayFailed()
	// Outbox reports the outbox's size and lag every few seconds.
	Outbox(st store.OutboxStats)
}

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Store, Bus and Render are required. Render turns a change into the
	// event the bus carries.
	Store  Store
	Bus    events.Publisher
	Render func(store.Change) (events.Event, error)
	// Logger: default slog.Default().
	Logger *slog.Logger
	// Observer: nil disables metrics.
	Observer Observer
	// PublishTimeout bounds one publish. Default 2s.
	PublishTimeout time.Duration
	// SweepInterval is how often unpublished rows are looked for. Default 1s.
	SweepInterval time.Duration
	// SweepGrace is how old an unpublished row must be before the sweep
	// takes it from the hand-off path. Default 2s.
	SweepGrace time.Duration
	// HistoryMaxAge and HistorySize bound the durable history: published
	// rows are pruned once older than HistoryMaxAge and more than
	// HistorySize events behind the head. Defaults 24h and 10000.
	HistoryMaxAge time.Duration
	HistorySize   uint64
	// PruneInterval is how often to prune the history.
	// Default 30s.
	PruneInterval time.Duration
	// StatsInterval is how often the outbox's size and lag are reported to
	// the Observer. Default 5s.
	StatsInterval time.Duration
	// QueueSize bounds the hand-off queue; a full queue leaves changes to
	// the sweep. Default 4096.
	QueueSize int
}

// Defaults for zero Options fields.
const (
	DefaultPublishTimeout = 2 * time.Second
	DefaultSweepInterval  = time.Second
	DefaultSweepGrace     = 2 * time.Second
	DefaultHistoryMaxAge  = 24 * time.Hour
	DefaultHistorySize    = 10000
	DefaultPruneInterval  = 30 * time.Second
	DefaultStatsInterval  = 5 * time.Second
	DefaultQueueSize      = 4096
	sweepBatch            = 500
	// markDelay and markBatch bound how long and how many published rows
	// wait to be marked together.
	markDelay = 100 * time.Millisecond
	markBatch = 500
)

// Relay publishes outbox rows. Create it with New, start it with Run.
type Relay struct {
	opts  Options
	log   *slog.Logger
	obs   Observer
	queue chan store.Change
}

// New validates opts and fills defaults.
func New(opts Options) (*Relay, error) {
	if opts.Store == nil || opts.Bus == nil || opts.Render == nil {
		return nil, errors.New("relay: Options.Store, Bus and Render are required")
	}
	if opts.PublishTimeout < 0 || opts.SweepInterval < 0 || opts.SweepGrace < 0 ||
		opts.HistoryMaxAge < 0 || opts.PruneInterval < 0 || opts.StatsInterval < 0 || opts.QueueSize < 0 {
		return nil, errors.New("relay: negative option")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.PublishTimeout, DefaultPublishTimeout)
	def(&opts.SweepInterval, DefaultSweepInterval)
	def(&opts.SweepGrace, DefaultSweepGrace)
	def(&opts.HistoryMaxAge, DefaultHistoryMaxAge)
	def(&opts.PruneInterval, DefaultPruneInterval)
	def(&opts.StatsInterval, DefaultStatsInterval)
	if opts.HistorySize == 0 {
		opts.HistorySize = DefaultHistorySize
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = DefaultQueueSize
	}
	r := &Relay{opts: opts, log: opts.Logger, obs: opts.Observer, queue: make(chan store.Change, opts.QueueSize)}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.obs == nil {
		r.obs = nopObserver{}
	}
	return r, nil
}

// Handoff queues a committed change for publishing without blocking. When
// the queue is full the change is left to the sweep, which publishes it
// within SweepGrace + SweepInterval.
func (r *Relay) Handoff(c store.Change) {
	select {
	case r.queue <- c:
	default:
	}
}

// Run publishes handed-off changes, sweeps and prunes until ctx is done.
// Changes still queued when ctx ends stay in the outbox for the next sweep
// (of this or another instance).
func (r *Relay) Run(ctx context.Context) {
	sweep := time.NewTicker(r.opts.SweepInterval)
	defer sweep.Stop()
	prune := time.NewTicker(r.opts.PruneInterval)
	defer prune.Stop()
	stats := time.NewTicker(r.opts.StatsInterval)
	defer stats.Stop()
	batch := make([]store.Change, 0, 64)
	var pausedUntil time.Time
	// Published rows are marked in batches: a mark is a database commit,
	// and one per write would double the commits the outbox costs. A row
	// marked late is harmless (the sweep waits SweepGrace before it looks).
	var unmarked []int64
	markTimer := time.NewTimer(time.Hour)
	markTimer.Stop()
	defer markTimer.Stop()
	flush := func() {
		if len(unmarked) > 0 {
			r.mark(ctx, unmarked)
			unmarked = unmarked[:0]
		}
	}
	defer flush()
	for {
		select {
		case <-ctx.Done():
			return
		case <-markTimer.C:
			flush()
		case c := <-r.queue:
			batch = append(batch[:0], c)
		drain:
			for len(batch) < cap(batch) {
				select {
				case c := <-r.queue:
					batch = append(batch, c)
				default:
					break drain
				}
			}
			if time.Now().Before(pausedUntil) {
				continue // the bus just failed: leave these to the sweep
			}
			published, err := r.publish(ctx, batch)
			if len(published) > 0 {
				r.obs.Relayed("handoff", len(published))
				if len(unmarked) == 0 {
					markTimer.Reset(markDelay)
				}
				if unmarked = append(unmarked, published...); len(unmarked) >= markBatch {
					flush()
				}
			}
			if err != nil {
				pausedUntil = time.Now().Add(r.opts.SweepInterval)
			}
		case <-sweep.C:
			r.sweep(ctx)
		case <-prune.C:
			r.prune(ctx)
		case <-stats.C:
			r.stats(ctx)
		}
	}
}

// publish publishes changes in order and returns the Seq of each one done
// with, stopping at the first failure worth retrying.
func (r *Relay) publish(ctx context.Context, changes []store.Change) ([]int64, error) {
	seqs := make([]int64, 0, len(changes))
	for _, c := range changes {
		if err := r.publishOne(ctx, c); err != nil {
			r.obs.RelayFailed()
			if ctx.Err() == nil {
				r.log.Warn("relay: publish failed; the change stays in the outbox for the sweep",
					"offset", c.Offset, "event_id", c.EventID, "err", err)
			}
			return seqs, fmt.Errorf("publish offset %d: %w", c.Offset, err)
		}
		seqs = append(seqs, c.Seq)
	}
	return seqs, nil
}

// publishOne publishes c and returns only errors worth retrying. A change
// that can never be published (it does not render, or the bus refuses it as
// it is: events.ErrUndeliverable) is logged and counted, and done with:
// retrying it forever would stall every row behind it in the sweep, and
// subscribers still get it, since the feeds read it from the history.
func (r *Relay) publishOne(ctx context.Context, c store.Change) error {
	ev, err := r.opts.Render(c)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
		err = r.opts.Bus.Publish(pctx, ev)
		cancel()
		if err != nil && !errors.Is(err, events.ErrUndeliverable) {
			return err
		}
	}
	if err != nil {
		r.obs.RelayFailed()
		r.log.Error("relay: change cannot be published; subscribers get it from the history",
			"seq", c.Seq, "offset", c.Offset, "event_id", c.EventID, "err", err)
	}
	return nil
}

func (r *Relay) mark(ctx context.Context, seqs []int64) {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.PublishTimeout)
	defer cancel()
	if err := r.opts.Store.MarkPublished(mctx, seqs); err != nil {
		// Harmless beyond a duplicate: the sweep publishes them again and
		// receivers drop repeated offsets.
		r.log.Warn("relay: mark published", "rows", len(seqs), "err", err)
	}
}

// sweep publishes old unpublished rows until none are left, the bus fails,
// or a batch publishes nothing (rows that cannot be rendered).
func (r *Relay) sweep(ctx context.Context) {
	for ctx.Err() == nil {
		var (
			pubErr    error
			published int
		)
		sctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout*sweepBatch/10+r.opts.PublishTimeout)
		n, err := r.opts.Store.ClaimUnpublished(sctx, time.Now().Add(-r.opts.SweepGrace), sweepBatch,
			func(changes []store.Change) []int64 {
				seqs, err := r.publish(sctx, changes)
				pubErr, published = err, len(seqs)
				return seqs
			})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("relay: sweep", "err", err)
			}
			return
		}
		if published > 0 {
			// Counted once the claim committed, so once marked.
			r.obs.Relayed("sweep", published)
			r.log.Info("relay: sweep published changes the hand-off path did not", "count", published)
		}
		if pubErr != nil || n < sweepBatch || published == 0 {
			return
		}
	}
}

func (r *Relay) prune(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if n, err := r.opts.Store.Prune(pctx, r.opts.HistoryMaxAge, r.opts.HistorySize); err != nil {
		r.log.Warn("relay: prune outbox", "err", err)
	} else if n > 0 {
		r.log.Debug("relay: pruned outbox", "rows", n)
	}
}

func (r *Relay) stats(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := r.opts.Store.OutboxStats(sctx)
	if err != nil {
		r.log.Warn("relay: outbox stats", "err", err)
		return
	}
	r.obs.Outbox(st)
}

type nopObserver struct{}

func (nopObserver) Relayed(string, int)         {}
func (nopObserver) RelayFailed()                {}
func (nopObserver) Outbox(st store.OutboxStats) {}
