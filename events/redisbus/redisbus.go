// Package redisbus carries bookhub events between instances over Redis
// pub/sub. It implements events.Bus; the in-process events.Memory bus is the
// single-instance equivalent.
//
// # Channel layout
//
// Every book event travels on one Redis channel, Options.Prefix followed by
// "{books}:events" (so "bookhub:{books}:events" by default; the name comes
// from redisconn.Keys.Events, with every other bookhub key). Each message is
// an events.Event in JSON, signed (see Wire format). One channel for all
// books was chosen over one channel per book because it keeps a total
// order: every subscriber sees the events of one publishing instance in
// publish order, across all books, which the hub's "books" firehose channel
// needs.
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
// # Wire format
//
// Anyone who can publish on the Redis channel (a shared Redis, a leaked
// password, a compromised neighbour) could otherwise speak to every
// WebSocket client of the deployment, so every message is authenticated
// with an HMAC and checked before any handler sees it:
//
//	v1.<mac>.<json>
//	mac = base64url-unpadded(HMAC-SHA256(key, "v1." || 0x00 || channel || 0x00 || json))
//
// json is the events.Event; channel is the Redis channel it travels on,
// so a message replayed onto another deployment's channel fails too; key
// is Options.SigningKey, which bookhub derives from its secret with
// DeriveSigningKey, so every instance that shares the secret shares the
// key. A receiver refuses, in this order, a message longer than
// Options.MaxMessageBytes (before anything is parsed), one that is not in
// this format, one whose MAC does not verify, and a signed one that is not
// a valid book event (a type other than events.BookCreated, BookUpdated or
// BookDeleted, no id, a book_id that is not positive, a book that is
// neither an object nor null). Refused messages are never delivered; each
// one is reported to Options.OnError as OpRejected and logged with its
// reason and size, never its content, at most once per 10s.
//
// The MAC proves that an instance of the deployment published the message,
// not when: someone who can read and publish on the channel can replay a
// message seen there earlier. Receivers can drop repeated event ids; the
// gap-free delivery layer will number events per channel.
//
// # Delivery
//
// The bus is at most once, as events.Bus documents: PUBLISH is never retried
// (a retry after a lost reply would deliver twice; a cluster's MOVED and ASK
// redirects are still followed, since Redis answers them without running the
// command), and events published while a subscriber is disconnected are lost
// to it. Subscriptions reconnect and re-subscribe on their own with backoff
// until their context ends or the bus is closed. A health check pings a
// subscription after Options.HealthCheckInterval of silence and replaces
// the connection when nothing answers within Options.PingTimeout, so a link
// that dies without closing (a frozen Redis, a network partition) is noticed
// within about 3s by default, not when TCP gives up. Options.OnRestore
// tells the receiver when a lost subscription is back, so that it can read
// what it missed: bookhub's completeness comes from the outbox and its
// durable history above this bus (packages relay and feed), not from Redis.
//
// # Timeouts
//
// Publish and Ping return by their context's deadline whatever Redis does
// (refuses connections, accepts them and never answers, drops packets):
// go-redis's socket deadlines are set from the context (ContextTimeoutEnabled),
// and the two calls also stop waiting on their own when the context ends,
// for the few go-redis paths that ignore it (a TLS dial). Without a context
// deadline they are bounded by go-redis's read timeout (5s; read_timeout in
// the URL) and the dial timeout.
package redisbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/redisconn"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultPrefix              = redisconn.DefaultPrefix
	DefaultDialTimeout         = redisconn.DefaultDialTimeout
	DefaultHealthCheckInterval = time.Second
	DefaultPingTimeout         = 2 * time.Second
	DefaultMaxMessageBytes     = 1 << 20
)

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
	// SigningKey authenticates every message (see Wire format): Publish
	// signs with it and subscriptions refuse what it does not verify. Every
	// instance of a deployment must use the same key; derive it from the
	// deployment's secret with DeriveSigningKey rather than reusing the
	// secret. Required, at least MinSigningKeyBytes long: a bus that
	// accepted unsigned messages would let anyone who can reach Redis speak
	// to every client.
	SigningKey []byte
	// MaxMessageBytes caps one message on the wire, signature included.
	// Publish refuses a larger event with ErrTooLarge; receivers refuse a
	// larger message before parsing it. Default 1 MiB (DefaultMaxMessageBytes).
	MaxMessageBytes int
	// OnError, when set, is told of each failure that loses events on the
	// receiving side, for metrics: OpSubscribe when a subscription is lost
	// (once per loss, not per reconnect attempt) and OpRejected for each
	// message refused (per subscription that refused it). It must not block.
	OnError func(op string)
	// OnRestore, when set, is called each time a lost subscription is back
	// (subscribed again), so the receiver can read what it missed from a
	// durable history. It must not block.
	OnRestore func()
	// Logger receives connection-loss and refused-message reports.
	// Default slog.Default().
	Logger *slog.Logger
	// DialTimeout bounds each connection attempt, including the first ping
	// in New when ctx has no earlier deadline. Default 5s (a dial_timeout in
	// the URL is used when this is zero).
	DialTimeout time.Duration
	// HealthCheckInterval is how long a subscription may stay silent before
	// it pings Redis over its own connection. Default 1s: one PING a second
	// per idle subscription costs Redis nothing, and it is what lets a dead
	// link be noticed in seconds.
	HealthCheckInterval time.Duration
	// PingTimeout is how long a subscription waits, after its ping, for
	// anything from Redis before it declares the connection dead and
	// replaces it. Default 2s: long enough for a busy Redis to answer, short
	// enough that a frozen one is noticed, and /readyz turns unready, within
	// HealthCheckInterval+PingTimeout.
	PingTimeout time.Duration
}

