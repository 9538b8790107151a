package hub

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/problem"
)

var _ http.Handler = (*Hub)(nil)

// ServeHTTP checks the handshake, authenticates the request, validates
// ?subscribe= and upgrades it to a WebSocket, then serves the connection
// until it closes.
//
// Every refusal happens before the upgrade, as application/problem+json
// (type urn:bookhub:problem:<slug>), in this order, so a client learns the
// most basic thing it got wrong first:
//
//   - 405 method-not-allowed (Allow: GET, HEAD) for anything but GET and HEAD;
//   - 426 not-websocket (Upgrade: websocket) for a request that is not a
//     WebSocket handshake: a HEAD, HTTP/1.0 or HTTP/2, no Upgrade: websocket,
//     no Connection: Upgrade;
//   - 426 websocket-version (Sec-WebSocket-Version: 13) for another version;
//   - 400 bad-handshake for a missing, repeated or malformed Sec-WebSocket-Key;
//   - 403 origin-forbidden for a browser Origin that is neither the request's
//     host nor allowed by OriginPatterns;
//   - 400 invalid-parameter for a query string longer than its cap (see
//     Options.MaxSubscriptions), checked first so that no one pays to parse it;
//   - 401 unauthorized (WWW-Authenticate: Bearer) when Authenticate fails;
//   - 400 invalid-parameter when the query string does not parse (a bad
//     %-escape, a ';', more than net/url's 10,000 parameters) or ?subscribe=
//     names an invalid channel or too many, or is longer than its byte cap
//     (see Options.MaxSubscriptions);
//   - 403 forbidden-channel when Options.Authorize refuses a ?subscribe=
//     channel to this identity (the detail and errors[0] name it);
//   - 503 unavailable once Shutdown has begun;
//   - 401 unauthorized when a Revoke that ran during the handshake matches
//     its identity;
//   - 429 too-many-connections (Retry-After) when the subject already holds
//     MaxConnsPerSubject sockets.
//
// After the upgrade the client receives a welcome frame (then token_expiring
// if the token is already within ExpiryWarning), then one subscribed
// frame per ?subscribe= channel, in order. ServeHTTP returns right after
// the upgrade; the connection is served by a reader goroutine of its own and
// a writer goroutine that runs only while frames are pending.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ref := h.checkHandshake(r); ref != nil {
		h.log.Debug("hub: not a valid handshake", "remote", r.RemoteAddr, "status", ref.Status, "type", ref.Type)
		ref.write(w, r)
		return
	}
	if len(r.URL.RawQuery) > h.maxQueryLen {
		// Before Authenticate, which may parse the query to find a token:
		// an oversized query costs one length check, whoever sends it.
		invalidParameter("the query string is too long", "query", fmt.Sprintf("longer than %d bytes", h.maxQueryLen)).write(w, r)
		return
	}
	// The ticket is taken before Authenticate, so a Revoke that runs while
	// this handshake is between Authenticate and register still applies.
	seq := h.beginHandshake()
	ticketed := true
	defer func() {
		if ticketed {
			h.endHandshake(seq)
		}
	}()
	ident, err := h.opts.Authenticate(r)
	if err != nil {
		// The error may say why a token was refused; it never contains the
		// token, and the URL (which may) is not logged.
		h.log.Info("hub: unauthenticated upgrade refused", "remote", r.RemoteAddr, "err", err)
		refuse(kindUnauthorized, "a valid bearer token is required (Authorization header or ?token=)").
			with("WWW-Authenticate", "Bearer").write(w, r)
		return
	}
	// r.URL.Query() would drop what it cannot parse, and everything past
	// net/url's parameter limit (10,000), without a word: ?subscribe= would
	// silently mean "nothing", so a query that does not parse is refused.
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		invalidParameter("the query string does not parse", "query", err.Error()).write(w, r)
		return
	}
	channels, err := h.parseSubscribe(query["subscribe"])
	if err != nil {
		invalidParameter("invalid ?subscribe= parameter", "subscribe", err.Error()).write(w, r)
		return
	}
	for _, ch := range channels {
		if !h.authorized(ident, ch) {
			c := quoteShort(ch)
			ref := refuse(kindForbiddenChannel, "this token may not subscribe to "+c)
			ref.Errors = []problem.FieldError{{Field: "subscribe", Message: "not allowed: " + c}}
			ref.write(w, r)
			return
		}
	}
	resumes, err := parseSince(query["since"], query.Get("epoch"), len(channels))
	if err != nil {
		invalidParameter("invalid ?since= parameter", "since", err.Error()).write(w, r)
		return
	}
	if len(resumes) > 0 && resumes[0] != nil && h.opts.History == nil {
		invalidParameter("invalid ?since= parameter", "since", "this server keeps no history to resume from").write(w, r)
		return
	}
	slowName := query.Get("slow")
	if slowName == "" {
		slowName = SlowDisconnect
	}
	policy, ok := parseSlowPolicy(slowName)
	if !ok || len(query["slow"]) > 1 {
		invalidParameter("invalid ?slow= parameter", "slow", `must be "disconnect" or "conflate"`).write(w, r)
		return
	}

	c := &conn{
		hub:     h,
		id:      h.nextID.Add(1),
		subject: ident.Subject,
		ident:   ident,
		remote:  r.RemoteAddr,
		drained: make(chan struct{}, 1),
	}
	ticketed = false
	switch h.register(c, seq) {
	case refusedRevoked:
		c.logf(slog.LevelInfo, "hub: upgrade refused, the token was revoked during the handshake")
		refuse(kindUnauthorized, "the token was revoked; sign in again").
			with("WWW-Authenticate", "Bearer").write(w, r)
		return
	case refusedShutdown:
		refuse(kindUnavailable, "server shutting down; reconnect to another instance").write(w, r)
		return
	case refusedSubjectCap:
		c.logf(slog.LevelInfo, "hub: too many connections for subject", slog.Int("limit", h.opts.MaxConnsPerSubject))
		refuse(kindTooManyConns,
			fmt.Sprintf("this token's subject already holds %d sockets on this instance, the most allowed; close one first", h.opts.MaxConnsPerSubject)).
			with("Retry-After", strconv.Itoa(int(subjectCapRetryAfter/time.Second))).write(w, r)
		return
	}
	if !canHijack(w) {
		// A wiring bug, not the client's fault: refused in the same dialect
		// instead of Accept's plain-text 501, and logged loudly.
		h.abandon(c)
		h.log.Error("hub: response writer cannot be hijacked; does a middleware hide http.Hijacker?")
		refuse(kindInternal, "").write(w, r)
		return
	}
	// checkHandshake has applied Accept's checks, origin included, so Accept
	// refuses nothing here; OriginPatterns stays as a second line of defence.
	tap := &hijackTap{ResponseWriter: w, hub: h}
	ws, err := websocket.Accept(tap, r, &websocket.AcceptOptions{OriginPatterns: h.opts.OriginPatterns})
	if err != nil {
		h.abandon(c)
		c.logf(slog.LevelWarn, "hub: upgrade failed after the handshake checks", slog.Any("err", err))
		return
	}
	ws.SetReadLimit(h.opts.ReadLimit)
	c.ws, c.sock = ws, tap.sock
	h.connected.Add(1)
	h.obs.Connected()
	c.logf(slog.LevelDebug, "hub: connected", slog.String("role", ident.Role))

	c.setPolicy(policy)
	c.enqueue(encodeWelcome(h.opts.Instance, ident, slowName))
	c.startTokenClock()
	// The handler returns now: net/http's per-request state (its buffers,
	// the request, the response) is garbage from here on, and the
	// connection lives in a goroutine of its own with a fresh small stack.
	go c.serve(channels, resumes)
}

