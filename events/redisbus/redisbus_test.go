package redisbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/internal/testenv"
)

// Two Bus values with one prefix behave like two bookhub instances.
func TestPublishReachesEveryInstanceOnceInOrder(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		name := "Classic"
		if sharded {
			name = "Sharded"
		}
		t.Run(name, func(t *testing.T) {
			prefix := testenv.Prefix(t)
			a := newBus(t, redisbus.Options{Prefix: prefix, Sharded: sharded})
			b := newBus(t, redisbus.Options{Prefix: prefix, Sharded: sharded})
			ctx := testCtx(t, 60*time.Second)
			ra, rb := newRecorder(), newRecorder()
			if err := a.Subscribe(ctx, ra.handle); err != nil {
				t.Fatalf("Subscribe a: %v", err)
			}
			if err := b.Subscribe(ctx, rb.handle); err != nil {
				t.Fatalf("Subscribe b: %v", err)
			}

			n := 1000
			if sharded {
				n = 100
			}
			wantDeliveredOnceInOrder(ctx, t, a, n, map[string]*recorder{"publishing instance": ra, "other instance": rb})
		})
	}
}

func TestPrefixIsolatesDeployments(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	mine := newBus(t, redisbus.Options{Prefix: testenv.Prefix(t)})
	other := newBus(t, redisbus.Options{Prefix: testenv.Prefix(t)})
	if mine.Channel() == other.Channel() {
		t.Fatalf("both prefixes map to channel %q", mine.Channel())
	}
	rMine, rOther := newRecorder(), newRecorder()
	if err := mine.Subscribe(ctx, rMine.handle); err != nil {
		t.Fatal(err)
	}
	if err := other.Subscribe(ctx, rOther.handle); err != nil {
		t.Fatal(err)
	}
	var last events.Event
	for i := range 10 {
		last = testEvent(int64(i + 1))
		if err := mine.Publish(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	rMine.waitForID(ctx, t, last.ID)

	// Redis handles publishes in order, so once the other deployment has
	// its own later event, anything leaked from mine would be there too.
	own := testEvent(99)
	if err := other.Publish(ctx, own); err != nil {
		t.Fatal(err)
	}
	if got := rOther.waitForID(ctx, t, own.ID); len(got) != 1 {
		t.Errorf("other prefix heard %d events, want only its own", len(got))
	}
}

func TestChannelNameUsesPrefixAndHashTag(t *testing.T) {
	prefix := testenv.Prefix(t)
	b := newBus(t, redisbus.Options{Prefix: prefix})
	if got, want := b.Channel(), prefix+"{books}:events"; got != want {
		t.Errorf("Channel() = %q, want %q", got, want)
	}
}

func TestSubscribeStopsWhenContextEnds(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	b := newBus(t, redisbus.Options{Prefix: testenv.Prefix(t)})

	t.Run("ErrAlreadyCanceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Subscribe(cctx, newRecorder().handle); !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe(canceled ctx) = %v, want context.Canceled", err)
		}
	})

	t.Run("NoDeliveryAfterCancel", func(t *testing.T) {
		subCtx, cancel := context.WithCancel(ctx)
		stopped, staying := newRecorder(), newRecorder()
		if err := b.Subscribe(subCtx, stopped.handle); err != nil {
			t.Fatal(err)
		}
		if err := b.Subscribe(ctx, staying.handle); err != nil {
			t.Fatal(err)
		}
		before := testEvent(1)
		if err := b.Publish(ctx, before); err != nil {
			t.Fatal(err)
		}
		stopped.waitForID(ctx, t, before.ID)

		cancel()
		after := testEvent(2)
		if err := b.Publish(ctx, after); err != nil {
			t.Fatal(err)
		}
		staying.waitForID(ctx, t, after.ID)
		if got := stopped.events(); containsID(got, after.ID) {
			t.Errorf("canceled subscriber got an event published after cancel")
		}
	})
}

