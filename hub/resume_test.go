package hub_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

// epoch is the fake history's epoch unless a test changes it.
const epoch = "e1"

// incompleteMessage is the human-readable part of an incomplete frame.
const incompleteMessage = "events after this offset may be missing; resubscribe with since at this position or refetch over REST"

var errDown = errors.New("history: database unavailable")

// historyCall is one read of the fake history.
type historyCall struct {
	channel string
	after   uint64
	limit   int
}

// fakeHistory is an in-memory hub.History: per channel, contiguous entries
// from a first offset (lower ones pruned) up to the channel's current one.
type fakeHistory struct {
	mu      sync.Mutex
	epoch   string
	entries map[string][]hub.Entry
	pad     string // added to every entry, to make frames big
	err     error
	// delay simulates a slow database on every read but the first.
	delay time.Duration
	// gate, when set, may return a channel the read waits for; with
	// readLate the read happens after that wait, else before it.
	gate     func(historyCall) <-chan struct{}
	readLate bool
	// ignoreAfter breaks the contract on every read but the first: it
	// answers from the first entry whatever after says.
	ignoreAfter bool
	calls       []historyCall
	called      chan struct{}
}

func newHistory() *fakeHistory {
	return &fakeHistory{epoch: epoch, entries: make(map[string][]hub.Entry), called: make(chan struct{})}
}

func (h *fakeHistory) Since(ctx context.Context, channel string, after uint64, limit int) ([]hub.Entry, hub.Position, error) {
	call := historyCall{channel, after, limit}
	h.mu.Lock()
	h.calls = append(h.calls, call)
	n := len(h.calls)
	close(h.called)
	h.called = make(chan struct{})
	gate, delay, late := h.gate, h.delay, h.readLate
	if h.ignoreAfter && n > 1 {
		call.after = 0
	}
	entries, pos, err := h.readLocked(call)
	h.mu.Unlock()

	if gate != nil {
		if wait := gate(call); wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, hub.Position{}, ctx.Err()
			}
		}
	}
	if delay > 0 && n > 1 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, hub.Position{}, ctx.Err()
		}
	}
	if late {
		h.mu.Lock()
		entries, pos, err = h.readLocked(call)
		h.mu.Unlock()
	}
	return entries, pos, err
}

func (h *fakeHistory) readLocked(c historyCall) ([]hub.Entry, hub.Position, error) {
	if h.err != nil {
		return nil, hub.Position{}, h.err
	}
	all := h.entries[c.channel]
	pos := hub.Position{Channel: c.channel, Epoch: h.epoch}
	if len(all) > 0 {
		pos.Offset = all[len(all)-1].Offset
	}
	var out []hub.Entry
	for _, e := range all {
		if e.Offset > c.after && len(out) < c.limit {
			out = append(out, e)
		}
	}
	return out, pos, nil
}

// add appends entries from..to to channel, as commits would.
func (h *fakeHistory) add(channel string, from, to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for off := from; off <= to; off++ {
		h.entries[channel] = append(h.entries[channel], hub.Entry{Offset: off, Epoch: h.epoch, Data: entryData(channel, off, h.pad)})
	}
}

// prune drops the entries of channel at or below upTo.
func (h *fakeHistory) prune(channel string, upTo uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.entries[channel]
	for len(all) > 0 && all[0].Offset <= upTo {
		all = all[1:]
	}
	h.entries[channel] = all
}

func (h *fakeHistory) setErr(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

func (h *fakeHistory) callsSoFar() []historyCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]historyCall(nil), h.calls...)
}

// entryData is the event object of offset off on channel; live
// publications carry the same, so frames can be compared either way.
func entryData(channel string, off uint64, pad string) []byte {
	data := `{"id":"` + channel + `/` + strconv.FormatUint(off, 10) + `"`
	if pad != "" {
		data += `,"pad":"` + pad + `"`
	}
	return []byte(data + "}")
}

// live is a sequenced publication of offset off on channel.
func live(channel string, off uint64) hub.Publication {
	return hub.Publication{Data: entryData(channel, off, ""),
		Positions: []hub.Position{{Channel: channel, Offset: off, Epoch: epoch}}}
}

func (e *env) publishRange(channel string, from, to uint64) {
	for off := from; off <= to; off++ {
		e.hub.Publish(live(channel, off))
	}
}

