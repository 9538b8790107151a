package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// TestReadCacheReadYourWritesAcrossInstances: two instances share MySQL
// and Redis (and so the read cache). A write acknowledged by one is what
// the next read on the other returns, item and list, every time, although
// the other holds local copies from before the write; cached reads still
// answer If-None-Match with 304; the cache is used (hits, local ones
// unless BOOKHUB_READ_CACHE_LOCAL=false).
func TestReadCacheReadYourWritesAcrossInstances(t *testing.T) {
	t.Run("Local", func(t *testing.T) { readYourWritesAcross(t, "true") })
	t.Run("NoLocal", func(t *testing.T) { readYourWritesAcross(t, "false") })
}

func readYourWritesAcross(t *testing.T, local string) {
	env := map[string]string{
		config.EnvDatabaseURL:    testenv.MySQL(t),
		config.EnvRedisURL:       testenv.Redis(t),
		config.EnvRedisPrefix:    testenv.Prefix(t),
		config.EnvMetricsAddr:    "127.0.0.1:0",
		config.EnvReadCacheLocal: local,
	}
	apps := []*App{startApp(t, "node-0", env), startApp(t, "node-1", env)}
	a, b := "http://"+apps[0].Addr(), "http://"+apps[1].Addr()
	editor := issue(t, auth.RoleEditor)
	var created book
	if resp := do(t, "POST", a+"/api/v1/books", editor, map[string]any{"title": "Dune", "author": "Frank Herbert", "stock": 0}, &created); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	path := "/api/v1/books/" + strconv.FormatInt(created.ID, 10)
	for i := 1; i <= 300; i++ {
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
		// Read again so the next iteration's write meets a warm cache, with
		// local copies on B (unless A's change event dropped them first).
		for range 2 {
			do(t, "GET", b+path, "", nil, nil)
			do(t, "GET", b+"/api/v1/books?limit=5", "", nil, nil)
		}
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
	localHits := `bookhub_cache_hits_total{instance_name="node-1",layer="local"}`
	if local == "true" {
		waitMetric(t, apps[1], localHits)
	} else if m := scrape(t, apps[1]); strings.Contains(m, localHits) {
		t.Errorf("local hits with %s=false:\n%s", config.EnvReadCacheLocal, grepLines(m, "bookhub_cache_hits_total"))
	}
}
