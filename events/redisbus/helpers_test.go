package redisbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/internal/testenv"
)

// testCtx returns a context that ends before the test's own deadline.
func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newBus connects to the shared test Redis under prefix and closes the bus
// when t ends.
func newBus(t testing.TB, opts redisbus.Options) *redisbus.Bus {
	t.Helper()
	if opts.URL == "" {
		opts.URL = testenv.Redis(t)
	}
	b, err := redisbus.New(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// recorder is a non-blocking handler that remembers what it got and signals
// every arrival.
type recorder struct {
	mu     sync.Mutex
	got    []events.Event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) handle(ev events.Event) {
	r.mu.Lock()
	r.got = append(r.got, ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) events() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.got...)
}

// waitFor blocks until cond holds for the received events or ctx ends.
func (r *recorder) waitFor(ctx context.Context, t testing.TB, what string, cond func([]events.Event) bool) []events.Event {
	t.Helper()
	for {
		got := r.events()
		if cond(got) {
			return got
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (have %d events)", what, ctx.Err(), len(got))
		}
	}
}

// waitForID waits until the event with id has arrived.
func (r *recorder) waitForID(ctx context.Context, t testing.TB, id string) []events.Event {
	t.Helper()
	return r.waitFor(ctx, t, "event "+id, func(got []events.Event) bool {
		return containsID(got, id)
	})
}

func containsID(evs []events.Event, id string) bool {
	for _, ev := range evs {
		if ev.ID == id {
			return true
		}
	}
	return false
}

func ids(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func testEvent(bookID int64) events.Event {
	return events.Event{
		ID:     events.NewID(),
		Type:   events.BookUpdated,
		BookID: bookID,
		Book:   json.RawMessage(fmt.Sprintf(`{"id":%d,"title":"Book %d"}`, bookID, bookID)),
		At:     time.Now().UTC().Truncate(time.Microsecond),
		Origin: "test",
	}
}

// logSink collects log lines and signals each write, so tests can wait for
// a log line instead of sleeping.
type logSink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func newLogger() (*slog.Logger, *logSink) {
	s := &logSink{notify: make(chan struct{}, 1)}
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})), s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	n, err := s.buf.Write(p)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return n, err
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) count(substr string) int { return strings.Count(s.String(), substr) }

func (s *logSink) waitFor(ctx context.Context, t testing.TB, substr string) {
	t.Helper()
	for !strings.Contains(s.String(), substr) {
		select {
		case <-s.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for log %q: %v; log so far:\n%s", substr, ctx.Err(), s.String())
		}
	}
}
