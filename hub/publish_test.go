package hub_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

func TestPublishEventFrame(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "subscribe=books")
	c.expectType("subscribed")

	e.hub.Publish(pub([]string{"books"}, bookEvent(42)))
	want := `{"type":"event","channel":"books","id":"ev-42","event":"book.updated","book_id":42,` +
		`"book":{"id":42,"title":"T"},"at":"2025-01-02T03:04:05Z","origin":"test-1"}`
	if got := c.readRaw(); got != want {
		t.Fatalf("frame\n got %s\nwant %s", got, want)
	}

	t.Run("OKEmptyObject", func(t *testing.T) {
		e.hub.Publish(pub([]string{"books"}, []byte(` { } `)))
		c.expectJSON(`{"type":"event","channel":"books"}`)
	})
	t.Run("DroppedNotAnObject", func(t *testing.T) {
		for _, bad := range []string{``, `[]`, `"x"`, `{`} {
			e.hub.Publish(pub([]string{"books"}, []byte(bad)))
		}
		c.sync()
	})
}

func TestPublishRouting(t *testing.T) {
	e := newEnv(t, nil)
	firehose := e.dial(t, "subscribe=books")
	firehose.expectType("subscribed")
	book42 := e.dial(t, "subscribe=books:42")
	book42.expectType("subscribed")
	both := e.dial(t, "subscribe=books,books:42")
	both.expectType("subscribed")
	both.expectType("subscribed")
	idle := e.dial(t, "")

	e.hub.Publish(pub(bookChannels(7), bookEvent(7)))
	e.hub.Publish(pub(bookChannels(42), bookEvent(42)))

	t.Run("FirehoseGetsEveryBook", func(t *testing.T) {
		for _, id := range []float64{7, 42} {
			if m := firehose.expectType("event"); m["channel"] != "books" || m["book_id"] != id {
				t.Fatalf("event %v, want book %v on books", m, id)
			}
		}
		firehose.sync()
	})
	t.Run("BookChannelGetsOnlyItsBook", func(t *testing.T) {
		if m := book42.expectType("event"); m["channel"] != "books:42" || m["book_id"] != 42.0 {
			t.Fatalf("event %v, want book 42 on books:42", m)
		}
		book42.sync()
	})
	t.Run("BothChannelsGetTwoFrames", func(t *testing.T) {
		// Book 7 only on books, then book 42 once per channel.
		var got []string
		for range 3 {
			m := both.expectType("event")
			got = append(got, m["channel"].(string)+"/"+strconv.Itoa(int(m["book_id"].(float64))))
		}
		if want := "books/7 books/42 books:42/42"; strings.Join(got, " ") != want {
			t.Fatalf("frames %v, want %s", got, want)
		}
		both.sync()
	})
	t.Run("UnsubscribedGetsNothing", func(t *testing.T) { idle.sync() })
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueBytes = 256 << 10
		o.WriteTimeout = time.Minute // the slow client resumes reading later
	})
	bigClient := &websocket.DialOptions{}
	slow := e.dialToken(t, "alice", "subscribe=books", bigClient)
	slow.ws.SetReadLimit(-1)
	fast := e.dial(t, "subscribe=books")
	fast.expectType("subscribed")
	fast.ws.SetReadLimit(-1)

	received := make(chan int, 1)
	go func() {
		n := 0
		for {
			if _, _, err := fast.ws.Read(context.Background()); err != nil {
				return
			}
			n++
			received <- n
		}
	}()

	event := []byte(`{"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	published := 0
	isSlow := func() bool {
		e.obs.mu.Lock()
		defer e.obs.mu.Unlock()
		return e.obs.slow > 0
	}
	// Publish in lockstep with the fast client, so only the slow one can
	// fall behind, until the hub gives up on the slow one. The kernel
	// buffers a few MiB before the slow client's queue starts to grow.
	for ; published < 2000 && !isSlow(); published++ {
		e.hub.Publish(pub([]string{"books"}, event))
		select {
		case n := <-received:
			if n != published+1 {
				t.Fatalf("fast client has %d frames after %d publishes", n, published+1)
			}
		case <-time.After(testTimeout):
			t.Fatalf("fast client stalled after %d frames", published)
		}
	}
	if !isSlow() {
		t.Fatalf("no slow consumer after %d frames", published)
	}
	// The fast client keeps receiving.
	for range 3 {
		e.hub.Publish(pub([]string{"books"}, event))
		published++
		if n := <-received; n != published {
			t.Fatalf("fast client has %d frames, want %d", n, published)
		}
	}

	// Once it reads again, the slow client finds the close after what the
	// kernel had buffered.
	slow.expectClose(websocket.StatusPolicyViolation, "slow consumer: send queue full")
	if got := e.obs.waitDisconnects(t, 1); got[0] != hub.ReasonSlowConsumer {
		t.Fatalf("disconnect reason %q, want %q", got[0], hub.ReasonSlowConsumer)
	}
	if s := e.hub.Stats(); s.Connections != 1 || s.Subscriptions != 1 {
		t.Fatalf("Stats = %+v, want only the fast client", s)
	}
}

func TestSlowConsumerByMessageCount(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.SendQueueMessages = 4 })
	c := e.dial(t, "subscribe=books:1")
	c.expectType("subscribed")
	// The client does not read: once the kernel buffers are full the
	// writer stalls and the fifth pending frame overflows the queue.
	for i := 0; ; i++ {
		e.hub.Publish(pub([]string{"books:1"}, bookEvent(1)))
		e.obs.mu.Lock()
		slow := e.obs.slow
		e.obs.mu.Unlock()
		if slow > 0 {
			break
		}
		if i > 1_000_000 {
			t.Fatal("queue of 4 frames never overflowed")
		}
	}
	c.expectClose(websocket.StatusPolicyViolation, "slow consumer: send queue full")
}

func TestPublishConcurrentWithSubscriptions(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.SendQueueMessages = 1 << 20; o.SendQueueBytes = 1 << 30 })
	const clients, rounds = 4, 30
	ctx, cancel := context.WithCancel(testContext(t))
	var publisher sync.WaitGroup
	publisher.Go(func() {
		// Paced so the clients' replies are not stuck behind an ever
		// growing backlog of events.
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for i := 1; ; i = i%5 + 1 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				e.hub.Publish(pub(bookChannels(i), bookEvent(i)))
			}
		}
	})

	var wg sync.WaitGroup
	for i := range clients {
		c := e.dial(t, "")
		ch := "books:" + strconv.Itoa(i%5+1)
		if i%2 == 0 {
			ch = "books"
		}
		wg.Go(func() {
			for range rounds {
				for _, typ := range []string{"subscribe", "unsubscribe"} {
					if err := c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"`+typ+`","channel":"`+ch+`"}`)); err != nil {
						t.Errorf("write: %v", err)
						return
					}
					if !readUntil(ctx, c.ws, typ+"d") {
						t.Errorf("no %sd reply", typ)
						return
					}
				}
			}
			c.ws.Close(websocket.StatusNormalClosure, "")
		})
	}
	wg.Wait()
	e.obs.waitDisconnects(t, clients)
	cancel()
	publisher.Wait()
	if s := e.hub.Stats(); s != (hub.Stats{}) {
		t.Fatalf("Stats after all clients left = %+v, want zero", s)
	}
}

