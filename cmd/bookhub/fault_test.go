package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// TestRedisOutage: while Redis is down the instance keeps serving REST
// (writes commit; their events are lost, as documented) and reports itself
// not ready; when Redis is back, readiness returns and new events flow to
// the sockets that stayed open.
func TestRedisOutage(t *testing.T) {
	redis := testenv.StartRedis(t)
	app := startApp(t, "outage", map[string]string{config.EnvRedisURL: redis.URL()})
	base := "http://" + app.Addr()
	editor := issue(t, auth.RoleEditor)
	c := dialWS(t, base, issue(t, auth.RoleViewer), "books")

	redis.Stop()
	var b book
	if resp := do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "During", "author": "A"}, &b); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create while Redis is down: %s, want 201 (the write must not depend on the bus)", resp.Status)
	}
	if resp := do(t, "GET", base+"/api/v1/books/"+itoa(b.ID), "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("read while Redis is down: %s", resp.Status)
	}
	if resp := do(t, "GET", base+"/readyz", "", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz while Redis is down: %s, want 503", resp.Status)
	}

	redis.Start()
	waitReady(t, base)
	// The subscription is back once readyz says so; publish until an event
	// arrives (the first attempts may race the re-subscribe).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		var after book
		do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "After", "author": "A"}, &after)
		readCtx, readCancel := context.WithTimeout(ctx, time.Second)
		var f frame
		err := readJSON(readCtx, c, &f)
		readCancel()
		if err == nil {
			if f.Type != "event" || f.BookID == b.ID {
				t.Fatalf("frame = %+v, want an event for a book created after the outage", f)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatal("no event reached the socket after Redis came back")
		}
	}
}
