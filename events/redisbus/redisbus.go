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
// hub's "books" firehose channel needs.
//
// # Redis Cluster
//
// With Options.Cluster the bus builds a go-redis cluster client from a list
// of seed nodes, learns the slot map from them, and uses sharded pub/sub
// (SPUBLISH/SSUBSCRIBE, Redis 7). Classic PUBLISH on a cluster is broadcast
// over the cluster bus to every node, so its cost grows with the cluster;
// SPUBLISH stays inside the shard (master and replicas) that owns the
// channel's hash slot. Cluster therefore implies Sharded.
//
// Redis hashes only the part of a channel name inside the first {...}, so
// the "{books}" hash tag puts the channel in one fixed slot, whatever the
// prefix: every publish goes to that slot's master and every subscription
// reads from it. Keeping all book events in one slot is deliberate: a single
// node orders them, which gives the firehose its order. The price is that
// book traffic does not spread over the cluster; one shard carries all of
// it, and the other shards serve nothing for this bus. A subscription
// follows its slot: when the slot moves (resharding, failover) Redis ends
// the sharded subscription or the connection, and the receive loop refreshes
// the slot map and subscribes again on the new owner, logging the loss and
// the recovery like any other reconnect; events published in between are
// lost to it.
//
// A later split for shard spread would publish each event on
// "<prefix>{books:<id>}:events", so the slot (and with it the node) depends
// on the book id and the load spreads over all shards, with order kept per
// book only. Instances would subscribe to the per-book channels their
// WebSocket clients ask for (go-redis opens one connection per node for
// them), and the firehose would either stay on this channel, published
// once more per event, or become a few "{books:p<id mod n>}" partitions whose
// subscribers merge them without a total order. The hash tag in the name is
// what decides the slot, so such a change is a naming change here plus a
// subscription-management change in the hub.
//
// # Delivery
//
// The bus is at most once, as events.Bus documents: PUBLISH is never retried
// (a retry after a lost reply would deliver twice; a cluster's MOVED and ASK
// redirects are still followed, since Redis answers them without running the
// command), and events published while a subscriber is disconnected are lost
// to it. Subscriptions reconnect and re-subscribe on their own with backoff
// until their context ends or the bus is closed; a health check pings idle
// connections so that a silently dead link (a network partition rather than
// a closed socket) is noticed too.
package redisbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	//
	// With Cluster it lists seed nodes instead, in the syntax of go-redis
	// ParseClusterURL: redis://[user:pass@]host1:6379?addr=host2:6379&addr=host3:6379.
	// One reachable seed is enough; naming several lets an instance start
	// while one node is down. The path may only be empty, "/" or "/0".
	URL string
	// Cluster connects to a Redis Cluster (Redis 7 or later) through a
	// cluster client that routes by hash slot. It implies Sharded. Every
	// instance of a deployment must agree on it. Default false: one server.
	Cluster bool
	// Prefix starts every key and channel, so that several deployments can
	// share one Redis. Default "bookhub:". It must not contain '{' or '}',
	// which would change the cluster hash tag of the channel.
	Prefix string
	// Sharded uses SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub), which is
	// what scales pub/sub on a Redis Cluster; it works on a standalone
	// Redis 7 too. Every instance of a deployment must use the same mode:
	// sharded and classic pub/sub do not see each other's messages. Cluster
	// turns it on whatever its value.
	Sharded bool
	// OnError, when set, is told of each failure that loses events on the
	// receiving side, for metrics: OpSubscribe when a subscription is lost
	// (once per loss, not per reconnect attempt) and OpReceive for each
	// malformed payload skipped. It must not block.
	OnError func(op string)
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

// Operations named to Options.OnError.
const (
	OpSubscribe = "subscribe"
	OpReceive   = "receive"
)

// Bus is the Redis implementation of events.Bus. It is safe for concurrent
// use. Create it with New and release it with Close.
type Bus struct {
	client      *backend
	channel     string
	sharded     bool
	log         *slog.Logger
	onError     func(op string)
	healthEvery time.Duration

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
	wg     sync.WaitGroup // one per live subscription goroutine
	lost   atomic.Int64   // subscriptions currently disconnected
}

var _ events.Bus = (*Bus)(nil)

// New parses opts.URL, connects and pings the server (with Cluster, the
// node that owns the events channel). Errors name the server address but
// never the password. ctx bounds only the connection check.
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
	if opts.OnError == nil {
		opts.OnError = func(string) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client, err := newBackend(opts.URL, opts.Cluster, opts.DialTimeout)
	if err != nil {
		return nil, err
	}
	b := &Bus{
		client:      client,
		channel:     opts.Prefix + channelSuffix,
		sharded:     opts.Sharded || opts.Cluster,
		onError:     opts.OnError,
		log:         opts.Logger.With("component", "redisbus", "redis", client.addr, "cluster", opts.Cluster),
		healthEvery: opts.HealthCheckInterval,
		subs:        make(map[*subscription]struct{}),
	}
	pctx, cancel := context.WithTimeout(ctx, client.dialTimeout)
	defer cancel()
	if err := client.ping(pctx, b.channel); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redisbus: connect to %s: %w", client.addr, err)
	}
	return b, nil
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
	cmd := "publish"
	if b.sharded {
		cmd = "spublish"
	}
	if err := b.client.Process(ctx, noRetry{redis.NewIntCmd(ctx, cmd, b.channel, payload)}); err != nil {
		if errors.Is(err, redis.ErrClosed) && b.isClosed() {
			return events.ErrClosed
		}
		b.client.reloadTopology(ctx) // a cluster node may have gone
		return fmt.Errorf("redisbus: publish event %s to %s: %w", ev.ID, b.client.addr, err)
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
	if err := b.client.ping(ctx, b.channel); err != nil {
		return fmt.Errorf("redisbus: ping %s: %w", b.client.addr, err)
	}
	if n := b.lost.Load(); n > 0 {
		return fmt.Errorf("redisbus: %d subscription(s) to %s lost, reconnecting", n, b.client.addr)
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