// expectEvent reads one event frame and checks its channel and position.
func (c *client) expectEvent(channel string, off uint64) {
	c.t.Helper()
	m := c.read()
	id := channel + "/" + strconv.FormatUint(off, 10)
	if m["type"] != "event" || m["channel"] != channel || m["offset"] != float64(off) || m["epoch"] != epoch || m["id"] != id {
		c.t.Fatalf("got frame %.200v, want event %s at offset %d", m, channel, off)
	}
}

// expectEvents reads the events from..to of channel, in order.
func (c *client) expectEvents(channel string, from, to uint64) {
	c.t.Helper()
	for off := from; off <= to; off++ {
		c.expectEvent(channel, off)
	}
}

// subscribedJSON is the reply to a subscribe with since.
func subscribedJSON(channel string, recovered bool, offset uint64) string {
	return `{"type":"subscribed","channel":"` + channel + `","recovered":` + strconv.FormatBool(recovered) +
		`,"offset":` + strconv.FormatUint(offset, 10) + `,"epoch":"` + epoch + `"}`
}

func resumeMsg(channel string, offset uint64, ep string) string {
	return `{"type":"subscribe","channel":"` + channel + `","since":{"offset":` + strconv.FormatUint(offset, 10) +
		`,"epoch":"` + ep + `"}}`
}

func withHistory(hist *fakeHistory, more ...func(*hub.Options)) func(*hub.Options) {
	return func(o *hub.Options) {
		o.History = hist
		for _, m := range more {
			m(o)
		}
	}
}

func TestResumeRecovered(t *testing.T) {
	tests := []struct {
		name      string
		since     uint64
		firstKept uint64 // history pruned below this
		replayed  uint64 // first offset replayed
	}{
		{"OKReplaysTheMissedEvents", 3, 1, 4},
		{"OKNothingMissed", 10, 1, 11},
		{"OKFromTheStart", 0, 1, 1},
		{"OKHistoryJustReachesBack", 4, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist := newHistory()
			hist.add("books", 1, 10)
			hist.prune("books", tt.firstKept-1)
			e := newEnv(t, withHistory(hist))
			c := e.dial(t, "")
			c.sendText(`{"type":"subscribe","channel":"books","id":"r","since":{"offset":` +
				strconv.FormatUint(tt.since, 10) + `,"epoch":"` + epoch + `"}}`)
			c.expectJSON(`{"type":"subscribed","id":"r","channel":"books","recovered":true,"offset":` +
				strconv.FormatUint(tt.since, 10) + `,"epoch":"` + epoch + `"}`)
			c.expectEvents("books", tt.replayed, 10)
			e.publishRange("books", 9, 12) // 9 and 10 were replayed already
			c.expectEvents("books", 11, 12)
			c.sync()
			e.obs.waitFor(t, "the resume counted", func() bool { return e.obs.recovered == 1 })
			e.obs.mu.Lock()
			defer e.obs.mu.Unlock()
			if want := int(10 - tt.since); e.obs.replayed != want {
				t.Errorf("Replayed %d, want %d", e.obs.replayed, want)
			}
		})
	}
}

// TestResumeSeam publishes live events while the history read of a resume
// is in progress: they are held, and released after the replay with no
// duplicate and no gap.
func TestResumeSeam(t *testing.T) {
	tests := []struct {
		name string
		// readLate: the history read sees the live events' commits too.
		readLate  bool
		queue     int    // SendQueueMessages: small makes several chunks
		total     uint64 // events in history before the live ones
		gateAfter uint64 // the read after this offset waits for the live events
		since     uint64
	}{
		{"OKReadBeforeLiveEvents", false, 0, 10, 3, 3},
		{"OKReadAfterLiveEvents", true, 0, 10, 3, 3},
		{"OKDuringALaterChunk", false, 16, 40, 20, 0},
		{"OKDuringALaterChunkReadLate", true, 16, 40, 20, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist := newHistory()
			hist.add("books", 1, tt.total)
			hist.readLate = tt.readLate
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			hist.gate = func(c historyCall) <-chan struct{} {
				if c.after < tt.gateAfter {
					return nil
				}
				once.Do(func() { close(entered) })
				return release
			}
			e := newEnv(t, withHistory(hist, func(o *hub.Options) {
				if tt.queue > 0 {
					o.SendQueueMessages = tt.queue
				}
			}))
			c := e.dial(t, "")
			c.sendText(resumeMsg("books", tt.since, epoch))
			<-entered
			// Overlapping the history (already committed), then newer ones;
			// the store commits before the bus publishes.
			hist.add("books", tt.total+1, tt.total+5)
			e.publishRange("books", tt.total-2, tt.total+5)
			close(release)
			c.expectJSON(subscribedJSON("books", true, tt.since))
			c.expectEvents("books", tt.since+1, tt.total+5)
			e.publishRange("books", tt.total+6, tt.total+6)
			c.expectEvent("books", tt.total+6)
			c.sync()
		})
	}
}

