package main

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// TestReadCacheReadYourWritesAcrossInstances: two instances share MySQL
// and Redis (and so the read cache). A write acknowledged by one is what
// the next read on the other returns, item and list, every time; cached
// reads still answer If-None-Match with 304; the cache is used (hits).
func TestReadCacheReadYourWritesAcrossInstances(t *testing.T) {
	env := map[string]string{
		config.EnvDatabaseURL: testenv.MySQL(t),
		config.EnvRedisURL:    testenv.Redis(t),
		config.EnvRedisPrefix: testenv.Prefix(t),
		config.EnvMetricsAddr: "127.0.0.1:0",
	}
	apps := []*App{startApp(t, "node-0", env), startApp(t, "node-1", env)}
	a, b := "http://"+apps[0].Addr(), "http://"+apps[1].Addr()
	editor := issue(t, auth.RoleEditor)
	var created book
	if resp := do(t, "POST", a+"/api/v1/books", editor, map[string]any{"title": "Dune", "author": "Frank Herbert", "stock": 0}, &created); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	path := "/api/v1/books/" + strconv.FormatInt(created.ID, 10)
	for i := 1; i <= 150; i++ {
		var w book
		if resp := do(t, "PATCH", a+path, editor, map[string]any{"stock": i}, &w); resp.StatusCode != http.StatusOK {
			t.Fatalf("patch %d: %s", i, resp.Status)
		}
		var got book
		do(t, "GET", b+path, "", nil, &got)
		if got.Stock != int64(i) {
			t.Fatalf("iteration %d: instance B read stock %d after A acknowledged %d", i, got.Stock, i)
		}
		var page struct{ Books []book }
		do(t, "GET", b+"/api/v1/books?limit=5", "", nil, &page)
		if len(page.Books) != 1 || page.Books[0].Stock != int64(i) {
			t.Fatalf("iteration %d: instance B listed %+v after A acknowledged stock %d", i, page.Books, i)
		}
		// Read twice more so the next iteration's write meets a warm cache.
		do(t, "GET", b+path, "", nil, nil)
	}
	resp := do(t, "GET", b+path, "", nil, nil)
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", b+path, nil)
	req.Header.Set("If-None-Match", etag)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match on a cached book: %s, want 304", res.Status)
	}
	waitMetric(t, apps[1], `bookhub_cache_hits_total{instance_name="node-1",layer="redis"}`)
}
