package hub

import "math"

// Revoke closes every socket whose current identity matches, with 3001
// "token revoked" (Observer reason ReasonRevoked), and returns how many it
// closed; a socket already closing for another reason is not counted. It
// is safe to call from any goroutine at any time, concurrently with
// Publish, refreshes and Shutdown.
//
// Revoke does not wait for the sockets: each close is requested of the
// connection's writer, which drops whatever is still queued and performs
// the close handshake, bounded as every close is (WriteTimeout for a frame
// in flight, then the library's handshake timeout).
//
// A handshake that had begun authenticating when Revoke was called, and
// is admitted after it, is checked against match too and refused with 401:
// its Authenticator may have read the credential's state before the
// revocation was committed. match is called with the hub's connection lock
// held for those, so it must be a cheap pure function of the Identity and
// must not call the hub.
func (h *Hub) Revoke(match func(Identity) bool) int {
	h.connMu.Lock()
	h.revokeSeq++
	if len(h.inflight) > 0 {
		h.recent = append(h.recent, revocation{seq: h.revokeSeq, match: match})
	}
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.connMu.Unlock()
	n := 0
	for _, c := range conns {
		if c.revokeIf(match) {
			n++
		}
	}
	if n > 0 {
		h.log.Info("hub: sockets revoked", "count", n)
	}
	return n
}

// revokeIf closes c with 3001 if its identity matches. match runs outside
// c's lock; a refresh that lands meanwhile does not save a socket whose
// identity matched when Revoke looked.
func (c *conn) revokeIf(match func(Identity) bool) bool {
	c.mu.Lock()
	ident, gone := c.ident, c.closeReq.code != 0 || c.readerDone
	c.mu.Unlock()
	if gone || !match(ident) {
		return false
	}
	return c.requestClose(closeRevoked)
}

// revocations closes the gap between a handshake's Authenticate and its
// registration, during which Revoke cannot see it: every handshake takes a
// ticket (the count of Revoke calls) before authenticating, and while any
// is in flight Revoke keeps its matcher, so register can apply the ones
// that came after the ticket. Guarded by Hub.connMu.
type revocations struct {
	revokeSeq uint64
	// recent holds the matchers of Revoke calls newer than the oldest
	// ticket in flight, in call order; empty when no handshake is.
	recent []revocation
	// inflight counts the handshakes in flight by ticket.
	inflight map[uint64]int
}

type revocation struct {
	seq   uint64
	match func(Identity) bool
}

// beginHandshake returns a ticket that must be ended exactly once, by
// register or endHandshake.
func (h *Hub) beginHandshake() uint64 {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	seq := h.revokeSeq
	h.inflight[seq]++
	return seq
}

// endHandshake ends the ticket of a handshake refused before register.
func (h *Hub) endHandshake(seq uint64) {
	h.connMu.Lock()
	h.endHandshakeLocked(seq)
	h.connMu.Unlock()
}

func (h *Hub) endHandshakeLocked(seq uint64) {
	if n := h.inflight[seq] - 1; n > 0 {
		h.inflight[seq] = n
	} else {
		delete(h.inflight, seq)
	}
	if len(h.recent) == 0 {
		return
	}
	oldest := uint64(math.MaxUint64)
	for s := range h.inflight {
		oldest = min(oldest, s)
	}
	// A ticket s needs the matchers after s only.
	i := 0
	for i < len(h.recent) && h.recent[i].seq <= oldest {
		i++
	}
	if i == len(h.recent) {
		h.recent = nil
		return
	}
	clear(h.recent[:i]) // release the matchers' closures
	h.recent = h.recent[i:]
}

// revokedSinceLocked reports whether a Revoke after ticket seq matches id.
func (h *Hub) revokedSinceLocked(seq uint64, id Identity) bool {
	for _, r := range h.recent {
		if r.seq > seq && r.match(id) {
			return true
		}
	}
	return false
}
