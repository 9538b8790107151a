// Package authstate holds the authentication state that every instance of
// a deployment must agree on: revoked access tokens (Revocations),
// one-time WebSocket tickets (Tickets) and request rate limits (Limiter).
//
// Each comes in two implementations: an in-process one for a single
// instance (NewMemoryRevocations, NewMemoryTickets, NewMemoryLimiter), and
// one shared through Redis when Redis is configured (NewRedisRevocations,
// NewRedisTickets, NewRedisLimiter), whose keys are named by
// redisconn.Keys. The Redis implementations take a client the caller owns
// (redisconn.Open) and never close it.
//
// What each does when Redis fails is part of its contract: a revocation
// is still enforced on the instance that recorded it and shared once Redis
// is back; a ticket cannot be issued or redeemed (the caller answers 503
// and the client retries); a rate limit is counted on this instance only,
// never dropped and never turned into a refusal for everyone. The errors
// that report a degraded but working result wrap ErrShared.
package authstate

import (
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Errors of this package.
var (
	// ErrShared wraps the error of an operation that took effect on this
	// instance only because Redis failed: a revocation recorded locally
	// (and shared later), a request counted by the in-process fallback
	// limiter. The result is valid; the error is for logs and metrics.
	ErrShared = errors.New("recorded on this instance only")
	// ErrTicketInvalid is returned by Redeem for a ticket that is
	// malformed, unknown, already used or expired. Callers answer 401
	// without saying which.
	ErrTicketInvalid = errors.New("authstate: invalid ticket")
	// ErrClosed is returned by calls on a closed Revocations.
	ErrClosed = errors.New("authstate: closed")
)

// logEvery is the least time between two reports of the same ongoing
// Redis failure, so that an outage costs a few log lines, not one per
// poll or per request.
const logEvery = 10 * time.Second

// throttledLog reports a failure at most once per logEvery and its end
// once. It is safe for concurrent use.
type throttledLog struct {
	log *slog.Logger
	now func() time.Time
	msg string // "redis revocations"

	mu      sync.Mutex
	failing bool
	last    time.Time
	dropped int
}

// fail reports err, unless it reported one less than logEvery ago.
func (l *throttledLog) fail(err error) {
	l.mu.Lock()
	now := l.now()
	if l.failing && now.Sub(l.last) < logEvery {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.failing, l.last, l.dropped = true, now, 0
	l.mu.Unlock()
	l.log.Warn(l.msg+" failing", "err", err, "suppressed", dropped)
}

// ok reports the end of a failure, once.
func (l *throttledLog) ok() {
	l.mu.Lock()
	was := l.failing
	l.failing, l.dropped = false, 0
	l.mu.Unlock()
	if was {
		l.log.Info(l.msg + " restored")
	}
}

func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

func orDefaultLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