func TestResumeNotRecovered(t *testing.T) {
	tests := []struct {
		name      string
		since     string // the since object
		firstKept uint64
		maxReplay int
	}{
		{"WrongEpoch", `{"offset":5,"epoch":"e0"}`, 1, 0},
		{"NoEpoch", `{"offset":5}`, 1, 0},
		{"OffsetInTheFuture", `{"offset":11,"epoch":"e1"}`, 1, 0},
		{"OffsetAtTheEndOfUint64", `{"offset":18446744073709551615,"epoch":"e1"}`, 1, 0},
		{"HistoryPruned", `{"offset":3,"epoch":"e1"}`, 5, 0},
		{"HistoryPrunedFromZero", `{"offset":0,"epoch":"e1"}`, 2, 0},
		{"MoreThanMaxReplayBehind", `{"offset":4,"epoch":"e1"}`, 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist := newHistory()
			hist.add("books", 1, 10)
			hist.prune("books", tt.firstKept-1)
			e := newEnv(t, withHistory(hist, func(o *hub.Options) { o.MaxReplay = tt.maxReplay }))
			c := e.dial(t, "")
			c.sendText(`{"type":"subscribe","channel":"books","since":` + tt.since + `}`)
			// The channel's current position: the client refetches up to
			// it, and the subscription continues after it.
			c.expectJSON(subscribedJSON("books", false, 10))
			e.publishRange("books", 10, 11)
			c.expectEvent("books", 11)
			c.sync()
			e.obs.waitFor(t, "the resume counted", func() bool { return e.obs.notRecovered == 1 })
		})
	}
	t.Run("OKExactlyMaxReplayBehind", func(t *testing.T) {
		hist := newHistory()
		hist.add("books", 1, 10)
		e := newEnv(t, withHistory(hist, func(o *hub.Options) { o.MaxReplay = 5 }))
		c := e.dial(t, "")
		c.sendText(resumeMsg("books", 5, epoch))
		c.expectJSON(subscribedJSON("books", true, 5))
		c.expectEvents("books", 6, 10)
	})
}

func TestResumeLongReplayIsPaced(t *testing.T) {
	const queue, total = 16, 200
	hist := newHistory()
	hist.add("books", 1, total)
	e := newEnv(t, withHistory(hist, func(o *hub.Options) { o.SendQueueMessages = queue }))
	c := e.dial(t, "")
	c.sendText(resumeMsg("books", 0, epoch))
	c.expectJSON(subscribedJSON("books", true, 0))
	c.expectEvents("books", 1, total)
	c.sync()
	e.obs.mu.Lock()
	slow := e.obs.slow
	e.obs.mu.Unlock()
	if slow != 0 {
		t.Fatalf("%d slow consumers during a paced replay", slow)
	}
	calls := hist.callsSoFar()
	if len(calls) < total/queue {
		t.Errorf("history read %d times for %d events, want chunks", len(calls), total)
	}
	for _, call := range calls {
		if call.limit > queue/2 {
			t.Errorf("history read with limit %d, more than half the queue of %d", call.limit, queue)
		}
	}
}

// bigEntries makes every history entry 64 KiB, so that a client that stops
// reading stalls the writer once the socket buffers are full.
const bigEntry = 64 << 10

func bigHistory(channel string, n uint64) *fakeHistory {
	hist := newHistory()
	hist.pad = strings.Repeat("x", bigEntry)
	hist.add(channel, 1, n)
	return hist
}

