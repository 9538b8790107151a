package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/events"
)

// Subscriber is a WebSocket client of the "books" channel that behaves as
// the protocol asks a client to: it tracks the offset of the last event it
// got, and whenever its socket drops it reconnects (with backoff, through
// whatever URL it was given) and resumes with since=<last>&epoch=<epoch>;
// when the stream says it is incomplete it resubscribes with since on the
// open socket. Live events that arrive between an incomplete frame and the
// reply to that resubscribe are discarded: the replay that follows the
// reply delivers them again, in order.
//
// It records what it received rather than trusting it: every offset is
// checked against the ones before (duplicates, order, silent gaps), and a
// running hash over (offset, event id) lets Check compare subscribers.
// Set the exported fields before Run; the methods are safe for concurrent
// use.
type Subscriber struct {
	// Base is the cluster URL, http://host:port (usually nginx).
	Base string
	// Token is a viewer (or better) token.
	Token string
	// Start is where the subscriber's stream begins: the position of a
	// REST snapshot. Its events after Start.Offset are what it must get.
	Start Position
	// Keep records every event's details for Check's audit of the REST
	// writes; it costs memory per event, so one subscriber is enough.
	Keep bool

	mu        sync.Mutex
	last      uint64 // offset of the last event accepted
	epoch     string
	seen      bitset
	maxSeen   uint64
	contig    uint64 // every offset in (Start.Offset, contig] was received
	digest    hash.Hash64
	awaiting  bool // a subscribe with since is unanswered: live events are not trusted
	instance  string
	conns     []string // instance of every connection, in order
	kept      []Event
	stats     SubscriberStats
	ready     chan struct{}
	readyOnce sync.Once
}

// SubscriberStats counts what one subscriber saw.
type SubscriberStats struct {
	// Delivered counts event frames received, duplicates included.
	Delivered int
	// Distinct counts different offsets received.
	Distinct int
	// Duplicated counts event frames of an offset received before.
	Duplicated int
	// OutOfOrder counts new offsets below one received before.
	OutOfOrder int
	// SilentGaps counts events whose offset skipped ahead of the last one
	// with no incomplete frame in between: the one thing the protocol
	// promises never to do.
	SilentGaps int
	// Discarded counts live events ignored while a resubscribe was pending.
	Discarded int
	// Connects counts sockets opened; Resumes counts subscribes with since
	// after the first (reconnects and resubscribes).
	Connects, Resumes int
	// RecoveredFalse counts subscribed replies saying the history could not
	// replay what was missed.
	RecoveredFalse int
	// Incomplete counts incomplete frames.
	Incomplete int
	// EpochChanges counts events of an epoch other than the one resumed in.
	EpochChanges int
	// Errors holds the first error frames and dial errors.
	Errors []string
}

// Event is what a Keep subscriber records of each event it accepts.
type Event struct {
	Offset  uint64
	ID      string
	Type    string
	BookID  int64
	Version int64
}

// maxErrors bounds SubscriberStats.Errors.
const maxErrors = 8

// Run connects and keeps the subscription going until ctx ends.
func (s *Subscriber) Run(ctx context.Context) {
	s.init()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		subscribed, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.instance = ""
		s.noteLocked("session: %v", err)
		s.mu.Unlock()
		if subscribed {
			backoff = 50 * time.Millisecond
		}
		// Jitter spreads a crowd of clients that lost the same instance.
		d := backoff/2 + rand.N(backoff)
		backoff = min(2*backoff, 2*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

func (s *Subscriber) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.digest == nil {
		s.digest = fnv.New64a()
		s.last, s.contig, s.epoch = s.Start.Offset, s.Start.Offset, s.Start.Epoch
		s.ready = make(chan struct{})
	}
}

// Ready is closed once the first subscription is confirmed.
func (s *Subscriber) Ready() <-chan struct{} {
	s.init()
	return s.ready
}

// Instance names the instance of the open connection, "" between
// connections.
func (s *Subscriber) Instance() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instance
}

// Connections lists the instance every connection landed on, in order.
func (s *Subscriber) Connections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.conns...)
}