func TestNewRefusesBadInput(t *testing.T) {
	const secret = "s3cretPassw0rd"
	tests := []struct {
		name string
		opts redisbus.Options
		want string // substring of the error
	}{
		{"ErrEmptyURL", redisbus.Options{}, "empty URL"},
		{"ErrWrongScheme", redisbus.Options{URL: "http://user:" + secret + "@localhost:6379"}, "scheme"},
		{"ErrUnixScheme", redisbus.Options{URL: "unix:///tmp/redis.sock"}, "scheme"},
		{"ErrBadPort", redisbus.Options{URL: "redis://user:" + secret + "@localhost:notaport/0"}, "invalid URL"},
		{"ErrBadUserinfo", redisbus.Options{URL: "redis://user:" + secret + "@local host/0"}, "invalid URL"},
		{"ErrBadEscapeInPassword", redisbus.Options{URL: "redis://user:%zz" + secret + "@localhost/0"}, "percent-encoding"},
		{"ErrBadDB", redisbus.Options{URL: "redis://:" + secret + "@localhost:6379/abc"}, "database"},
		{"ErrUnknownQueryOption", redisbus.Options{URL: "redis://:" + secret + "@localhost:6379/0?bogus=1"}, "invalid URL"},
		{"ErrPrefixWithHashTag", redisbus.Options{URL: "redis://localhost:6379/0", Prefix: "{x}:"}, "prefix"},
		{"ErrNegativeDialTimeout", redisbus.Options{URL: "redis://localhost:6379/0", DialTimeout: -time.Second}, "negative"},
		{"ErrNegativeHealthCheck", redisbus.Options{URL: "redis://localhost:6379/0", HealthCheckInterval: -time.Second}, "negative"},
		{"ErrNegativePingTimeout", redisbus.Options{URL: "redis://localhost:6379/0", PingTimeout: -time.Second}, "negative"},
		{"ErrNegativeMaxMessageBytes", redisbus.Options{URL: "redis://localhost:6379/0", MaxMessageBytes: -1}, "negative"},
		{"ErrNoSigningKey", redisbus.Options{URL: "redis://localhost:6379/0", SigningKey: []byte{}}, "SigningKey"},
		{"ErrShortSigningKey", redisbus.Options{URL: "redis://localhost:6379/0", SigningKey: []byte("0123456789abcdef")}, "at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantNewRefused(t, tt.opts, tt.want, secret) })
	}

	t.Run("ErrUnreachableNamesHostNotPassword", func(t *testing.T) {
		addr := closedAddr(t)
		wantNewRefused(t, redisbus.Options{URL: "redis://user:" + secret + "@" + addr + "/0", DialTimeout: time.Second}, addr, secret)
	})

	t.Run("ErrWrongPassword", func(t *testing.T) {
		u := testenv.Redis(t)
		u = strings.Replace(u, "://", "://nobody-"+testenv.Prefix(t)+":"+secret+"@", 1)
		wantNewRefused(t, redisbus.Options{URL: u}, "", secret) // credentials the server does not know
	})
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + testenv.FreePorts(t, 1)[0]
}

func TestRefusesBadCalls(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	b := newBus(t, redisbus.Options{Prefix: testenv.Prefix(t)})

	bad := []struct {
		name string
		ev   func() events.Event
	}{
		{"ErrNoID", func() events.Event { ev := testEvent(1); ev.ID = ""; return ev }},
		{"ErrNoType", func() events.Event { ev := testEvent(1); ev.Type = ""; return ev }},
		{"ErrInvalidBookJSON", func() events.Event { ev := testEvent(1); ev.Book = json.RawMessage(`{"id":`); return ev }},
		{"ErrUnknownType", func() events.Event { ev := testEvent(1); ev.Type = "book.hacked"; return ev }},
		{"ErrBookIDZero", func() events.Event { ev := testEvent(1); ev.BookID = 0; return ev }},
		{"ErrBookIDNegative", func() events.Event { ev := testEvent(1); ev.BookID = -1; return ev }},
		{"ErrBookNotObject", func() events.Event { ev := testEvent(1); ev.Book = json.RawMessage(`[1,2]`); return ev }},
	}
	for _, tt := range bad {
		t.Run("Publish"+tt.name, func(t *testing.T) {
			if err := b.Publish(ctx, tt.ev()); err == nil {
				t.Error("Publish accepted the event")
			}
		})
	}
	t.Run("PublishOKBookNull", func(t *testing.T) {
		ev := testEvent(1)
		ev.Type, ev.Book = events.BookDeleted, nil
		if err := b.Publish(ctx, ev); err != nil {
			t.Errorf("Publish of an event without a book = %v", err)
		}
	})
	t.Run("PublishErrTooLarge", func(t *testing.T) {
		small := newBus(t, redisbus.Options{Prefix: testenv.Prefix(t), MaxMessageBytes: 1024})
		ev := testEvent(1)
		ev.Book = json.RawMessage(`{"title":"` + strings.Repeat("x", 1024) + `"}`)
		if err := small.Publish(ctx, ev); !errors.Is(err, redisbus.ErrTooLarge) {
			t.Errorf("Publish of a 1 KiB book with MaxMessageBytes 1024 = %v, want ErrTooLarge", err)
		}
	})
	t.Run("SubscribeErrNilHandler", func(t *testing.T) {
		if err := b.Subscribe(ctx, nil); err == nil {
			t.Error("Subscribe accepted a nil handler")
		}
	})
	t.Run("ErrClosedAfterClose", func(t *testing.T) {
		c := newBus(t, redisbus.Options{Prefix: testenv.Prefix(t)})
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
		if err := c.Publish(ctx, testEvent(1)); !errors.Is(err, events.ErrClosed) {
			t.Errorf("Publish = %v, want ErrClosed", err)
		}
		if err := c.Subscribe(ctx, newRecorder().handle); !errors.Is(err, events.ErrClosed) {
			t.Errorf("Subscribe = %v, want ErrClosed", err)
		}
		if err := c.Ping(ctx); !errors.Is(err, events.ErrClosed) {
			t.Errorf("Ping = %v, want ErrClosed", err)
		}
	})
	t.Run("PingOK", func(t *testing.T) {
		if err := b.Ping(ctx); err != nil {
			t.Errorf("Ping = %v", err)
		}
	})
}

// Close must not return while a handler runs, and must leave no goroutine
// behind.
func TestCloseWaitsForSubscriptions(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	url := testenv.Redis(t)
	before := runtime.NumGoroutine()

	b, err := redisbus.New(ctx, redisbus.Options{URL: url, Prefix: testenv.Prefix(t), SigningKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	blocking := func(events.Event) { once.Do(func() { close(entered); <-release }) }
	if err := b.Subscribe(ctx, blocking); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := b.Subscribe(ctx, newRecorder().handle); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, testEvent(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("handler never called")
	}

	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was still running", err)
	default:
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return after the handler finished")
	}

	// Goroutines of closed connections exit asynchronously; there is no
	// signal to wait on, so poll with a deadline.
	for n := runtime.NumGoroutine(); n > before; n = runtime.NumGoroutine() {
		select {
		case <-ctx.Done():
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// BenchmarkPublish measures a full round trip: publish on one instance,
// delivery to a subscriber of another, through real Redis.
func BenchmarkPublish(b *testing.B) {
	for _, sharded := range []bool{false, true} {
		b.Run("Sharded="+strconv.FormatBool(sharded), func(b *testing.B) {
			prefix := testenv.Prefix(b)
			pub := newBus(b, redisbus.Options{Prefix: prefix, Sharded: sharded})
			sub := newBus(b, redisbus.Options{Prefix: prefix, Sharded: sharded})
			benchRoundTrip(b, pub, sub)
		})
	}
}
