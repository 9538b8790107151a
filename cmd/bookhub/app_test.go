package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
)

type book struct {
	ID      int64   `json:"id"`
	Title   string  `json:"title"`
	Author  string  `json:"author"`
	Price   float64 `json:"price"`
	Stock   int64   `json:"stock"`
	Version int64   `json:"version"`
}

// TestEmbeddedEndToEnd: the default setup (SQLite, in-process bus) carries a
// REST write to a WebSocket subscriber, for every kind of write.
func TestEmbeddedEndToEnd(t *testing.T) {
	app := startApp(t, "solo", nil)
	base := "http://" + app.Addr()
	editor, admin := issue(t, auth.RoleEditor), issue(t, auth.RoleAdmin)
	all := dialWS(t, base, issue(t, auth.RoleViewer), "books")

	var b book
	if resp := do(t, "POST", base+"/api/v1/books", editor, map[string]any{"title": "Dune", "author": "Frank Herbert", "price": 9.99}, &b); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	expectEvent(t, all, "books", "book.created", b.ID)
	// Subscribed only once the create has been fanned out (one Publish
	// serves both channels), so its first frame is the update.
	one := dialWS(t, base, editor, "books:"+itoa(b.ID))

	do(t, "PUT", base+"/api/v1/books/"+itoa(b.ID), editor, map[string]any{"title": "Dune", "author": "Frank Herbert", "price": 10}, nil)
	expectEvent(t, all, "books", "book.updated", b.ID)
	expectEvent(t, one, "books:"+itoa(b.ID), "book.updated", b.ID)

	do(t, "PATCH", base+"/api/v1/books/"+itoa(b.ID), editor, map[string]any{"stock": 5}, nil)
	expectEvent(t, all, "books", "book.updated", b.ID)
	expectEvent(t, one, "books:"+itoa(b.ID), "book.updated", b.ID)

	if resp := do(t, "DELETE", base+"/api/v1/books/"+itoa(b.ID), admin, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %s", resp.Status)
	}
	expectEvent(t, all, "books", "book.deleted", b.ID)
	expectEvent(t, one, "books:"+itoa(b.ID), "book.deleted", b.ID)
}