// TestResumeSlowClient replays to clients (and from a database) slower
// than the limits that bound one step of the replay.
func TestResumeSlowClient(t *testing.T) {
	t.Run("OKClientPausesLongerThanHistoryTimeout", func(t *testing.T) {
		const total = 200
		hist := bigHistory("books", total)
		e := newEnv(t, withHistory(hist, func(o *hub.Options) {
			o.SendQueueMessages = 16
			o.SendQueueBytes = 1 << 30
			o.HistoryTimeout = 200 * time.Millisecond
		}))
		c := e.dial(t, "")
		c.ws.SetReadLimit(-1)
		c.sendText(resumeMsg("books", 0, epoch))
		c.expectJSON(subscribedJSON("books", true, 0))
		<-time.After(1 * time.Second) // a slow client, not a wait for the hub
		c.expectEvents("books", 1, total)
		c.sync()
	})
	t.Run("OKSlowHistoryOutlastsThePingTimeout", func(t *testing.T) {
		// The reader goroutine, which would read the pong, is busy with
		// the replay: that must not look like a dead peer.
		const total = 80
		hist := newHistory()
		hist.add("books", 1, total)
		hist.delay = 60 * time.Millisecond
		e := newEnv(t, withHistory(hist, func(o *hub.Options) {
			o.SendQueueMessages = 16
			o.PingInterval = 20 * time.Millisecond
			o.WriteTimeout = 200 * time.Millisecond
		}))
		c := e.dial(t, "")
		c.sendText(resumeMsg("books", 0, epoch))
		c.expectJSON(subscribedJSON("books", true, 0))
		c.expectEvents("books", 1, total)
		c.sync()
	})
	t.Run("OKLiveEventsHeldAtTheEndOfAStalledReplay", func(t *testing.T) {
		// The replay ends with the queue as full as pacing allows; the
		// live events held meanwhile must not overflow it.
		const queue, total = 16, 200
		const held = queue - 1
		hist := bigHistory("books", total)
		final, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		hist.gate = func(c historyCall) <-chan struct{} {
			if c.after+uint64(c.limit) < total {
				return nil
			}
			once.Do(func() { close(final) })
			return release
		}
		e := newEnv(t, withHistory(hist, func(o *hub.Options) {
			o.SendQueueMessages = queue
			o.SendQueueBytes = 1 << 30
		}))
		c := e.dial(t, "")
		c.ws.SetReadLimit(-1)
		c.sendText(resumeMsg("books", 0, epoch))
		c.expectJSON(subscribedJSON("books", true, 0))
		next := uint64(1)
		for ; ; next++ {
			select {
			case <-final:
			default:
				c.expectEvent("books", next)
				continue
			}
			break
		}
		hist.add("books", total+1, total+held)
		e.publishRange("books", total+1, total+held)
		close(release)
		c.expectEvents("books", next, total+held)
		c.sync()
	})
	t.Run("OKWriterDeathEndsAStalledReplay", func(t *testing.T) {
		hist := bigHistory("books", 200)
		e := newEnv(t, withHistory(hist, func(o *hub.Options) {
			o.SendQueueMessages = 16
			o.SendQueueBytes = 1 << 30
			o.WriteTimeout = 200 * time.Millisecond
		}))
		c := e.dial(t, "")
		began := time.Now()
		c.sendText(resumeMsg("books", 0, epoch)) // and never reads again
		got := e.obs.waitDisconnects(t, 1)
		if got[0] != hub.ReasonWriteError {
			t.Errorf("disconnect reason %q, want %q", got[0], hub.ReasonWriteError)
		}
		// Within a few write timeouts, not when some longer bound expires.
		if waited := time.Since(began); waited > 2*time.Second {
			t.Errorf("connection cleaned up %v after its writer stalled", waited)
		}
		if s := e.hub.Stats(); s != (hub.Stats{}) {
			t.Errorf("Stats = %+v, want zero", s)
		}
	})
}

