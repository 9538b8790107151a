package hub_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

// TestShutdownSpreadsCloses: on shutdown the sockets are closed one after
// another over ShutdownSpread, not all in one instant, and every close (1001)
// completes within the window.
func TestShutdownSpreadsCloses(t *testing.T) {
	const spread = time.Second
	const n = 20
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel,
		Logger: testLogger(t), ShutdownSpread: spread})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{hub: h, obs: newRecorder(), url: newServer(t, h)}
	type closed struct {
		at   time.Time
		code websocket.StatusCode
	}
	results := make(chan closed, n)
	for range n {
		c := e.dial(t, "subscribe=books")
		c.expectType("subscribed")
		go func() {
			for {
				if _, _, err := c.ws.Read(context.Background()); err != nil {
					var ce websocket.CloseError
					code := websocket.StatusCode(-1)
					if errors.As(err, &ce) {
						code = ce.Code
					}
					results <- closed{time.Now(), code}
					return
				}
			}
		}()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	var offsets []time.Duration
	for range n {
		select {
		case r := <-results:
			if r.code != websocket.StatusGoingAway {
				t.Errorf("closed with %d, want 1001", r.code)
			}
			offsets = append(offsets, r.at.Sub(start))
		case <-ctx.Done():
			t.Fatal("not every socket was closed")
		}
	}
	slices.Sort(offsets)
	first, last := offsets[0], offsets[n-1]
	if took > spread+time.Second || last > spread+time.Second {
		t.Errorf("shutdown took %v, last close at %v: want all within the %v window (plus handshake slack)", took, last, spread)
	}
	if last-first < spread/2 {
		t.Errorf("closes from %v to %v: not spread over the %v window", first, last, spread)
	}
	if early := offsets[n/2-1]; early < spread/4 {
		t.Errorf("half of the sockets were closed within %v: a reconnect burst", early)
	}
}
