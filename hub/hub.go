package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"sync/atomic"
	"time"
)

// Identity is who a connection speaks for, as established by the
// Authenticator before the upgrade.
//
// A refresh message replaces a connection's Identity as a whole (see
// Options.Reauthenticate); the Subject never changes on an open socket.
type Identity struct {
	Subject string
	Role    string
	// ExpiresAt is when the credential stops being valid; the hub warns the
	// client ExpiryWarning before (token_expiring) and closes the socket with
	// status 3000 "token expired" at that moment. The zero value means the
	// connection never expires.
	ExpiresAt time.Time
	// Session and Generation are opaque to the hub: they let a Revoke
	// matcher find the sockets of one sign-in session, or of credentials
	// issued before a given generation.
	Session    string
	Generation uint64
	// Variant names the payload variant this connection receives: a
	// publication's Variants[Variant] when present, else its Data. "" is
	// the default Data.
	Variant string
}

// Authenticator verifies the credentials of an upgrade request. Any error
// refuses the request with 401 before the WebSocket handshake, so a client
// without a valid token never holds a socket. The error is logged (so it must
// not contain the token) and never sent to the client.
type Authenticator func(r *http.Request) (Identity, error)

// Observer receives metrics hooks. Every method is called on a hot path
// (Publish, or a connection's goroutines) and must be cheap and non-blocking.
type Observer interface {
	// Connected is called once a socket has been upgraded.
	Connected()
	// Disconnected is called once per upgraded socket when it is gone; reason
	// is one of the Reason constants, so it is safe as a metrics label.
	Disconnected(reason string)
	// Subscribed and Unsubscribed track the subscription count of a channel;
	// a disconnect unsubscribes every channel of the connection.
	Subscribed(channel string)
	Unsubscribed(channel string)
	// Published reports one fan-out of one frame to the current subscribers
	// of channel (possibly none), and how long encoding and queueing took.
	Published(channel string, subscribers int, d time.Duration)
	// Delivered reports n frames written to a socket.
	Delivered(n int)
	// SlowConsumer reports a client disconnected because its queue overflowed.
	SlowConsumer()
	// Conflated reports n pending frames dropped for a newer one of the
	// same key, on a connection with the conflate policy.
	Conflated(n int)
	// Resumed reports a subscribe with since: recovered or not.
	Resumed(channel string, recovered bool)
	// Replayed reports n history events sent to one resuming subscription.
	Replayed(channel string, n int)
}

// Reasons passed to Observer.Disconnected. They are a closed set so that a
// metrics backend can use them as label values.
const (
	ReasonClientClosed   = "client_closed"   // the client sent a close frame
	ReasonConnectionLost = "connection_lost" // read failed without a close frame (EOF, reset, protocol error)
	ReasonMessageTooBig  = "message_too_big" // a client message exceeded ReadLimit (closed with 1009)
	ReasonWriteError     = "write_error"     // a frame could not be written within WriteTimeout
	ReasonPingTimeout    = "ping_timeout"    // a ping was not answered within WriteTimeout
	ReasonSlowConsumer   = "slow_consumer"   // the send queue overflowed (closed with 1008)
	ReasonTokenExpired   = "token_expired"   // Identity.ExpiresAt passed (closed with 3000)
	ReasonShutdown       = "shutdown"        // Shutdown was called (closed with 1001)
	ReasonInvalidUTF8    = "invalid_utf8"    // a text frame was not valid UTF-8 (closed with 1007)
	ReasonRevoked        = "revoked"         // Revoke matched the connection's identity (closed with 3001)
)

// queryAllowance is the room in the handshake's query for everything but
// ?subscribe=: a token (bookhub's are a few hundred bytes) and whatever a
// client library adds.
const queryAllowance = 8 << 10

// MaxChannelLen caps the length in bytes of one channel name, in ?subscribe=
// and in subscribe messages. Longer names are refused without consulting
// Options.ValidChannel, so a hostile name costs nothing to refuse and never
// reaches an injected validator.
const MaxChannelLen = 128