// startWriting lets writers start, and starts one for what is queued; it
// runs on the reader goroutine, and again is a no-op.
func (c *conn) startWriting() {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return
	}
	c.started = true
	c.nextPing = time.Now().Add(c.hub.opts.PingInterval)
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.run()
	}
}

// abandon undoes register for a connection that never came up.
func (h *Hub) abandon(c *conn) {
	h.releaseSubject(c)
	h.unregister(c)
}

// serve is the connection's reader goroutine: it subscribes ?subscribe=,
// starts the writer for what is queued, reads client messages until the
// socket fails, then waits for a running writer and cleans up.
func (c *conn) serve(channels []string, resumes []*since) {
	h := c.hub
	defer h.unregister(c)
	// Plain subscriptions are answered before the writer starts, so the
	// welcome and every subscribed frame leave in one write; a resume
	// needs the writer running, since it waits for the client to drain.
	for i, ch := range channels {
		if resumes[i] != nil {
			c.startWriting()
		}
		c.subscribeTo(ch, resumes[i], nil)
	}
	c.startWriting()

	c.readLoop()
	c.mu.Lock()
	c.readerDone = true
	c.queue, c.meta = nil, nil
	var wait chan struct{}
	if c.writing {
		c.writerExit = make(chan struct{})
		wait = c.writerExit
	}
	c.mu.Unlock()
	c.stopTokenClock()
	if wait != nil {
		<-wait
	}
	_ = c.ws.CloseNow() // no-op when the writer or the peer already closed it

	h.unsubscribeAll(c)
	h.releaseSubject(c)
	h.connected.Add(-1)
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	h.obs.Disconnected(reason)
	c.logf(slog.LevelDebug, "hub: disconnected", slog.String("reason", reason))
}

// parseSubscribe validates every ?subscribe= value (each may be a
// comma-separated list) and returns the distinct channels in order.
//
// Its cost is linear in the input and bounded before any splitting: the
// values may total at most MaxSubscriptions*(MaxChannelLen+1) bytes (room for
// the longest allowed list), each name at most MaxChannelLen, duplicates are
// found with a set, and parsing stops at the first channel beyond
// MaxSubscriptions. A hostile list is refused in microseconds.
func (h *Hub) parseSubscribe(values []string) ([]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	limit, maxBytes := h.opts.MaxSubscriptions, h.maxSubscribeLen
	total := 0
	for _, v := range values {
		total += len(v) + 1 // each value is as good as a comma-separated item
		if total > maxBytes+1 {
			return nil, fmt.Errorf("longer than %d bytes", maxBytes)
		}
	}
	out := make([]string, 0, min(limit, 8))
	seen := make(map[string]struct{}, min(limit, 8))
	for _, v := range values {
		for ch := range strings.SplitSeq(v, ",") {
			if len(ch) > MaxChannelLen || !h.opts.ValidChannel(ch) {
				return nil, fmt.Errorf("unknown channel %s", quoteShort(ch))
			}
			if _, dup := seen[ch]; dup {
				continue
			}
			if len(out) == limit {
				return nil, fmt.Errorf("more than %d distinct channels, the most one socket may hold", limit)
			}
			seen[ch] = struct{}{}
			out = append(out, ch)
		}
	}
	return out, nil
}

// quoteShort quotes client input for a problem detail: Go-escaped, so the
// document stays valid UTF-8 whatever the bytes, and cut, so a refusal never
// echoes a long value back.
func quoteShort(s string) string {
	const max = 40
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "…"
}
