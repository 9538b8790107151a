package main

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// startCluster runs n instances sharing one fresh MySQL database and one
// Redis (with a key prefix of their own).
func startCluster(t *testing.T, n int) []*App {
	t.Helper()
	env := map[string]string{
		config.EnvDatabaseURL: testenv.MySQL(t),
		config.EnvRedisURL:    testenv.Redis(t),
		config.EnvRedisPrefix: testenv.Prefix(t),
	}
	apps := make([]*App, n)
	for i := range apps {
		apps[i] = startApp(t, "node-"+strconv.Itoa(i), env)
	}
	return apps
}

// TestClusterDeliversEveryWriteOnceEverywhere: three instances, one MySQL,
// one Redis; subscribers spread over all three; writes on each instance
// reach every subscriber on every instance exactly once.
func TestClusterDeliversEveryWriteOnceEverywhere(t *testing.T) {
	apps := startCluster(t, 3)
	bases := make([]string, len(apps))
	for i, a := range apps {
		bases[i] = "http://" + a.Addr()
	}
	viewer, editor, admin := issue(t, auth.RoleViewer), issue(t, auth.RoleEditor), issue(t, auth.RoleAdmin)

	const perInstance = 5
	type sub struct {
		instance int
		conn     *websocket.Conn
	}
	var subs []sub
	for i, base := range bases {
		for range perInstance {
			subs = append(subs, sub{i, dialWS(t, base, viewer, "books")})
		}
	}

	// Every instance takes writes: a create, an update, a patch; one delete.
	var ids []int64
	for i, base := range bases {
		var b book
		if resp := do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "Book " + strconv.Itoa(i), "author": "A", "price": 1.5}, &b); resp.StatusCode != http.StatusCreated {
			t.Fatalf("create on node-%d: %s", i, resp.Status)
		}
		ids = append(ids, b.ID)
	}
	for i, id := range ids {
		base := bases[(i+1)%len(bases)]
		if resp := do(t, "PUT", base+"/api/v1/books/"+itoa(id), editor, map[string]any{"title": "Renamed", "author": "A", "price": 2}, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("put: %s", resp.Status)
		}
		if resp := do(t, "PATCH", bases[(i+2)%len(bases)]+"/api/v1/books/"+itoa(id), editor, map[string]any{"stock": 7}, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("patch: %s", resp.Status)
		}
	}
	if resp := do(t, "DELETE", bases[2]+"/api/v1/books/"+itoa(ids[0]), admin, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %s", resp.Status)
	}
	const writes = 3*3 + 1
	// A sentinel write per instance: once a subscriber has seen all three,
	// any duplicate of an earlier event would already have arrived (Redis
	// delivers in the order it accepted the publishes).
	sentinels := map[int64]bool{}
	for _, base := range bases {
		var b book
		do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "sentinel", "author": "S"}, &b)
		sentinels[b.ID] = true
	}

	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[string]int{}
			origins := map[string]bool{}
			pending := len(sentinels)
			var events int
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			for pending > 0 {
				var f frame
				if err := readJSON(ctx, s.conn, &f); err != nil {
					t.Errorf("subscriber on node-%d after %d events: %v", s.instance, events, err)
					return
				}
				if f.Type != "event" {
					continue
				}
				seen[f.ID]++
				origins[f.Origin] = true
				if sentinels[f.BookID] && f.Event == "book.created" {
					pending--
					continue
				}
				events++
			}
			if events != writes || len(seen) != writes+len(sentinels) {
				t.Errorf("subscriber on node-%d got %d events (%d distinct ids incl. sentinels), want %d", s.instance, events, len(seen), writes)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("subscriber on node-%d got event %s %d times", s.instance, id, n)
				}
			}
			if len(origins) != len(bases) {
				t.Errorf("subscriber on node-%d saw origins %v, want all %d instances", s.instance, origins, len(bases))
			}
		}()
	}
	wg.Wait()
}

// TestClusterPerBookChannel: a per-book subscriber on one instance sees only
// its book's changes made on another instance.
func TestClusterPerBookChannel(t *testing.T) {
	apps := startCluster(t, 2)
	a, b := "http://"+apps[0].Addr(), "http://"+apps[1].Addr()
	editor := issue(t, auth.RoleEditor)
	var mine, other book
	do(t, "POST", a+"/api/v1/books", editor, map[string]any{"title": "Mine", "author": "A"}, &mine)
	do(t, "POST", a+"/api/v1/books", editor, map[string]any{"title": "Other", "author": "A"}, &other)
	c := dialWS(t, b, editor, "books:"+itoa(mine.ID))
	do(t, "PATCH", a+"/api/v1/books/"+itoa(other.ID), editor, map[string]any{"stock": 1}, nil)
	do(t, "PATCH", a+"/api/v1/books/"+itoa(mine.ID), editor, map[string]any{"stock": 2}, nil)
	// The create of mine may still be on its way from the outbox when the
	// socket subscribes (publishing follows the commit), so its event may
	// come first; an event of the other book never may.
	f := readFrame(t, c)
	if f.Type == "event" && f.Channel == "books:"+itoa(mine.ID) && f.Event == "book.created" {
		f = readFrame(t, c)
	}
	if f.Type != "event" || f.Channel != "books:"+itoa(mine.ID) || f.Event != "book.updated" || f.BookID != mine.ID {
		t.Fatalf("frame = %+v, want book.updated on books:%d", f, mine.ID)
	}
	if f.Origin != "node-0" {
		t.Fatalf("origin = %q, want node-0", f.Origin)
	}
}
