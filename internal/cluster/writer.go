package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bookhub/bookhub/events"
)

// Writer makes REST writes (creates, merge patches, deletes) spread over
// several base URLs, typically nginx and each instance directly, and keeps
// going through faults: a write whose target refuses the connection, or
// whose answer is lost or a 502/503/504, is retried on the next target.
// Only writes answered 2xx count as acknowledged; a lost answer may still
// have committed, which is why Check takes the number of events from the
// database's position, not from Writer.
//
// Set the exported fields before Run; the methods are safe for concurrent
// use.
type Writer struct {
	// Targets are base URLs (http://host:port); attempts cycle over them.
	Targets []string
	// Token must hold the admin role (deletes need it).
	Token string
	// Workers is how many writes are in flight at once. Default 4.
	Workers int
	// Rate caps writes per second over all workers; 0 = no cap.
	Rate float64

	done     atomic.Int64
	mu       sync.Mutex
	acked    []Write
	stats    WriterStats
	sequence atomic.Int64
}

// Write is one acknowledged write: the event it must have produced.
type Write struct {
	Type    string // events.BookCreated, BookUpdated or BookDeleted
	BookID  int64
	Version int64 // of the book after the write; 0 for a delete
}

// WriterStats counts what the writes met.
type WriterStats struct {
	// Attempts counts HTTP requests sent or tried.
	Attempts int
	// Refused counts attempts whose connection was refused (nothing sent).
	Refused int
	// Ambiguous counts attempts whose answer was lost: they may have
	// committed.
	Ambiguous int
	// Unavailable counts 502, 503 and 504 answers.
	Unavailable int
	// Rejected lists writes refused for good (any other answer), or given
	// up after too many attempts. Faults must never cause one.
	Rejected []string
}

// maxAttempts bounds the tries of one write: about a minute of outage.
const maxAttempts = 200

// Run makes n writes and returns when they are done or ctx ends.
func (w *Writer) Run(ctx context.Context, n int) {
	workers := w.Workers
	if workers <= 0 {
		workers = 4
	}
	var tick <-chan time.Time
	if w.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / w.Rate))
		defer t.Stop()
		tick = t.C
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 2,
			}}
			defer client.CloseIdleConnections()
			var books []int64 // this worker's live books: no two workers touch one
			for next.Add(1) <= int64(n) {
				if tick != nil {
					select {
					case <-ctx.Done():
						return
					case <-tick:
					}
				}
				if ctx.Err() != nil {
					return
				}
				books = w.one(ctx, client, i, books)
			}
		})
	}
	wg.Wait()
}

// Done counts the writes finished (acknowledged or given up) so far.
func (w *Writer) Done() int { return int(w.done.Load()) }

// Acked returns the acknowledged writes.
func (w *Writer) Acked() []Write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Write(nil), w.acked...)
}

// Stats returns a copy of the counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats
	st.Rejected = append([]string(nil), st.Rejected...)
	return st
}

// one makes one write chosen from the worker's books and returns the
// updated list: mostly creates, then merge patches, some deletes.
func (w *Writer) one(ctx context.Context, client *http.Client, worker int, books []int64) []int64 {
	defer w.done.Add(1)
	seq := w.sequence.Add(1)
	r := rand.IntN(10)
	switch {
	case len(books) < 4 || r < 6:
		body := map[string]any{"title": "soak " + strconv.FormatInt(seq, 10), "author": "bookhub cluster test", "price": 9.99, "stock": 1}
		if b, ok := w.do(ctx, client, worker, seq, http.MethodPost, "/api/v1/books", body, false); ok {
			w.ack(Write{Type: string(events.BookCreated), BookID: b.ID, Version: b.Version})
			books = append(books, b.ID)
		}
	case r < 9:
		id := books[rand.IntN(len(books))]
		if b, ok := w.do(ctx, client, worker, seq, http.MethodPatch, "/api/v1/books/"+strconv.FormatInt(id, 10), map[string]any{"stock": seq % 100}, false); ok {
			w.ack(Write{Type: string(events.BookUpdated), BookID: id, Version: b.Version})
		}
	default:
		i := rand.IntN(len(books))
		id := books[i]
		books = append(books[:i], books[i+1:]...)
		if _, ok := w.do(ctx, client, worker, seq, http.MethodDelete, "/api/v1/books/"+strconv.FormatInt(id, 10), nil, true); ok {
			w.ack(Write{Type: string(events.BookDeleted), BookID: id})
		}
	}
	return books
}

func (w *Writer) ack(x Write) {
	w.mu.Lock()
	w.acked = append(w.acked, x)
	w.mu.Unlock()
}

type bookAnswer struct {
	ID      int64 `json:"id"`
	Version int64 `json:"version"`
}

// do sends one write until a target acknowledges it. ok is false when the
// write was refused for good. A delete answered 404 is done but not
// acknowledged: workers never share books, so the book can only be gone
// because an earlier attempt committed and its answer was lost (nginx
// itself retries a DELETE whose upstream died, as it may for idempotent
// methods).
func (w *Writer) do(ctx context.Context, client *http.Client, worker int, seq int64, method, path string, body any, isDelete bool) (b bookAnswer, ok bool) {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	backoff := 20 * time.Millisecond
	for attempt := range maxAttempts {
		if ctx.Err() != nil {
			return b, false
		}
		target := w.Targets[(worker+int(seq)+attempt)%len(w.Targets)]
		status, answer, err := w.send(ctx, client, method, target+path, payload)
		w.mu.Lock()
		w.stats.Attempts++
		retry := true
		switch {
		case err != nil && errors.Is(err, syscall.ECONNREFUSED):
			w.stats.Refused++
		case err != nil:
			w.stats.Ambiguous++
		case status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
			w.stats.Unavailable++
		case status >= 200 && status < 300:
			retry = false
			ok = true
		case status == http.StatusNotFound && isDelete:
			retry = false
		default:
			retry = false
			w.stats.Rejected = append(w.stats.Rejected, fmt.Sprintf("%s %s%s: %d %s", method, target, path, status, answer))
		}
		w.mu.Unlock()
		if !retry {
			if ok && len(answer) > 0 {
				_ = json.Unmarshal(answer, &b)
			}
			return b, ok
		}
		if (attempt+1)%len(w.Targets) == 0 {
			// Every target failed once: wait before the next round.
			select {
			case <-ctx.Done():
				return b, false
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
	}
	w.mu.Lock()
	w.stats.Rejected = append(w.stats.Rejected, fmt.Sprintf("%s %s: gave up after %d attempts", method, path, maxAttempts))
	w.mu.Unlock()
	return b, false
}

func (w *Writer) send(ctx context.Context, client *http.Client, method, url string, payload []byte) (int, []byte, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.Token)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, answer, nil
}
