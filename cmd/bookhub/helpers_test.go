package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
)

const testSecret = "bookhub-test-secret-0123456789abcdef"

// startApp runs one instance on a loopback port until the test ends.
// env adds settings to an embedded configuration in a fresh data folder.
func startApp(t testing.TB, instance string, env map[string]string) *App {
	t.Helper()
	vars := map[string]string{
		config.EnvAddr:      "127.0.0.1:0",
		config.EnvInstance:  instance,
		config.EnvDataDir:   t.TempDir(),
		config.EnvJWTSecret: testSecret,
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.WSCloseSpread = 0 // close test sockets at once; the hub tests the spread
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := NewApp(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatalf("start %s: %v", instance, err)
	}
	if err := app.Listen(ctx); err != nil {
		cancel()
		app.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", instance, err)
		}
		app.Close()
	})
	waitReady(t, "http://"+app.Addr())
	return app
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never became ready (last error %v)", base, err)
		case <-time.After(20 * time.Millisecond): // polling an HTTP endpoint: no signal to wait on
		}
	}
}

func issue(t testing.TB, role auth.Role) string {
	t.Helper()
	tk, err := auth.New([]byte(testSecret), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tk.Issue("test-"+string(role), role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends a JSON request and decodes a JSON answer into out (if non-nil).
func do(t *testing.T, method, url, token string, body any, out any) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp
}

// frame is a server->client WebSocket message.
type frame struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	ID      string          `json:"id"`
	Event   string          `json:"event"`
	BookID  int64           `json:"book_id"`
	Book    json.RawMessage `json:"book"`
	Origin  string          `json:"origin"`
	Code    string          `json:"code"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	// Recovered answers a subscribe with since.
	Recovered *bool `json:"recovered"`
}

// dialWS opens a socket subscribed to channels (via ?subscribe=) and reads
// the welcome and subscribed frames.
func dialWS(t *testing.T, base, token string, channels ...string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws?token=" + token
	if len(channels) > 0 {
		u += "&subscribe=" + strings.Join(channels, ",")
	}
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if f := readFrame(t, c); f.Type != "welcome" {
		t.Fatalf("first frame = %+v, want welcome", f)
	}
	for range channels {
		if f := readFrame(t, c); f.Type != "subscribed" {
			t.Fatalf("frame = %+v, want subscribed", f)
		}
	}
	return c
}

func readFrame(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decode frame %q: %v", b, err)
	}
	return f
}

func readJSON(ctx context.Context, c *websocket.Conn, v any) error {
	_, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// scrape returns app's Prometheus metrics text.
func scrape(t *testing.T, app *App) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+app.MetricsAddr()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitMetric polls app's metrics until a line contains want.
func waitMetric(t *testing.T, app *App, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, app)
		if strings.Contains(m, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s; have:\n%s", want, grepLines(m, strings.SplitN(want, "{", 2)[0]))
		}
		time.Sleep(20 * time.Millisecond) // polling a scrape endpoint: no signal to wait on
	}
}

// writeText sends one client message.
func writeText(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %s: %v", msg, err)
	}
}
