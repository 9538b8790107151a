package hub

import "time"

// The janitor is the hub's one clock for its connections' pings: instead of
// a ticker per connection (a timer, a channel and a parked writer each), one
// goroutine visits every connection each janitorTick and asks those due for
// a ping. It runs only while the hub has connections, so a hub without any
// holds no goroutine.

// janitorTick is how often the janitor visits; a ping is at most this late.
func janitorTick(pingInterval time.Duration) time.Duration {
	return min(max(pingInterval/4, time.Millisecond), time.Second)
}

// startJanitorLocked starts the janitor unless it runs; connMu is held.
func (h *Hub) startJanitorLocked() {
	if h.janitorOn {
		return
	}
	h.janitorOn = true
	go h.janitor()
}

func (h *Hub) janitor() {
	t := time.NewTicker(janitorTick(h.opts.PingInterval))
	defer t.Stop()
	var visit []*conn // reused: the set is copied so the visits hold no hub lock
	for now := range t.C {
		h.connMu.Lock()
		if len(h.conns) == 0 {
			h.janitorOn = false
			h.connMu.Unlock()
			return
		}
		for c := range h.conns {
			visit = append(visit, c)
		}
		h.connMu.Unlock()
		for _, c := range visit {
			c.pingIfDue(now)
		}
		clear(visit)
		visit = visit[:0]
	}
}
