package hub_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

func TestRevoke(t *testing.T) {
	cs := credentials{
		"a1": {id: hub.Identity{Subject: "ann", Role: "viewer", Session: "s1", Generation: 1}},
		"a2": {id: hub.Identity{Subject: "ann", Role: "viewer", Session: "s2", Generation: 1}},
		"a3": {id: hub.Identity{Subject: "ann", Role: "viewer", Session: "s3", Generation: 2}},
		"b":  {id: hub.Identity{Subject: "ben", Role: "viewer", Session: "s9", Generation: 1}},
	}
	e := newEnv(t, withCredentials(cs))
	dial := func(tok string) *client {
		c := e.dialToken(t, tok, "subscribe=books", nil)
		c.expectType("welcome")
		c.expectType("subscribed")
		return c
	}
	a1, a2, a3, b := dial("a1"), dial("a2"), dial("a3"), dial("b")

	if n := e.hub.Revoke(func(id hub.Identity) bool { return id.Subject == "nobody" }); n != 0 {
		t.Fatalf("Revoke of no one = %d, want 0", n)
	}
	// One session.
	if n := e.hub.Revoke(func(id hub.Identity) bool { return id.Session == "s1" }); n != 1 {
		t.Fatalf("Revoke session s1 = %d, want 1", n)
	}
	a1.expectClose(3001, "token revoked")
	if got := e.obs.waitDisconnects(t, 1); got[0] != hub.ReasonRevoked {
		t.Fatalf("disconnect reason %q, want %q", got[0], hub.ReasonRevoked)
	}
	for _, c := range []*client{a2, a3, b} {
		c.sync()
	}
	// Every credential of a subject issued before generation 2.
	if n := e.hub.Revoke(func(id hub.Identity) bool { return id.Subject == "ann" && id.Generation < 2 }); n != 1 {
		t.Fatalf("Revoke ann before generation 2 = %d, want 1", n)
	}
	a2.expectClose(3001, "token revoked")
	e.obs.waitDisconnects(t, 2)
	e.hub.Publish(pub([]string{"books"}, bookEvent(1)))
	for _, c := range []*client{a3, b} {
		c.expectType("event")
	}
	if s := e.hub.Stats(); s.Connections != 2 || s.Subscriptions != 2 {
		t.Fatalf("Stats %+v, want the two others", s)
	}
}

func TestRevokeSeesRefreshedIdentity(t *testing.T) {
	cs := credentials{
		"old": {id: hub.Identity{Subject: "ann", Session: "s1", Generation: 1}},
		"new": {id: hub.Identity{Subject: "ann", Session: "s1", Generation: 2}},
	}
	e := newEnv(t, withCredentials(cs))
	c := e.dialToken(t, "old", "", nil)
	c.expectType("welcome")
	c.sendText(refreshMsg("new"))
	c.expectRefreshed()
	if n := e.hub.Revoke(func(id hub.Identity) bool { return id.Generation < 2 }); n != 0 {
		t.Fatalf("Revoke of generation 1 = %d, want 0 after the refresh", n)
	}
	c.sync()
	if n := e.hub.Revoke(func(id hub.Identity) bool { return id.Generation == 2 }); n != 1 {
		t.Fatalf("Revoke of generation 2 = %d, want 1", n)
	}
	c.expectClose(3001, "token revoked")
}