// TestResumeLaterChunkSkipsAhead prunes the history between two chunks of
// one replay: the client is told, rather than handed a silent gap.
func TestResumeLaterChunkSkipsAhead(t *testing.T) {
	hist := newHistory()
	hist.add("books", 1, 40)
	var once sync.Once
	hist.gate = func(c historyCall) <-chan struct{} {
		if c.after >= 4 {
			once.Do(func() {
				hist.mu.Lock()
				all := hist.entries["books"]
				hist.entries["books"] = all[19:] // 1..19 pruned: 5..19 lost
				hist.mu.Unlock()
			})
		}
		return nil
	}
	hist.readLate = true
	e := newEnv(t, withHistory(hist, func(o *hub.Options) { o.SendQueueMessages = 16 }))
	c := e.dial(t, "")
	c.sendText(resumeMsg("books", 0, epoch))
	c.expectJSON(subscribedJSON("books", true, 0))
	var got []uint64
	sawIncomplete := false
	for len(got) == 0 || got[len(got)-1] < 40 {
		m := c.read()
		switch m["type"] {
		case "event":
			got = append(got, uint64(m["offset"].(float64)))
		case "incomplete":
			if sawIncomplete || m["channel"] != "books" || m["epoch"] != epoch || len(got) == 0 ||
				m["offset"] != float64(got[len(got)-1]) {
				t.Fatalf("incomplete frame %v after events %v", m, got)
			}
			sawIncomplete = true
		default:
			t.Fatalf("unexpected frame %v", m)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 && !sawIncomplete {
			t.Fatalf("events %v skip from %d to %d without an incomplete frame", got, got[i-1], got[i])
		}
		if got[i] <= got[i-1] {
			t.Fatalf("events %v are not increasing", got)
		}
	}
	if !sawIncomplete {
		t.Fatalf("events %v, want an incomplete frame at the skip", got)
	}
}

func TestResumeMisbehavingHistory(t *testing.T) {
	// Entries at or below after would otherwise be read again and again.
	hist := newHistory()
	hist.add("books", 1, 40)
	hist.ignoreAfter = true
	e := newEnv(t, withHistory(hist, func(o *hub.Options) { o.SendQueueMessages = 16 }))
	c := e.dial(t, "")
	c.sendText(resumeMsg("books", 0, epoch))
	c.expectJSON(subscribedJSON("books", true, 0))
	c.expectEvents("books", 1, 4) // the first chunk
	c.expectJSON(`{"type":"incomplete","channel":"books","offset":4,"epoch":"e1","message":"` + incompleteMessage + `"}`)
	e.publishRange("books", 41, 41)
	c.expectEvent("books", 41)
	c.sync()
}

func TestResumeHistoryFailsMidReplay(t *testing.T) {
	hist := newHistory()
	hist.add("books", 1, 40)
	hist.gate = func(c historyCall) <-chan struct{} {
		if c.after > 0 {
			hist.mu.Lock()
			hist.err = errDown
			hist.mu.Unlock()
		}
		return nil
	}
	hist.readLate = true
	e := newEnv(t, withHistory(hist, func(o *hub.Options) { o.SendQueueMessages = 16 }))
	c := e.dial(t, "")
	c.sendText(`{"type":"subscribe","channel":"books","id":"m","since":{"offset":0,"epoch":"e1"}}`)
	c.expectJSON(`{"type":"subscribed","id":"m","channel":"books","recovered":true,"offset":0,"epoch":"e1"}`)
	c.expectEvents("books", 1, 4)
	// The client knows where it got to, and that it is no longer
	// subscribed: it resumes again from offset 4.
	if m := c.expectType("error"); m["code"] != "history_unavailable" || m["id"] != "m" {
		t.Fatalf("error frame %v, want history_unavailable with id m", m)
	}
	e.publishRange("books", 41, 41)
	c.sync()
	if s := e.hub.Stats(); s.Subscriptions != 0 {
		t.Fatalf("Stats = %+v, want no subscription", s)
	}
}

func TestResumeHistoryUnavailable(t *testing.T) {
	hist := newHistory()
	hist.add("books", 1, 5)
	hist.setErr(errDown)
	e := newEnv(t, withHistory(hist))
	c := e.dial(t, "")
	c.sendText(`{"type":"subscribe","channel":"books","id":7,"since":{"offset":2,"epoch":"e1"}}`)
	m := c.expectType("error")
	if m["code"] != "history_unavailable" || m["id"] != 7.0 || m["message"] == "" {
		t.Fatalf("error frame %v, want history_unavailable with id 7", m)
	}
	e.publishRange("books", 6, 6)
	c.sync() // not subscribed: no event came first
	if s := e.hub.Stats(); s.Subscriptions != 0 {
		t.Fatalf("Stats = %+v, want no subscription", s)
	}

	t.Run("OKOnceHistoryIsBack", func(t *testing.T) {
		hist.setErr(nil)
		hist.add("books", 6, 6)
		c.sendText(resumeMsg("books", 2, epoch))
		c.expectJSON(subscribedJSON("books", true, 2))
		c.expectEvents("books", 3, 6)
	})
	t.Run("ErrWithoutHistory", func(t *testing.T) {
		e := newEnv(t, nil)
		c := e.dial(t, "")
		c.sendText(resumeMsg("books", 2, epoch))
		if m := c.expectType("error"); m["code"] != "history_unavailable" {
			t.Fatalf("error frame %v, want history_unavailable", m)
		}
		c.sync()
	})
}

func TestResumeBadSince(t *testing.T) {
	hist := newHistory()
	hist.add("books", 1, 5)
	// Room for the long epoch below, so the hub rather than the read
	// limit has to refuse it.
	e := newEnv(t, withHistory(hist, func(o *hub.Options) { o.ReadLimit = 32 << 10 }))
	c := e.dial(t, "")
	tests := []struct{ name, since string }{
		{"Negative", `{"offset":-1,"epoch":"e1"}`},
		{"NonNumeric", `{"offset":"abc","epoch":"e1"}`},
		{"Float", `{"offset":1.5,"epoch":"e1"}`},
		{"Exponent", `{"offset":1e3,"epoch":"e1"}`},
		{"HugerThanUint64", `{"offset":18446744073709551616,"epoch":"e1"}`},
		{"ThousandDigits", `{"offset":` + strings.Repeat("9", 1000) + `,"epoch":"e1"}`},
		{"NoOffset", `{"epoch":"e1"}`},
		{"NullOffset", `{"offset":null,"epoch":"e1"}`},
		{"BoolOffset", `{"offset":true,"epoch":"e1"}`},
		{"EmptyObject", `{}`},
		{"Number", `120`},
		{"String", `"120"`},
		{"Array", `[120,"e1"]`},
		{"EpochNotAString", `{"offset":1,"epoch":7}`},
		{"TenKilobyteEpoch", `{"offset":1,"epoch":"` + strings.Repeat("e", 10<<10) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendText(`{"type":"subscribe","channel":"books","id":"b","since":` + tt.since + `}`)
			m := c.expectType("error")
			if m["code"] != "bad_since" || m["id"] != "b" || m["message"] == "" {
				t.Fatalf("error frame %v, want bad_since with id b", m)
			}
			c.sync() // the connection stays usable
		})
	}
	if calls := hist.callsSoFar(); len(calls) != 0 {
		t.Errorf("history read %d times for refused resumes", len(calls))
	}
	if s := e.hub.Stats(); s.Subscriptions != 0 {
		t.Errorf("Stats = %+v, want no subscription", s)
	}
	t.Run("OKNullSinceIsAPlainSubscribe", func(t *testing.T) {
		c.roundTrip(`{"type":"subscribe","channel":"books","since":null}`, `{"type":"subscribed","channel":"books"}`)
	})
}