// Options configure a Hub. Zero values take the documented defaults.
type Options struct {
	// Authenticate is required.
	Authenticate Authenticator
	// ValidChannel is required; it decides which channel names clients may
	// subscribe to. Names it accepts are written into frames verbatim (JSON
	// escaped), so it is also the hub's only input filter for them. It is
	// never called with a name longer than MaxChannelLen.
	ValidChannel func(string) bool
	// Authorize, if set, decides whether id may subscribe to a channel that
	// ValidChannel accepted: for ?subscribe= (a refusal is a 403 before the
	// upgrade), for subscribe messages (error forbidden_channel), and again
	// for every current subscription after a refresh (a channel no longer
	// allowed is dropped with an unsubscribed frame). Nil allows every
	// valid channel. It runs on the connection's reader goroutine and must
	// be cheap: it is called once per channel per check.
	Authorize func(id Identity, channel string) bool
	// Reauthenticate, if set, verifies the access token of a refresh
	// message and returns the identity it stands for; an error answers
	// invalid_token and leaves the connection as it was. Like
	// Authenticator, its error is logged and must not contain the token.
	// It runs on the connection's reader goroutine with a context bounded
	// by ReauthenticateTimeout. Nil answers refresh with
	// refresh_unsupported.
	Reauthenticate func(ctx context.Context, token string) (Identity, error)
	// ReauthenticateTimeout bounds each call of Reauthenticate. Default 5s.
	ReauthenticateTimeout time.Duration
	// ExpiryWarning is how long before Identity.ExpiresAt the client is
	// sent token_expiring, once per identity, so it can refresh in time.
	// A connection whose token has less than this left when it opens (or
	// is refreshed) is warned at once. Default 60s; negative disables the
	// warning.
	ExpiryWarning time.Duration
	// Instance names this process in the welcome frame, so a client behind a
	// load balancer can tell which instance it reached.
	Instance string
	// Logger receives connection lifecycle logs. Nil means slog.Default().
	Logger *slog.Logger
	// OriginPatterns authorises cross-origin browsers; see
	// websocket.AcceptOptions.OriginPatterns, whose rule the hub applies
	// itself so that a refusal is a 403 problem document. The request host
	// is always allowed; New refuses a malformed pattern.
	OriginPatterns []string
	// SendQueueMessages caps the frames pending per connection (queued plus
	// being written). Default 512.
	SendQueueMessages int
	// SendQueueBytes caps the bytes pending per connection. Default 1 MiB.
	// A single frame larger than this is still accepted into an empty queue,
	// so one oversized event does not disconnect every subscriber.
	SendQueueBytes int
	// WriteTimeout bounds each write to the socket, and the wait for each
	// pong. Frames pending together are written at once (up to 64 KiB per
	// write), and a write is given between WriteTimeout/2 and WriteTimeout
	// (the deadline is moved only once half of it is used up, see socket.go).
	// A client that cannot take a write in that time is disconnected with
	// ReasonWriteError. Default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often an otherwise idle or busy socket is pinged
	// to detect dead peers. Default 30s. One hub-wide clock asks for the
	// pings (at most PingInterval/4, and at most 1s, late). Pings pause
	// while the connection replays history (its reader cannot read the
	// pong then); the replay's own writes detect a dead peer meanwhile.
	PingInterval time.Duration
	// ReadLimit caps one client message; a bigger one closes the socket with
	// 1009. Default 4096 bytes: clients only send small control messages.
	ReadLimit int64
	// MaxSubscriptions caps the channels of one connection. Default 64. It
	// also bounds the handshake's query: the ?subscribe= values may total at
	// most MaxSubscriptions*(MaxChannelLen+1) bytes (8256 by default), and
	// the raw query string three times that (room for percent-encoding) plus
	// 8 KiB for the token (32960 bytes by default), so an oversized request
	// is refused by its length, before anything parses it.
	MaxSubscriptions int
	// MaxConnsPerSubject caps the sockets one Identity.Subject may hold open
	// on this hub at once (counted from just before the upgrade until the
	// socket is gone); one more is refused before the upgrade with 429 and
	// Retry-After. The cap is per hub, so per instance: a client behind a
	// load balancer may hold this many on every instance. Subjects are
	// compared as given (an empty one is a subject like any other). Zero
	// means DefaultMaxConnsPerSubject; negative means no cap.
	MaxConnsPerSubject int
	// Observer receives metrics hooks; nil disables them.
	Observer Observer
	// History serves resumes (subscribe with since). Nil refuses them with
	// the error code history_unavailable.
	History History
	// MaxReplay caps the events one resume replays; a client further
	// behind gets recovered: false and refetches. Default 10000.
	MaxReplay int
	// ShutdownSpread is the window over which Shutdown spreads its closes.
	// Default 3s; negative closes every socket at once.
	ShutdownSpread time.Duration
	// HistoryTimeout bounds each read of History. Default 5s. A replay as a
	// whole has no deadline: it proceeds at the client's pace, each frame
	// bounded by WriteTimeout.
	HistoryTimeout time.Duration
}

