package hub_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/hub"
	"github.com/bookhub/bookhub/problem"
)

// handshake is a raw HTTP request to the hub, written byte for byte, so a
// test can send what no WebSocket client library would.
type handshake struct {
	method string
	proto  string // HTTP/1.1 when empty
	query  string
	header [][2]string // in order; a key may repeat
}

// validHandshake is a correct RFC 6455 opening handshake as alice.
func validHandshake() handshake {
	return handshake{method: "GET", header: [][2]string{
		{"Upgrade", "websocket"},
		{"Connection", "Upgrade"},
		{"Sec-WebSocket-Version", "13"},
		{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
		{"Authorization", "Bearer alice"},
	}}
}

// set replaces every line of key with value; an empty value removes them.
func (h handshake) set(key, value string) handshake {
	var out [][2]string
	for _, kv := range h.header {
		if !strings.EqualFold(kv[0], key) {
			out = append(out, kv)
		}
	}
	if value != "" {
		out = append(out, [2]string{key, value})
	}
	h.header = out
	return h
}

// add appends one more line of key.
func (h handshake) add(key, value string) handshake {
	h.header = append(append([][2]string(nil), h.header...), [2]string{key, value})
	return h
}

func (h handshake) withMethod(m string) handshake { h.method = m; return h }
func (h handshake) withProto(p string) handshake  { h.proto = p; return h }

// send writes hs to the hub's server and reads the response head and body.
func (e *env) send(t *testing.T, hs handshake) (*http.Response, []byte) {
	t.Helper()
	host := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/ws")
	conn, err := net.DialTimeout("tcp", host, testTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	proto := hs.proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	target := "/ws"
	if hs.query != "" {
		target += "?" + hs.query
	}
	var b strings.Builder
	b.WriteString(hs.method + " " + target + " " + proto + "\r\nHost: " + host + "\r\n")
	for _, kv := range hs.header {
		b.WriteString(kv[0] + ": " + kv[1] + "\r\n")
	}
	if hs.method == "POST" || hs.method == "PUT" {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: hs.method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// checkProblem asserts a problem+json refusal of the given status and slug.
func checkProblem(t *testing.T, resp *http.Response, body []byte, status int, slug string) problem.Problem {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type = %q, want %s", ct, problem.ContentType)
	}
	var p problem.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body %q is not a problem document: %v", body, err)
	}
	if p.Type != problem.Type(slug) || p.Status != status || p.Title == "" || p.Instance != "/ws" {
		t.Errorf("problem = %+v, want type %s, status %d, a title and instance /ws", p, problem.Type(slug), status)
	}
	return p
}

func TestHandshakeRefused(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.OriginPatterns = []string{"app.example.com"} })
	ok := validHandshake()
	tests := []struct {
		name       string
		req        handshake
		wantStatus int
		wantSlug   string
		wantHeader map[string]string
	}{
		{"MethodNotAllowedPost", ok.withMethod("POST"), 405, "method-not-allowed", map[string]string{"Allow": "GET, HEAD"}},
		{"MethodNotAllowedPutPlain", handshake{method: "PUT"}, 405, "method-not-allowed", map[string]string{"Allow": "GET, HEAD"}},
		{"NotWebSocketPlainGetWithoutToken", handshake{method: "GET"}, 426, "not-websocket", map[string]string{"Upgrade": "websocket"}},
		{"NotWebSocketHTTP10", ok.withProto("HTTP/1.0"), 426, "not-websocket", map[string]string{"Upgrade": "websocket"}},
		{"NotWebSocketMissingUpgrade", ok.set("Upgrade", ""), 426, "not-websocket", map[string]string{"Upgrade": "websocket"}},
		{"NotWebSocketOtherUpgrade", ok.set("Upgrade", "h2c"), 426, "not-websocket", nil},
		{"NotWebSocketMissingConnection", ok.set("Connection", ""), 426, "not-websocket", nil},
		{"NotWebSocketConnectionKeepAlive", ok.set("Connection", "keep-alive"), 426, "not-websocket", nil},
		{"VersionMissing", ok.set("Sec-WebSocket-Version", ""), 426, "websocket-version", map[string]string{"Sec-WebSocket-Version": "13"}},
		{"VersionOld", ok.set("Sec-WebSocket-Version", "8"), 426, "websocket-version", map[string]string{"Sec-WebSocket-Version": "13"}},
		{"BadKeyMissing", ok.set("Sec-WebSocket-Key", ""), 400, "bad-handshake", nil},
		{"BadKeyNotBase64", ok.set("Sec-WebSocket-Key", "not base64!"), 400, "bad-handshake", nil},
		{"BadKeyFifteenBytes", ok.set("Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2Rl"), 400, "bad-handshake", nil},
		{"BadKeyRepeated", ok.add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), 400, "bad-handshake", nil},
		{"BadKeyHuge", ok.set("Sec-WebSocket-Key", strings.Repeat("QUFB", 4096)), 400, "bad-handshake", nil},
		{"OriginForbidden", ok.set("Origin", "https://evil.example"), 403, "origin-forbidden", nil},
		{"OriginForbiddenUnparsable", ok.set("Origin", "http://[::1"), 403, "origin-forbidden", nil},
		{"UnauthorizedProperHandshake", ok.set("Authorization", ""), 401, "unauthorized", map[string]string{"WWW-Authenticate": "Bearer"}},
		{"InvalidParameterSubscribe", handshake{method: "GET", query: "subscribe=authors", header: ok.header}, 400, "invalid-parameter", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.send(t, tt.req)
			p := checkProblem(t, resp, body, tt.wantStatus, tt.wantSlug)
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if strings.Contains(p.Detail, "QUFB") || strings.Contains(p.Detail, "evil") {
				t.Errorf("detail %q echoes a header value", p.Detail)
			}
		})
	}
	t.Run("HeadAnswersLikeGetWithoutBody", func(t *testing.T) {
		resp, body := e.send(t, ok.withMethod("HEAD"))
		if resp.StatusCode != 426 || resp.Header.Get("Content-Type") != problem.ContentType || resp.Header.Get("Upgrade") != "websocket" {
			t.Fatalf("HEAD: status %d, headers %v; want 426 problem+json with Upgrade: websocket", resp.StatusCode, resp.Header)
		}
		if len(body) != 0 {
			t.Fatalf("HEAD answered with a body: %q", body)
		}
	})
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	if e.obs.connected != 0 {
		t.Errorf("observer saw %d connections, want none", e.obs.connected)
	}
}