// Operations named to Options.OnError.
const (
	// OpSubscribe: a subscription was lost; events are lost until it is back.
	OpSubscribe = "subscribe"
	// OpRejected: a message on the channel was refused (unsigned, forged,
	// oversized or not a valid event) and not delivered.
	OpRejected = "rejected"
)

// Bus is the Redis implementation of events.Bus. It is safe for concurrent
// use. Create it with New and release it with Close.
type Bus struct {
	client      *backend
	channel     string
	sharded     bool
	log         *slog.Logger
	onError     func(op string)
	onRestore   func()
	healthEvery time.Duration
	pingTimeout time.Duration
	codec       *codec
	maxBytes    int
	refused     refusals

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
	keys := redisconn.Keys{Prefix: opts.Prefix}
	if err := keys.Validate(); err != nil {
		return nil, fmt.Errorf("redisbus: %w", err)
	}
	if opts.DialTimeout < 0 || opts.HealthCheckInterval < 0 || opts.PingTimeout < 0 || opts.MaxMessageBytes < 0 {
		return nil, errors.New("redisbus: negative DialTimeout, HealthCheckInterval, PingTimeout or MaxMessageBytes")
	}
	if len(opts.SigningKey) < MinSigningKeyBytes {
		return nil, fmt.Errorf("redisbus: SigningKey must be at least %d bytes (see DeriveSigningKey), have %d",
			MinSigningKeyBytes, len(opts.SigningKey))
	}
	if opts.HealthCheckInterval == 0 {
		opts.HealthCheckInterval = DefaultHealthCheckInterval
	}
	if opts.PingTimeout == 0 {
		opts.PingTimeout = DefaultPingTimeout
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.OnRestore == nil {
		opts.OnRestore = func() {}
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
	channel := keys.Events() // the hash tag pins it to one cluster slot (see the package doc)
	b := &Bus{
		client:      client,
		channel:     channel,
		sharded:     opts.Sharded || opts.Cluster,
		onError:     opts.OnError,
		onRestore:   opts.OnRestore,
		log:         opts.Logger.With("component", "redisbus", "redis", client.addr, "cluster", opts.Cluster),
		healthEvery: opts.HealthCheckInterval,
		pingTimeout: opts.PingTimeout,
		codec:       newCodec(opts.SigningKey, channel, opts.MaxMessageBytes),
		maxBytes:    opts.MaxMessageBytes,
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

// Publish signs ev and sends it to every subscriber on every instance. It
// refuses an event receivers would refuse (an unknown type, no id, a
// book_id that is not positive, a book that is not an object or null, a
// message over MaxMessageBytes: ErrTooLarge). It fails when Redis cannot be
// reached or does not answer, by the time ctx ends at the latest (without
// a deadline, by the client's read timeout, 5s by default); the event is
// then lost, though Redis may still deliver a message it had received.
func (b *Bus) Publish(ctx context.Context, ev events.Event) error {
	if err := validate(ev); err != nil {
		return fmt.Errorf("redisbus: publish: %w: %w", events.ErrUndeliverable, err)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("redisbus: publish event %s: encode: %w: %w", ev.ID, events.ErrUndeliverable, err)
	}
	msg := b.codec.seal(body)
	if len(msg) > b.maxBytes {
		return fmt.Errorf("%w: event %s is %d bytes signed, over MaxMessageBytes %d", ErrTooLarge, ev.ID, len(msg), b.maxBytes)
	}
	if b.isClosed() {
		return events.ErrClosed
	}
	cmd := "publish"
	if b.sharded {
		cmd = "spublish"
	}
	err = await(ctx, func() error {
		return b.client.Process(ctx, noRetry{redis.NewIntCmd(ctx, cmd, b.channel, msg)})
	})
	if err != nil {
		if errors.Is(err, redis.ErrClosed) && b.isClosed() {
			return events.ErrClosed
		}
		b.client.reloadTopology(ctx) // a cluster node may have gone
		return fmt.Errorf("redisbus: publish event %s to %s: %w", ev.ID, b.client.addr, err)
	}
	return nil
}

// await runs op and returns its error, or ctx's error once ctx ends,
// whichever comes first. With ContextTimeoutEnabled go-redis already sets
// its socket deadlines from ctx, so op normally returns by then anyway;
// this covers what does not follow the context (a TLS dial, which honours
// only the dial timeout, and cancellation without a deadline, which no
// socket deadline expresses). op keeps running in the background until
// go-redis gives up, bounded by its own timeouts.
func await(ctx context.Context, op func() error) error {
	if ctx.Done() == nil {
		return op() // cannot end: nothing to race
	}
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // finished meanwhile: prefer its answer
			return err
		default:
			return ctx.Err()
		}
	}
}

// Ping reports whether the bus can carry events right now: Redis answers and
// no subscription of this bus is waiting to reconnect. It returns by ctx's
// deadline whatever Redis does, so a readiness probe never hangs on it.
func (b *Bus) Ping(ctx context.Context) error {
	if b.isClosed() {
		return events.ErrClosed
	}
	if err := await(ctx, func() error { return b.client.ping(ctx, b.channel) }); err != nil {
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
