package loadtest

import (
	"context"
	"crypto/sha1" //nolint:gosec // the WebSocket handshake is defined with SHA-1
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// benchFrame is an event frame as bookhub writes it: the hub's envelope
// (type, channel, offset, epoch) and then the event's own fields.
func benchFrame(seq int, event, title string) []byte {
	return fmt.Appendf(nil, `{"type":"event","channel":"books","offset":%d,"epoch":"9f1c2a7e5b3d4c60",`+
		`"id":"%032d","event":%q,"book_id":%d,"book":{"id":%d,"title":%q,"author":"bookhub loadtest",`+
		`"isbn":null,"price":12.5,"stock":3,"version":2,"created_at":"2026-01-01T00:00:00.123456Z",`+
		`"updated_at":"2026-01-01T00:00:01.123456Z"},"at":"2026-01-01T00:00:01.123456Z","origin":"lt-1"}`,
		seq+1, seq, event, seq+1, seq+1, title)
}

// BenchmarkHandleEvent measures the per-delivery hot path: reading a frame,
// matching it to its write, the duplicate and order checks and recording
// the latency. Deleted matches by book id instead of title.
func BenchmarkHandleEvent(b *testing.B) {
	for _, event := range []string{"book.updated", "book.deleted"} {
		b.Run(event, func(b *testing.B) {
			const writes = 1024
			t := newTracker("bench", writes, time.Now())
			frames := make([][]byte, writes)
			for i := range frames {
				t.writes[i].start.Store(1)
				t.writes[i].state.Store(stateOK)
				frames[i] = benchFrame(i, event, t.marker(i))
				if event == "book.deleted" {
					t.deletes.Store(int64(i+1), i)
				}
			}
			b.ReportAllocs()
			st := &subStats{seen: make([]uint64, writes/64)}
			i := 0
			for b.Loop() {
				if i%writes == 0 {
					clear(st.seen)
					st.lastOffset = 0
				}
				t.handle(0, st, frames[i%writes], t.now())
				i++
			}
			if st.duplicates+st.unexpected+st.foreign+st.outOfOrder != 0 {
				b.Fatalf("frames not matched: %+v", st)
			}
		})
	}
}

// BenchmarkFrameDecode compares the scanner with the full encoding/json
// decode the generator used before, on the same frame.
func BenchmarkFrameDecode(b *testing.B) {
	frame := benchFrame(7, "book.updated", "lt-bench-7")
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		var f frameFields
		for b.Loop() {
			if err := f.scan(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f struct {
				Type, Channel, ID, Event, Code, Message string
				BookID                                  int64 `json:"book_id"`
				Book                                    *struct{ Title string }
			}
			if err := json.Unmarshal(frame, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadMessage measures the client side of reading one frame: into
// a reused buffer under a context that never ends (what subscribers do), and
// with Conn.Read under a cancellable one (a new slice per frame, a timer per
// read). The connection reads an endless stream of server frames from
// memory, so no server, socket or scheduler time is in the figures.
func BenchmarkReadMessage(b *testing.B) {
	frame := benchFrame(7, "book.updated", "lt-bench-7")
	b.Run("reused_buffer", func(b *testing.B) {
		c := memoryConn(b, frame)
		buf := make([]byte, 0, initialReadBuffer)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = readMessage(c, buf); err != nil || len(buf) != len(frame) {
				b.Fatalf("read %d bytes: %v", len(buf), err)
			}
		}
	})
	b.Run("conn_Read", func(b *testing.B) {
		c := memoryConn(b, frame)
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		b.ReportAllocs()
		for b.Loop() {
			if _, data, err := c.Read(ctx); err != nil || len(data) != len(frame) {
				b.Fatalf("read %d bytes: %v", len(data), err)
			}
		}
	})
}

// memoryConn returns a client connection whose server side is an endless
// repetition of payload as an unmasked text frame, served from memory.
func memoryConn(b *testing.B, payload []byte) *websocket.Conn {
	b.Helper()
	hdr := []byte{0x81, 126, byte(len(payload) >> 8), byte(len(payload))} // FIN+text, 16-bit length
	if len(payload) < 126 || len(payload) > 0xffff {
		b.Fatalf("payload of %d bytes needs another length encoding", len(payload))
	}
	stream := &repeatConn{frame: append(hdr, payload...)}
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		h := http.Header{}
		h.Set("Upgrade", "websocket")
		h.Set("Connection", "Upgrade")
		h.Set("Sec-WebSocket-Accept", base64.StdEncoding.EncodeToString(sum[:]))
		return &http.Response{StatusCode: http.StatusSwitchingProtocols, Header: h, Body: stream, Request: r}, nil
	})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://memory/ws", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.CloseNow() })
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// repeatConn reads frame over and over and discards what is written.
type repeatConn struct {
	frame []byte
	off   int
}

func (c *repeatConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], c.frame[c.off:])
		n += m
		c.off = (c.off + m) % len(c.frame)
	}
	return n, nil
}

func (c *repeatConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *repeatConn) Close() error                { return nil }
