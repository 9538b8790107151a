package redisbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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

// testSecret stands for the deployment secret that every bus of a test
// shares unless the test says otherwise.
const testSecret = "test-secret-of-the-redisbus-tests-0123456789"

// testKey is the signing key of testSecret.
var testKey = redisbus.DeriveSigningKey([]byte(testSecret))

// withKey fills in testKey when opts has no signing key.
func withKey(opts redisbus.Options) redisbus.Options {
	if opts.SigningKey == nil {
		opts.SigningKey = testKey
	}
	return opts
}

// newBus connects to the shared test Redis under prefix, signing with
// testKey unless opts has a key, and closes the bus when t ends.
func newBus(t testing.TB, opts redisbus.Options) *redisbus.Bus {
	t.Helper()
	if opts.URL == "" {
		opts.URL = testenv.Redis(t)
	}
	opts = withKey(opts)
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

// wantNewRefused checks that New fails for opts with an error that
// mentions want and never repeats secret, the password in opts.URL.
func wantNewRefused(t testing.TB, opts redisbus.Options, want, secret string) {
	t.Helper()
	b, err := redisbus.New(testCtx(t, 10*time.Second), withKey(opts))
	if err == nil {
		b.Close()
		t.Fatal("New succeeded, want an error")
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the password: %q", err)
	}
}

// subscribed subscribes a new recorder to sub and waits until an event
// published on pub reaches it, so the subscription is known to be live
// (and pub connected) before a test starts breaking things.
func subscribed(ctx context.Context, t testing.TB, pub, sub *redisbus.Bus) *recorder {
	t.Helper()
	r := newRecorder()
	if err := sub.Subscribe(ctx, r.handle); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	first := testEvent(1)
	if err := pub.Publish(ctx, first); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	r.waitForID(ctx, t, first.ID)
	return r
}

// wantDeliveredOnceInOrder publishes n events and then a last one on pub,
// and checks that every recorder (named for the error message) got exactly
// those, once each, in publish order, with the payload intact.
func wantDeliveredOnceInOrder(ctx context.Context, t testing.TB, pub *redisbus.Bus, n int, recs map[string]*recorder) {
	t.Helper()
	var want []string
	for i := range n {
		ev := testEvent(int64(i + 1))
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		want = append(want, ev.ID)
	}
	// A last event published after the others: once it is in, any
	// duplicate of an earlier one would have arrived before it.
	last := testEvent(int64(n + 1))
	if err := pub.Publish(ctx, last); err != nil {
		t.Fatalf("Publish last: %v", err)
	}
	want = append(want, last.ID)
	for name, r := range recs {
		got := r.waitForID(ctx, t, last.ID)
		if !slices.Equal(ids(got), want) {
			t.Errorf("%s: got %d events, want %d exactly once in publish order", name, len(got), len(want))
			continue
		}
		if first := got[0]; first.BookID != 1 || first.Type != events.BookUpdated || first.Origin != "test" ||
			string(first.Book) != `{"id":1,"title":"Book 1"}` {
			t.Errorf("%s: first event = %+v", name, first)
		}
	}
}

// wantRecoveredOnce checks that the bus logged exactly one lost and one
// restored subscription: one outage, one recovery, no flapping.
func wantRecoveredOnce(t testing.TB, logs *testenv.LogBuffer) {
	t.Helper()
	for _, msg := range []string{"redis subscription lost", "redis subscription restored"} {
		if n := logs.Count(msg); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", msg, n, logs)
		}
	}
}

// benchRoundTrip measures publishing one event on pub until sub's handler
// has it, one event in flight at a time.
func benchRoundTrip(b *testing.B, pub, sub *redisbus.Bus) {
	b.Helper()
	ctx := testCtx(b, 5*time.Minute)
	got := make(chan struct{}, 1)
	if err := sub.Subscribe(ctx, func(events.Event) { got <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	ev := testEvent(1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
