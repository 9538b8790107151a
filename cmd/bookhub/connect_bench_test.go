package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// BenchmarkConnect is one WebSocket connect as a client sees it, against a
// real instance (embedded SQLite, in-process bus): dial with a bearer token
// and ?subscribe=books, read the welcome and the subscribed frames, close.
// An op covers the TCP connect, the HTTP upgrade, token verification, the
// revocation check, the hub's registration and the two frames. The client
// runs in this process, so its own work (the dial, reading two frames) is
// part of ns/op and allocs/op too.
func BenchmarkConnect(b *testing.B) {
	// Sockets a client has closed may still count against the subject's
	// cap (100) for a moment on the server: no cap, so that the benchmark
	// measures connects and not 429s.
	app := startApp(b, "bench", map[string]string{config.EnvWSMaxConnsPerSubject: "-1"})
	url := "ws://" + app.Addr() + "/ws?subscribe=books"
	opts := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + issue(b, auth.RoleViewer)}}}
	b.ReportAllocs()
	for b.Loop() {
		connect(b, url, opts, "books")
	}
}

// connect opens one socket, reads its welcome and one subscribed frame per
// channel, and closes it.
func connect(t testing.TB, url string, opts *websocket.DialOptions, channels ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	want := append([]string{"welcome"}, channels...)
	for i, w := range want {
		var f struct {
			Type    string `json:"type"`
			Channel string `json:"channel"`
		}
		if err := readJSON(ctx, c, &f); err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		if i == 0 && f.Type != w || i > 0 && (f.Type != "subscribed" || f.Channel != w) {
			t.Fatalf("frame %d = %+v, want %s", i+1, f, w)
		}
	}
}

// TestConnectNeedsNoDatabase: a WebSocket connect with a bearer token does
// no I/O but its own. With MySQL and Redis both stopped, the handshake
// still verifies the token (signature and claims in process, revocations
// from the in-memory list that Redis only feeds) and subscribes to books
// (a subscribe without since reads no history).
func TestConnectNeedsNoDatabase(t *testing.T) {
	db, redis := testenv.StartMySQL(t), testenv.StartRedis(t)
	app := startApp(t, "no-db", map[string]string{config.EnvDatabaseURL: db.URL(), config.EnvRedisURL: redis.URL()})
	token := issue(t, auth.RoleViewer)
	db.Stop()
	redis.Stop()
	for name, opts := range map[string]*websocket.DialOptions{
		"Header": {HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}},
		"Query":  nil,
	} {
		t.Run(name, func(t *testing.T) {
			url := "ws://" + app.Addr() + "/ws?subscribe=books,books:1"
			if opts == nil {
				url += "&token=" + token
			}
			connect(t, url, opts, "books", "books:1")
		})
	}
	// The same request with a bad token is refused before the upgrade: the
	// socket above was let in by the check, not by a broken one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+app.Addr()+"/ws?subscribe=books&token="+token+"x", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial with a bad token: %v, %+v; want 401", err, resp)
	}
	var problem map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&problem)
	if problem["type"] != "urn:bookhub:problem:unauthorized" {
		t.Errorf("bad token refused with %v, want the unauthorized problem", problem)
	}
}