// Defaults applied by New to zero Options fields.
const (
	DefaultSendQueueMessages = 512
	DefaultSendQueueBytes    = 1 << 20
	DefaultWriteTimeout      = 10 * time.Second
	DefaultPingInterval      = 30 * time.Second
	DefaultReadLimit         = 4096
	DefaultMaxSubscriptions  = 64
	// DefaultMaxConnsPerSubject is generous for people (a browser with many
	// tabs, a few devices) and still stops one leaked or shared token from
	// holding thousands of sockets.
	DefaultMaxConnsPerSubject = 100
	DefaultMaxReplay          = 10000
	DefaultShutdownSpread     = 3 * time.Second
	DefaultHistoryTimeout     = 5 * time.Second
	DefaultExpiryWarning      = 60 * time.Second
	DefaultReauthTimeout      = 5 * time.Second
)

// Stats is a point-in-time snapshot of the hub's size.
type Stats struct {
	// Connections counts upgraded sockets that have not yet been cleaned up.
	Connections int
	// Subscriptions counts (connection, channel) pairs.
	Subscriptions int
	// Channels counts channels with at least one subscriber.
	Channels int
}

// Hub is an http.Handler serving WebSocket subscribers, and the fan-out point
// for Publish. It is safe for concurrent use. Create it with New.
type Hub struct {
	opts Options
	log  *slog.Logger
	obs  Observer

	// maxSubscribeLen and maxQueryLen bound the handshake's query; see
	// Options.MaxSubscriptions.
	maxSubscribeLen int
	maxQueryLen     int

	nextID    atomic.Uint64
	connected atomic.Int64

	// mu guards the channel index. Publish holds it for reading only, and
	// only while appending to queues, so subscribers never wait on sockets.
	mu       sync.RWMutex
	channels map[string]map[*conn]*subscription
	subs     int

	// connMu guards conns, perSubject, closing and the revocation state,
	// and orders wg.Add before wg.Wait.
	connMu     sync.Mutex
	conns      map[*conn]struct{}
	perSubject map[string]int // admitted connections by Identity.Subject; no zero entries
	closing    bool
	wg         sync.WaitGroup
	janitorOn  bool // see janitor.go
	revocations

	// corkPool holds the sockets' batch buffers (see socket.cork), shared
	// so that only connections with frames in flight hold one.
	corkPool sync.Pool

	// encodings counts event frames encoded by Publish, for the benchmark
	// that shows it does not grow with the subscribers.
	encodings atomic.Uint64
}

