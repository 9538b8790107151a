package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// closeRequest is a server-initiated close: the wire status and reason, and
// the Observer reason.
type closeRequest struct {
	code   websocket.StatusCode
	reason string
	metric string
}

// Close requests the hub makes. The reasons are constants on purpose: they
// are part of the protocol clients react to.
var (
	closeSlowConsumer = closeRequest{websocket.StatusPolicyViolation, "slow consumer: send queue full", ReasonSlowConsumer}
	closeTokenExpired = closeRequest{3000, "token expired", ReasonTokenExpired} // 3000: IANA "Unauthorized"
	closeShutdown     = closeRequest{websocket.StatusGoingAway, "server shutting down", ReasonShutdown}
	// 3001: the credential was withdrawn (signed out, password changed,
	// account disabled); the client must sign in again, not just retry.
	closeRevoked = closeRequest{3001, "token revoked", ReasonRevoked}
	// RFC 6455 section 8.1: a text frame that is not UTF-8 fails the
	// connection with 1007. Answering it with an error frame would mean
	// echoing (or mangling) the bytes, and a peer that sends broken text
	// cannot be trusted to parse what follows.
	closeInvalidUTF8 = closeRequest{websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8", ReasonInvalidUTF8}
)

// conn is one subscriber. Idle sockets are the common case, so the struct is
// kept small, the queue is allocated only while frames are pending, and no
// goroutine writes for an idle connection: a writer is started when there is
// something to write and ends when the queue is empty (see kick and run).
type conn struct {
	hub *Hub
	id  uint64
	// subject is ident.Subject, which a refresh never changes; kept apart
	// so the hub's bookkeeping and logs read it without locking.
	subject string
	// ident is written only by the reader goroutine (refresh), under mu:
	// the reader may read it without mu, everyone else holds mu.
	ident  Identity
	remote string
	ws     *websocket.Conn // set before started, then read-only
	sock   *socket         // the net.Conn beneath ws

	// subs is owned by the reader goroutine; the mutable state of each
	// subscription is guarded by mu.
	subs []*subscription

	// drained tells a replaying reader that the writer made progress, or
	// that the connection can no longer write; 1-buffered and re-checked
	// against the state, so a signal is never lost.
	drained chan struct{}
	// closing mirrors closeReq.code != 0 for the writer's check between
	// frames of a batch, which takes no lock.
	closing atomic.Bool

	mu           sync.Mutex
	queue        [][]byte // frames not yet taken by the writer
	policy       slowPolicy
	meta         []frameMeta // parallel to queue, only with policyConflate
	pendingN     int         // frames queued or being written
	pendingBytes int
	closeReq     closeRequest // code != 0 once a close was requested
	reason       string       // first disconnect reason observed
	readerDone   bool
	// started is set once the socket is up and the reader runs; before it
	// frames are queued but no writer starts.
	started bool
	// writing is set while a writer goroutine runs; dead once the socket
	// cannot be written any more (closed, or a write or ping failed).
	writing bool
	dead    bool
	// writerExit, when set, is closed as the running writer ends: the reader
	// waits on it before it cleans up.
	writerExit chan struct{}
	// nextPing is when the janitor next asks for a ping; pingDue is its
	// request, taken by the writer.
	nextPing time.Time
	pingDue  bool
	// resuming is set while the reader replays history. It reads no frames
	// meanwhile, so a pong would go unanswered: the writer does not ping,
	// and does not judge a ping that was in flight when the replay began
	// (pingSpoiled).
	resuming    bool
	pinging     bool
	pingSpoiled bool
	// expiry fires at ident's next token event (see token.go); nil while
	// the identity never expires. warned is set once token_expiring has
	// been sent for the current identity.
	expiry *time.Timer
	warned bool
}

// kick starts a writer unless one runs or none can: frames were queued, a
// close was requested or a ping is due. A writer that finds nothing to do
// ends, so an idle connection costs no goroutine.
func (c *conn) kick() {
	c.mu.Lock()
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.run()
	}
}

// startWriterLocked reports whether the caller must start a writer, and
// marks it running.
func (c *conn) startWriterLocked() bool {
	if c.writing || c.dead || !c.started || (c.readerDone && c.closeReq.code == 0) {
		return false
	}
	c.writing = true
	return true
}

