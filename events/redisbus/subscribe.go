package redisbus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events"
)

// Reconnect backoff bounds. The cap stays low because every second of
// backoff after Redis is back is a second of lost events; the jitter keeps a
// fleet of instances from reconnecting in lockstep.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// subscription is one Subscribe call: a dedicated pub/sub connection and the
// goroutine that reads it. The receive loop reads with PubSub.ReceiveTimeout
// rather than PubSub.Channel, whose internal forwarding goroutine drops
// messages once its buffer stays full; here the only wait between two reads
// is the handler call itself.
type subscription struct {
	bus *Bus
	ctx context.Context
	h   events.Handler

	mu      sync.Mutex
	ps      *redis.PubSub
	stopped bool
	done    chan struct{} // closed by stop

	// Owned by the receive loop.
	lost   bool
	lostAt time.Time
}

// Subscribe registers h and returns once Redis has confirmed the
// subscription, so every event published after Subscribe returns reaches h
// (unless the connection drops in between). A goroutine then calls h, one
// event at a time and in the order Redis delivered them, until ctx is done or
// the bus is closed; no call starts after ctx is done. If the connection
// drops, the goroutine reconnects and re-subscribes with backoff; events
// published meanwhile are lost to h.
func (b *Bus) Subscribe(ctx context.Context, h events.Handler) error {
	if h == nil {
		return errors.New("redisbus: subscribe: nil handler")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisbus: subscribe: %w", err)
	}
	s := &subscription{bus: b, ctx: ctx, h: h, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return events.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()

	stopOnDone := context.AfterFunc(ctx, s.stop)
	if err := s.confirm(); err != nil {
		stopOnDone()
		s.stop()
		b.forget(s)
		b.wg.Done()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("redisbus: subscribe: %w", ctx.Err())
		case b.isClosed():
			return events.ErrClosed
		}
		return fmt.Errorf("redisbus: subscribe to %s on %s: %w", b.channel, b.client.addr, err)
	}
	go func() {
		defer b.wg.Done()
		defer b.forget(s)
		defer stopOnDone()
		defer s.stop()
		s.run()
	}()
	return nil
}

func (b *Bus) forget(s *subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// confirm opens the pub/sub connection and waits for the server's
// confirmation, bounded by the dial and read timeouts.
func (s *subscription) confirm() error {
	ps := s.renew()
	if ps == nil {
		return events.ErrClosed
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.bus.client.confirmTimeout)
	defer cancel()
	if err := s.subscribeOn(ctx, ps); err != nil {
		return err
	}
	for {
		msg, err := ps.ReceiveTimeout(ctx, 0)
		if err != nil {
			return err
		}
		if s.isConfirmation(msg) {
			return nil
		}
	}
}

// renew replaces the pub/sub connection (closing the old one) and returns
// the new one, or nil once the subscription is stopped. The new PubSub has
// not talked to Redis yet.
func (s *subscription) renew() *redis.PubSub {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	old := s.ps
	s.ps = s.bus.client.Subscribe(s.ctx) // no channels: no network yet
	ps := s.ps
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return ps
}

// subscribeOn sends (S)SUBSCRIBE. Even when it fails the PubSub remembers
// the channel and subscribes again on its next connection.
func (s *subscription) subscribeOn(ctx context.Context, ps *redis.PubSub) error {
	if s.bus.sharded {
		return ps.SSubscribe(ctx, s.bus.channel)
	}
	return ps.Subscribe(ctx, s.bus.channel)
}

func (s *subscription) isConfirmation(msg any) bool {
	sub, ok := msg.(*redis.Subscription)
	return ok && sub.Channel == s.bus.channel && (sub.Kind == "subscribe" || sub.Kind == "ssubscribe")
}

// isDropped reports an unsubscription the bus did not ask for: it never
// unsubscribes, it closes the connection instead.
func (s *subscription) isDropped(sub *redis.Subscription) bool {
	return sub.Channel == s.bus.channel && (sub.Kind == "unsubscribe" || sub.Kind == "sunsubscribe")
}

// stop ends the subscription; it is idempotent and safe from any goroutine.
// Closing the PubSub unblocks a pending read in the receive loop.
func (s *subscription) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	close(s.done)
	ps := s.ps
	s.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

func (s *subscription) current() *redis.PubSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	return s.ps
}

