package cache

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxPending caps the namespaces whose failed bump is remembered; beyond
// it they are replaced by one bump of "all", which invalidates everything.
const maxPending = 1024

// breaker keeps the cache out of the way of a failing backend and keeps
// the invalidations the backend did not take.
//
// After a failure it opens for the cooldown: reads bypass the cache. A
// bump is always attempted (a write must try to invalidate), together with
// every pending one. While bumps are pending the cache is bypassed on this
// instance: it could hold entries those bumps were meant to invalidate.
// The first read after the cooldown re-applies them.
type breaker struct {
	be       backend
	obs      Observer
	log      *slog.Logger
	now      func() time.Time
	cooldown time.Duration
	timeout  time.Duration // per backend call; 0 for the in-process backend

	mu        sync.Mutex
	openUntil time.Time
	open      bool              // for logging the end of a failure once
	pending   map[string]uint64 // namespace -> seq of the last failed bump
	seq       uint64
	flushing  bool
}

func newBreaker(be backend, o Options, log *slog.Logger) *breaker {
	b := &breaker{
		be:       be,
		obs:      o.Observer,
		log:      log,
		now:      o.Now,
		cooldown: o.BreakerCooldown,
		pending:  make(map[string]uint64),
	}
	if be.layer() == LayerRedis {
		b.timeout = o.OpTimeout
	}
	return b
}

// opCtx bounds one backend call.
func (b *breaker) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if b.timeout == 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.timeout)
}

// usable reports whether a read may use the cache, re-applying pending
// bumps first when the cooldown has passed.
func (b *breaker) usable(ctx context.Context) bool {
	b.mu.Lock()
	if b.open && b.now().Before(b.openUntil) {
		b.mu.Unlock()
		return false
	}
	if len(b.pending) == 0 {
		b.closeLocked()
		b.mu.Unlock()
		return true
	}
	if b.flushing {
		b.mu.Unlock()
		return false
	}
	b.flushing = true
	snap := b.snapshotLocked(nil)
	b.mu.Unlock()

	// The flush serves every reader, not just this one: the caller's
	// cancellation must not fail it.
	err := b.apply(context.WithoutCancel(ctx), snap)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushing = false
	if err != nil {
		b.tripLocked(OpInvalidate, err)
		return false
	}
	b.doneLocked(snap)
	if len(b.pending) > 0 {
		return false
	}
	b.closeLocked()
	return true
}

// bump invalidates nss together with every pending namespace; on failure
// nss join the pending ones.
func (b *breaker) bump(ctx context.Context, nss []string) error {
	b.mu.Lock()
	snap := b.snapshotLocked(nss)
	b.mu.Unlock()

	err := b.apply(ctx, snap)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		for _, ns := range nss {
			b.seq++
			b.pending[ns] = b.seq
		}
		if len(b.pending) > maxPending {
			b.seq++
			clear(b.pending)
			b.pending[nsAll] = b.seq
		}
		b.tripLocked(OpInvalidate, err)
		return err
	}
	b.doneLocked(snap)
	return nil
}

// apply runs one bump of snap's namespaces.
func (b *breaker) apply(ctx context.Context, snap map[string]uint64) error {
	nss := make([]string, 0, len(snap))
	for ns := range snap {
		nss = append(nss, ns)
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	if err := b.be.bump(octx, nss); err != nil {
		return err
	}
	b.obs.Invalidation(b.be.layer())
	return nil
}

// snapshotLocked returns the pending namespaces plus extra (seq 0: not
// pending).
func (b *breaker) snapshotLocked(extra []string) map[string]uint64 {
	snap := make(map[string]uint64, len(b.pending)+len(extra))
	for _, ns := range extra {
		snap[ns] = 0
	}
	for ns, s := range b.pending {
		snap[ns] = s
	}
	return snap
}

// doneLocked forgets the pending bumps snap applied. One that failed again
// meanwhile has a newer seq and stays: its write may have committed after
// the bump that just succeeded.
func (b *breaker) doneLocked(snap map[string]uint64) {
	for ns, s := range snap {
		if s != 0 && b.pending[ns] == s {
			delete(b.pending, ns)
		}
	}
}

// fail records a failed lookup or store. A failure caused by the caller's
// own context ending says nothing about the backend and opens nothing.
func (b *breaker) fail(ctx context.Context, op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ctx.Err() != nil {
		b.obs.Error(b.be.layer(), op)
		return
	}
	b.tripLocked(op, err)
}

func (b *breaker) tripLocked(op string, err error) {
	b.obs.Error(b.be.layer(), op)
	if !b.open || !b.now().Before(b.openUntil) {
		b.log.Warn("cache backend failing; reads bypass it", "op", op, "err", err, "cooldown", b.cooldown, "pending", len(b.pending))
	}
	b.open = true
	b.openUntil = b.now().Add(b.cooldown)
}

func (b *breaker) closeLocked() {
	if b.open {
		b.open = false
		b.log.Info("cache backend restored")
	}
}
