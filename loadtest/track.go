package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// opKind is the kind of one REST write.
type opKind uint8

const (
	opCreate opKind = iota
	opPut
	opPatch
	opDelete
	opKinds
)

func (k opKind) String() string {
	return [...]string{"create", "put", "patch", "delete"}[k]
}

// Write states.
const (
	statePending uint32 = iota
	stateOK
	stateFailed
)

// latencyShards spreads delivery latencies over several histograms so that
// thousands of reader goroutines do not all hit the same counters.
const latencyShards = 16

// writeRec is what the run knows about one write. The writer fills it in;
// subscriber readers update seen and eventID concurrently, hence atomics.
type writeRec struct {
	// start is the write's start in ns since the run began, plus one, so
	// that zero means "not started".
	start atomic.Int64
	state atomic.Uint32
	// seen counts distinct subscribers that received the write's event.
	seen atomic.Int32
	// counted makes sure a complete write is counted toward the drain once.
	counted atomic.Bool
	// eventID is the first event id seen for the write; a different id for
	// the same write means the server published it twice.
	eventID atomic.Pointer[string]
	bookID  atomic.Int64
	// kind is set by the writer before start and read only after the run.
	kind opKind
}

// tracker matches deliveries to writes. It is shared by the writer and all
// subscriber readers; the per-subscriber bookkeeping lives in subscriber.
type tracker struct {
	runStart time.Time
	prefix   string // "lt-<runid>-", the marker prefix of this run's titles
	// prefixBytes is prefix as bytes, for matching titles in frames.
	prefixBytes []byte
	writes      []writeRec
	// deletes maps a deleted book's id to the delete's seq: a delete event
	// carries no new title, so it is matched by book id.
	deletes sync.Map
	// perWrite is how many subscribers each write must reach; it is fixed
	// before the first write.
	perWrite atomic.Int64
	// completeOK counts successful writes that reached every subscriber.
	completeOK atomic.Int64
	// progress is signalled (never blocking) whenever completeOK grows, so
	// the drain can end as soon as the last delivery arrives.
	progress chan struct{}
	lat      [latencyShards]Histogram
	errs     *errorLog
}

func newTracker(runID string, writes int, start time.Time) *tracker {
	return &tracker{
		runStart:    start,
		prefix:      "lt-" + runID + "-",
		prefixBytes: []byte("lt-" + runID + "-"),
		writes:      make([]writeRec, writes),
		progress:    make(chan struct{}, 1),
		errs:        newErrorLog(),
	}
}

// marker is the unique title of write seq.
func (t *tracker) marker(seq int) string { return t.prefix + strconv.Itoa(seq) }

