package loadtest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// trackerWith returns a tracker whose writes 0..n-1 have started and
// succeeded, and a subscriber's stats for it.
func trackerWith(t *testing.T, n int) (*tracker, *subStats) {
	t.Helper()
	tr := newTracker("t1", n, time.Now())
	for i := range n {
		tr.writes[i].start.Store(1)
		tr.writes[i].state.Store(stateOK)
	}
	tr.perWrite.Store(1)
	return tr, &subStats{seen: make([]uint64, (n+63)/64)}
}

func event(offset int, id, ev string, bookID int, title string) []byte {
	return fmt.Appendf(nil, `{"type":"event","channel":"books","offset":%d,"epoch":"e1","id":%q,"event":%q,"book_id":%d,"book":{"title":%q}}`,
		offset, id, ev, bookID, title)
}

func TestHandle(t *testing.T) {
	t.Run("MatchesByTitleAndCountsOnce", func(t *testing.T) {
		tr, st := trackerWith(t, 3)
		tr.handle(0, st, event(1, "a", "book.created", 10, "lt-t1-0"), 5)
		tr.handle(0, st, event(2, "b", "book.updated", 10, "lt-t1-2"), 6)
		tr.handle(0, st, event(2, "b", "book.updated", 10, "lt-t1-2"), 7) // the same frame again
		if st.received != 2 || st.duplicates != 1 || st.unexpected != 0 || st.foreign != 0 || st.outOfOrder != 0 || st.gaps != 0 {
			t.Errorf("stats = %+v, want 2 received and 1 duplicate", st)
		}
		if tr.writes[0].seen.Load() != 1 || tr.writes[2].seen.Load() != 1 || tr.writes[1].seen.Load() != 0 {
			t.Error("seen counts do not match the frames")
		}
		if tr.completeOK.Load() != 2 {
			t.Errorf("complete writes = %d, want 2", tr.completeOK.Load())
		}
		if tr.delivered() != 2 {
			t.Errorf("latency samples = %d, want 2", tr.delivered())
		}
	})
	t.Run("EscapedTitleStillMatches", func(t *testing.T) {
		tr, st := trackerWith(t, 2)
		tr.handle(0, st, []byte(`{"type":"event","channel":"books","id":"x","event":"book.updated","book":{"title":"\u006ct-t1-1"}}`), 1)
		if st.received != 1 || tr.writes[1].seen.Load() != 1 {
			t.Errorf("stats = %+v; an escaped marker must match like a plain one", st)
		}
	})
	t.Run("DeleteMatchesByBookID", func(t *testing.T) {
		tr, st := trackerWith(t, 4)
		tr.deletes.Store(int64(42), 3)
		tr.handle(0, st, event(1, "d", "book.deleted", 42, "lt-t1-2"), 1)
		if st.received != 1 || tr.writes[3].seen.Load() != 1 || tr.writes[2].seen.Load() != 0 {
			t.Errorf("stats = %+v; the delete must count for write 3, not for its title's write 2", st)
		}
		tr.handle(0, st, event(2, "d2", "book.deleted", 43, "lt-t1-1"), 2)
		if st.unexpected != 1 {
			t.Errorf("a delete of a book this run did not delete: unexpected = %d, want 1", st.unexpected)
		}
	})
	t.Run("UnexpectedAndForeign", func(t *testing.T) {
		tr, st := trackerWith(t, 2)
		tr.writes[1].start.Store(0) // never started
		for i, title := range []string{"lt-t1-1", "lt-t1-2", "lt-t1-", "lt-t1-99999999999999999999999", "someone else's", "lt-other-1", ""} {
			tr.handle(0, st, event(i+1, "x", "book.updated", 1, title), 1)
		}
		if st.unexpected != 4 || st.foreign != 3 || st.received != 0 {
			t.Errorf("stats = %+v, want 4 unexpected (ours, but no such started write) and 3 foreign", st)
		}
	})
	t.Run("OrderAndGaps", func(t *testing.T) {
		tr, st := trackerWith(t, 8)
		for _, off := range []int{5, 6, 8, 7, 9, 9} {
			tr.handle(0, st, event(off, fmt.Sprint("id", off), "book.updated", 1, fmt.Sprint("lt-t1-", off-5)), 1)
		}
		// 5 6 [gap] 8, then 7 goes back; 9 follows the high-water mark 8;
		// the repeated 9 is a duplicate, not an order fault.
		if st.outOfOrder != 1 || st.gaps != 1 || st.duplicates != 1 {
			t.Errorf("outOfOrder %d, gaps %d, duplicates %d; want 1, 1, 1", st.outOfOrder, st.gaps, st.duplicates)
		}
	})
	t.Run("NewEpochRestartsOrder", func(t *testing.T) {
		tr, st := trackerWith(t, 2)
		tr.handle(0, st, event(50, "a", "book.updated", 1, "lt-t1-0"), 1)
		tr.handle(0, st, []byte(`{"type":"event","channel":"books","offset":1,"epoch":"e2","id":"b","event":"book.updated","book":{"title":"lt-t1-1"}}`), 2)
		if st.outOfOrder != 0 || st.gaps != 0 {
			t.Errorf("outOfOrder %d, gaps %d after a new epoch; want 0, 0", st.outOfOrder, st.gaps)
		}
	})
	t.Run("UnsequencedAndOtherChannelsAreNotOrdered", func(t *testing.T) {
		tr, st := trackerWith(t, 2)
		tr.handle(0, st, event(10, "a", "book.updated", 1, "lt-t1-0"), 1)
		tr.handle(0, st, []byte(`{"type":"event","channel":"books","id":"b","event":"book.updated","book":{"title":"x"}}`), 2)
		tr.handle(0, st, []byte(`{"type":"event","channel":"books:1","offset":2,"epoch":"e1","id":"c","event":"book.updated","book":{"title":"y"}}`), 3)
		if st.outOfOrder != 0 || st.gaps != 0 {
			t.Errorf("outOfOrder %d, gaps %d; want 0, 0", st.outOfOrder, st.gaps)
		}
	})
	t.Run("TwoEventIDsForOneWrite", func(t *testing.T) {
		tr, st := trackerWith(t, 1)
		other := &subStats{seen: make([]uint64, 1)}
		tr.handle(0, st, event(1, "first", "book.created", 1, "lt-t1-0"), 1)
		tr.handle(1, other, event(1, "second", "book.created", 1, "lt-t1-0"), 1)
		if errs := tr.errs.list(); len(errs) != 1 || !strings.Contains(errs[0].Message, "two event ids") {
			t.Errorf("errors = %+v, want one about two event ids", errs)
		}
	})
	t.Run("ServerFrames", func(t *testing.T) {
		tr, st := trackerWith(t, 1)
		for _, fr := range []string{
			`{"type":"welcome","instance":"a"}`,
			`{"type":"subscribed","channel":"books"}`,
			`{"type":"pong"}`,
			`{"type":"error","code":"bad_json","message":"say \"hi\""}`,
			`{"type":"incomplete","channel":"books","offset":3,"epoch":"e1"}`,
			`{"type":"event","book":{"title":`,
			`not json`,
		} {
			tr.handle(0, st, []byte(fr), 1)
		}
		got := map[string]int64{}
		for _, e := range tr.errs.list() {
			got[e.Kind+": "+e.Message] = e.Count
		}
		want := map[string]int64{
			`server error frame: bad_json: say "hi"`: 1,
			"server incomplete frame: channel books": 1,
			"frame: malformed JSON frame":            2,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("errors = %v, want %v", got, want)
		}
		if st.received+st.unexpected+st.foreign != 0 {
			t.Errorf("stats = %+v; no frame here is a delivery", st)
		}
	})
}

func TestHandleAllocatesNothing(t *testing.T) {
	tr, st := trackerWith(t, 64)
	frame := benchFrame(0, "book.updated", tr.marker(0))
	tr.handle(0, st, frame, 1) // stores write 0's event id: once per write
	n := testing.AllocsPerRun(50, func() {
		clear(st.seen)
		st.lastOffset = 0
		tr.handle(0, st, frame, 2) // the id is known now: compare only
	})
	if n != 0 {
		t.Errorf("handle: %.1f allocations per frame, want 0", n)
	}
}
