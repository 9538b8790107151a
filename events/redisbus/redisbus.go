// Package redisbus carries bookhub events between instances over Redis
// pub/sub. It implements events.Bus; the in-process events.Memory bus is the
// single-instance equivalent.
//
// # Channel layout
//
// Every book event travels on one Redis channel, Options.Prefix followed by
// "{books}:events" (so "bookhub:{books}:events" by default). The payload is the
// events.Event JSON. One channel for all books was chosen over one channel
// per book because it keeps a total order: every subscriber sees the events
// of one publishing instance in publish order, across all books, which the
// hub's "books" firehose channel needs. The price is that in a Redis Cluster
// all book traffic lands on one shard: the "{books}" hash tag pins the channel
// to a single slot on purpose, so that sharded pub/sub (Options.Sharded, i.e.
// SPUBLISH/SSUBSCRIBE) does not spread one family's events across nodes.
//
// A later split for shard spread would publish each event on
// "<prefix>{books:<id>}:events" (one slot per book, order kept per book only)
// and let instances subscribe to the per-book channels their WebSocket clients
// ask for, keeping the firehose either on this channel or on a few
// "{books:<id mod n>}" partitions whose subscribers merge them. The hash tag in
// the name is what would decide the slot, so such a change is a naming change
// here plus a subscription-management change in the hub.
//
// # Delivery
//
// The bus is at most once, as events.Bus documents: PUBLISH is never retried
// (a retry after a lost reply would deliver twice), and events published while
// a subscriber is disconnected are lost to it. Subscriptions reconnect and
// re-subscribe on their own with backoff until their context ends or the bus
// is closed; a health check pings idle connections so that a silently dead
// link (a network partition rather than a closed socket) is noticed too.
package redisbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultPrefix              = "bookhub:"
	DefaultDialTimeout         = 5 * time.Second
	DefaultHealthCheckInterval = 15 * time.Second
)

// channelSuffix follows the prefix; the hash tag pins all book events to one
// cluster slot (see the package doc).
const channelSuffix = "{books}:events"

// Options configures New. Zero values take the documented defaults.
type Options struct {
	// URL locates the server: redis://[user:pass@]host:port/db, or rediss://
	// for TLS, in the syntax of go-redis ParseURL (query options such as
	// read_timeout are honoured, except max_retries: publishes are never
	// retried). Required.
	URL string
	// Prefix starts every key and channel, so that several deployments can
	// share one Redis. Default "bookhub:". It must not contain '{' or '}',
	// which would change the cluster hash tag of the channel.
	Prefix string
	// Sharded uses SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub), which is
	// what scales pub/sub on a Redis Cluster; it works on a standalone
	// Redis 7 too. Every instance of a deployment must use the same mode:
	// sharded and classic pub/sub do not see each other's messages. New
	// connects to one node; running against a Redis Cluster additionally
	// needs a cluster client, which this package does not build yet.
	Sharded bool
	// Logger receives connection-loss and malformed-payload reports.
	// Default slog.Default().
	Logger *slog.Logger
	// DialTimeout bounds each connection attempt, including the first ping
	// in New when ctx has no earlier deadline. Default 5s (a dial_timeout in
	// the URL is used when this is zero).
	DialTimeout time.Duration
	// HealthCheckInterval is how long a subscription may stay silent before
	// it pings Redis; with no answer within another interval the connection
	// is declared dead and replaced. Default 15s.
	HealthCheckInterval time.Duration
}

// Bus is the Redis implementation of events.Bus. It is safe for concurrent
// use. Create it with New and release it with Close.
type Bus struct {
	client      *redis.Client
	channel     string
	sharded     bool
	log         *slog.Logger
	addr        string
	healthEvery time.Duration

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
	wg     sync.WaitGroup // one per live subscription goroutine
	lost   atomic.Int64   // subscriptions currently disconnected
}

var _ events.Bus = (*Bus)(nil)