func expectEvent(t *testing.T, c *websocket.Conn, channel, event string, id int64) frame {
	t.Helper()
	f := readFrame(t, c)
	if f.Type != "event" || f.Channel != channel || f.Event != event || f.BookID != id {
		t.Fatalf("frame = %+v, want %s on %s for book %d", f, event, channel, id)
	}
	return f
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// TestShutdownClosesSocketsGoingAway: cancelling Run (what SIGTERM does)
// closes every socket with 1001 and Run returns nil.
func TestShutdownClosesSocketsGoingAway(t *testing.T) {
	vars := map[string]string{config.EnvAddr: "127.0.0.1:0", config.EnvInstance: "bye", config.EnvDataDir: t.TempDir(), config.EnvJWTSecret: testSecret}
	cfg, err := config.Load(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := NewApp(ctx, cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	if err := app.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	base := "http://" + app.Addr()
	waitReady(t, base)
	c := dialWS(t, base, issue(t, auth.RoleViewer), "books")

	start := time.Now()
	cancel()
	readCtx, readCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer readCancel()
	_, _, err = c.Read(readCtx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("close status = %v (err %v), want 1001", got, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("shutdown took %s, want < 5s plus slack", d)
	}
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == config.EnvDataDir {
			return dir
		}
		return ""
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli(context.Background(), args, env, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}

	t.Run("TokenUsesTheEmbeddedSecret", func(t *testing.T) {
		code, out, stderr := run("token", "--sub", "ann", "--role", "editor", "--ttl", "5m")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		secret, err := os.ReadFile(filepath.Join(dir, "jwt-secret"))
		if err != nil {
			t.Fatal(err)
		}
		tk, _ := auth.New([]byte(strings.TrimSpace(string(secret))), auth.Options{})
		id, err := tk.Verify(strings.TrimSpace(out))
		if err != nil || id.Subject != "ann" || id.Role != auth.RoleEditor {
			t.Fatalf("token verifies as %+v, %v", id, err)
		}
		// A second call reuses the same secret.
		_, out2, _ := run("token", "--sub", "bob")
		if _, err := tk.Verify(strings.TrimSpace(out2)); err != nil {
			t.Fatalf("second token: %v", err)
		}
	})
	for name, args := range map[string][]string{
		"TokenNeedsSub":   {"token"},
		"TokenBadRole":    {"token", "--sub", "a", "--role", "god"},
		"UnknownCommand":  {"frobnicate"},
		"ServeBadAddr":    {"serve", "--addr", "nope"},
		"HealthcheckDown": {"healthcheck", "--url", "http://127.0.0.1:1/readyz", "--timeout", "1s"},
	} {
		t.Run(name, func(t *testing.T) {
			if code, _, stderr := run(args...); code == 0 || stderr == "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
		})
	}
	t.Run("Version", func(t *testing.T) {
		if code, out, _ := run("version"); code != 0 || !strings.HasPrefix(out, "bookhub ") {
			t.Fatalf("exit %d, out %q", code, out)
		}
	})
	t.Run("ServeNamesTheUnreachableSetting", func(t *testing.T) {
		var out, errb bytes.Buffer
		envBad := func(k string) string {
			return map[string]string{
				config.EnvDatabaseURL: "mysql://root:hunter2@127.0.0.1:1/x",
				config.EnvJWTSecret:   testSecret,
				config.EnvAddr:        "127.0.0.1:0",
			}[k]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code := cli(ctx, []string{"serve"}, envBad, strings.NewReader(""), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), config.EnvDatabaseURL) || strings.Contains(errb.String(), "hunter2") {
			t.Fatalf("exit %d, stderr %q", code, errb.String())
		}
	})
}

func TestJWTSecretRequiredWithDatabase(t *testing.T) {
	_, _, err := jwtSecret(config.Config{DatabaseURL: "mysql://x@h:3306/d"})
	if err == nil || !strings.Contains(err.Error(), config.EnvJWTSecret) {
		t.Fatalf("err = %v", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestMetricsOnTheirOwnListener: /metrics is served on BOOKHUB_METRICS_ADDR
// only (not on the public port) and counts a write's whole path.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	app := startApp(t, "metered", map[string]string{config.EnvMetricsAddr: "127.0.0.1:0"})
	base := "http://" + app.Addr()
	c := dialWS(t, base, issue(t, auth.RoleViewer), "books")
	do(t, "POST", base+"/api/v1/books", issue(t, auth.RoleEditor), map[string]any{"title": "T", "author": "A"}, nil)
	expectEvent(t, c, "books", "book.created", 1)

	if resp := do(t, "GET", base+"/metrics", "", nil, nil); resp.StatusCode == http.StatusOK {
		t.Fatal("/metrics is exposed on the public listener")
	}
	body := scrape(t, app)
	for _, want := range []string{
		`bookhub_ws_connections{instance_name="metered"} 1`,
		`bookhub_events_published_total{instance_name="metered"} 1`,
		`bookhub_events_received_total{instance_name="metered"} 1`,
		`bookhub_ws_subscriptions{instance_name="metered",kind="all"} 1`,
		`bookhub_http_request_duration_seconds_count{instance_name="metered",method="POST",route="/api/v1/books",status="201"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestPprofOnTheMetricsListenerOnly: the profiler answers on the metrics
// listener and is not reachable through the public port.
func TestPprofOnTheMetricsListenerOnly(t *testing.T) {
	app := startApp(t, "profiled", map[string]string{config.EnvMetricsAddr: "127.0.0.1:0"})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap"} {
		if resp := do(t, "GET", "http://"+app.Addr()+path, "", nil, nil); resp.StatusCode == http.StatusOK {
			t.Errorf("public listener serves %s", path)
		}
		if resp := do(t, "GET", "http://"+app.MetricsAddr()+path, "", nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("metrics listener: GET %s = %d", path, resp.StatusCode)
		}
	}
}

func TestBannerShowsAURLYouCanOpen(t *testing.T) {
	for addr, want := range map[string]string{
		"[::]:8080":      "http://localhost:8080",
		"0.0.0.0:8080":   "http://localhost:8080",
		"127.0.0.1:9000": "http://127.0.0.1:9000",
	} {
		var b bytes.Buffer
		printBanner(&b, config.Config{DataDir: "data"}, addr)
		if !strings.Contains(b.String(), "listening on "+want+" ") || !strings.Contains(b.String(), "token --sub") {
			t.Errorf("banner for %s:\n%s", addr, b.String())
		}
	}
}
