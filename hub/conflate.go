package hub

import (
	"bytes"
	"strconv"
)

// slowPolicy is what happens when a connection's send queue is full.
type slowPolicy uint8

const (
	// policyDisconnect closes the socket with 1008; the client resumes
	// from its last offset. The default.
	policyDisconnect slowPolicy = iota
	// policyConflate keeps only the newest pending event per key (per
	// book) and channel, so a slow dashboard still converges to the right
	// state in bounded memory; the surviving frame says from which offset
	// it stands for the dropped ones.
	policyConflate
)

// Names of the policies on the wire (?slow= and "slow" in a subscribe).
const (
	SlowDisconnect = "disconnect"
	SlowConflate   = "conflate"
)

func parseSlowPolicy(s string) (slowPolicy, bool) {
	switch s {
	case SlowDisconnect:
		return policyDisconnect, true
	case SlowConflate:
		return policyConflate, true
	}
	return 0, false
}

// frameMeta describes a queued frame for conflation. It is kept only while
// the connection's policy is conflate, parallel to conn.queue.
type frameMeta struct {
	sub    *subscription // nil for frames that are not events
	key    string        // Publication.Key; "" never conflates
	offset uint64
	// from is the first offset this frame stands for after conflation (0:
	// only itself); orig is the frame as published, before conflated_from
	// was added.
	from uint64
	orig []byte
}

// setPolicy switches the connection's slow policy. Frames already queued
// get empty metadata: they are never conflated.
func (c *conn) setPolicy(p slowPolicy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.policy == p {
		return
	}
	c.policy = p
	c.meta = nil
	if p == policyConflate {
		c.meta = make([]frameMeta, len(c.queue))
	}
}

// conflateLocked drops every queued event that a newer queued event of the
// same subscription and key supersedes, and marks the survivor with the
// first offset it now stands for. It returns the number of frames dropped.
func (c *conn) conflateLocked() int {
	n := len(c.queue)
	if n == 0 || len(c.meta) != n {
		return 0
	}
	type key struct {
		sub *subscription
		key string
	}
	newest := make(map[key]int, n)
	keep := make([]bool, n)
	dropped, bytesDelta := 0, 0
	for i := n - 1; i >= 0; i-- {
		m := c.meta[i]
		if m.sub == nil || m.key == "" {
			keep[i] = true
			continue
		}
		k := key{m.sub, m.key}
		j, ok := newest[k]
		if !ok {
			newest[k] = i
			keep[i] = true
			continue
		}
		first := m.offset
		if m.from != 0 {
			first = m.from
		}
		if s := &c.meta[j]; s.from == 0 || first < s.from {
			s.from = first
		}
		dropped++
		bytesDelta -= len(c.queue[i])
	}
	if dropped == 0 {
		return 0
	}
	w := 0
	for i := range n {
		if !keep[i] {
			continue
		}
		frame, m := c.queue[i], c.meta[i]
		if m.from != 0 && m.orig != nil {
			next := withConflatedFrom(m.orig, m.from)
			bytesDelta += len(next) - len(frame)
			frame = next
		}
		c.queue[w], c.meta[w] = frame, m
		w++
	}
	clear(c.queue[w:])
	clear(c.meta[w:])
	c.queue, c.meta = c.queue[:w], c.meta[:w]
	c.pendingN -= dropped
	c.pendingBytes += bytesDelta
	return dropped
}

// withConflatedFrom returns an event frame with "conflated_from":from after
// its type: the frame stands for every event of its book on its channel
// from that offset to its own.
func withConflatedFrom(frame []byte, from uint64) []byte {
	const head = `{"type":"event",`
	if !bytes.HasPrefix(frame, []byte(head)) {
		return frame
	}
	out := make([]byte, 0, len(frame)+40)
	out = append(out, head...)
	out = append(out, `"conflated_from":`...)
	out = strconv.AppendUint(out, from, 10)
	out = append(out, ',')
	return append(out, frame[len(head):]...)
}
