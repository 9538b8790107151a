package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// TestRedisOutage: while Redis is down the instance keeps serving REST
// (writes commit, their events wait in the outbox) and reports itself not
// ready; when Redis is back, readiness returns and the sockets that stayed
// open receive the change made during the outage, then the new ones, in
// offset order.
func TestRedisOutage(t *testing.T) {
	redis := testenv.StartRedis(t)
	app := startApp(t, "outage", map[string]string{config.EnvRedisURL: redis.URL(), config.EnvMetricsAddr: "127.0.0.1:0"})
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

	// The subscription notices the loss on its own goroutine: poll for it.
	waitMetric(t, app, `bookhub_bus_errors_total{instance_name="outage",op="publish"} 1`)
	waitMetric(t, app, `bookhub_bus_errors_total{instance_name="outage",op="subscribe"} 1`)

	redis.Start()
	waitReady(t, base)
	var after book
	if resp := do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "After", "author": "A"}, &after); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create after the outage: %s", resp.Status)
	}
	// The outage's change reaches the socket first: read from history when
	// the feed sees the later one (or published by the sweep, whichever
	// comes first).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, want := range []int64{b.ID, after.ID} {
		var f frame
		if err := readJSON(ctx, c, &f); err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		if f.Type != "event" || f.BookID != want || f.Offset != uint64(i+1) {
			t.Fatalf("frame %+v, want the event of book %d at offset %d", f, want, i+1)
		}
	}
}

// TestDatabaseOutage: with MySQL gone, requests that need it get 503 with
// Retry-After (never a 500, never a half-written book) and readiness fails;
// when MySQL is back the same instance serves again without a restart.
func TestDatabaseOutage(t *testing.T) {
	db := testenv.StartMySQL(t)
	// The read cache would (rightly) answer a cached book while the
	// database is down; this test is about the database's own refusals.
	app := startApp(t, "db-outage", map[string]string{config.EnvDatabaseURL: db.URL(), config.EnvMetricsAddr: "127.0.0.1:0",
		config.EnvReadCache: "false"})
	base := "http://" + app.Addr()
	editor := issue(t, auth.RoleEditor)
	var b book
	if resp := do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "Before", "author": "A"}, &b); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	resp := do(t, "GET", base+"/api/v1/books/"+itoa(b.ID), "", nil, nil)
	epoch := resp.Header.Get("Bookhub-Epoch")
	ws := dialWS(t, base, issue(t, auth.RoleViewer))

	db.Stop()
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/books/" + itoa(b.ID)},
		{"GET", "/api/v1/books"},
		{"POST", "/api/v1/books"},
		{"PATCH", "/api/v1/books/" + itoa(b.ID)},
	} {
		var body map[string]any
		if r.method != "GET" {
			body = map[string]any{"title": "During", "author": "A"}
		}
		resp := do(t, r.method, base+r.path, editor, body, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s with MySQL down: %s, Retry-After %q, %s; want a 503 problem with Retry-After",
				r.method, r.path, resp.Status, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
		}
	}
	if resp := do(t, "GET", base+"/readyz", "", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with MySQL down: %s", resp.Status)
	}
	if resp := do(t, "GET", base+"/healthz", "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz with MySQL down: %s (the process is alive)", resp.Status)
	}
	// A resume needs the history: the client is told, and not subscribed.
	resume := `{"type":"subscribe","channel":"books","id":"r","since":{"offset":0,"epoch":"` + epoch + `"}}`
	writeText(t, ws, resume)
	if f := readFrame(t, ws); f.Type != "error" || f.Code != "history_unavailable" {
		t.Fatalf("resume with MySQL down: %+v, want error history_unavailable", f)
	}

	if m := scrape(t, app); !strings.Contains(m, `bookhub_store_errors_total{instance_name="db-outage"}`) ||
		strings.Contains(m, `bookhub_store_errors_total{instance_name="db-outage"} 0`) {
		t.Errorf("store errors not counted:\n%s", grepLines(m, "bookhub_store_errors_total"))
	}

	db.Start()
	waitReady(t, base)
	var got book
	if resp := do(t, "GET", base+"/api/v1/books/"+itoa(b.ID), "", nil, &got); resp.StatusCode != http.StatusOK || got.Title != "Before" || got.Version != 1 {
		t.Fatalf("after MySQL came back: %s %+v (the failed PATCH must not have changed it)", resp.Status, got)
	}
	if resp := do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "After", "author": "A"}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create after MySQL came back: %s", resp.Status)
	}
	// The same resume now replays both changes, and nothing was lost.
	writeText(t, ws, resume)
	if f := readFrame(t, ws); f.Type != "subscribed" || f.Recovered == nil || !*f.Recovered {
		t.Fatalf("resume after MySQL came back: %+v, want recovered", f)
	}
	expectOffsets(t, ws, "books", 1, 2)
}