// seqOf returns the seq encoded in a title, or -1 when the title does not
// carry this run's marker.
func (t *tracker) seqOf(title []byte) int {
	rest, ok := bytes.CutPrefix(title, t.prefixBytes)
	if !ok {
		return -1
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, ok := parseUint(rest[:end])
	if !ok || n >= uint64(len(t.writes)) {
		return len(t.writes) // ours, but not a write we made: unexpected
	}
	return int(n)
}

// now returns nanoseconds since the run began, on the monotonic clock.
func (t *tracker) now() int64 { return int64(time.Since(t.runStart)) }

// maybeComplete counts w toward the drain once it has succeeded and reached
// every subscriber. Both the writer (after the response) and readers (after
// a delivery) call it, because either may happen last.
func (t *tracker) maybeComplete(w *writeRec) {
	if w.state.Load() != stateOK || int64(w.seen.Load()) < t.perWrite.Load() {
		return
	}
	if w.counted.CompareAndSwap(false, true) {
		t.completeOK.Add(1)
		select {
		case t.progress <- struct{}{}:
		default:
		}
	}
}

// delivered returns the number of deliveries recorded so far.
func (t *tracker) delivered() uint64 {
	var n uint64
	for i := range t.lat {
		n += t.lat[i].Count()
	}
	return n
}

// subStats is a subscriber's delivery bookkeeping. Only the subscriber's
// reader goroutine touches it until the reader has exited.
type subStats struct {
	// seen is a bitset over write seqs: one bit per write, so a subscriber
	// costs Writes/8 bytes and duplicate detection needs no lock.
	seen         []uint64
	received     int64
	duplicates   int64
	unexpected   int64
	foreign      int64
	lastDelivery int64

	// lastOffset and epoch are the position of the last event received on
	// "books" (0 and "" before the first), for the order check. The hub
	// promises that a subscription's offsets only grow, by one per event.
	lastOffset uint64
	epoch      string
	// outOfOrder counts events whose offset is below the previous one in
	// the same epoch; gaps counts events whose offset skips one or more.
	outOfOrder int64
	gaps       int64

	// frame is reused for every frame, so reading allocates nothing.
	frame frameFields
}

// handle processes one frame received at now (ns since run start) by
// subscriber idx. data is only read during the call.
func (t *tracker) handle(idx int, st *subStats, data []byte, now int64) {
	f := &st.frame
	if err := f.scan(data); err != nil {
		t.errs.add("frame", "malformed JSON frame")
		return
	}
	switch string(f.Type) {
	case "event":
	case "error":
		t.errs.add("server error frame", string(f.Code)+": "+string(f.Message))
		return
	case "incomplete":
		// The server says events may be missing after this offset; the
		// missing count shows whether any of ours were.
		t.errs.add("server incomplete frame", "channel "+string(f.Channel))
		return
	default: // welcome, subscribed, pong: nothing to check
		return
	}
	if string(f.Channel) == "books" {
		st.checkOrder(f.Offset, f.Epoch)
	}
	seq := -1
	if string(f.Event) == "book.deleted" {
		if v, ok := t.deletes.Load(f.BookID); ok {
			seq = v.(int)
		}
	} else {
		seq = t.seqOf(f.Title)
	}
	if seq < 0 {
		if bytes.HasPrefix(f.Title, t.prefixBytes) {
			st.unexpected++
		} else {
			st.foreign++ // someone else's write; not ours to judge
		}
		return
	}
	if seq >= len(t.writes) {
		st.unexpected++
		return
	}
	w := &t.writes[seq]
	start := w.start.Load()
	if start == 0 {
		st.unexpected++
		return
	}
	word, bit := seq/64, uint64(1)<<(seq%64)
	if st.seen[word]&bit != 0 {
		st.duplicates++
		return
	}
	st.seen[word] |= bit
	st.received++
	st.lastDelivery = now
	t.lat[idx%latencyShards].Record(time.Duration(now - (start - 1)))
	if len(f.ID) == 0 {
		t.errs.add("event", "event without id")
	} else if p := w.eventID.Load(); p == nil {
		id := string(f.ID) // once per write, by its first subscriber
		w.eventID.CompareAndSwap(nil, &id)
	} else if *p != string(f.ID) {
		t.errs.add("event", "one write delivered under two event ids")
	}
	w.seen.Add(1)
	t.maybeComplete(w)
}

// checkOrder records an event at offset in epoch on "books". Offset 0 means
// "not sequenced" and is not checked; a new epoch (the history was reset)
// starts the count afresh. A repeat of the last offset is not counted here:
// the duplicate check counts it when it is one of this run's writes.
func (st *subStats) checkOrder(offset uint64, epoch []byte) {
	if offset == 0 {
		return
	}
	if string(epoch) != st.epoch || st.lastOffset == 0 {
		if string(epoch) != st.epoch {
			st.epoch = string(epoch) // allocates once per epoch, not per frame
		}
		st.lastOffset = offset
		return
	}
	switch {
	case offset < st.lastOffset:
		st.outOfOrder++
		return // keep the high-water mark: later events must pass it
	case offset > st.lastOffset+1:
		st.gaps++
	}
	st.lastOffset = offset
}

// maxErrorKeys bounds the error table: a flood of distinct messages must not
// grow memory without bound.
const maxErrorKeys = 200

// errorLog counts errors by kind and normalised message. Errors are rare
// compared with frames, so one mutex is fine here.
type errorLog struct {
	mu     sync.Mutex
	counts map[[2]string]int64
}

func newErrorLog() *errorLog { return &errorLog{counts: make(map[[2]string]int64)} }

func (l *errorLog) add(kind, msg string) {
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	key := [2]string{kind, msg}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.counts[key]; !ok && len(l.counts) >= maxErrorKeys {
		key = [2]string{kind, "(other errors)"}
	}
	l.counts[key]++
}

func (l *errorLog) addErr(kind string, err error) { l.add(kind, describe(err)) }

// list returns the errors, most frequent first.
func (l *errorLog) list() []ErrorCount {
	l.mu.Lock()
	out := make([]ErrorCount, 0, len(l.counts))
	for k, n := range l.counts {
		out = append(out, ErrorCount{Kind: k[0], Message: k[1], Count: n})
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Message < out[j].Message
	})
	return out
}

// describe turns an error into a message that groups well: addresses and
// ports vary per connection, so network errors keep only the operation and
// the cause ("dial: connection refused").
func describe(err error) string {
	if ce := websocket.CloseStatus(err); ce != -1 {
		var cerr websocket.CloseError
		if errors.As(err, &cerr) {
			return fmt.Sprintf("closed by server: status %d %s", ce, cerr.Reason)
		}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Op + ": " + opErr.Err.Error()
	}
	return err.Error()
}