// New parses opts.URL, connects and pings the server. Errors name the server
// address but never the password. ctx bounds only the connection check.
func New(ctx context.Context, opts Options) (*Bus, error) {
	if opts.URL == "" {
		return nil, errors.New("redisbus: empty URL")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redisbus: prefix %q must not contain '{' or '}'", opts.Prefix)
	}
	if opts.DialTimeout < 0 || opts.HealthCheckInterval < 0 {
		return nil, errors.New("redisbus: negative DialTimeout or HealthCheckInterval")
	}
	if opts.HealthCheckInterval == 0 {
		opts.HealthCheckInterval = DefaultHealthCheckInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ropts, err := parseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	switch {
	case opts.DialTimeout > 0:
		ropts.DialTimeout = opts.DialTimeout
	case ropts.DialTimeout == 0:
		ropts.DialTimeout = DefaultDialTimeout
	}
	// At most once: a PUBLISH retried after its reply was lost would be
	// delivered twice.
	ropts.MaxRetries = -1

	client := redis.NewClient(ropts)
	b := &Bus{
		client:      client,
		channel:     opts.Prefix + channelSuffix,
		sharded:     opts.Sharded,
		log:         opts.Logger.With("component", "redisbus", "redis", ropts.Addr),
		addr:        ropts.Addr,
		healthEvery: opts.HealthCheckInterval,
		subs:        make(map[*subscription]struct{}),
	}
	pctx, cancel := context.WithTimeout(ctx, ropts.DialTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redisbus: connect to %s: %w", ropts.Addr, err)
	}
	return b, nil
}

// parseURL accepts only redis:// and rediss:// URLs and keeps any password
// out of its errors: url.Parse quotes the whole input in its messages.
func parseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		var eerr url.EscapeError
		if errors.As(err, &eerr) {
			err = errors.New("invalid percent-encoding") // the escape may be part of the password
		}
		return nil, fmt.Errorf("redisbus: invalid URL %q: %w", redactURL(raw), err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redisbus: invalid URL %q: scheme must be redis or rediss", redactURL(raw))
	}
	ropts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redisbus: invalid URL %q: %w", redactURL(raw), err)
	}
	return ropts, nil
}

// redactURL hides the user info of a URL that may not even parse. It errs
// on the side of hiding too much: everything before the last '@'.
func redactURL(raw string) string {
	scheme, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "xxxxx@" + rest[i+1:]
	}
	return scheme + rest
}

// Channel returns the Redis channel that carries the events, for
// documentation and tests.
func (b *Bus) Channel() string { return b.channel }

// Publish sends ev to every subscriber on every instance. It fails when
// Redis cannot be reached, within ctx's deadline or the client's read/write
// timeouts (3s by default), whichever comes first; the event is then lost.
func (b *Bus) Publish(ctx context.Context, ev events.Event) error {
	if err := validate(ev); err != nil {
		return fmt.Errorf("redisbus: publish: %w", err)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("redisbus: publish event %s: encode: %w", ev.ID, err)
	}
	if b.isClosed() {
		return events.ErrClosed
	}
	if b.sharded {
		err = b.client.SPublish(ctx, b.channel, payload).Err()
	} else {
		err = b.client.Publish(ctx, b.channel, payload).Err()
	}
	if err != nil {
		if errors.Is(err, redis.ErrClosed) && b.isClosed() {
			return events.ErrClosed
		}
		return fmt.Errorf("redisbus: publish event %s to %s: %w", ev.ID, b.addr, err)
	}
	return nil
}

// validate rejects events no receiver could use; receivers apply the same
// check to what arrives on the channel.
func validate(ev events.Event) error {
	switch {
	case ev.ID == "":
		return errors.New("event has no id")
	case ev.Type == "":
		return errors.New("event has no type")
	}
	return nil
}

// Ping reports whether the bus can carry events right now: Redis answers and
// no subscription of this bus is waiting to reconnect.
func (b *Bus) Ping(ctx context.Context) error {
	if b.isClosed() {
		return events.ErrClosed
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbus: ping %s: %w", b.addr, err)
	}
	if n := b.lost.Load(); n > 0 {
		return fmt.Errorf("redisbus: %d subscription(s) to %s lost, reconnecting", n, b.addr)
	}
	return nil
}

// Close stops every subscription, waits for their goroutines to return and
// closes the connections. Closing twice is harmless.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	for _, s := range subs {
		s.stop()
	}
	b.wg.Wait()
	if err := b.client.Close(); err != nil {
		return fmt.Errorf("redisbus: close: %w", err)
	}
	return nil
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}
