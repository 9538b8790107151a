package hub

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

var _ http.Handler = (*Hub)(nil)

// ServeHTTP authenticates the request, validates ?subscribe= and upgrades it
// to a WebSocket, then serves the connection until it closes.
//
// Refusals happen before the upgrade, as application/problem+json: 401 (with
// WWW-Authenticate: Bearer) when Authenticate fails, 400 when ?subscribe=
// names an invalid channel or too many, 503 once Shutdown has begun.
//
// After the upgrade the client receives a welcome frame, then one subscribed
// frame per ?subscribe= channel, in order. The ServeHTTP goroutine is the
// connection's reader; it starts one writer goroutine and returns only after
// that writer has exited and the connection's subscriptions are removed.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ident, err := h.opts.Authenticate(r)
	if err != nil {
		// The error may say why a token was refused; it never contains the
		// token, and the URL (which may) is not logged.
		h.log.Info("hub: unauthenticated upgrade refused", "remote", r.RemoteAddr, "err", err)
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeProblem(w, http.StatusUnauthorized, "a valid bearer token is required (Authorization header or ?token=)")
		return
	}
	query := r.URL.Query()
	channels, err := h.parseSubscribe(query["subscribe"])
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	resumes, err := parseSince(query["since"], query.Get("epoch"), len(channels))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(resumes) > 0 && resumes[0] != nil && h.opts.History == nil {
		writeProblem(w, http.StatusBadRequest, "since: this server keeps no history to resume from")
		return
	}

	c := &conn{
		hub:        h,
		id:         h.nextID.Add(1),
		ident:      ident,
		remote:     r.RemoteAddr,
		notify:     make(chan struct{}, 1),
		drained:    make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	if !h.register(c) {
		writeProblem(w, http.StatusServiceUnavailable, "server shutting down; reconnect to another instance")
		return
	}
	defer h.unregister(c)

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.opts.OriginPatterns})
	if err != nil {
		// Accept has already written the refusal (bad handshake, origin).
		c.logf(slog.LevelInfo, "hub: upgrade failed", slog.Any("err", err))
		return
	}
	ws.SetReadLimit(h.opts.ReadLimit)
	c.ws = ws
	h.connected.Add(1)
	h.obs.Connected()
	c.logf(slog.LevelDebug, "hub: connected", slog.String("role", ident.Role))

	c.enqueue(encodeWelcome(h.opts.Instance, ident))
	go func() {
		defer close(c.writerDone)
		c.writeLoop()
	}()
	// After the writer starts: a resume waits for the client to drain long
	// replays. parseSubscribe checked validity and count.
	for i, ch := range channels {
		c.subscribeTo(ch, resumes[i], nil)
	}

	c.readLoop()
	c.mu.Lock()
	c.readerDone = true
	c.queue = nil
	c.mu.Unlock()
	c.wake()
	<-c.writerDone
	_ = ws.CloseNow() // no-op when the writer or the peer already closed it

	h.unsubscribeAll(c)
	h.connected.Add(-1)
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	h.obs.Disconnected(reason)
	c.logf(slog.LevelDebug, "hub: disconnected", slog.String("reason", reason))
}

// parseSubscribe validates every ?subscribe= value (each may be a
// comma-separated list) and returns the distinct channels in order.
func (h *Hub) parseSubscribe(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for ch := range strings.SplitSeq(v, ",") {
			if !h.opts.ValidChannel(ch) {
				return nil, fmt.Errorf("subscribe: unknown channel %q", ch)
			}
			dup := false
			for _, seen := range out {
				dup = dup || seen == ch
			}
			if !dup {
				out = append(out, ch)
			}
		}
	}
	if len(out) > h.opts.MaxSubscriptions {
		return nil, fmt.Errorf("subscribe: %d channels requested, at most %d allowed", len(out), h.opts.MaxSubscriptions)
	}
	return out, nil
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})
}
