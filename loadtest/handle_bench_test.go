package loadtest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkHandleEvent measures the per-delivery hot path: decoding a frame,
// matching it to its write and recording the latency.
func BenchmarkHandleEvent(b *testing.B) {
	const writes = 1024
	t := newTracker("bench", writes, time.Now())
	frames := make([][]byte, writes)
	for i := range frames {
		t.writes[i].start.Store(1)
		t.writes[i].state.Store(stateOK)
		frames[i], _ = json.Marshal(map[string]any{
			"type": "event", "channel": "books", "id": fmt.Sprintf("%032d", i), "event": "book.updated", "book_id": i,
			"book": map[string]any{"id": i, "title": t.marker(i), "author": "bookhub loadtest", "isbn": nil,
				"price": 12.5, "stock": 3, "version": 2, "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"},
			"at": "2025-01-01T00:00:00Z", "origin": "a",
		})
	}
	b.ReportAllocs()
	st := &subStats{seen: make([]uint64, writes/64)}
	i := 0
	for b.Loop() {
		if i%writes == 0 {
			clear(st.seen)
		}
		t.handle(0, st, frames[i%writes], t.now())
		i++
	}
}
