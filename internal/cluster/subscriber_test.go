package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/internal/cluster"
)

const epoch = "00112233aabbccdd"

// script plays one connection of a fake hub; n counts connections from 1.
type script func(t *testing.T, ctx context.Context, c *websocket.Conn, r *http.Request, n int)

// fakeHub serves scripted connections; a script that returns closes its
// socket without a close frame, as a killed instance would.
func fakeHub(t *testing.T, play script) string {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		play(t, r.Context(), c, r, i)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func sendJSON(t *testing.T, ctx context.Context, c *websocket.Conn, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Errorf("fake hub write: %v", err)
	}
}

// event is an event frame laid out as the hub writes it.
func event(off int) []byte {
	return fmt.Appendf(nil, `{"type":"event","channel":"books","offset":%d,"epoch":%q,"id":"ev-%d","event":"book.created","book_id":%d,"book":{"id":%d,"version":1},"at":"2026-01-01T00:00:00Z","origin":"fake"}`,
		off, epoch, off, off, off)
}

func subscribed(offset int, recovered bool) map[string]any {
	return map[string]any{"type": "subscribed", "channel": "books", "recovered": recovered, "offset": offset, "epoch": epoch}
}

func welcome(instance string) map[string]any {
	return map[string]any{"type": "welcome", "instance": instance}
}

// hold keeps a scripted socket open until the client goes.
func hold(ctx context.Context, c *websocket.Conn) { _, _, _ = c.Read(ctx) }

func run(t *testing.T, subs ...*cluster.Subscriber) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, s := range subs {
		wg.Go(func() { s.Run(ctx) })
	}
}

func waitReached(t *testing.T, s *cluster.Subscriber, off uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !cluster.WaitAll(ctx, []*cluster.Subscriber{s}, off) {
		t.Fatalf("subscriber never reached %d: %+v", off, s.Stats())
	}
}

