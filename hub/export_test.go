package hub

// EncodeEventFrame exposes the frame encoder to the black-box benchmarks.
func EncodeEventFrame(channel string, event []byte) ([]byte, error) {
	body, err := eventBody(event)
	if err != nil {
		return nil, err
	}
	pos := Position{Channel: channel}
	return appendEventFrame(make([]byte, 0, eventFrameLen(pos, body)), channel, pos, body), nil
}

// ParseSubscribe exposes the ?subscribe= parser to the black-box benchmarks.
func (h *Hub) ParseSubscribe(values []string) ([]string, error) { return h.parseSubscribe(values) }

// EncodeSequencedFrame is EncodeEventFrame with an offset and epoch.
func EncodeSequencedFrame(pos Position, event []byte) ([]byte, error) {
	body, err := eventBody(event)
	if err != nil {
		return nil, err
	}
	return appendEventFrame(make([]byte, 0, eventFrameLen(pos, body)), pos.Channel, pos, body), nil
}

// Encodings is how many event frames Publish has encoded so far.
func (h *Hub) Encodings() uint64 { return h.encodings.Load() }

// MemorySubscribers is a set of socketless connections subscribed to one
// channel, so a benchmark can fan out to thousands without sockets.
type MemorySubscribers struct{ conns []*conn }

// AddMemorySubscribers subscribes n socketless connections of variant to
// channel. Their queues fill until Drain empties them.
func (h *Hub) AddMemorySubscribers(channel, variant string, n int) *MemorySubscribers {
	m := &MemorySubscribers{conns: make([]*conn, n)}
	for i := range m.conns {
		c := &conn{
			hub: h, id: h.nextID.Add(1), subject: "mem", ident: Identity{Subject: "mem", Variant: variant},
			drained: make(chan struct{}, 1),
		}
		h.subscribe(c, channel, false)
		m.conns[i] = c
	}
	return m
}

// Drain empties every queue, keeping its backing array, and returns the
// frames it dropped, by their content.
func (m *MemorySubscribers) Drain() map[string]int {
	seen := make(map[string]int)
	for _, c := range m.conns {
		c.mu.Lock()
		for _, f := range c.queue {
			seen[string(f)]++
		}
		clear(c.queue)
		c.queue = c.queue[:0]
		c.pendingN, c.pendingBytes = 0, 0
		c.mu.Unlock()
	}
	return seen
}

// Reset empties every queue without looking at the frames.
func (m *MemorySubscribers) Reset() {
	for _, c := range m.conns {
		c.mu.Lock()
		clear(c.queue)
		c.queue = c.queue[:0]
		c.pendingN, c.pendingBytes = 0, 0
		c.mu.Unlock()
	}
}

// RunningWriters counts the connections whose writer goroutine runs.
func (h *Hub) RunningWriters() int {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	n := 0
	for c := range h.conns {
		c.mu.Lock()
		if c.writing {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// JanitorRunning reports whether the hub's ping clock runs.
func (h *Hub) JanitorRunning() bool {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	return h.janitorOn
}