// Reached reports whether every event in (Start.Offset, offset] arrived.
func (s *Subscriber) Reached(offset uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.contig >= offset
}

// Stats returns a copy of the counters.
func (s *Subscriber) Stats() SubscriberStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Errors = append([]string(nil), st.Errors...)
	return st
}

// Kept returns the recorded events of a Keep subscriber.
func (s *Subscriber) Kept() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.kept...)
}

// missing counts offsets in (Start.Offset, final] never received.
func (s *Subscriber) missing(final uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if final <= s.Start.Offset {
		return 0
	}
	return int(final-s.Start.Offset) - s.seen.countRange(s.Start.Offset+1, final)
}

func (s *Subscriber) sum() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.digest.Sum64()
}

// session runs one socket until it fails; subscribed says whether the
// subscription was confirmed on it.
func (s *Subscriber) session(ctx context.Context) (subscribed bool, err error) {
	s.mu.Lock()
	q := url.Values{"token": {s.Token}, "subscribe": {events.ChannelBooks}}
	if s.epoch != "" {
		q.Set("since", strconv.FormatUint(s.last, 10))
		q.Set("epoch", s.epoch)
	}
	s.awaiting = true
	s.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, resp, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(s.Base, "http")+"/ws?"+q.Encode(), nil)
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close() // the handshake's; the socket lives on in c
	}
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return false, err
	}
	defer func() { _ = c.CloseNow() }()
	c.SetReadLimit(1 << 20)
	s.mu.Lock()
	s.stats.Connects++
	if s.stats.Connects > 1 {
		s.stats.Resumes++
	}
	s.mu.Unlock()

	var buf bytes.Buffer
	for {
		_, r, err := c.Reader(ctx)
		if err != nil {
			return subscribed, err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return subscribed, err
		}
		ok, err := s.handle(ctx, c, buf.Bytes())
		subscribed = subscribed || ok
		if err != nil {
			return subscribed, err
		}
	}
}

// eventHead starts every event frame on "books" (hub.appendEventFrame):
// parsing the offset, epoch and id by hand keeps a thousand subscribers
// from spending the machine on JSON. Anything else is decoded in full.
var eventHead = []byte(`{"type":"event","channel":"books","offset":`)