// enqueue appends frame to the send queue without blocking. Frames are
// shared between subscribers and must not be modified afterwards. When the
// queue is full the client is too slow: its queue is dropped and it is
// closed, so it neither holds memory nor delays anyone else.
func (c *conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	ok, slow := c.pushLocked(frame)
	c.mu.Unlock()
	c.afterPush(ok, slow)
	return ok
}

// enqueueEvent queues a live event of sub at pos. An event at or below the
// last one queued on sub is a duplicate and dropped; while sub replays
// history the frame is held instead (and a client whose held frames
// outgrow its queue is a slow consumer).
//
// The frame is taken from frames for the connection's current variant, and
// only once it is known to be needed, so a publication encodes nothing for
// connections that drop it.
func (c *conn) enqueueEvent(sub *subscription, pos Position, key string, frames *frameSet) {
	c.mu.Lock()
	var ok, slow bool
	switch {
	case c.closeReq.code != 0 || c.readerDone:
	case sub.replaying:
		if len(sub.held) >= c.hub.opts.SendQueueMessages {
			c.closeLocked(closeSlowConsumer)
			slow = true
			break
		}
		sub.held = append(sub.held, heldFrame{offset: pos.Offset, epoch: pos.Epoch, key: key, frame: frames.frame(c.ident.Variant)})
	case sub.admit(pos.Offset, pos.Epoch):
		frame := frames.frame(c.ident.Variant)
		ok, slow = c.pushEventLocked(frame, frameMeta{sub: sub, key: key, offset: pos.Offset, orig: frame})
	}
	// Decided under the same lock, not by kick: this is the fan-out's
	// inner loop, and a second lock per delivery showed in its profile.
	start := (ok || slow) && c.startWriterLocked()
	c.mu.Unlock()
	if slow {
		c.hub.obs.SlowConsumer()
	}
	if start {
		go c.run()
	}
}

// pushEventLocked queues an event frame; a full queue under the conflate
// policy is first conflated, and the client is slow only if that frees
// nothing.
func (c *conn) pushEventLocked(frame []byte, m frameMeta) (ok, slow bool) {
	if c.policy != policyConflate {
		return c.pushLocked(frame)
	}
	if c.closeReq.code != 0 || c.readerDone {
		return false, false
	}
	c.queue = append(c.queue, frame)
	c.meta = append(c.meta, m)
	c.pendingN++
	c.pendingBytes += len(frame)
	// The batch the writer has taken is on its way and cannot be
	// conflated, so only the queue behind it is held to the limits: at
	// most one batch in flight plus SendQueueMessages queued frames, and
	// twice SendQueueBytes in all.
	opts := &c.hub.opts
	fits := func() bool {
		return len(c.queue) <= opts.SendQueueMessages && c.pendingBytes <= 2*opts.SendQueueBytes
	}
	if fits() {
		return true, false
	}
	conflated := c.conflateLocked()
	c.hub.obs.Conflated(conflated) // cheap, and only on this slow path
	if fits() {
		return true, false
	}
	// As many distinct books pending as the queue holds: conflating cannot
	// bound it, so fall back to the disconnect policy (the client resumes).
	c.closeLocked(closeSlowConsumer)
	return false, true
}

// enqueueReplay queues a frame read from history for sub.
func (c *conn) enqueueReplay(sub *subscription, e Entry, frame []byte) {
	c.mu.Lock()
	ok, slow := false, false
	if sub.admit(e.Offset, e.Epoch) {
		ok, slow = c.pushLocked(frame)
	}
	c.mu.Unlock()
	c.afterPush(ok, slow)
}

// endReplay ends sub's replay at pos: held live frames beyond it are
// queued in order, the rest dropped as duplicates, then sub is live. The
// held frames go out in chunks paced like the replay (see replayPace): a
// burst held during a long replay, on top of a queue the replay keeps half
// full, must not look like a slow consumer. Live events keep being held
// until the last chunk, so order is kept.
func (c *conn) endReplay(sub *subscription, pos Position, chunk, room int) error {
	c.mu.Lock()
	sub.admit(pos.Offset, pos.Epoch)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		n := min(chunk, len(sub.held))
		ok, slow := false, false
		for _, f := range sub.held[:n] {
			if !sub.admit(f.offset, f.epoch) {
				continue
			}
			if ok, slow = c.pushEventLocked(f.frame, frameMeta{sub: sub, key: f.key, offset: f.offset, orig: f.frame}); !ok {
				break
			}
		}
		clear(sub.held[:n])
		sub.held = sub.held[n:]
		done := len(sub.held) == 0
		if done {
			sub.held, sub.replaying = nil, false
		}
		c.mu.Unlock()
		c.afterPush(ok, slow)
		if done {
			return nil
		}
		if !c.waitDrained(room) {
			return errConnClosed
		}
	}
}

