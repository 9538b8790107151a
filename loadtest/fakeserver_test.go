package loadtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// fakeOptions choose the faults a fakeBookhub injects.
type fakeOptions struct {
	// dropEvent and dupEvent name an event (1-based count of published
	// events) that the first subscriber does not get, or gets twice.
	dropEvent, dupEvent int
	// swapEvent makes the first subscriber get that event after the next
	// one, out of offset order.
	swapEvent int
	// failMethod makes every request with that method answer 500.
	failMethod string
}

// fakeBookhub implements just bookhub's wire protocol: book CRUD under
// /api/v1 and /ws broadcasting an event frame per write to every
// subscriber of "books". Several httptest servers may share one, like
// instances sharing a bus.
type fakeBookhub struct {
	t    *testing.T
	opts fakeOptions

	mu        sync.Mutex
	books     map[int64]map[string]any
	nextID    int64
	published int
	held      []byte // swapEvent's frame, until the next event
	subs      []chan []byte
	remotes   map[string]int // host of every request's RemoteAddr
}

// fakeCluster starts n servers sharing one fakeBookhub and returns their
// base URLs.
func fakeCluster(t *testing.T, n int, opts fakeOptions) (*fakeBookhub, []string) {
	t.Helper()
	f := &fakeBookhub{t: t, opts: opts, books: map[int64]map[string]any{}, remotes: map[string]int{}}
	var urls []string
	for range n {
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return f, urls
}

func (f *fakeBookhub) remoteHosts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.remotes {
		out[k] = v
	}
	return out
}

// role verifies the request's bearer token and returns its role.
func (f *fakeBookhub) role(r *http.Request) (string, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	var c struct {
		Role string `json:"role"`
		jwt.RegisteredClaims
	}
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil || c.Subject == "" {
		return "", false
	}
	return c.Role, true
}

func (f *fakeBookhub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	f.mu.Lock()
	f.remotes[host]++
	f.mu.Unlock()
	role, ok := f.role(r)
	if !ok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.URL.Path == "/ws" {
		f.serveWS(w, r)
		return
	}
	if role != "admin" && role != "editor" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if r.Method == f.opts.failMethod {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	f.serveBooks(w, r)
}

func (f *fakeBookhub) serveBooks(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if r.Method != http.MethodDelete {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var id int64
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/books/"); ok {
		id, _ = strconv.ParseInt(rest, 10, 64)
	} else if r.URL.Path != "/api/v1/books" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	book := f.books[id]
	if id != 0 && book == nil {
		http.NotFound(w, r)
		return
	}
	event, status := "book.updated", http.StatusOK
	switch r.Method {
	case http.MethodPost:
		f.nextID++
		id, event, status = f.nextID, "book.created", http.StatusCreated
		book = map[string]any{"id": id, "isbn": nil, "version": 1}
		f.books[id] = book
	case http.MethodPut, http.MethodPatch:
		book["version"] = book["version"].(int) + 1
	case http.MethodDelete:
		delete(f.books, id)
		event, status = "book.deleted", http.StatusNoContent
	}
	for k, v := range body {
		book[k] = v
	}
	f.publish(map[string]any{
		"type": "event", "channel": "books", "offset": f.published + 1, "epoch": "fake-epoch",
		"id":    fmt.Sprintf("ev-%d", f.published+1),
		"event": event, "book_id": id, "book": book, "at": time.Now().UTC(), "origin": "fake",
	})
	w.Header().Set("ETag", fmt.Sprintf(`"%d"`, book["version"]))
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(book)
}

// publish sends an event to every subscriber, before the REST response,
// so deliveries can beat responses as they may in bookhub. f.mu is held.
func (f *fakeBookhub) publish(ev map[string]any) {
	f.published++
	data, err := json.Marshal(ev)
	if err != nil {
		f.t.Errorf("encode event: %v", err)
		return
	}
	for i, ch := range f.subs {
		if i == 0 && f.published == f.opts.dropEvent {
			continue
		}
		if i == 0 && f.published == f.opts.swapEvent {
			f.held = data
			continue
		}
		frames := [][]byte{data}
		if i == 0 && f.published == f.opts.dupEvent {
			frames = append(frames, data)
		}
		if i == 0 && f.held != nil && f.published == f.opts.swapEvent+1 {
			frames, f.held = append(frames, f.held), nil
		}
		for _, fr := range frames {
			select {
			case ch <- fr:
			default:
				f.t.Errorf("subscriber %d queue full", i)
			}
		}
	}
}

func (f *fakeBookhub) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())
	write := func(v any) error {
		data, _ := json.Marshal(v)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return c.Write(wctx, websocket.MessageText, data)
	}
	if err := write(map[string]any{"type": "welcome", "instance": "fake"}); err != nil {
		return
	}
	if r.URL.Query().Get("subscribe") != "books" {
		return
	}
	ch := make(chan []byte, 1024)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	if err := write(map[string]any{"type": "subscribed", "channel": "books"}); err != nil {
		return
	}
	for {
		select {
		case data := <-ch:
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Write(wctx, websocket.MessageText, data)
			cancel()
			if err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// fakeMetrics is an instance's metrics listener whose readings follow a
// script: reading k (0 before connecting, 1 at idle, 2 at the end) reports
// page(k). It counts the garbage collections it is asked for.
type fakeMetrics struct {
	URL  string
	gcs  atomic.Int32
	read atomic.Int32
}

func newFakeMetrics(t *testing.T, page func(k int) string) *fakeMetrics {
	t.Helper()
	m := &fakeMetrics{}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		k := int(m.read.Add(1) - 1)
		_, _ = io.WriteString(w, page(k))
	})
	mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			m.gcs.Add(1)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// metricsPage renders the series the load test reads.
func metricsPage(cpu, rss, heap, stack, goroutines, frames float64) string {
	return fmt.Sprintf("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n"+
		"process_resident_memory_bytes %g\ngo_memstats_heap_inuse_bytes %g\ngo_memstats_stack_inuse_bytes %g\n"+
		"go_goroutines %g\nbookhub_ws_frames_delivered_total{instance_name=\"fake\"} %g\n",
		cpu, rss, heap, stack, goroutines, frames)
}
