package hub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

// bigEvent is a sequenced event of book id at offset off on "books", padded
// so that a client that stops reading fills the kernel's buffers quickly.
func bigEvent(id int, off uint64) hub.Publication {
	data := `{"book_id":` + strconv.Itoa(id) + `,"pad":"` + strings.Repeat("x", 32<<10) + `"}`
	return hub.Publication{Data: []byte(data), Key: strconv.Itoa(id),
		Positions: []hub.Position{{Channel: "books", Offset: off, Epoch: "e"}}}
}

func (r *recorder) conflations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conflated
}

// TestConflateKeepsTheNewestPerBook: a client that asked for ?slow=conflate
// and stops reading is not disconnected; its queue keeps only the newest
// pending event of each book, and what it finally reads converges to the
// newest state of every book, in offset order, with the conflated frames
// saying so.
func TestConflateKeepsTheNewestPerBook(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 8
		o.SendQueueBytes = 4 << 20
		o.WriteTimeout = time.Minute // the client resumes reading later
	})
	c := e.dialToken(t, "alice", "subscribe=books&slow=conflate", nil)
	c.ws.SetReadLimit(-1)
	if w := c.expectType("welcome"); w["slow"] != "conflate" {
		t.Fatalf("welcome %v, want slow conflate", w)
	}
	c.expectType("subscribed")

	const books = 3
	newest := map[float64]uint64{}
	var off uint64
	publish := func() {
		off++
		id := int(off%books) + 1
		e.hub.Publish(bigEvent(id, off))
		newest[float64(id)] = off
	}
	for off < 5000 && e.obs.conflations() == 0 {
		publish()
	}
	if e.obs.conflations() == 0 {
		t.Fatalf("nothing conflated after %d events", off)
	}
	for range 50 {
		publish()
	}

	got := map[float64]uint64{}
	var last uint64
	frames, marked := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for got[1] != newest[1] || got[2] != newest[2] || got[3] != newest[3] {
		_, b, err := c.ws.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d frames: %v (a conflating client must not be disconnected)", frames, err)
		}
		var f struct {
			Type          string  `json:"type"`
			Offset        uint64  `json:"offset"`
			BookID        float64 `json:"book_id"`
			ConflatedFrom uint64  `json:"conflated_from"`
		}
		if err := json.Unmarshal(b, &f); err != nil || f.Type != "event" {
			t.Fatalf("frame %.80s: %v", b, err)
		}
		frames++
		if f.Offset <= last {
			t.Fatalf("offset %d after %d: out of order or twice", f.Offset, last)
		}
		if f.ConflatedFrom != 0 {
			marked++
			if f.ConflatedFrom >= f.Offset {
				t.Fatalf("conflated_from %d is not before the frame's own offset %d", f.ConflatedFrom, f.Offset)
			}
		}
		last = f.Offset
		got[f.BookID] = f.Offset
	}
	if frames >= int(off) || marked == 0 {
		t.Fatalf("read %d frames of %d events, %d marked conflated: nothing was conflated on the wire", frames, off, marked)
	}
	if s := e.hub.Stats(); s.Connections != 1 {
		t.Fatalf("Stats = %+v: the conflating client was dropped", s)
	}
}

// TestConflateFallsBackToDisconnect: when every pending event is a
// different book, conflating frees nothing, and the client is closed as a
// slow consumer (it resumes from its last offset).
func TestConflateFallsBackToDisconnect(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 8
		o.SendQueueBytes = 4 << 20
		o.WriteTimeout = time.Minute
	})
	c := e.dialToken(t, "alice", "subscribe=books&slow=conflate", nil)
	c.ws.SetReadLimit(-1)
	c.expectType("welcome")
	c.expectType("subscribed")
	isSlow := func() bool {
		e.obs.mu.Lock()
		defer e.obs.mu.Unlock()
		return e.obs.slow > 0
	}
	for off := uint64(1); off < 5000 && !isSlow(); off++ {
		e.hub.Publish(bigEvent(int(off), off)) // a new book every time
	}
	if !isSlow() {
		t.Fatal("never disconnected")
	}
	c.expectClose(websocket.StatusPolicyViolation, "slow consumer: send queue full")
}

func TestSlowPolicyRefusals(t *testing.T) {
	e := newEnv(t, nil)
	t.Run("BadQuery", func(t *testing.T) {
		for _, q := range []string{"slow=drop", "slow=CONFLATE", "slow=conflate&slow=disconnect"} {
			hs := validHandshake()
			hs.query = q
			resp, body := e.send(t, hs)
			p := checkProblem(t, resp, body, http.StatusBadRequest, "invalid-parameter")
			if len(p.Errors) != 1 || p.Errors[0].Field != "slow" {
				t.Errorf("?%s: errors %+v, want the field slow", q, p.Errors)
			}
		}
	})
	t.Run("BadMessage", func(t *testing.T) {
		c := e.dial(t, "")
		c.roundTrip(`{"type":"subscribe","channel":"books","slow":"drop","id":1}`,
			`{"type":"error","id":1,"code":"bad_slow","message":"slow must be \"disconnect\" or \"conflate\""}`)
		c.roundTrip(`{"type":"subscribe","channel":"books","slow":"conflate","id":2}`,
			`{"type":"subscribed","id":2,"channel":"books"}`)
	})
}