// New validates opts, fills defaults and returns a ready Hub.
func New(opts Options) (*Hub, error) {
	if opts.Authenticate == nil {
		return nil, errors.New("hub: Options.Authenticate is required")
	}
	if opts.ValidChannel == nil {
		return nil, errors.New("hub: Options.ValidChannel is required")
	}
	if opts.SendQueueMessages < 0 || opts.SendQueueBytes < 0 || opts.WriteTimeout < 0 ||
		opts.PingInterval < 0 || opts.ReadLimit < 0 || opts.MaxSubscriptions < 0 || opts.MaxReplay < 0 || opts.HistoryTimeout < 0 ||
		opts.ReauthenticateTimeout < 0 {
		return nil, fmt.Errorf("hub: negative option in %+v", limitsOf(opts))
	}
	setDefault(&opts.SendQueueMessages, DefaultSendQueueMessages)
	setDefault(&opts.SendQueueBytes, DefaultSendQueueBytes)
	setDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	setDefault(&opts.PingInterval, DefaultPingInterval)
	setDefault(&opts.ReadLimit, DefaultReadLimit)
	setDefault(&opts.MaxSubscriptions, DefaultMaxSubscriptions)
	setDefault(&opts.MaxConnsPerSubject, DefaultMaxConnsPerSubject)
	setDefault(&opts.MaxReplay, DefaultMaxReplay)
	setDefault(&opts.HistoryTimeout, DefaultHistoryTimeout)
	setDefault(&opts.ShutdownSpread, DefaultShutdownSpread)
	setDefault(&opts.ExpiryWarning, DefaultExpiryWarning)
	setDefault(&opts.ReauthenticateTimeout, DefaultReauthTimeout)
	for _, p := range opts.OriginPatterns {
		// Checked once here, so a typo stops the start instead of turning
		// every cross-origin handshake into a 403 at request time.
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("hub: origin pattern %q: %w", p, err)
		}
	}
	h := &Hub{
		opts:        opts,
		log:         opts.Logger,
		obs:         opts.Observer,
		channels:    make(map[string]map[*conn]*subscription),
		conns:       make(map[*conn]struct{}),
		perSubject:  make(map[string]int),
		revocations: revocations{inflight: make(map[uint64]int)},
		corkPool:    sync.Pool{New: newCorkBuffer},
	}
	h.maxSubscribeLen = opts.MaxSubscriptions * (MaxChannelLen + 1)
	h.maxQueryLen = 3*h.maxSubscribeLen + queryAllowance
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.obs == nil {
		h.obs = nopObserver{}
	}
	return h, nil
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// limitsOf keeps function values and the logger out of error messages.
func limitsOf(o Options) map[string]any {
	return map[string]any{
		"SendQueueMessages": o.SendQueueMessages, "SendQueueBytes": o.SendQueueBytes,
		"WriteTimeout": o.WriteTimeout, "PingInterval": o.PingInterval,
		"ReadLimit": o.ReadLimit, "MaxSubscriptions": o.MaxSubscriptions,
		"MaxConnsPerSubject": o.MaxConnsPerSubject, "MaxReplay": o.MaxReplay,
		"HistoryTimeout": o.HistoryTimeout, "ReauthenticateTimeout": o.ReauthenticateTimeout,
	}
}