// pushLocked appends frame to the queue, or closes a client whose queue is
// full. It reports whether the frame was queued and whether the client was
// just found slow.
func (c *conn) pushLocked(frame []byte) (ok, slow bool) {
	opts := &c.hub.opts
	if c.closeReq.code != 0 || c.readerDone {
		return false, false
	}
	if c.pendingN > 0 && (c.pendingN+1 > opts.SendQueueMessages || c.pendingBytes+len(frame) > opts.SendQueueBytes) {
		c.closeLocked(closeSlowConsumer)
		return false, true
	}
	c.queue = append(c.queue, frame)
	if c.policy == policyConflate {
		c.meta = append(c.meta, frameMeta{})
	}
	c.pendingN++
	c.pendingBytes += len(frame)
	return true, false
}

func (c *conn) afterPush(ok, slow bool) {
	if slow {
		c.hub.obs.SlowConsumer()
	}

	if ok || slow {
		c.kick()
	}
}

// waitDrained blocks the reader until at most n frames are pending, so a
// long replay proceeds at the client's pace instead of overflowing its
// queue. It does not time out: a live client may read as slowly as it
// likes, and a stalled one is ended by WriteTimeout, which stops the
// writer. It returns false once a close was requested or the writer is
// gone.
func (c *conn) waitDrained(n int) bool {
	for {
		c.mu.Lock()
		pending, closed := c.pendingN, c.closeReq.code != 0 || c.readerDone || c.dead
		c.mu.Unlock()
		if closed {
			return false
		}
		if pending <= n {
			return true
		}
		<-c.drained
	}
}

func (c *conn) signalDrained() {
	select {
	case c.drained <- struct{}{}:
	default:
	}
}

// beginResume and endResume bracket a replay on the reader goroutine.
func (c *conn) beginResume() {
	c.mu.Lock()
	c.resuming = true
	c.pingSpoiled = c.pinging
	c.mu.Unlock()
}

func (c *conn) endResume() {
	c.mu.Lock()
	c.resuming = false
	c.mu.Unlock()
}

// endPing reports whether the ping's outcome counts: not if a replay began
// while it was in flight.
func (c *conn) endPing() (counts bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinging = false
	return !c.pingSpoiled
}

// enqueueIncomplete tells sub's client that events after the last one it
// was sent may be missing. The position is the subscription's own; epoch
// names it while the subscription has been sent no sequenced event.
func (c *conn) enqueueIncomplete(sub *subscription, epoch string) {
	c.mu.Lock()
	if sub.epoch != "" {
		epoch = sub.epoch
	}
	frame := encodeIncomplete(Position{Channel: sub.channel, Offset: sub.last, Epoch: epoch})
	ok, slow := c.pushLocked(frame)
	c.mu.Unlock()
	c.afterPush(ok, slow)
}

// requestClose asks the writer to close the socket with req. The first
// request wins; it reports whether this one did.
func (c *conn) requestClose(req closeRequest) bool {
	c.mu.Lock()
	won := c.closeLocked(req)
	c.mu.Unlock()
	c.kick()
	return won
}

func (c *conn) closeLocked(req closeRequest) bool {
	if c.closeReq.code != 0 {
		return false
	}
	c.closeReq = req
	c.closing.Store(true)
	c.queue, c.meta = nil, nil // pending frames will never be sent: release them now
	c.pendingN, c.pendingBytes = 0, 0
	if c.reason == "" {
		c.reason = req.metric
	}
	c.signalDrained() // a replaying reader stops at once
	return true
}

// setReason records why the connection ended unless a reason is known.
func (c *conn) setReason(reason string) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	c.mu.Unlock()
}

// readLoop reads client messages until the socket fails, and answers them
// through the send queue. A text frame that is not UTF-8 ends it: the writer
// closes the socket with 1007 and the close handshake reads the rest.
func (c *conn) readLoop() {
	ctx := context.Background() // no deadline: an idle subscriber is normal
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			c.readFailed(err)
			return
		}
		if typ != websocket.MessageText {
			c.reply(errorReply(nil, codeBinaryUnsupported))
			continue
		}
		if !utf8.Valid(data) {
			c.logf(slog.LevelInfo, "hub: invalid UTF-8 in a text frame", slog.Int("bytes", len(data)))
			c.requestClose(closeInvalidUTF8)
			return
		}
		c.handle(data)
	}
}

