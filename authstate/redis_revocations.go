package authstate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/redisconn"
)

// RedisRevocations shares revocations between the instances of a
// deployment through Redis, and enforces them from memory.
//
// Layout: a sorted set at keys.Revocations() whose members encode one
// revocation each (JSON) with score = Until in Unix milliseconds, and a
// counter at keys.RevocationsVersion(). Revoke runs, in one MULTI, ZADD,
// INCR of the counter, ZREMRANGEBYSCORE of expired members, and PEXPIREAT
// of the set to its last Until, so the set cleans itself and disappears
// when nothing in it is live. (The counter has no TTL: were it to expire
// and start again it could come back to a value an instance last saw.)
// Both keys share the {auth} hash tag, so the MULTI works on a cluster.
//
// Every instance GETs the counter every Poll and reloads the live part of
// the set when the value changed. There is no pub/sub message to miss: a
// revocation is learned by whoever polls after it, and an instance that
// starts (or was cut off from Redis) reads the whole live set. A
// revocation Redis did not take is kept pending and written again on each
// poll until Redis takes it.
type RedisRevocations struct {
	t      *table
	client redis.UniversalClient
	keys   redisconn.Keys
	poll   time.Duration
	log    *throttledLog

	mu      sync.Mutex
	closed  bool
	pending map[string]Revocation // recorded here, not yet in Redis

	version string // last counter value read; poll goroutine only (after start)
	stop    chan struct{}
	done    chan struct{}
}

var _ Revocations = (*RedisRevocations)(nil)

// NewRedisRevocations loads the live revocations from Redis and starts
// polling for new ones until Close. It fails when the first load fails
// (ctx bounds it): an instance that served before it knew the revocations
// would accept revoked tokens. client is the caller's; Close leaves it
// open.
func NewRedisRevocations(ctx context.Context, client redis.UniversalClient, keys redisconn.Keys, o RevocationOptions) (*RedisRevocations, error) {
	if client == nil {
		return nil, errors.New("authstate: nil Redis client")
	}
	if err := keys.Validate(); err != nil {
		return nil, fmt.Errorf("authstate: %w", err)
	}
	if o.Poll < 0 {
		return nil, errors.New("authstate: negative Poll")
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	t := newTable(o)
	r := &RedisRevocations{
		t:       t,
		client:  client,
		keys:    keys,
		poll:    o.Poll,
		log:     &throttledLog{log: orDefaultLogger(o.Logger).With("component", "authstate"), now: t.now, msg: "redis revocations"},
		pending: make(map[string]Revocation),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := r.sync(ctx, true); err != nil {
		return nil, fmt.Errorf("authstate: load revocations from %s: %w", keys.Revocations(), err)
	}
	go r.loop()
	return r, nil
}

// Revoke enforces r on this instance at once and writes it to Redis. When
// Redis fails, r stays enforced here, is written on a later poll, and the
// error wraps ErrShared. An r whose Until has passed is a no-op.
func (r *RedisRevocations) Revoke(ctx context.Context, rv Revocation) error {
	if err := rv.validate(); err != nil {
		return err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	rv = rv.truncated()
	m := rv.encode()
	r.t.learn(map[string]Revocation{m: rv})
	if !r.t.now().Before(rv.Until) {
		return nil
	}
	batch := map[string]Revocation{m: rv}
	if err := r.write(ctx, batch); err != nil {
		r.mu.Lock()
		r.pending[m] = rv
		r.mu.Unlock()
		r.log.fail(err)
		return fmt.Errorf("authstate: revoke (subject %q, session %q): %w: %w", rv.Subject, rv.Session, ErrShared, err)
	}
	return nil
}

// IsRevoked implements Revocations, from memory.
func (r *RedisRevocations) IsRevoked(subject string, generation uint64, session string) bool {
	return r.t.isRevoked(subject, generation, session)
}

// Close stops the poll loop and waits for it. Revocations still pending
// are enforced here only. Close is idempotent and always returns nil.
func (r *RedisRevocations) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	return nil
}

// loop polls until Close.
func (r *RedisRevocations) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	// A poll may take longer than the interval when Redis is slow; it
	// must still end, so a frozen Redis cannot hold Close forever.
	timeout := max(2*r.poll, time.Second)
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := r.sync(ctx, false)
		cancel()
		if err != nil {
			r.log.fail(err)
			r.t.learn(nil) // keep pruning while Redis is away
			continue
		}
		r.log.ok()
	}
}

// sync writes pending revocations, then reloads the set if the counter
// moved (always when first).
func (r *RedisRevocations) sync(ctx context.Context, first bool) error {
	r.mu.Lock()
	var batch map[string]Revocation
	if len(r.pending) > 0 {
		batch = make(map[string]Revocation, len(r.pending))
		now := r.t.now()
		for m, rv := range r.pending {
			if now.Before(rv.Until) {
				batch[m] = rv
			}
			delete(r.pending, m) // put back below on failure
		}
	}
	r.mu.Unlock()
	if len(batch) > 0 {
		if err := r.write(ctx, batch); err != nil {
			r.mu.Lock()
			for m, rv := range batch {
				r.pending[m] = rv
			}
			r.mu.Unlock()
			return fmt.Errorf("write pending revocations: %w", err)
		}
	}

	// The counter is read before the set: a revocation added between the
	// two reads is in the set already or moves the counter past what we
	// store, so the next poll reloads.
	v, err := r.client.Get(ctx, r.keys.RevocationsVersion()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read %s: %w", r.keys.RevocationsVersion(), err)
	}
	if !first && v == r.version {
		r.t.learn(nil) // prune
		return nil
	}
	now := r.t.now().UnixMilli()
	members, err := r.client.ZRangeByScore(ctx, r.keys.Revocations(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now, 10), Max: "+inf",
	}).Result()
	if err != nil {
		return fmt.Errorf("read %s: %w", r.keys.Revocations(), err)
	}
	got := make(map[string]Revocation, len(members))
	for _, m := range members {
		rv, err := decodeRevocation(m)
		if err != nil {
			// Not ours (a newer or broken writer): skip it rather than
			// stop learning the others. Logged once per reload, and
			// reloads happen only when the set changes.
			r.log.log.Warn("skipping unreadable revocation", "err", err)
			continue
		}
		got[m] = rv
	}
	r.t.learn(got)
	r.version = v
	return nil
}

// write adds batch to the shared set in one transaction.
func (r *RedisRevocations) write(ctx context.Context, batch map[string]Revocation) error {
	set, version := r.keys.Revocations(), r.keys.RevocationsVersion()
	var last int64
	zs := make([]redis.Z, 0, len(batch))
	for m, rv := range batch {
		ms := rv.Until.UnixMilli()
		last = max(last, ms)
		zs = append(zs, redis.Z{Score: float64(ms), Member: m})
	}
	now := r.t.now().UnixMilli()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, set, zs...)
		p.Incr(ctx, version)
		p.ZRemRangeByScore(ctx, set, "-inf", strconv.FormatInt(now, 10))
		// NX for a new set (GT treats "no TTL" as infinite), then GT so
		// the TTL only ever grows to the latest Until.
		p.Do(ctx, "pexpireat", set, last, "nx")
		p.Do(ctx, "pexpireat", set, last, "gt")
		return nil
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", set, err)
	}
	return nil
}