func (s *subscription) isStopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// run is the receive loop. go-redis reconnects and re-subscribes a PubSub
// by itself after a read or write error; run adds the backoff between
// attempts, the health check for links that die without an error, the
// replacement of connections that are open but no longer subscribed, and
// the lost/restored reporting.
//
// The health check is a watchdog on the one connection that matters: after
// healthEvery without a message it sends PING over the subscription itself
// and then waits pingTimeout, not another interval, for anything at all
// (the pong, an event, a confirmation). A frozen Redis keeps its sockets
// open and answers nothing, so TCP would report nothing for many minutes;
// this declares the link dead within healthEvery+pingTimeout.
func (s *subscription) run() {
	defer s.markRestored(false)
	var (
		bo       backoff
		pingSent bool
	)
	for {
		ps := s.current()
		if ps == nil {
			return
		}
		wait := s.bus.healthEvery
		if pingSent {
			wait = s.bus.pingTimeout
		}
		msg, err := ps.ReceiveTimeout(s.ctx, wait)
		if s.isStopped() || s.ctx.Err() != nil {
			return
		}
		// replace: the connection may be open but carries no subscription,
		// which go-redis would not notice.
		replace := false
		if m, ok := msg.(*redis.Subscription); ok && err == nil && s.isDropped(m) {
			// Redis 7 ends the sharded subscriptions of a slot that leaves
			// the node (resharding, failover).
			err, replace = fmt.Errorf("redis ended the subscription (%s), as it does when the hash slot moves", m.Kind), true
		}
		if err != nil {
			switch {
			case isIdleTimeout(err) && !pingSent:
				pingSent = true
				if err = s.ping(ps); err == nil {
					continue
				}
			case isIdleTimeout(err):
				// The ping went unanswered: the link is dead (or Redis is
				// frozen) without the socket knowing it yet.
				err, replace = fmt.Errorf("no answer to ping within %s", s.bus.pingTimeout), true
			case isServerError(err):
				// An error reply, such as MOVED to an SSUBSCRIBE sent with
				// a stale slot map: the connection works, so go-redis keeps
				// it, but it is subscribed to nothing.
				replace = true
			}
			pingSent = false
			s.markLost(err)
			s.bus.client.reloadTopology(s.ctx)
			if !bo.wait(s.done) {
				return
			}
			if replace {
				if ps = s.renew(); ps == nil {
					return
				}
				// Bounded like the first subscription: against a frozen
				// Redis the dial succeeds and the handshake is never
				// answered. On failure the PubSub still remembers the
				// channel and the next read retries.
				sctx, cancel := context.WithTimeout(s.ctx, s.bus.client.confirmTimeout)
				_ = s.subscribeOn(sctx, ps)
				cancel()
			}
			continue
		}
		pingSent = false
		bo.reset()
		switch m := msg.(type) {
		case *redis.Subscription:
			if s.isConfirmation(m) {
				s.markRestored(true)
			}
		case *redis.Message:
			s.markRestored(true)
			if !s.deliver(m) {
				return
			}
		}
	}
}

// ping sends PING over the subscription's own connection, bounded by
// pingTimeout: with the socket buffer full (a frozen Redis that stopped
// reading) even the write would otherwise wait out go-redis's write
// timeout.
func (s *subscription) ping(ps *redis.PubSub) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.bus.pingTimeout)
	defer cancel()
	return ps.Ping(ctx)
}

// deliver verifies one message and hands its event to the handler; a
// refused message is counted and dropped (see the package doc). It returns
// false when the subscription's context has ended, so no handler call
// starts after that.
func (s *subscription) deliver(m *redis.Message) bool {
	if m.Channel != s.bus.channel {
		return true
	}
	ev, err := s.bus.codec.open(m.Payload)
	if err != nil {
		s.bus.refuse(len(m.Payload), err)
		return true
	}
	if s.ctx.Err() != nil {
		return false
	}
	s.h(ev)
	return true
}

func (s *subscription) markLost(err error) {
	if s.lost {
		s.bus.log.Debug("redisbus: reconnect attempt failed", "channel", s.bus.channel, "err", err)
		return
	}
	s.lost, s.lostAt = true, time.Now()
	s.bus.lost.Add(1)
	s.bus.onError(OpSubscribe)
	s.bus.log.Warn("redis subscription lost", "channel", s.bus.channel, "err", err)
}

// markRestored clears the lost state; report says whether to log it (not
// when the loop merely exits).
func (s *subscription) markRestored(report bool) {
	if !s.lost {
		return
	}
	s.lost = false
	s.bus.lost.Add(-1)
	if report { // report is false only when the subscription is ending
		s.bus.onRestore()
		s.bus.log.Info("redis subscription restored", "channel", s.bus.channel,
			"down_for", time.Since(s.lostAt).Round(time.Millisecond))
	}
}

// isIdleTimeout tells the health-check read deadline apart from real
// failures; a dial timeout is a failure.
func isIdleTimeout(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read" && op.Timeout()
}

// isServerError tells an error reply from Redis apart from a network
// failure.
func isServerError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}

// backoff is capped exponential backoff with jitter.
type backoff struct{ attempt int }

func (b *backoff) reset() { b.attempt = 0 }

// wait sleeps for the next delay; it returns false if done closes first.
func (b *backoff) wait(done <-chan struct{}) bool {
	d := maxBackoff
	if b.attempt < 16 {
		d = min(minBackoff<<b.attempt, maxBackoff)
	}
	b.attempt++
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}