func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.setReason(ReasonMessageTooBig)
	case websocket.CloseStatus(err) != -1:
		c.setReason(ReasonClientClosed)
	default:
		c.setReason(ReasonConnectionLost)
	}
	c.logf(slog.LevelDebug, "hub: read ended", slog.Any("err", err))
}

// handle answers one client message.
func (c *conn) handle(data []byte) {
	m, bad := parseClientMessage(data)
	if bad != nil {
		c.reply(*bad)
		return
	}
	switch m.Type {
	case "ping":
		c.reply(reply{Type: "pong", ID: m.ID})
	case "refresh":
		c.refresh(m.Token, m.ID)
	case "subscribe", "unsubscribe":
		if m.Channel == nil || *m.Channel == "" {
			c.reply(errorReply(m.ID, codeMissingChannel))
			return
		}
		ch := *m.Channel
		if len(ch) > MaxChannelLen || !c.hub.opts.ValidChannel(ch) {
			c.reply(errorReply(m.ID, codeUnknownChannel))
			return
		}
		if m.Type == "unsubscribe" {
			if code := c.hub.unsubscribe(c, ch); code != "" {
				c.reply(errorReply(m.ID, code))
				return
			}
			c.reply(reply{Type: "unsubscribed", ID: m.ID, Channel: ch})
			return
		}
		if !c.hub.authorized(c.ident, ch) {
			c.reply(errorReply(m.ID, codeForbiddenChannel))
			return
		}
		from, ok := parseSinceMessage(m.Since)
		if !ok {
			c.reply(errorReply(m.ID, codeBadSince))
			return
		}
		if m.Slow != nil {
			p, ok := parseSlowPolicy(*m.Slow)
			if !ok {
				c.reply(errorReply(m.ID, codeBadSlow))
				return
			}
			c.setPolicy(p)
		}
		c.subscribeTo(ch, from, m.ID)
	default:
		c.reply(errorReply(m.ID, codeUnknownType))
	}
}

func (c *conn) reply(r reply) { c.enqueue(encodeReply(r)) }

// subscribeTo subscribes to ch and answers, resuming after from when set.
// A resume on a channel the connection already has restarts it, so a client
// can rewind; history that cannot be read leaves the client unsubscribed
// with history_unavailable, so it knows to retry.
func (c *conn) subscribeTo(ch string, from *since, id json.RawMessage) {
	h := c.hub
	if from == nil {
		if _, code := h.subscribe(c, ch, false); code != "" {
			c.reply(errorReply(id, code))
			return
		}
		c.reply(subscribedReply(id, ch, nil))
		return
	}
	if h.opts.History == nil {
		c.reply(errorReply(id, codeHistoryUnavailable))
		return
	}
	if c.subscribed(ch) {
		h.unsubscribe(c, ch)
	}
	sub, code := h.subscribe(c, ch, true)
	if code != "" {
		c.reply(errorReply(id, code))
		return
	}
	res, err := h.resume(c, sub, *from, id)
	if errors.Is(err, errConnClosed) {
		h.unsubscribe(c, ch)
		return
	}
	if err != nil {
		h.unsubscribe(c, ch)
		c.logf(slog.LevelWarn, "hub: resume failed", slog.String("channel", ch), slog.Any("err", err))
		c.reply(errorReply(id, codeHistoryUnavailable))
		return
	}
	h.obs.Resumed(ch, res.recovered)
}

func (c *conn) subIndex(ch string) int {
	for i, s := range c.subs {
		if s.channel == ch {
			return i
		}
	}
	return -1
}

func (c *conn) subscribed(ch string) bool { return c.subIndex(ch) >= 0 }

// logf logs with the connection's identity; attributes are built only when
// the level is enabled, and never include the token or the query string.
func (c *conn) logf(level slog.Level, msg string, attrs ...slog.Attr) {
	log := c.hub.log
	if !log.Enabled(context.Background(), level) {
		return
	}
	attrs = append(attrs, slog.Uint64("conn", c.id), slog.String("sub", c.subject), slog.String("remote", c.remote))
	log.LogAttrs(context.Background(), level, msg, attrs...)
}
