package authstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/redisconn"
)

// Limit allows Requests requests per Window and key.
type Limit struct {
	Requests int
	Window   time.Duration
}

func (l Limit) validate() error {
	if l.Requests < 1 || l.Window < time.Millisecond {
		return fmt.Errorf("authstate: limit %d per %v: want at least 1 request per 1ms or more", l.Requests, l.Window)
	}
	return nil
}

// Limiter counts requests per key (a user, an address) in fixed windows.
// Implementations are safe for concurrent use.
type Limiter interface {
	// Allow counts one request of key and reports whether it is within the
	// limit; when it is not, retryAfter is how long until the window ends
	// (in (0, Window]). A non-nil err wrapping ErrShared means the shared
	// store failed and ok and retryAfter come from this instance's own
	// count: they are still the answer to act on, and err is for logs
	// and metrics.
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// LimiterOptions configures NewMemoryLimiter and NewRedisLimiter.
type LimiterOptions struct {
	// Now is the clock of the in-process count (also the Redis limiter's
	// fallback). Default time.Now.
	Now func() time.Time
	// MaxKeys bounds the keys the in-process count tracks per window.
	// Default 100000 (a few MiB). Keys beyond it share one overflow count,
	// so that a flood of distinct keys can neither grow memory nor escape
	// the limit; they may only crowd each other.
	MaxKeys int
	// Logger receives Redis failures, at most one line per 10s while they
	// last. Default slog.Default(). Redis only.
	Logger *slog.Logger
	// Timeout bounds one Redis round trip when ctx allows longer, so a
	// slow Redis delays each request by at most this before the fallback
	// answers. Default 200ms. Redis only.
	Timeout time.Duration
}

// DefaultMaxKeys is the default LimiterOptions.MaxKeys.
const DefaultMaxKeys = 100_000

// DefaultLimiterTimeout is the default LimiterOptions.Timeout.
const DefaultLimiterTimeout = 200 * time.Millisecond

// MemoryLimiter is the in-process Limiter of a single instance (and the
// Redis limiter's fallback). Windows are fixed and aligned for all keys
// (they start at multiples of Window), so when one ends the whole table is
// dropped at once: memory is bounded by the keys seen in one window (at
// most MaxKeys) and pruning costs nothing per key. As with any fixed
// window, a client can make up to 2×Requests around a window boundary.
type MemoryLimiter struct {
	limit   Limit
	now     func() time.Time
	maxKeys int

	mu     sync.Mutex
	window time.Time // start of the current window
	counts map[string]int
	over   int // requests of keys beyond maxKeys in this window
}

var _ Limiter = (*MemoryLimiter)(nil)

// NewMemoryLimiter returns an in-process limiter. Logger and Timeout are
// not used.
func NewMemoryLimiter(limit Limit, o LimiterOptions) (*MemoryLimiter, error) {
	if err := limit.validate(); err != nil {
		return nil, err
	}
	if o.MaxKeys < 0 {
		return nil, errors.New("authstate: negative MaxKeys")
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	return &MemoryLimiter{limit: limit, now: orNow(o.Now), maxKeys: o.MaxKeys, counts: make(map[string]int)}, nil
}

// Allow implements Limiter; its error is always nil.
func (m *MemoryLimiter) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if w := now.Truncate(m.limit.Window); !w.Equal(m.window) {
		m.window, m.counts, m.over = w, make(map[string]int, len(m.counts)), 0
	}
	var n int
	if c, ok := m.counts[key]; ok || len(m.counts) < m.maxKeys {
		n = c + 1
		m.counts[key] = n
	} else {
		m.over++
		n = m.over
	}
	if n <= m.limit.Requests {
		return true, 0, nil
	}
	return false, m.window.Add(m.limit.Window).Sub(now), nil
}

// RedisLimiter counts requests in Redis, so that the limit holds for the
// deployment, not per instance. Each key is a counter at
// keys.RateLimit(scope, key), incremented and given the window as its TTL
// (PEXPIRE NX) in one MULTI, so the window of a key starts at its first
// request and Redis forgets the key when it ends.
//
// When Redis fails (or takes longer than Timeout) the request is counted
// by an in-process MemoryLimiter instead, and the error wraps ErrShared:
// the limit then holds per instance, so a deployment of n instances allows
// up to n×Requests. Failing closed would lock everyone out during an
// outage; failing open would remove the limit exactly when someone may be
// attacking.
type RedisLimiter struct {
	client   redis.UniversalClient
	keys     redisconn.Keys
	scope    string
	limit    Limit
	timeout  time.Duration
	fallback *MemoryLimiter
	log      *throttledLog
}

var _ Limiter = (*RedisLimiter)(nil)

// NewRedisLimiter returns a limiter for scope (a constant naming the
// limit, such as "login"; non-empty, without ':') on client, which stays
// the caller's.
func NewRedisLimiter(client redis.UniversalClient, keys redisconn.Keys, scope string, limit Limit, o LimiterOptions) (*RedisLimiter, error) {
	if client == nil {
		return nil, errors.New("authstate: nil Redis client")
	}
	if err := keys.Validate(); err != nil {
		return nil, fmt.Errorf("authstate: %w", err)
	}
	if scope == "" || strings.Contains(scope, ":") {
		return nil, fmt.Errorf("authstate: rate-limit scope %q must be non-empty and without ':'", scope)
	}
	if o.Timeout < 0 {
		return nil, errors.New("authstate: negative Timeout")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultLimiterTimeout
	}
	fallback, err := NewMemoryLimiter(limit, o)
	if err != nil {
		return nil, err
	}
	return &RedisLimiter{
		client:   client,
		keys:     keys,
		scope:    scope,
		limit:    limit,
		timeout:  o.Timeout,
		fallback: fallback,
		log: &throttledLog{log: orDefaultLogger(o.Logger).With("component", "authstate", "scope", scope),
			now: fallback.now, msg: "redis rate limit"},
	}, nil
}

// Allow implements Limiter.
func (r *RedisLimiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	ok, retry, err := r.allow(ctx, key)
	if err == nil {
		r.log.ok()
		return ok, retry, nil
	}
	r.log.fail(err)
	ok, retry, _ = r.fallback.Allow(ctx, key)
	return ok, retry, fmt.Errorf("authstate: rate limit %s: %w: %w", r.scope, ErrShared, err)
}

func (r *RedisLimiter) allow(ctx context.Context, key string) (bool, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	k := r.keys.RateLimit(r.scope, key)
	var incr *redis.IntCmd
	var pttl *redis.DurationCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		p.Do(ctx, "pexpire", k, r.limit.Window.Milliseconds(), "nx")
		pttl = p.PTTL(ctx, k)
		return nil
	})
	if err != nil {
		return false, 0, err
	}
	if incr.Val() <= int64(r.limit.Requests) {
		return true, 0, nil
	}
	retry := pttl.Val()
	if retry <= 0 || retry > r.limit.Window {
		// No TTL cannot happen after PEXPIRE NX in the same MULTI; should
		// it anyway, the answer stays within the promise.
		retry = r.limit.Window
	}
	return false, retry, nil
}
