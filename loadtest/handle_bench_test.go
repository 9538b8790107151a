package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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

// BenchmarkReadMessage reads frames from a real WebSocket in-process, into
// a reused buffer (what subscribers do) and with Conn.Read (a new slice per
// frame, under a cancellable context). Both sides run in the process, so
// ns/op and allocs/op include the server's writes; the difference between
// the two is the reader's.
func BenchmarkReadMessage(b *testing.B) {
	frame := benchFrame(7, "book.updated", "lt-bench-7")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(context.Background())
		for ctx.Err() == nil {
			if err := c.Write(context.Background(), websocket.MessageText, frame); err != nil {
				return
			}
		}
	}))
	b.Cleanup(srv.Close)
	dial := func(b *testing.B) *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):], nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.CloseNow() })
		return c
	}
	b.Run("reused_buffer", func(b *testing.B) {
		c := dial(b)
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
		c := dial(b)
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