// TestRevokeDuringHandshake: a handshake whose Authenticate ran before a
// Revoke, and that registers after it, is refused instead of slipping
// through with a revoked credential.
func TestRevokeDuringHandshake(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	cs := credentials{"a": {id: hub.Identity{Subject: "ann", Session: "s1"}}, "b": {id: hub.Identity{Subject: "ben", Session: "s2"}}}
	e := newEnv(t, func(o *hub.Options) {
		o.Authenticate = func(r *http.Request) (hub.Identity, error) {
			id, err := cs.authenticate(r)
			if r.URL.Query().Get("gate") != "" {
				entered <- struct{}{}
				<-release
			}
			return id, err
		}
	})
	type result struct {
		status int
		err    error
	}
	dial := func(tok string) <-chan result {
		done := make(chan result, 1)
		go func() {
			ws, resp, err := websocket.Dial(testContext(t), e.url+"?gate=1",
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
			if err == nil {
				ws.CloseNow()
				done <- result{status: http.StatusSwitchingProtocols}
				return
			}
			if resp == nil {
				done <- result{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			done <- result{status: resp.StatusCode}
		}()
		return done
	}
	revoked, spared := dial("a"), dial("b")
	<-entered
	<-entered
	if n := e.hub.Revoke(func(id hub.Identity) bool { return id.Session == "s1" }); n != 0 {
		t.Fatalf("Revoke = %d, want 0: the handshake holds no socket yet", n)
	}
	close(release)
	if r := <-revoked; r.status != http.StatusUnauthorized {
		t.Fatalf("revoked handshake: status %d (%v), want 401", r.status, r.err)
	}
	if r := <-spared; r.status != http.StatusSwitchingProtocols {
		t.Fatalf("other handshake: status %d (%v), want the upgrade", r.status, r.err)
	}
	// The matcher is not kept once no handshake needs it.
	c := e.dialToken(t, "a", "", nil)
	c.expectType("welcome")
}

// TestRevokeConcurrent runs Revoke against Publish, new connections and
// Shutdown; the race detector and the counts are the assertions.
func TestRevokeConcurrent(t *testing.T) {
	cs := credentials{}
	for i := range 20 {
		cs["t"+strconv.Itoa(i)] = credential{id: hub.Identity{Subject: "u" + strconv.Itoa(i), Session: strconv.Itoa(i % 2)}}
	}
	e := newEnv(t, withCredentials(cs, func(o *hub.Options) { o.ShutdownSpread = -1 }))
	clients := make([]*client, 0, len(cs))
	for i := range 20 {
		c := e.dialToken(t, "t"+strconv.Itoa(i), "subscribe=books", nil)
		c.expectType("welcome")
		c.expectType("subscribed")
		clients = append(clients, c)
	}
	// Every client drains in the background, so no queue overflows.
	var readers sync.WaitGroup
	for _, c := range clients {
		readers.Go(func() {
			for {
				if _, _, err := c.ws.Read(context.Background()); err != nil {
					return
				}
			}
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			e.hub.Publish(pub([]string{"books"}, bookEvent(i+1)))
		}
	})
	revoked := make(chan int, 1)
	wg.Go(func() { revoked <- e.hub.Revoke(func(id hub.Identity) bool { return id.Session == "0" }) })
	wg.Wait()
	if n := <-revoked; n != 10 {
		t.Fatalf("Revoke = %d, want the 10 sockets of session 0", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	wg.Go(func() { e.hub.Revoke(func(hub.Identity) bool { return true }) })
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	readers.Wait()
	reasons := e.obs.waitDisconnects(t, 20)
	n := 0
	for _, r := range reasons {
		if r == hub.ReasonRevoked {
			n++
		} else if r != hub.ReasonShutdown {
			t.Errorf("disconnect reason %q, want revoked or shutdown", r)
		}
	}
	if n < 10 {
		t.Fatalf("%d sockets closed as revoked, want at least 10", n)
	}
}

// TestRevokeDropsTheQueue: a revoked socket is closed after the frame in
// flight, not after everything still queued for it.
func TestRevokeDropsTheQueue(t *testing.T) {
	cs := credentials{"a": {id: hub.Identity{Subject: "ann", Session: "s1"}}}
	e := newEnv(t, withCredentials(cs, func(o *hub.Options) {
		o.SendQueueMessages = 1 << 16
		o.SendQueueBytes = 64 << 20
	}))
	c := e.dialToken(t, "a", "subscribe=books", nil)
	c.expectType("welcome")
	c.expectType("subscribed")
	const n = 20000 // 20 MB: more than loopback buffers hold, so most stays queued
	data := []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
	for range n {
		e.hub.Publish(pub([]string{"books"}, data))
	}
	if got := e.hub.Revoke(func(id hub.Identity) bool { return id.Session == "s1" }); got != 1 {
		t.Fatalf("Revoke = %d, want 1", got)
	}
	events := 0
	for {
		_, _, err := c.ws.Read(testContext(t))
		if err == nil {
			events++
			continue
		}
		if websocket.CloseStatus(err) != 3001 {
			t.Fatalf("read ended with %v after %d events, want close 3001", err, events)
		}
		break
	}
	if events >= n {
		t.Fatalf("received all %d events before the close, want the queue dropped", events)
	}
}
