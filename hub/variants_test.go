package hub_test

import (
	"log/slog"
	"strconv"
	"testing"

	"github.com/bookhub/bookhub/hub"
)

// variantData is the payload of offset off on channel for variant v ("":
// the default Data).
func variantData(channel string, off uint64, v string) []byte {
	return []byte(`{"id":"` + channel + `/` + strconv.FormatUint(off, 10) + `","v":"` + v + `"}`)
}

func variantPub(channel string, off uint64) hub.Publication {
	return hub.Publication{
		Data:      variantData(channel, off, ""),
		Variants:  map[string][]byte{"staff": variantData(channel, off, "staff"), "admin": variantData(channel, off, "admin")},
		Positions: []hub.Position{{Channel: channel, Offset: off, Epoch: epoch}},
	}
}

// expectVariant reads one event and checks its offset and payload variant.
func (c *client) expectVariant(off uint64, v string) {
	c.t.Helper()
	m := c.read()
	if m["type"] != "event" || m["offset"] != float64(off) || m["v"] != v {
		c.t.Fatalf("got %v, want the %q payload of offset %d", m, v, off)
	}
}

// TestVariantsNeverCross: subscribers of several variants on one channel
// each get their own payload, live and in a replay; a variant without a
// payload of its own gets Data.
func TestVariantsNeverCross(t *testing.T) {
	hist := newHistory()
	cs := credentials{
		"default": {id: viewer("d")},
		"staff":   {id: withVariant(viewer("s"), "staff")},
		"admin":   {id: withVariant(viewer("a"), "admin")},
		"other":   {id: withVariant(viewer("o"), "unknown")},
	}
	e := newEnv(t, withCredentials(cs, withHistory(hist)))
	want := map[string]string{"default": "", "staff": "staff", "admin": "admin", "other": ""}
	clients := map[string]*client{}
	for tok := range want {
		c := e.dialToken(t, tok, "subscribe=books", nil)
		c.expectType("welcome")
		c.expectType("subscribed")
		clients[tok] = c
	}
	t.Run("Live", func(t *testing.T) {
		for off := uint64(1); off <= 3; off++ {
			e.hub.Publish(variantPub("books", off))
		}
		for tok, c := range clients {
			for off := uint64(1); off <= 3; off++ {
				c.expectVariant(off, want[tok])
			}
		}
	})
	t.Run("Replay", func(t *testing.T) {
		hist.mu.Lock()
		for off := uint64(1); off <= 3; off++ {
			p := variantPub("books", off)
			hist.entries["books"] = append(hist.entries["books"], hub.Entry{Offset: off, Epoch: epoch, Data: p.Data, Variants: p.Variants})
		}
		hist.mu.Unlock()
		for tok, c := range clients {
			c.sendText(resumeMsg("books", 0, epoch))
			c.expectJSON(subscribedJSON("books", true, 0))
			for off := uint64(1); off <= 3; off++ {
				c.expectVariant(off, want[tok])
			}
			c.sync()
		}
	})
}

func TestPublishVariantNotAnObjectDropsTheEvent(t *testing.T) {
	cs := credentials{"default": {id: viewer("d")}, "staff": {id: withVariant(viewer("s"), "staff")}}
	e := newEnv(t, withCredentials(cs))
	var clients []*client
	for _, tok := range []string{"default", "staff"} {
		c := e.dialToken(t, tok, "subscribe=books", nil)
		c.expectType("welcome")
		c.expectType("subscribed")
		clients = append(clients, c)
	}
	e.hub.Publish(hub.Publication{Data: []byte(`{"ok":1}`), Variants: map[string][]byte{"staff": []byte(`[1]`)},
		Positions: []hub.Position{{Channel: "books"}}})
	for _, c := range clients {
		c.sync() // nothing was queued, for either variant
	}
}

// TestPublishEncodesOncePerVariant: frames are encoded once per (channel,
// variant) that has a subscriber, whatever the number of subscribers.
func TestPublishEncodesOncePerVariant(t *testing.T) {
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	def := h.AddMemorySubscribers("books", "", 50)
	staff := h.AddMemorySubscribers("books", "staff", 50)
	unknown := h.AddMemorySubscribers("books", "nobody-publishes-this", 5)
	single := h.AddMemorySubscribers("books:1", "", 3)

	tests := []struct {
		name     string
		pub      hub.Publication
		want     uint64
		defSeen  string
		staffSaw string
	}{
		{"TwoVariantsOneChannel", hub.Publication{Data: []byte(`{"v":"d"}`), Variants: map[string][]byte{"staff": []byte(`{"v":"s"}`)},
			Positions: []hub.Position{{Channel: "books"}}}, 2, `{"type":"event","channel":"books","v":"d"}`, `{"type":"event","channel":"books","v":"s"}`},
		// admin has no subscriber: never encoded.
		{"UnusedVariantNotEncoded", hub.Publication{Data: []byte(`{"v":"d"}`), Variants: map[string][]byte{"staff": []byte(`{"v":"s"}`), "admin": []byte(`{"v":"a"}`)},
			Positions: []hub.Position{{Channel: "books"}}}, 2, `{"type":"event","channel":"books","v":"d"}`, `{"type":"event","channel":"books","v":"s"}`},
		{"NoVariants", hub.Publication{Data: []byte(`{"v":"d"}`), Positions: []hub.Position{{Channel: "books"}}},
			1, `{"type":"event","channel":"books","v":"d"}`, `{"type":"event","channel":"books","v":"d"}`},
		// books:1 has default subscribers only; "staff" is encoded on books.
		{"PerChannel", hub.Publication{Data: []byte(`{"v":"d"}`), Variants: map[string][]byte{"staff": []byte(`{"v":"s"}`)},
			Positions: []hub.Position{{Channel: "books"}, {Channel: "books:1"}}}, 3, `{"type":"event","channel":"books","v":"d"}`, `{"type":"event","channel":"books","v":"s"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.Encodings()
			h.Publish(tt.pub)
			if got := h.Encodings() - before; got != tt.want {
				t.Fatalf("%d encodings, want %d", got, tt.want)
			}
			for _, c := range []struct {
				subs  *hub.MemorySubscribers
				n     int
				frame string
			}{{def, 50, tt.defSeen}, {staff, 50, tt.staffSaw}, {unknown, 5, tt.defSeen}} {
				if seen := c.subs.Drain(); len(seen) != 1 || seen[c.frame] != c.n {
					t.Fatalf("subscribers saw %v, want %d of %s", seen, c.n, c.frame)
				}
			}
			single.Reset()
		})
	}
}
