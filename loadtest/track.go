package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
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
	writes   []writeRec
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
		runStart: start,
		prefix:   "lt-" + runID + "-",
		writes:   make([]writeRec, writes),
		progress: make(chan struct{}, 1),
		errs:     newErrorLog(),
	}
}

// marker is the unique title of write seq.
func (t *tracker) marker(seq int) string { return t.prefix + strconv.Itoa(seq) }

// seqOf returns the seq encoded in a title, or -1 when the title does not
// carry this run's marker.
func (t *tracker) seqOf(title string) int {
	rest, ok := strings.CutPrefix(title, t.prefix)
	if !ok {
		return -1
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil || n >= len(t.writes) {
		return len(t.writes) // ours, but not a write we made: unexpected
	}
	return n
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

// frame is the part of a server frame the load test looks at.
type frame struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Event   string `json:"event"`
	BookID  int64  `json:"book_id"`
	Book    *struct {
		Title string `json:"title"`
	} `json:"book"`
	Code    string `json:"code"`
	Message string `json:"message"`
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
}

// handle processes one frame received at now (ns since run start) by
// subscriber idx.
func (t *tracker) handle(idx int, st *subStats, data []byte, now int64) {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.errs.add("frame", "malformed JSON frame")
		return
	}
	switch f.Type {
	case "event":
	case "error":
		t.errs.add("server error frame", f.Code+": "+f.Message)
		return
	default: // welcome, subscribed, pong: nothing to check
		return
	}
	title := ""
	if f.Book != nil {
		title = f.Book.Title
	}
	seq := -1
	if f.Event == "book.deleted" {
		if v, ok := t.deletes.Load(f.BookID); ok {
			seq = v.(int)
		}
	} else {
		seq = t.seqOf(title)
	}
	if seq < 0 {
		if strings.HasPrefix(title, t.prefix) {
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
	if f.ID == "" {
		t.errs.add("event", "event without id")
	} else if p := w.eventID.Load(); p == nil {
		w.eventID.CompareAndSwap(nil, &f.ID)
	} else if *p != f.ID {
		t.errs.add("event", "one write delivered under two event ids")
	}
	w.seen.Add(1)
	t.maybeComplete(w)
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