func TestHandshakeAccepted(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.OriginPatterns = []string{"app.example.com", "https://*.trusted.test"} })
	ok := validHandshake()
	host := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/ws")
	tests := []struct {
		name string
		req  handshake
	}{
		{"OK", ok},
		{"OKTokenLists", ok.set("Connection", "keep-alive, Upgrade").set("Upgrade", "WebSocket")},
		{"OKKeyWithSpaces", ok.set("Sec-WebSocket-Key", "  dGhlIHNhbXBsZSBub25jZQ==  ")},
		{"OKSameOrigin", ok.set("Origin", "http://"+host)},
		{"OKAllowedOrigin", ok.set("Origin", "https://APP.example.com")},
		{"OKAllowedSchemePattern", ok.set("Origin", "https://eu.trusted.test")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.send(t, tt.req)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status = %d (%s), want 101", resp.StatusCode, body)
			}
		})
	}
	t.Run("RefusedSchemePatternOtherScheme", func(t *testing.T) {
		resp, body := e.send(t, ok.set("Origin", "http://eu.trusted.test"))
		checkProblem(t, resp, body, http.StatusForbidden, "origin-forbidden")
	})
}

// TestNotHijackable: a middleware that hides http.Hijacker is a wiring bug;
// it still gets a problem document, not Accept's plain-text 501.
func TestNotHijackable(t *testing.T) {
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	hide := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(struct{ http.ResponseWriter }{w}, r)
	})
	e := &env{url: newServer(t, hide)}
	resp, body := e.send(t, validHandshake())
	checkProblem(t, resp, body, http.StatusInternalServerError, "internal")
}
