package hub_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

// BenchmarkPublish measures end-to-end fan-out over real loopback sockets:
// one op is one Publish on "books", complete once every subscriber has read
// the frame. frames/s counts frames read by all subscribers together.
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(subs)+"Subscribers", func(b *testing.B) {
			f := newFanout(b, subs)
			event := bookEvent(42)
			// Waiting for delivery every batch keeps memory bounded and
			// measures throughput rather than queue growth.
			const batch = 256
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				n := min(batch, b.N-i)
				f.expect(b, n, func() {
					for range n {
						f.hub.Publish(pub([]string{"books"}, event))
					}
				})
			}
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkPublishSequenced is BenchmarkPublish with offsets: every frame
// carries "offset" and "epoch", and every subscription checks the offset
// against the last one it was sent (the duplicate suppression the feed's
// at-least-once input needs). Compare its ns/op with BenchmarkPublish.
func BenchmarkPublishSequenced(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(subs)+"Subscribers", func(b *testing.B) {
			f := newFanout(b, subs)
			data := bookEvent(42)
			var offset uint64
			const batch = 256
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				n := min(batch, b.N-i)
				f.expect(b, n, func() {
					for range n {
						offset++
						f.hub.Publish(hub.Publication{Data: data, Positions: []hub.Position{
							{Channel: "books", Offset: offset, Epoch: "4f1c2a9e8b7d6c5a"}}})
					}
				})
			}
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// fanout is a hub with subs connected subscribers counting frames.
type fanout struct {
	hub      *hub.Hub
	subs     int
	received atomic.Int64
	target   atomic.Int64
	reached  chan struct{}
}

func newFanout(b *testing.B, subs int) *fanout {
	b.Helper()
	h, err := hub.New(hub.Options{
		Authenticate:      authenticate,
		ValidChannel:      validChannel,
		Logger:            slog.New(slog.DiscardHandler),
		SendQueueMessages: 1 << 20,
		SendQueueBytes:    1 << 30,
		// Every benchmark socket speaks for one subject.
		MaxConnsPerSubject: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	url := newServer(b, h) + "?subscribe=books"
	f := &fanout{hub: h, subs: subs, reached: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	b.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), testTimeout)
		defer scancel()
		_ = h.Shutdown(sctx)
		cancel()
		readers.Wait()
	})
	hdr := http.Header{"Authorization": {"Bearer alice"}}
	for range subs {
		dctx, dcancel := context.WithTimeout(ctx, testTimeout)
		ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			dcancel()
			b.Fatalf("dial: %v", err)
		}
		for range 2 { // welcome, subscribed
			if _, _, err := ws.Read(dctx); err != nil {
				dcancel()
				b.Fatalf("read: %v", err)
			}
		}
		dcancel()
		readers.Go(func() {
			defer ws.CloseNow()
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
				if f.received.Add(1) == f.target.Load() {
					f.reached <- struct{}{}
				}
			}
		})
	}
	return f
}

// expect runs publish, which publishes n frames, and waits until every
// subscriber has read them.
func (f *fanout) expect(b *testing.B, n int, publish func()) {
	f.target.Store(f.received.Load() + int64(n*f.subs))
	publish()
	select {
	case <-f.reached:
	case <-time.After(time.Minute):
		b.Fatalf("subscribers read %d of %d frames", f.received.Load(), f.target.Load())
	}
}

func BenchmarkFrameEncode(b *testing.B) {
	event := bookEvent(42)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hub.EncodeEventFrame("books:42", event); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSubscribeHostile is the probe's ?subscribe= of 60,000
// distinct channels (~700 KB): the quadratic parser spent about 6 s of CPU
// on it before refusing; the bounded one refuses it before splitting.
func BenchmarkParseSubscribeHostile(b *testing.B) {
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		values []string
	}{
		{"OneValue", []string{channelList(60000)}},
		{"ManyValues", strings.Split(channelList(60000), ",")},
		// The worst input under the byte cap: as many distinct channels as
		// fit, the 65th refused after 64 validations.
		{"UnderTheByteCap", []string{channelList(700)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.ParseSubscribe(bc.values); err == nil {
					b.Fatal("hostile list accepted")
				}
			}
		})
	}
}