// A subscriber told the stream is incomplete resubscribes on the open
// socket, ignores the live events sent before the reply, and takes the
// replay; when its socket dies it reconnects with since=<last>.
func TestSubscriberResumes(t *testing.T) {
	base := fakeHub(t, func(t *testing.T, ctx context.Context, c *websocket.Conn, r *http.Request, n int) {
		q := r.URL.Query()
		switch n {
		case 1:
			if q.Get("since") != "0" || q.Get("epoch") != epoch || q.Get("subscribe") != "books" {
				t.Errorf("first connection asks %q", r.URL.RawQuery)
			}
			sendJSON(t, ctx, c, welcome("a"))
			sendJSON(t, ctx, c, subscribed(0, true))
			sendJSON(t, ctx, c, event(1))
			sendJSON(t, ctx, c, event(2))
			sendJSON(t, ctx, c, map[string]any{"type": "incomplete", "channel": "books", "offset": 2, "epoch": epoch})
			sendJSON(t, ctx, c, event(5)) // after the gap, before the resubscribe is answered
			_, msg, err := c.Read(ctx)
			var sub struct {
				Type, Channel string
				Since         struct {
					Offset uint64
					Epoch  string
				}
			}
			if err != nil || json.Unmarshal(msg, &sub) != nil || sub.Type != "subscribe" || sub.Since.Offset != 2 || sub.Since.Epoch != epoch {
				t.Errorf("after incomplete the client sent %q (%v), want a subscribe since 2", msg, err)
				return
			}
			sendJSON(t, ctx, c, subscribed(2, true))
			for off := 3; off <= 5; off++ {
				sendJSON(t, ctx, c, event(off))
			}
			// Returning drops the socket with no close frame.
		case 2:
			if q.Get("since") != "5" || q.Get("epoch") != epoch {
				t.Errorf("reconnect asks %q, want since=5", r.URL.RawQuery)
			}
			sendJSON(t, ctx, c, welcome("b"))
			sendJSON(t, ctx, c, subscribed(5, true))
			sendJSON(t, ctx, c, event(6))
			hold(ctx, c)
		default:
			hold(ctx, c)
		}
	})
	s := &cluster.Subscriber{Base: base, Token: "t", Start: cluster.Position{Offset: 0, Epoch: epoch}}
	run(t, s)
	waitReached(t, s, 6)
	st := s.Stats()
	want := cluster.SubscriberStats{Delivered: 7, Distinct: 6, Discarded: 1, Connects: 2, Resumes: 2, Incomplete: 1}
	st.Errors = nil
	if !reflect.DeepEqual(st, want) {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if got := s.Connections(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("connections %v, want [a b]", got)
	}
	if rep := cluster.Check([]*cluster.Subscriber{s}, s.Start, cluster.Position{Offset: 6, Epoch: epoch}, nil); !rep.OK() {
		t.Errorf("Check: %s", rep.Summary())
	}
}

// Check reports every way a stream can be wrong, and the hand-parsed and
// fully decoded frames agree.
func TestCheckFindsFaults(t *testing.T) {
	start := cluster.Position{Offset: 0, Epoch: epoch}
	tests := []struct {
		name  string
		play  func(t *testing.T, ctx context.Context, c *websocket.Conn)
		final uint64
		acked []cluster.Write
		check func(t *testing.T, r cluster.Report)
	}{
		{"OK", func(t *testing.T, ctx context.Context, c *websocket.Conn) {
			sendJSON(t, ctx, c, event(1))
			sendJSON(t, ctx, c, event(2))
		}, 2, []cluster.Write{{Type: "book.created", BookID: 2, Version: 1}}, func(t *testing.T, r cluster.Report) {
			if !r.OK() || r.Delivered != 4 || r.Diverged != 0 {
				t.Errorf("report %s, want OK with 4 deliveries", r.Summary())
			}
		}},
		{"ErrGapDuplicateOrderAndMissing", func(t *testing.T, ctx context.Context, c *websocket.Conn) {
			sendJSON(t, ctx, c, event(1))
			sendJSON(t, ctx, c, event(3)) // a silent gap
			sendJSON(t, ctx, c, event(3)) // a duplicate
			sendJSON(t, ctx, c, event(2)) // out of order
		}, 4, nil, func(t *testing.T, r cluster.Report) {
			if r.OK() || r.SilentGaps != 2 || r.Duplicated != 2 || r.OutOfOrder != 2 || r.Missing != 2 {
				t.Errorf("report %s, want per subscriber 1 gap, 1 duplicate, 1 out of order, 1 missing", r.Summary())
			}
		}},
		{"ErrLostWrite", func(t *testing.T, ctx context.Context, c *websocket.Conn) {
			sendJSON(t, ctx, c, event(1))
		}, 1, []cluster.Write{{Type: "book.updated", BookID: 1, Version: 2}}, func(t *testing.T, r cluster.Report) {
			if r.OK() || r.Lost != 1 {
				t.Errorf("report %s, want 1 lost write", r.Summary())
			}
		}},
		{"ErrNotRecovered", func(t *testing.T, ctx context.Context, c *websocket.Conn) {
			sendJSON(t, ctx, c, map[string]any{"type": "subscribed", "channel": "books", "recovered": false, "offset": 3, "epoch": epoch})
			sendJSON(t, ctx, c, event(4))
		}, 4, nil, func(t *testing.T, r cluster.Report) {
			if r.OK() || r.RecoveredFalse != 2 || r.Missing != 6 {
				t.Errorf("report %s, want recovered:false twice and 3 missing each", r.Summary())
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := fakeHub(t, func(t *testing.T, ctx context.Context, c *websocket.Conn, _ *http.Request, _ int) {
				sendJSON(t, ctx, c, welcome("a"))
				sendJSON(t, ctx, c, subscribed(0, true))
				tc.play(t, ctx, c)
				hold(ctx, c)
			})
			// One decodes every frame in full, one parses event heads by hand.
			subs := []*cluster.Subscriber{
				{Base: base, Token: "t", Start: start, Keep: true},
				{Base: base, Token: "t", Start: start},
			}
			run(t, subs...)
			// The faulty streams never complete: a short wait is enough.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			cluster.WaitAll(ctx, subs, tc.final)
			time.Sleep(100 * time.Millisecond) // let frames after the last new offset arrive too
			tc.check(t, cluster.Check(subs, start, cluster.Position{Offset: tc.final, Epoch: epoch}, tc.acked))
		})
	}
}