func TestResumeAtConnect(t *testing.T) {
	hist := newHistory()
	hist.add("books", 1, 10)
	hist.add("books:7", 1, 3)
	e := newEnv(t, withHistory(hist))

	t.Run("OKEachChannelResumes", func(t *testing.T) {
		c := e.dial(t, "subscribe=books,books:7&since=8,1&epoch="+epoch)
		c.expectJSON(subscribedJSON("books", true, 8))
		c.expectEvents("books", 9, 10)
		c.expectJSON(subscribedJSON("books:7", true, 1))
		c.expectEvents("books:7", 2, 3)
		e.hub.Publish(hub.Publication{Data: entryData("books", 11, ""), Positions: []hub.Position{
			{Channel: "books", Offset: 11, Epoch: epoch}, {Channel: "books:7", Offset: 4, Epoch: epoch}}})
		m := c.expectType("event")
		n := c.expectType("event")
		if m["channel"] != "books" || m["offset"] != 11.0 || n["channel"] != "books:7" || n["offset"] != 4.0 {
			t.Fatalf("live frames %v then %v, want books 11 then books:7 4", m, n)
		}
	})
	t.Run("OKRepeatedSinceParameters", func(t *testing.T) {
		c := e.dial(t, "subscribe=books&subscribe=books:7&since=10&since=3&epoch="+epoch)
		c.expectJSON(subscribedJSON("books", true, 10))
		c.expectJSON(subscribedJSON("books:7", true, 3))
		c.sync()
	})
	t.Run("OKWithoutEpochIsNotRecovered", func(t *testing.T) {
		c := e.dial(t, "subscribe=books&since=3")
		c.expectJSON(subscribedJSON("books", false, 10))
		c.sync()
	})

	refused := []struct{ name, query string }{
		{"FewerOffsetsThanChannels", "subscribe=books,books:7&since=3"},
		{"MoreOffsetsThanChannels", "subscribe=books&since=3,4"},
		{"SinceWithoutSubscribe", "since=3"},
		{"Negative", "subscribe=books&since=-1"},
		{"NonNumeric", "subscribe=books&since=abc"},
		{"Float", "subscribe=books&since=1.5"},
		{"HugerThanUint64", "subscribe=books&since=18446744073709551616"},
		{"Empty", "subscribe=books&since="},
		{"TrailingComma", "subscribe=books&since=3,"},
		{"Spaces", "subscribe=books&since=+3"},
		{"ManyOffsets", "subscribe=books&since=" + strings.Repeat("1,", 100000) + "1"},
		{"TenKilobyteEpoch", "subscribe=books&since=3&epoch=" + strings.Repeat("e", 10<<10)},
	}
	for _, tt := range refused {
		t.Run("BadRequest"+tt.name, func(t *testing.T) {
			expectRefused(t, e.url+"?"+tt.query, http.StatusBadRequest)
		})
	}
	if calls := hist.callsSoFar(); len(calls) != 5 {
		t.Errorf("history read %d times, want 5 (only for the accepted resumes)", len(calls))
	}
	t.Run("BadRequestWithoutHistory", func(t *testing.T) {
		e := newEnv(t, nil)
		expectRefused(t, e.url+"?subscribe=books&since=3&epoch="+epoch, http.StatusBadRequest)
	})
}

