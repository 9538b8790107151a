package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// tunedApp is one embedded instance whose configuration a test adjusted
// (deadlines, shutdown timeout) and whose log it can read.
type tunedApp struct {
	*App
	logs   *testenv.LogBuffer
	cancel context.CancelFunc
	done   chan error
}

// startTunedApp runs an embedded instance on a loopback port until the test
// ends (or until the test calls stop). mod adjusts the loaded configuration;
// before may adjust the App before it serves.
func startTunedApp(t *testing.T, mod func(*config.Config), before func(*App)) *tunedApp {
	t.Helper()
	vars := map[string]string{
		config.EnvAddr:      "127.0.0.1:0",
		config.EnvInstance:  "edge",
		config.EnvDataDir:   t.TempDir(),
		config.EnvJWTSecret: testSecret,
	}
	cfg, err := config.Load(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(&cfg)
	}
	logs := &testenv.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := NewApp(ctx, cfg, logs.Logger())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := app.Listen(ctx); err != nil {
		cancel()
		app.Close()
		t.Fatal(err)
	}
	if before != nil {
		before(app)
	}
	ta := &tunedApp{App: app, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- app.Run(ctx) }()
	t.Cleanup(func() {
		if err := ta.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		app.Close()
	})
	waitReady(t, ta.base())
	return ta
}

func (ta *tunedApp) base() string { return "http://" + ta.Addr() }

// stop cancels Run and returns its result; later calls return nil.
func (ta *tunedApp) stop() error {
	ta.cancel()
	err, ok := <-ta.done
	if ok {
		close(ta.done)
	}
	return err
}

// rawConn is a client connection that writes bytes exactly as given, so a
// test can send what net/http's client never would: unclean targets, a
// body that stops half way.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialRaw connects to addr. Every read and write must finish within bound,
// so a server that holds the connection fails the test instead of hanging it.
func dialRaw(t *testing.T, addr string, bound time.Duration) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// send writes a request head (method, target, headers) and then body.
func (c *rawConn) send(t *testing.T, method, target string, headers map[string]string, body string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: bookhub.test\r\n")
	for k, v := range headers {
		b.WriteString(k + ": " + v + "\r\n")
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatalf("send %s %.40s: %v", method, target, err)
	}
}

// response reads one response to a request of the given method, with its
// body.
func (c *rawConn) response(t *testing.T, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return resp, body
}

// waitClosed returns once the server has closed the connection, and fails
// the test if it is still open when the connection's deadline passes.
func (c *rawConn) waitClosed(t *testing.T) {
	t.Helper()
	if err := c.closed(); err != nil {
		t.Fatal(err)
	}
}

// closed is waitClosed for other goroutines: it reports instead of failing.
func (c *rawConn) closed() error {
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return err // still open at the deadline
		}
		// A reset is a close too: the server had unread bytes.
	}
	return nil
}

// edgeProblem is the problem+json body as a client sees it.
type edgeProblem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
}

// checkProblem checks that resp is problem+json with the given status and
// type slug, and that its request id is the one in the header.
func checkProblem(t *testing.T, resp *http.Response, body []byte, status int, slug string) edgeProblem {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json: %s", ct, body)
	}
	var p edgeProblem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode problem %q: %v", body, err)
	}
	if p.Status != status || p.Type != "urn:bookhub:problem:"+slug || p.Title == "" || p.Detail == "" {
		t.Errorf("problem %+v, want status %d type %s with title and detail", p, status, slug)
	}
	if ids := resp.Header.Values("X-Request-ID"); len(ids) != 1 || ids[0] == "" || p.RequestID != ids[0] {
		t.Errorf("request_id %q, X-Request-ID %q: want one id, the same in both", p.RequestID, ids)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("refusal redirects to %q", loc)
	}
	return p
}