// frame is a server message, decoded in full.
type frame struct {
	Type      string `json:"type"`
	Channel   string `json:"channel"`
	Instance  string `json:"instance"`
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	ID        string `json:"id"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Event     string `json:"event"`
	BookID    int64  `json:"book_id"`
	Book      struct {
		Version int64 `json:"version"`
	} `json:"book"`
}

// handle reacts to one frame; subscribed reports a confirmed subscription.
func (s *Subscriber) handle(ctx context.Context, c *websocket.Conn, b []byte) (subscribed bool, err error) {
	if off, epoch, id, ok := parseEventHead(b); ok && !s.Keep {
		s.event(off, epoch, id, nil)
		return false, nil
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return false, fmt.Errorf("undecodable frame %q: %w", b, err)
	}
	switch f.Type {
	case "event":
		if f.Channel == events.ChannelBooks {
			s.event(f.Offset, []byte(f.Epoch), []byte(f.ID), &f)
		}
	case "welcome":
		s.mu.Lock()
		s.instance = f.Instance
		s.conns = append(s.conns, f.Instance)
		s.mu.Unlock()
	case "subscribed":
		if f.Channel != events.ChannelBooks {
			return false, nil
		}
		s.mu.Lock()
		s.awaiting = false
		if f.Recovered != nil && !*f.Recovered {
			// The history cannot replay what was missed: the subscription
			// continues live from the channel's position; a real client
			// would refetch over REST. Check counts what was skipped.
			s.stats.RecoveredFalse++
			s.noteLocked("recovered:false after %d, continuing at %d/%s", s.last, f.Offset, f.Epoch)
			s.last, s.epoch = f.Offset, f.Epoch
		}
		s.mu.Unlock()
		s.readyOnce.Do(func() { close(s.ready) })
		return true, nil
	case "incomplete":
		s.mu.Lock()
		s.stats.Incomplete++
		resend := !s.awaiting
		s.mu.Unlock()
		if resend {
			return false, s.resubscribe(ctx, c)
		}
	case "error":
		s.mu.Lock()
		s.noteLocked("error frame %s: %s", f.Code, f.Message)
		awaiting := s.awaiting
		s.mu.Unlock()
		if awaiting && f.Code == "history_unavailable" {
			// Not subscribed: ask again shortly.
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			return false, s.resubscribe(ctx, c)
		}
	}
	return false, nil
}

// resubscribe asks for the events after the last one on the open socket.
func (s *Subscriber) resubscribe(ctx context.Context, c *websocket.Conn) error {
	s.mu.Lock()
	msg, _ := json.Marshal(map[string]any{
		"type": "subscribe", "channel": events.ChannelBooks,
		"since": map[string]any{"offset": s.last, "epoch": s.epoch},
	})
	s.awaiting = true
	s.stats.Resumes++
	s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, msg)
}

// event records one event frame; f is the decoded frame when there is one.
func (s *Subscriber) event(off uint64, epoch, id []byte, f *frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Delivered++
	if s.awaiting {
		s.stats.Discarded++
		return
	}
	if string(epoch) != s.epoch {
		if s.epoch != "" {
			s.stats.EpochChanges++
			s.noteLocked("epoch %s after %s", epoch, s.epoch)
		}
		s.epoch = string(epoch)
	}
	if s.seen.has(off) {
		s.stats.Duplicated++
		return
	}
	s.seen.set(off)
	s.stats.Distinct++
	if off < s.maxSeen {
		s.stats.OutOfOrder++
	}
	if off > s.last+1 {
		s.stats.SilentGaps++
		s.noteLocked("offset %d after %d with no incomplete frame", off, s.last)
	}
	s.maxSeen = max(s.maxSeen, off)
	s.last = max(s.last, off)
	for s.seen.has(s.contig + 1) {
		s.contig++
	}
	fmt.Fprintf(s.digest, "%d:%s\n", off, id)
	if s.Keep && f != nil {
		s.kept = append(s.kept, Event{Offset: off, ID: f.ID, Type: f.Event, BookID: f.BookID, Version: f.Book.Version})
	}
}

func (s *Subscriber) noteLocked(format string, args ...any) {
	if len(s.stats.Errors) < maxErrors {
		s.stats.Errors = append(s.stats.Errors, fmt.Sprintf(format, args...))
	}
}

// parseEventHead reads offset, epoch and id from an event frame on
// "books" laid out as the hub writes it.
func parseEventHead(b []byte) (off uint64, epoch, id []byte, ok bool) {
	rest, ok := bytes.CutPrefix(b, eventHead)
	if !ok {
		return 0, nil, nil, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		off = off*10 + uint64(rest[i]-'0')
		i++
	}
	if i == 0 {
		return 0, nil, nil, false
	}
	if epoch, rest, ok = cutString(rest[i:], `,"epoch":"`); !ok {
		return 0, nil, nil, false
	}
	if id, _, ok = cutString(rest, `,"id":"`); !ok {
		return 0, nil, nil, false
	}
	return off, epoch, id, true
}

// cutString reads the JSON string (without escapes) after prefix.
func cutString(b []byte, prefix string) (value, rest []byte, ok bool) {
	b, ok = bytes.CutPrefix(b, []byte(prefix))
	if !ok {
		return nil, nil, false
	}
	end := bytes.IndexByte(b, '"')
	if end < 0 || bytes.IndexByte(b[:end], '\\') >= 0 {
		return nil, nil, false
	}
	return b[:end], b[end+1:], true
}

// bitset is a growable set of offsets.
type bitset []uint64

func (b bitset) has(i uint64) bool {
	w := i / 64
	return w < uint64(len(b)) && b[w]&(1<<(i%64)) != 0
}

func (b *bitset) set(i uint64) {
	w := i / 64
	for uint64(len(*b)) <= w {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (i % 64)
}

// countRange counts members in [lo, hi].
func (b bitset) countRange(lo, hi uint64) int {
	n := 0
	for i := lo; i <= hi; i++ {
		if b.has(i) {
			n++
		}
	}
	return n
}