// readUntil skips events until a frame of the given type arrives.
func readUntil(ctx context.Context, ws *websocket.Conn, typ string) bool {
	needle := `"type":"` + typ + `"`
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return false
		}
		if strings.Contains(string(b), needle) {
			return true
		}
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	const n = 3
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.dial(t, "subscribe=books")
		clients[i].expectType("subscribed")
	}
	closed := make(chan error, n)
	for _, c := range clients {
		go func() {
			for {
				if _, _, err := c.ws.Read(context.Background()); err != nil {
					closed <- err
					return
				}
			}
		}()
	}

	ctx := testContext(t)
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range n {
		if err := <-closed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("client read ended with %v, want close 1001", err)
		}
	}
	// Shutdown returned, so every connection goroutine has exited and
	// every Disconnected hook has run.
	e.obs.mu.Lock()
	got := append([]string(nil), e.obs.disconnects...)
	e.obs.mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d disconnects after Shutdown, want %d", len(got), n)
	}
	for _, r := range got {
		if r != hub.ReasonShutdown {
			t.Fatalf("disconnect reason %q, want %q", r, hub.ReasonShutdown)
		}
	}
	if s := e.hub.Stats(); s != (hub.Stats{}) {
		t.Fatalf("Stats after Shutdown = %+v, want zero", s)
	}

	t.Run("RefusesNewUpgrades", func(t *testing.T) {
		_, resp, err := websocket.Dial(testContext(t), e.url, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer alice"}},
		})
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("dial after Shutdown: resp %v err %v, want 503", resp, err)
		}
	})
}

func TestShutdownWaitsForServeHTTP(t *testing.T) {
	obs := newRecorder()
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Observer: obs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var active sync.WaitGroup
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Done()
		h.ServeHTTP(w, r)
	}))
	e := &env{hub: h, obs: obs, url: srv}
	c := e.dial(t, "")
	go func() {
		for {
			if _, _, err := c.ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	if err := h.Shutdown(testContext(t)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	done := make(chan struct{})
	go func() { active.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("ServeHTTP still running after Shutdown")
	}
}

func TestStalledWriteTimesOut(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.WriteTimeout = 200 * time.Millisecond
		o.SendQueueMessages = 1 << 20
		o.SendQueueBytes = 1 << 30
	})
	c := e.dial(t, "subscribe=books")
	c.expectType("subscribed")
	// The client stops reading; 16 MiB outgrows the kernel buffers, so a
	// frame write stalls and hits WriteTimeout long before the queue fills.
	event := []byte(`{"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	for range 256 {
		e.hub.Publish(pub([]string{"books"}, event))
	}
	if got := e.obs.waitDisconnects(t, 1); got[0] != hub.ReasonWriteError {
		t.Fatalf("disconnect reason %q, want %q", got[0], hub.ReasonWriteError)
	}
	if s := e.hub.Stats(); s != (hub.Stats{}) {
		t.Fatalf("Stats = %+v, want zero", s)
	}
}
