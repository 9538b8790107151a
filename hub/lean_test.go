package hub_test

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/hub"
)

// waitUntil polls cond, which reads state no signal announces (whether a
// goroutine has ended), until it holds or the test's deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleConnectionsHoldNoWriter: once its frames are written a connection
// keeps no writer goroutine; a publish starts one per subscriber that ends
// again once the frame is out, and the frames still arrive in order.
func TestIdleConnectionsHoldNoWriter(t *testing.T) {
	e := newEnv(t, nil)
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.dial(t, "subscribe=books")
		clients[i].expectType("subscribed")
	}
	waitUntil(t, "every writer has ended", func() bool { return e.hub.RunningWriters() == 0 })
	for round := 1; round <= 3; round++ {
		for id := 1; id <= 5; id++ {
			e.hub.Publish(pub([]string{"books"}, bookEvent(round*10+id)))
		}
		for _, c := range clients {
			for id := 1; id <= 5; id++ {
				if got := c.expectType("event")["book_id"]; got != float64(round*10+id) {
					t.Fatalf("round %d: book_id %v, want %d", round, got, round*10+id)
				}
			}
		}
		waitUntil(t, "every writer has ended after the round", func() bool { return e.hub.RunningWriters() == 0 })
	}
}

// TestPingClockStopsWithTheLastConnection: the hub's one ping clock runs
// while it has connections and ends with the last one, so an unused hub
// holds no goroutine.
func TestPingClockStopsWithTheLastConnection(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.PingInterval = 20 * time.Millisecond })
	if e.hub.JanitorRunning() {
		t.Fatal("ping clock runs before any connection")
	}
	c := e.dial(t, "")
	if !e.hub.JanitorRunning() {
		t.Fatal("ping clock not running with a connection")
	}
	_ = c.ws.CloseNow()
	e.obs.waitDisconnects(t, 1)
	waitUntil(t, "the ping clock has stopped", func() bool { return !e.hub.JanitorRunning() })
}

// TestBytesBehindTheHandshakeAreRead: a client may send its first message
// in the same TCP segment as its handshake. Those bytes sit in net/http's
// buffer when the hub takes the connection over, and must still be read:
// the ping here is answered with a pong after the welcome frame.
func TestBytesBehindTheHandshakeAreRead(t *testing.T) {
	e := newEnv(t, nil)
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/ws")
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer alice\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), maskedText(`{"type":"ping","id":7}`)...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got := readServerText(t, br); !strings.Contains(got, `"type":"welcome"`) {
		t.Fatalf("first frame %s, want welcome", got)
	}
	if got := readServerText(t, br); got != `{"type":"pong","id":7}` {
		t.Fatalf("second frame %s, want the pong", got)
	}
}

// maskedText is a client text frame (clients must mask) of a short payload.
func maskedText(payload string) []byte {
	var key [4]byte
	_, _ = rand.Read(key[:])
	f := []byte{0x81, 0x80 | byte(len(payload))}
	f = append(f, key[:]...)
	for i := range len(payload) {
		f = append(f, payload[i]^key[i%4])
	}
	return f
}

// readServerText reads one unmasked, unfragmented text frame.
func readServerText(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var h [2]byte
	if _, err := br.Read(h[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Read(h[1:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x81 || h[1]&0x80 != 0 {
		t.Fatalf("frame header % x, want an unmasked final text frame", h)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := readFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		t.Fatal("frame too long for this test")
	}
	p := make([]byte, n)
	if _, err := readFull(br, p); err != nil {
		t.Fatal(err)
	}
	return string(p)
}

func readFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
