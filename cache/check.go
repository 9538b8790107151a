package cache

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// maxCheckNamespaces caps the namespaces of one check (the keys of one
// script call); readers of further namespaces wait for the check after.
const maxCheckNamespaces = 256

// checker batches freshness checks of the local layer: each check is one
// round trip that returns the current tags of a set of namespaces.
//
// The rule that makes a local copy safe to serve is that the check
// answering a reader started after that reader's read began. So at most
// one check is in flight, and a reader that arrives while one is in flight
// never joins it (it may have read the generations before a write this
// reader knows was acknowledged): it queues for the next check, which
// starts when the one in flight ends and carries every namespace queued
// meanwhile, up to maxCheckNamespaces (more wait for the check after).
// Under concurrency one check serves many readers; a lone reader, finding
// no check in flight, runs its own at once.
//
// A reader that finds no check in flight runs it in its own goroutine,
// under its own context: nobody else waits on that check. A queued check
// is run by a goroutine the ending check starts; it serves many readers,
// so it runs under no caller's context, only the timeout, which bounds the
// life of that goroutine.
type checker struct {
	run     func(ctx context.Context, nss []string) ([]string, error)
	fail    func(ctx context.Context, err error)
	timeout time.Duration

	mu      sync.Mutex
	busy    bool                   // a check is in flight
	queue   []*checkBatch          // checks to run after it, in order
	pending map[string]*checkBatch // the queued check of each namespace

	// Test hooks, nil in production: ran is called once a check's round
	// trip has returned, before its readers learn the result; queued once
	// a reader has queued behind a check in flight.
	ran    func(nss []string)
	queued func(ns string)
}

// checkBatch is one check and the readers waiting for it.
type checkBatch struct {
	nss  []string
	idx  map[string]int
	done chan struct{} // closed once tags or err is set
	tags []string
	err  error
}

func newCheckBatch(ns string) *checkBatch {
	return &checkBatch{nss: []string{ns}, idx: map[string]int{ns: 0}, done: make(chan struct{})}
}

// current returns the current tag of ns ("" if ns has none), as read by a
// check that started after current was called.
func (k *checker) current(ctx context.Context, ns string) (string, error) {
	k.mu.Lock()
	if !k.busy {
		k.busy = true
		k.mu.Unlock()
		b := newCheckBatch(ns)
		k.exec(ctx, b)
		return b.result(ns)
	}
	b := k.enqueueLocked(ns)
	k.mu.Unlock()
	if k.queued != nil {
		k.queued(ns)
	}
	select {
	case <-b.done:
		return b.result(ns)
	case <-ctx.Done():
		return "", fmt.Errorf("cache: wait for check of %s: %w", ns, ctx.Err())
	}
}

// enqueueLocked returns the queued check that has ns (none of them has
// started, so any is late enough), else adds ns to the last one if it has
// room, else to a new one.
func (k *checker) enqueueLocked(ns string) *checkBatch {
	if b, ok := k.pending[ns]; ok {
		return b
	}
	var b *checkBatch
	if n := len(k.queue); n > 0 && len(k.queue[n-1].nss) < maxCheckNamespaces {
		b = k.queue[n-1]
		b.idx[ns] = len(b.nss)
		b.nss = append(b.nss, ns)
	} else {
		b = newCheckBatch(ns)
		k.queue = append(k.queue, b)
	}
	if k.pending == nil {
		k.pending = make(map[string]*checkBatch)
	}
	k.pending[ns] = b
	return b
}

// exec runs b, hands the result to its readers and starts the next queued
// check, if any.
func (k *checker) exec(ctx context.Context, b *checkBatch) {
	octx, cancel := context.WithTimeout(ctx, k.timeout)
	b.tags, b.err = k.run(octx, b.nss)
	cancel()
	if k.ran != nil {
		k.ran(b.nss)
	}
	if b.err != nil {
		// Before the readers wake: they look at the breaker next.
		k.fail(ctx, b.err)
	}
	close(b.done)

	k.mu.Lock()
	if len(k.queue) == 0 {
		k.busy = false
		k.mu.Unlock()
		return
	}
	next := k.queue[0]
	k.queue[0] = nil
	k.queue = k.queue[1:]
	for _, ns := range next.nss {
		delete(k.pending, ns)
	}
	k.mu.Unlock()
	go k.exec(context.Background(), next)
}

func (b *checkBatch) result(ns string) (string, error) {
	if b.err != nil {
		return "", b.err
	}
	return b.tags[b.idx[ns]], nil
}