// expectRefused dials u and expects a problem response before the upgrade.
func expectRefused(t *testing.T, u string, status int) {
	t.Helper()
	ws, resp, err := websocket.Dial(testContext(t), u, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer alice"}},
	})
	if err == nil {
		ws.CloseNow()
		t.Fatalf("dial %.80s succeeded, want %d", u, status)
	}
	if resp == nil || resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("dial %.80s: resp %v err %v, want a %d problem", u, resp, err, status)
	}
}

func TestResumeRestartsASubscription(t *testing.T) {
	hist := newHistory()
	hist.add("books", 1, 3)
	e := newEnv(t, withHistory(hist))
	c := e.dial(t, "subscribe=books")
	c.expectJSON(`{"type":"subscribed","channel":"books"}`)
	e.publishRange("books", 1, 3)
	c.expectEvents("books", 1, 3)
	// A client may rewind: the resume replaces the subscription, so
	// offsets it was already sent come again, once.
	c.sendText(resumeMsg("books", 1, epoch))
	c.expectJSON(subscribedJSON("books", true, 1))
	c.expectEvents("books", 2, 3)
	e.publishRange("books", 3, 4)
	c.expectEvent("books", 4)
	c.sync()
	if s := e.hub.Stats(); s.Subscriptions != 1 {
		t.Fatalf("Stats = %+v, want one subscription", s)
	}
}

func TestPublishNeverRepeatsAnOffset(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "subscribe=books,books:1")
	c.expectType("subscribed")
	c.expectType("subscribed")
	both := func(books, book uint64) hub.Publication {
		return hub.Publication{Data: entryData("books", books, ""), Positions: []hub.Position{
			{Channel: "books", Offset: books, Epoch: epoch}, {Channel: "books:1", Offset: book, Epoch: epoch}}}
	}
	e.hub.Publish(live("books", 5))
	e.hub.Publish(live("books", 5)) // at least once from the bus
	e.hub.Publish(live("books", 3)) // older
	e.hub.Publish(both(5, 1))       // books a duplicate, books:1 new
	e.hub.Publish(pub([]string{"books"}, []byte(`{"id":"unsequenced"}`)))
	e.hub.Publish(pub([]string{"books"}, []byte(`{"id":"unsequenced"}`)))
	e.hub.Publish(live("books", 6))
	c.expectEvent("books", 5)
	c.expectJSON(`{"type":"event","channel":"books:1","offset":1,"epoch":"e1","id":"books/5"}`)
	c.expectJSON(`{"type":"event","channel":"books","id":"unsequenced"}`)
	c.expectJSON(`{"type":"event","channel":"books","id":"unsequenced"}`)
	c.expectEvent("books", 6)
	c.sync()

	// Offsets are comparable only within an epoch: after a history reset,
	// offset 1 is news.
	e.hub.Publish(hub.Publication{Data: []byte(`{"id":"new"}`),
		Positions: []hub.Position{{Channel: "books", Offset: 1, Epoch: "e2"}}})
	c.expectJSON(`{"type":"event","channel":"books","offset":1,"epoch":"e2","id":"new"}`)
	c.sync()
}

func TestPublishConcurrentDuplicates(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.SendQueueMessages = 1 << 16 })
	c := e.dial(t, "subscribe=books")
	c.expectType("subscribed")
	const n, publishers = 200, 4
	var wg sync.WaitGroup
	for range publishers { // each publishes every offset: at least once, in order
		wg.Go(func() { e.publishRange("books", 1, n) })
	}
	wg.Wait()
	var last uint64
	for {
		m := c.expectType("event")
		off := uint64(m["offset"].(float64))
		if off <= last {
			t.Fatalf("offset %d after %d", off, last)
		}
		last = off
		if off == n {
			break
		}
	}
	c.sync()
}

