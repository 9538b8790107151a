package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/hub"
)

// testTimeout bounds every wait in these tests; nothing should come close.
const testTimeout = 10 * time.Second

// validChannel is what bookhub injects: its one channel naming scheme.
var validChannel = events.ValidChannel

// authenticate accepts the tokens "alice" (viewer, 1h), "short-<ms>" (bob,
// expires after that many milliseconds) and "user-<name>" (viewer <name>,
// never expires), from the header or ?token=.
func authenticate(r *http.Request) (hub.Identity, error) {
	tok := r.URL.Query().Get("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		tok = h
	}
	switch {
	case tok == "alice":
		return hub.Identity{Subject: "alice", Role: "viewer", ExpiresAt: time.Now().Add(time.Hour)}, nil
	case strings.HasPrefix(tok, "short-"):
		ms, err := strconv.Atoi(strings.TrimPrefix(tok, "short-"))
		if err != nil {
			return hub.Identity{}, err
		}
		return hub.Identity{Subject: "bob", Role: "editor", ExpiresAt: time.Now().Add(time.Duration(ms) * time.Millisecond)}, nil
	case strings.HasPrefix(tok, "user-"):
		return hub.Identity{Subject: strings.TrimPrefix(tok, "user-"), Role: "viewer"}, nil
	case tok == "":
		return hub.Identity{}, errors.New("missing token")
	default:
		return hub.Identity{}, errors.New("invalid token")
	}
}

// recorder is an Observer that lets tests wait for what it has seen.
type recorder struct {
	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every change
	connected   int
	disconnects []string
	subscribed  int
	published   int
	delivered   int
	slow        int

	recovered, notRecovered, replayed, conflated int
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) update(f func()) {
	r.mu.Lock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) Connected() { r.update(func() { r.connected++ }) }
func (r *recorder) Disconnected(reason string) {
	r.update(func() { r.disconnects = append(r.disconnects, reason) })
}
func (r *recorder) Subscribed(string)   { r.update(func() { r.subscribed++ }) }
func (r *recorder) Unsubscribed(string) {}
func (r *recorder) Published(string, int, time.Duration) {
	r.update(func() { r.published++ })
}
func (r *recorder) Delivered(n int) { r.update(func() { r.delivered += n }) }
func (r *recorder) SlowConsumer()   { r.update(func() { r.slow++ }) }
func (r *recorder) Resumed(_ string, recovered bool) {
	r.update(func() {
		if recovered {
			r.recovered++
		} else {
			r.notRecovered++
		}
	})
}
func (r *recorder) Replayed(_ string, n int) { r.update(func() { r.replayed += n }) }
func (r *recorder) Conflated(n int)          { r.update(func() { r.conflated += n }) }

// waitFor blocks until cond (called with the lock held) holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitDisconnects waits until n connections have gone and returns the reasons.
func (r *recorder) waitDisconnects(t *testing.T, n int) []string {
	t.Helper()
	r.waitFor(t, strconv.Itoa(n)+" disconnects", func() bool { return len(r.disconnects) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.disconnects...)
}

// env is a hub served over a real HTTP server.
type env struct {
	hub *hub.Hub
	obs *recorder
	url string // ws://.../ws
}

func newEnv(t *testing.T, configure func(*hub.Options)) *env {
	t.Helper()
	obs := newRecorder()
	opts := hub.Options{
		Authenticate: authenticate,
		ValidChannel: validChannel,
		Instance:     "test-1",
		Observer:     obs,
		Logger:       testLogger(t),
		// Tests close at once unless they test the spread.
		ShutdownSpread: -1,
	}
	if configure != nil {
		configure(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	url := newServer(t, h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &env{hub: h, obs: obs, url: url}
}

// testLogger shows the hub's logs only for failing tests.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newServer serves handler over real HTTP and returns its ws:// URL.
func newServer(t testing.TB, handler http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// client is a real WebSocket client of the hub.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

// dial connects as alice with the given raw query (may be empty) and reads
// the welcome frame.
func (e *env) dial(t *testing.T, query string) *client {
	t.Helper()
	c := e.dialToken(t, "alice", query, nil)
	c.expectType("welcome")
	return c
}

// dialToken connects without reading anything.
func (e *env) dialToken(t *testing.T, token, query string, opts *websocket.DialOptions) *client {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	u := e.url
	if query != "" {
		u += "?" + query
	}
	ws, _, err := websocket.Dial(testContext(t), u, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: t, ws: ws}
}

func (c *client) sendText(msg string) {
	c.t.Helper()
	if err := c.ws.Write(testContext(c.t), websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("write %s: %v", msg, err)
	}
}

func (c *client) readRaw() string {
	c.t.Helper()
	typ, b, err := c.ws.Read(testContext(c.t))
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("got a %v frame, want text", typ)
	}
	// Whatever a client sent, the server's own text frames must be UTF-8.
	if !utf8.Valid(b) {
		c.t.Fatalf("server sent invalid UTF-8: %q", b)
	}
	return string(b)
}

func (c *client) read() map[string]any {
	c.t.Helper()
	raw := c.readRaw()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		c.t.Fatalf("frame %s is not a JSON object: %v", raw, err)
	}
	return m
}

// expectType reads one frame and checks its type.
func (c *client) expectType(typ string) map[string]any {
	c.t.Helper()
	m := c.read()
	if m["type"] != typ {
		c.t.Fatalf("got frame %v, want type %q", m, typ)
	}
	return m
}

// expectJSON reads one frame and compares it to want as JSON values.
func (c *client) expectJSON(want string) {
	c.t.Helper()
	raw := c.readRaw()
	if !jsonEqual(c.t, raw, want) {
		c.t.Fatalf("got frame %s\nwant       %s", raw, want)
	}
}

// roundTrip sends msg and expects want as the next frame.
func (c *client) roundTrip(msg, want string) {
	c.t.Helper()
	c.sendText(msg)
	c.expectJSON(want)
}

// sync proves that no frame is pending before the pong: frames are
// delivered in order, so anything queued earlier would arrive first.
func (c *client) sync() {
	c.t.Helper()
	c.roundTrip(`{"type":"ping","id":"sync"}`, `{"type":"pong","id":"sync"}`)
}

// expectClose reads until the socket closes and checks the close status.
func (c *client) expectClose(code websocket.StatusCode, reason string) {
	c.t.Helper()
	ctx := testContext(c.t)
	for {
		_, _, err := c.ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("read ended with %v, want close %d", err, code)
		}
		if ce.Code != code || (reason != "" && ce.Reason != reason) {
			c.t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

// bookEvent is an event as bookhub would publish it.
func bookEvent(id int) []byte {
	return []byte(`{"id":"ev-` + strconv.Itoa(id) + `","event":"book.updated","book_id":` + strconv.Itoa(id) +
		`,"book":{"id":` + strconv.Itoa(id) + `,"title":"T"},"at":"2025-01-02T03:04:05Z","origin":"test-1"}`)
}

func bookChannels(id int) []string { return []string{"books", "books:" + strconv.Itoa(id)} }

// pub is an unsequenced publication of data on channels (offset 0: no
// offset in the frame, never a duplicate).
func pub(channels []string, data []byte) hub.Publication {
	p := hub.Publication{Data: data}
	for _, ch := range channels {
		p.Positions = append(p.Positions, hub.Position{Channel: ch})
	}
	return p
}
