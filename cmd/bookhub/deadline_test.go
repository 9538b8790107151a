package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
)

// slack is what a bounded-time assertion allows beyond the deadline under
// test, for a loaded machine running -race.
const slack = 3 * time.Second

func readDeadlines(timeout time.Duration, rate int64) func(*config.Config) {
	return func(c *config.Config) {
		c.ReadTimeout = timeout
		c.ReadMinRate = rate
	}
}

// stalledHead is the head of a request with a body of the given length.
func stalledHead(token string, length int) map[string]string {
	h := map[string]string{"Content-Type": "application/json", "Content-Length": strconv.Itoa(length)}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return h
}

// TestStalledBodiesAreCutOff: a body that stops arriving never holds a
// connection past its deadline, and a request refused without reading its
// body does not wait for that body at all.
func TestStalledBodiesAreCutOff(t *testing.T) {
	const timeout = 2 * time.Second
	app := startTunedApp(t, readDeadlines(timeout, 1<<20), nil) // 1 MiB/s: the allowance is about the timeout
	editor, viewer := issue(t, auth.RoleEditor), issue(t, auth.RoleViewer)
	chunked := map[string]string{"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Authorization": "Bearer " + editor}
	tests := []struct {
		name, method, target string
		headers              map[string]string
		partial              string
		status               int
		slug                 string // "" for a success
		// within bounds the whole exchange; a refusal that does not read
		// the body must beat the deadline by far.
		within time.Duration
	}{
		{"NoToken", "POST", "/api/v1/books", stalledHead("", 100000), "{", 401, "unauthorized", timeout / 2},
		{"ViewerToken", "POST", "/api/v1/books", stalledHead(viewer, 100000), "{", 403, "forbidden", timeout / 2},
		{"NoTokenDelete", "DELETE", "/api/v1/books/1", stalledHead("", 100000), "{", 401, "unauthorized", timeout / 2},
		{"DeclaredOverLimit", "POST", "/api/v1/books", stalledHead(editor, 2<<20), "{", 413, "body-too-large", timeout / 2},
		{"UnknownRoute", "POST", "/api/v1/authors", stalledHead(editor, 100000), "{", 404, "not-found", timeout / 2},
		{"WebPage", "POST", "/", stalledHead("", 100000), "{", 405, "method-not-allowed", timeout / 2},
		{"UncleanPath", "POST", "/api//books", stalledHead(editor, 100000), "{", 404, "not-found", timeout / 2},
		{"BodyOnARead", "GET", "/api/v1/books", stalledHead("", 100000), "{", 200, "", timeout / 2},
		{"EditorStalls", "POST", "/api/v1/books", stalledHead(editor, 1000), "{", 408, "request-timeout", timeout + slack},
		{"EditorStallsChunked", "POST", "/api/v1/books", chunked, "1\r\n{\r\n", 408, "request-timeout", timeout + time.Second + slack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c := dialRaw(t, app.Addr(), tt.within)
			c.send(t, tt.method, tt.target, tt.headers, tt.partial)
			resp, body := c.response(t, tt.method)
			if tt.slug != "" {
				checkProblem(t, resp, body, tt.status, tt.slug)
			} else if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			c.waitClosed(t)
			t.Logf("answered and closed after %s", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestHundredStalledConnectionsAreAllClosed: the probe of issue 6, a hundred
// connections that send one byte of their body and fall silent, with and
// without a token.
func TestHundredStalledConnectionsAreAllClosed(t *testing.T) {
	const timeout = 2 * time.Second
	app := startTunedApp(t, readDeadlines(timeout, 1<<20), nil)
	editor := issue(t, auth.RoleEditor)
	for _, tt := range []struct {
		name   string
		token  string
		length int
		within time.Duration
	}{
		{"WithoutToken", "", 100000, timeout / 2}, // refused unread: well before the deadline
		{"WithToken", editor, 1000, timeout + slack},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 100
			conns := make([]*rawConn, n)
			for i := range conns {
				conns[i] = dialRaw(t, app.Addr(), tt.within)
				conns[i].send(t, "POST", "/api/v1/books", stalledHead(tt.token, tt.length), "{")
			}
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.closed(); err != nil {
						errs <- fmt.Errorf("connection %d still open: %w", i, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestSlowHonestUploadSucceeds: a body sent in chunks more than a second
// apart (so no per-read idle timeout of ReadTimeout would let it through)
// but faster than the minimum rate is read to the end and served.
func TestSlowHonestUploadSucceeds(t *testing.T) {
	const (
		timeout = time.Second
		rate    = 8 << 10
		chunks  = 3
		gap     = 1200 * time.Millisecond
	)
	app := startTunedApp(t, readDeadlines(timeout, rate), nil)
	// 24 KiB: an allowance of 1 s + 3 s; sending takes 2 gaps, 2.4 s, more
	// than the 1 s ReadTimeout but within the allowance.
	body := `{"title":"Slow","author":"Honest"}` + strings.Repeat(" ", 3*rate-34)
	c := dialRaw(t, app.Addr(), 20*time.Second)
	c.send(t, "POST", "/api/v1/books", stalledHead(issue(t, auth.RoleEditor), len(body)), "")
	tick := time.NewTicker(gap) // paces the client; it waits for nothing
	defer tick.Stop()
	size := len(body) / chunks
	for i := 0; i < chunks; i++ {
		if i > 0 {
			<-tick.C
		}
		part := body[i*size:]
		if i < chunks-1 {
			part = part[:size]
		}
		if _, err := c.Write([]byte(part)); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	resp, got := c.response(t, "POST")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if resp.Close {
		t.Error("a body read to its end should leave the connection reusable")
	}
}

// TestShutdownCutsOffAStuckRequest: SIGTERM (a cancelled context) with a
// request stuck reading its body still stops within the shutdown timeout,
// closes that connection, logs it and returns nil (exit 0).
func TestShutdownCutsOffAStuckRequest(t *testing.T) {
	const shutdown = 500 * time.Millisecond
	active := make(chan string, 16) // client addresses of connections that began a request
	app := startTunedApp(t, func(c *config.Config) {
		c.ShutdownTimeout = shutdown // the default read timeout (10 s) outlasts it
	}, func(a *App) {
		a.server.ConnState = func(nc net.Conn, s http.ConnState) {
			if s == http.StateActive {
				select {
				case active <- nc.RemoteAddr().String():
				default:
				}
			}
		}
	})
	c := dialRaw(t, app.Addr(), shutdown+slack+10*time.Second)
	c.send(t, "POST", "/api/v1/books", stalledHead(issue(t, auth.RoleEditor), 1000), "{")
	for stuck := false; !stuck; {
		select {
		case addr := <-active:
			stuck = addr == c.LocalAddr().String()
		case <-time.After(10 * time.Second):
			t.Fatal("the stuck request never reached the server")
		}
	}
	if err := c.SetDeadline(time.Now().Add(shutdown + slack)); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := app.stop(); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if d := time.Since(start); d > shutdown+slack {
		t.Errorf("shutdown took %s with a timeout of %s", d, shutdown)
	}
	c.waitClosed(t)
	if app.logs.Count("graceful shutdown incomplete") == 0 {
		t.Errorf("no warning about the cut-off request; log:\n%s", app.logs.String())
	}
}

// TestIdleWebSocketOutlivesReadDeadlines: a socket that sends nothing for
// longer than every read deadline (the body allowance and the server's
// ReadTimeout) stays open and still receives events: net/http clears the
// deadlines on hijack, and the edge sets none for a request without a body.
func TestIdleWebSocketOutlivesReadDeadlines(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var readTimeout time.Duration
	app := startTunedApp(t, readDeadlines(timeout, 1<<20), func(a *App) { readTimeout = a.server.ReadTimeout })
	idle := readTimeout + time.Second
	ws := dialWS(t, app.base(), issue(t, auth.RoleViewer), "books")

	frames := make(chan frame, 1)
	readErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), idle+20*time.Second)
		defer cancel()
		var f frame
		if err := readJSON(ctx, ws, &f); err != nil {
			readErr <- err
			return
		}
		frames <- f
	}()
	select {
	case err := <-readErr:
		t.Fatalf("idle socket died after less than %s: %v (close status %v)", idle, err, websocket.CloseStatus(err))
	case f := <-frames:
		t.Fatalf("unexpected frame while idle: %+v", f)
	case <-time.After(idle): // idleness is what is under test
	}

	var b book
	if resp := do(t, "POST", app.base()+"/api/v1/books", issue(t, auth.RoleEditor), map[string]any{"title": "T", "author": "A"}, &b); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	select {
	case f := <-frames:
		if f.Type != "event" || f.BookID != b.ID {
			t.Fatalf("frame %+v, want the event of book %d", f, b.ID)
		}
	case err := <-readErr:
		t.Fatalf("socket died after being idle for %s: %v", idle, err)
	}
}