// Publish delivers p on each of its channels. For every channel the frame
// {"type":"event","channel":"<ch>","offset":N,"epoch":"<e>",<p.Data's
// fields>} is queued, without blocking, for every current subscriber.
//
// A subscriber whose Identity.Variant names one of p.Variants receives that
// payload instead of Data, and never another variant's. Each frame is
// encoded at most once per (channel, variant) and only for variants that
// have a subscriber on the channel, never once per subscriber.
//
// A connection subscribed to several of the channels (say "books" and
// "books:42") receives one frame per channel, each with that channel's
// offset; clients that want each change once subscribe to one of them only.
//
// Successive Publish calls from one goroutine reach each subscriber in
// order, and a subscription never receives an offset at or below one it
// has already received. A subscriber whose queue is full is disconnected
// (see Options.SendQueueBytes) and the others are unaffected. A publication
// whose Data or any of whose Variants is not a JSON object is logged and
// dropped as a whole, so no subscriber gets a partial delivery.
func (h *Hub) Publish(p Publication) {
	if err := checkPublication(p); err != nil {
		h.log.Error("hub: dropping event", "err", err)
		return
	}
	for _, pos := range p.Positions {
		ch := pos.Channel
		start := time.Now()
		h.mu.RLock()
		n := len(h.channels[ch])
		h.mu.RUnlock()
		if n == 0 {
			h.obs.Published(ch, 0, time.Since(start))
			continue
		}
		frames := frameSet{hub: h, pub: &p, pos: pos}
		h.mu.RLock()
		subs := h.channels[ch]
		n = len(subs)
		for c, sub := range subs {
			c.enqueueEvent(sub, pos, p.Key, &frames)
		}
		h.mu.RUnlock()
		h.obs.Published(ch, n, time.Since(start))
	}
}

// Incomplete tells every subscription that events after the last one it was
// sent may be missing: the feed behind the hub lost some and could not read
// them back. Each client receives {"type":"incomplete"} with the position to
// resume from, and its subscription continues live.
func (h *Hub) Incomplete(epoch string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, subs := range h.channels {
		for c, sub := range subs {
			c.enqueueIncomplete(sub, epoch)
		}
	}
}

// Stats returns the current size of the hub.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return Stats{
		Connections:   int(h.connected.Load()),
		Subscriptions: h.subs,
		Channels:      len(h.channels),
	}
}

// Shutdown refuses new upgrades with 503, asks every connection to close with
// 1001 "server shutting down", and waits until every connection goroutine
// has returned or ctx is done.
//
// The closes are spread evenly over Options.ShutdownSpread (but at most half
// of the time ctx leaves), not sent in one millisecond: thousands of clients
// reconnecting to the remaining instances at once would be a storm, and they
// resume there from their last offset, so a later close costs nothing. Each
// connection's writer performs its own close handshake, so they proceed
// concurrently. When ctx ends the rest are asked to close at once.
//
// http.Server.Shutdown does not know about hijacked connections, so call
// this first. If ctx ends early Shutdown returns its error; the remaining
// goroutines still exit on their own within the close handshake timeouts
// (about 10s).
func (h *Hub) Shutdown(ctx context.Context) error {
	h.connMu.Lock()
	h.closing = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.connMu.Unlock()
	h.closeSpread(ctx, conns)

	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hub shutdown: waiting for connections: %w", ctx.Err())
	}
}

// closeSpread asks conns to close one after another over the spread window.
func (h *Hub) closeSpread(ctx context.Context, conns []*conn) {
	window := h.opts.ShutdownSpread
	if dl, ok := ctx.Deadline(); ok {
		window = min(window, time.Until(dl)/2) // leave time for the handshakes
	}
	if window <= 0 || len(conns) < 2 {
		for _, c := range conns {
			c.requestClose(closeShutdown)
		}
		return
	}
	start := time.Now()
	step := window / time.Duration(len(conns)-1)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, c := range conns {
		if wait := time.Until(start.Add(time.Duration(i) * step)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				for _, c := range conns[i:] {
					c.requestClose(closeShutdown)
				}
				return
			}
		}
		c.requestClose(closeShutdown)
	}
}

// admission is register's verdict.
type admission int

const (
	admitted admission = iota
	refusedShutdown
	refusedSubjectCap
	refusedRevoked
)