// BenchmarkServeHTTPHostileSubscribe is the whole refusal of that request
// as a handler sees it: the handshake checks and the query's length, which
// refuses it before Authenticate or net/url would parse 700 KB.
func BenchmarkServeHTTPHostileSubscribe(b *testing.B) {
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/ws?subscribe="+channelList(60000), nil)
	for k, v := range map[string]string{
		"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Authorization": "Bearer alice",
	} {
		req.Header.Set(k, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest {
			b.Fatalf("status %d, want 400", w.Code)
		}
	}
}

func BenchmarkFrameEncodeSequenced(b *testing.B) {
	event := bookEvent(42)
	pos := hub.Position{Channel: "books:42", Offset: 1234567, Epoch: "4f1c2a9e8b7d6c5a"}
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hub.EncodeSequencedFrame(pos, event); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishVariants is one Publish on "books" to in-memory
// subscribers (no sockets: the fan-out alone), half of them of the default
// variant and half "staff". encodings/op stays 2 whatever the number of
// subscribers: each frame is encoded once per variant, not per subscriber.
// Queues are emptied between operations, off the clock.
func BenchmarkPublishVariants(b *testing.B) {
	for _, subs := range []int{1000, 10000} {
		b.Run(strconv.Itoa(subs)+"Subscribers", func(b *testing.B) {
			h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			def := h.AddMemorySubscribers("books", "", subs/2)
			staff := h.AddMemorySubscribers("books", "staff", subs/2)
			p := hub.Publication{
				Data:      bookEvent(42),
				Variants:  map[string][]byte{"staff": []byte(`{"id":"ev-42","event":"book.updated","book_id":42,"cost":"12.50"}`)},
				Positions: []hub.Position{{Channel: "books", Offset: 1, Epoch: "4f1c2a9e8b7d6c5a"}},
			}
			before := h.Encodings()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p.Positions[0].Offset = uint64(i + 1)
				h.Publish(p)
				b.StopTimer()
				def.Reset()
				staff.Reset()
				b.StartTimer()
			}
			b.ReportMetric(float64(h.Encodings()-before)/float64(b.N), "encodings/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs), "ns/subscriber")
		})
	}
}

// BenchmarkFanout is one Publish on "books" to 10,000 in-memory subscribers
// of one variant: the hub's share of a delivery (index walk, duplicate
// check, queueing, writer start) without sockets. allocs/op is per Publish,
// so 10,000 deliveries; the writer-start cost is excluded because
// socketless subscribers never start one. Queues are emptied between
// operations, off the clock.
func BenchmarkFanout(b *testing.B) {
	const subs = 10000
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	m := h.AddMemorySubscribers("books", "", subs)
	p := hub.Publication{Data: bookEvent(42), Positions: []hub.Position{{Channel: "books", Offset: 1, Epoch: "4f1c2a9e8b7d6c5a"}}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.Positions[0].Offset = uint64(i + 1)
		h.Publish(p)
		b.StopTimer()
		m.Reset()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/subs, "ns/delivery")
}

// BenchmarkLoopbackWrite is the floor under every delivery on the machine
// it runs on: one op is one 300-byte write system call to one of 1,000
// loopback TCP sockets (round robin, so no socket has more than one frame
// queued), each drained by a reader goroutine, the way a fan-out writes one
// frame to each of its sockets. It uses no hub code. On loopback the
// write also runs the receiving side's TCP processing and wakes its
// reader, so it costs more than a write to a network card would; compare
// its ns/op with the server's CPU per delivery in loadtest/RESULTS.md.
func BenchmarkLoopbackWrite(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	const sockets = 1000
	conns := make([]net.Conn, 0, sockets)
	var readers sync.WaitGroup
	for range sockets {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, s)
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					c.Close()
					return
				}
			}
		}()
	}
	b.Cleanup(func() {
		for _, s := range conns {
			s.Close()
		}
		readers.Wait()
	})
	frame := make([]byte, 300)
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := range b.N {
		if _, err := conns[i%sockets].Write(frame); err != nil {
			b.Fatal(err)
		}
	}
}
