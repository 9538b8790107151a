package hub

import (
	"context"
	"log/slog"
	"time"

	"github.com/coder/websocket"
)

// A connection's writer is a goroutine that exists only while there is
// something to write: kick starts it, and it ends once the queue is empty.
// At most one runs per connection (conn.writing), so the socket still has a
// single writer; an idle socket has none, and holds neither its stack nor a
// write buffer. Starting a goroutine costs about what waking a parked one
// does, so a delivery pays nothing for this.

// writerTask is what next hands the writer.
type writerTask struct {
	batch [][]byte
	close closeRequest // code != 0: perform this close
	ping  bool
}

// next takes the writer's next task, or ends the writer (ok false) when
// there is none. The close request comes first: pending frames were dropped
// with it.
func (c *conn) next() (t writerTask, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closeReq.code != 0:
		return writerTask{close: c.closeReq}, true
	case c.readerDone:
	case len(c.queue) > 0:
		t.batch, c.queue = c.queue, nil
		if c.meta != nil {
			clear(c.meta) // taken frames are on their way: never conflated
			c.meta = c.meta[:0]
		}
		return t, true
	case c.pingDue && !c.resuming:
		c.pingDue = false
		c.pinging, c.pingSpoiled = true, false
		return writerTask{ping: true}, true
	}
	// A ping asked for during a replay is skipped: the replay's own writes
	// detect a dead peer meanwhile.
	c.pingDue = false
	if c.queue != nil && len(c.queue) == 0 && c.meta == nil {
		c.queue = nil // an idle connection keeps no recycled array
	}
	c.endWriterLocked(false)
	return writerTask{}, false
}

// endWriterLocked marks the writer gone (and the socket unwritable when
// dead), waking a reader that waits for it.
func (c *conn) endWriterLocked(dead bool) {
	c.writing = false
	c.dead = c.dead || dead
	if c.writerExit != nil {
		close(c.writerExit)
		c.writerExit = nil
	}
	if dead {
		c.signalDrained()
	}
}

// run is the connection's writer; see kick.
func (c *conn) run() {
	for {
		t, ok := c.next()
		switch {
		case !ok:
			return
		case t.close.code != 0:
			c.logf(slog.LevelInfo, "hub: closing connection", slog.Int("status", int(t.close.code)), slog.String("reason", t.close.reason))
			_ = c.ws.Close(t.close.code, t.close.reason) // waits for the handshake, bounded by the library
			c.fail("")
			return
		case t.ping:
			err := c.ping()
			if c.endPing() && err != nil {
				c.logf(slog.LevelInfo, "hub: ping not answered", slog.Any("err", err))
				c.fail(ReasonPingTimeout)
				return
			}
		default:
			if !c.writeBatch(t.batch) {
				return
			}
		}
	}
}

// fail ends the writer for good: the socket is closed (reason, when set,
// is recorded first, so the reader that sees the socket die cannot claim
// another).
func (c *conn) fail(reason string) {
	if reason != "" {
		c.setReason(reason)
	}
	_ = c.ws.CloseNow()
	c.mu.Lock()
	c.endWriterLocked(true)
	c.mu.Unlock()
}

// writeBatch writes frames in order through the corked socket, so a batch
// costs one system call (one per maxCorked bytes), each bounded by
// WriteTimeout. It stops early when a close has been requested meanwhile,
// and reports whether the writer may go on.
//
// The library is given a context that is never done: with a cancellable
// one it would register and remove a context.AfterFunc per frame, which
// the CPU profile of a 10k-subscriber run showed as a tenth of the
// writer's time. The socket's write deadline bounds every write instead.
func (c *conn) writeBatch(batch [][]byte) bool {
	ctx := context.Background()
	c.sock.cork()
	sent, bytes := 0, 0
	var err error
	for _, frame := range batch {
		if c.closing.Load() {
			break
		}
		if err = c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
			break
		}
		sent++
		bytes += len(frame)
	}
	if uerr := c.sock.uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		c.logf(slog.LevelInfo, "hub: write failed", slog.Any("err", err))
		c.fail(ReasonWriteError)
		return false
	}
	if sent > 0 {
		c.hub.obs.Delivered(sent)
	}
	c.written(sent, bytes, batch)
	c.signalDrained()
	return true
}

// written accounts for n frames (of size bytes) on the wire and offers the
// batch's backing array back to the queue, so a steady trickle of events
// does not allocate a slice per batch. Large arrays are dropped to keep
// idle connections small.
func (c *conn) written(n, bytes int, batch [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeReq.code != 0 {
		return // the counters were reset with the queue
	}
	c.pendingN -= n
	c.pendingBytes -= bytes
	if cap(batch) <= 8 && c.queue == nil {
		clear(batch)
		c.queue = batch[:0]
	}
}

// ping blocks the writer for one round trip: the pong is read by the reader
// goroutine, and pausing writes meanwhile keeps a single writer.
func (c *conn) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.opts.WriteTimeout)
	defer cancel()
	return c.ws.Ping(ctx)
}

// pingIfDue is the janitor's visit: when PingInterval has passed since the
// last ping, it asks the writer for one.
func (c *conn) pingIfDue(now time.Time) {
	c.mu.Lock()
	start := false
	if c.started && now.After(c.nextPing) {
		c.nextPing = now.Add(c.hub.opts.PingInterval)
		c.pingDue = true
		start = c.startWriterLocked()
	}
	c.mu.Unlock()
	if start {
		go c.run()
	}
}