// register admits c unless the hub is shutting down or c's subject already
// holds MaxConnsPerSubject connections. The check and the count happen under
// one lock, so concurrent handshakes of one subject cannot overshoot the cap.
// After admission the caller must call releaseSubject and unregister exactly
// once each.
//
// seq is the handshake's beginHandshake ticket, which register ends: a
// Revoke that ran since then and matches c's identity refuses it.
func (h *Hub) register(c *conn, seq uint64) admission {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	revoked := h.revokedSinceLocked(seq, c.ident)
	h.endHandshakeLocked(seq)
	if h.closing {
		return refusedShutdown
	}
	if revoked {
		return refusedRevoked
	}
	sub := c.subject
	if limit := h.opts.MaxConnsPerSubject; limit > 0 && h.perSubject[sub] >= limit {
		return refusedSubjectCap
	}
	h.perSubject[sub]++
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.startJanitorLocked()
	return admitted
}

// releaseSubject gives c's slot back to its subject. It is separate from
// unregister so the slot is free before Observer.Disconnected runs: whoever
// watches disconnects may reconnect at once, while Shutdown still waits for
// the rest of the cleanup.
func (h *Hub) releaseSubject(c *conn) {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	sub := c.subject
	if n := h.perSubject[sub] - 1; n > 0 {
		h.perSubject[sub] = n
	} else {
		delete(h.perSubject, sub) // no zero entries: subjects that left cost no memory
	}
}

func (h *Hub) unregister(c *conn) {
	h.connMu.Lock()
	delete(h.conns, c)
	h.connMu.Unlock()
	h.wg.Done()
}

// subscribe adds c to channel ch; with replaying set, live events are held
// until the caller ends the replay (conn.startAt). It must be called from
// c's reader goroutine, which owns c.subs.
func (h *Hub) subscribe(c *conn, ch string, replaying bool) (*subscription, string) {
	if i := c.subIndex(ch); i >= 0 {
		return c.subs[i], ""
	}
	if len(c.subs) >= h.opts.MaxSubscriptions {
		return nil, codeTooManySubscriptions
	}
	sub := &subscription{channel: ch, replaying: replaying}
	h.mu.Lock()
	set := h.channels[ch]
	if set == nil {
		set = make(map[*conn]*subscription, 1)
		h.channels[ch] = set
	}
	set[c] = sub
	h.subs++
	h.mu.Unlock()
	c.subs = append(c.subs, sub)
	h.obs.Subscribed(ch)
	return sub, ""
}

// unsubscribe removes c from ch; it must run on c's reader goroutine.
func (h *Hub) unsubscribe(c *conn, ch string) (code string) {
	i := c.subIndex(ch)
	if i < 0 {
		return codeNotSubscribed
	}
	h.mu.Lock()
	h.removeLocked(c, ch)
	h.mu.Unlock()
	c.subs = append(c.subs[:i], c.subs[i+1:]...)
	h.obs.Unsubscribed(ch)
	return ""
}

// unsubscribeAll cleans the index after c's reader has exited.
func (h *Hub) unsubscribeAll(c *conn) {
	if len(c.subs) == 0 {
		return
	}
	h.mu.Lock()
	for _, sub := range c.subs {
		h.removeLocked(c, sub.channel)
	}
	h.mu.Unlock()
	for _, sub := range c.subs {
		h.obs.Unsubscribed(sub.channel)
	}
	c.subs = nil
}

func (h *Hub) removeLocked(c *conn, ch string) {
	set := h.channels[ch]
	if _, ok := set[c]; !ok {
		return
	}
	delete(set, c)
	h.subs--
	if len(set) == 0 {
		delete(h.channels, ch)
	}
}

type nopObserver struct{}

func (nopObserver) Connected()                           {}
func (nopObserver) Disconnected(string)                  {}
func (nopObserver) Subscribed(string)                    {}
func (nopObserver) Unsubscribed(string)                  {}
func (nopObserver) Published(string, int, time.Duration) {}
func (nopObserver) Delivered(int)                        {}
func (nopObserver) SlowConsumer()                        {}
func (nopObserver) Conflated(int)                        {}
func (nopObserver) Resumed(string, bool)                 {}
func (nopObserver) Replayed(string, int)                 {}