func TestIncompleteFrame(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "subscribe=books,books:7")
	c.expectType("subscribed")
	c.expectType("subscribed")
	e.hub.Publish(hub.Publication{Data: entryData("books", 5, ""), Positions: []hub.Position{
		{Channel: "books", Offset: 5, Epoch: epoch}, {Channel: "books:7", Offset: 2, Epoch: epoch}}})
	c.expectType("event")
	c.expectType("event")
	idle := e.dial(t, "subscribe=books:8")
	idle.expectType("subscribed")

	e.hub.Incomplete(epoch)
	const message = incompleteMessage
	want := map[string]string{
		"books":   `{"type":"incomplete","channel":"books","offset":5,"epoch":"e1","message":"` + message + `"}`,
		"books:7": `{"type":"incomplete","channel":"books:7","offset":2,"epoch":"e1","message":"` + message + `"}`,
	}
	for range 2 { // one per subscription, in no particular order
		raw := c.readRaw()
		var matched bool
		for ch, w := range want {
			if jsonEqual(t, raw, w) {
				delete(want, ch)
				matched = true
			}
		}
		if !matched {
			t.Fatalf("frame %s is not one of the incomplete frames %v", raw, want)
		}
	}
	// A subscription that was sent nothing resumes from the start.
	idle.expectJSON(`{"type":"incomplete","channel":"books:8","offset":0,"epoch":"e1","message":"` + message + `"}`)

	t.Run("OKSubscriptionsContinue", func(t *testing.T) {
		e.hub.Publish(live("books", 6))
		c.expectEvent("books", 6)
		c.sync()
	})
}

// TestResumeWorkIsBounded is the hostile client: a huge since on as many
// channels as it may hold, then again on the same ones.
func TestResumeWorkIsBounded(t *testing.T) {
	hist := newHistory()
	const channels = hub.DefaultMaxSubscriptions
	for i := 1; i <= channels+1; i++ {
		hist.add("books:"+strconv.Itoa(i), 1, 20)
	}
	hist.add("books", 1, 100_000)
	e := newEnv(t, withHistory(hist))
	c := e.dial(t, "")

	t.Run("OKOneReadPerFutureSince", func(t *testing.T) {
		for i := 1; i <= channels; i++ {
			ch := "books:" + strconv.Itoa(i)
			c.sendText(resumeMsg(ch, 1<<62, epoch))
			c.expectJSON(subscribedJSON(ch, false, 20))
		}
		c.sendText(resumeMsg("books:65", 1<<62, epoch))
		if m := c.expectType("error"); m["code"] != "too_many_subscriptions" {
			t.Fatalf("error frame %v, want too_many_subscriptions", m)
		}
		if calls := hist.callsSoFar(); len(calls) != channels {
			t.Fatalf("%d history reads for %d resumes", len(calls), channels)
		}
	})
	t.Run("OKResumingAgainReplaces", func(t *testing.T) {
		before := len(hist.callsSoFar())
		for i := 1; i <= channels; i++ {
			ch := "books:" + strconv.Itoa(i)
			c.sendText(resumeMsg(ch, 0, epoch))
			c.expectJSON(subscribedJSON(ch, true, 0))
			c.expectEvents(ch, 1, 20)
		}
		if s := e.hub.Stats(); s.Subscriptions != channels {
			t.Fatalf("Stats = %+v, want %d subscriptions", s, channels)
		}
		if calls := len(hist.callsSoFar()) - before; calls > 2*channels {
			t.Fatalf("%d history reads for %d replays of 20 events", calls, channels)
		}
	})
	t.Run("OKFarBehindIsOneSmallRead", func(t *testing.T) {
		c.sendText(`{"type":"unsubscribe","channel":"books:1"}`)
		c.expectType("unsubscribed")
		before := len(hist.callsSoFar())
		c.sendText(resumeMsg("books", 0, epoch)) // 100,000 behind: more than MaxReplay
		c.expectJSON(subscribedJSON("books", false, 100_000))
		c.sync()
		calls := hist.callsSoFar()[before:]
		if len(calls) != 1 || calls[0].limit > 500 {
			t.Fatalf("history reads %+v, want one bounded read", calls)
		}
	})
}
