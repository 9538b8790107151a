package redisbus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/internal/testenv"
)

func TestSubscriptionRecoversAfterRedisRestart(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	srv := testenv.StartRedis(t)
	logs := &testenv.LogBuffer{}
	restored := make(chan struct{}, 8)
	pub := newBus(t, redisbus.Options{URL: srv.URL(), DialTimeout: time.Second})
	sub := newBus(t, redisbus.Options{URL: srv.URL(), DialTimeout: time.Second, Logger: logs.Logger(),
		OnRestore: func() { restored <- struct{}{} }})
	r := subscribed(ctx, t, pub, sub)

	srv.Stop()
	logs.WaitFor(ctx, t, "redis subscription lost")

	t.Run("ErrPublishWhileDown", func(t *testing.T) {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		err := pub.Publish(pctx, testEvent(2))
		if err == nil {
			t.Fatal("Publish succeeded with Redis down")
		}
		if errors.Is(err, events.ErrClosed) {
			t.Errorf("Publish = %v, want a connection error", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Publish took %v to fail", d)
		}
	})
	t.Run("ErrPingWhileDown", func(t *testing.T) {
		for _, b := range []*redisbus.Bus{pub, sub} {
			if err := b.Ping(ctx); err == nil {
				t.Error("Ping succeeded with Redis down")
			}
		}
	})

	srv.Start() // on the same port, as a restarted server would be
	// Events published before the subscriber is back are lost (at most
	// once), so publish until one arrives.
	var after events.Event
	for delivered := false; !delivered; {
		after = testEvent(3)
		if err := pub.Publish(ctx, after); err != nil {
			t.Logf("publish while reconnecting: %v", err)
		}
		select {
		case <-r.notify:
			delivered = containsID(r.events(), after.ID)
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("no event delivered after restart; log:\n%s", logs.String())
		}
		if !delivered {
			delivered = containsID(r.events(), after.ID)
		}
	}
	// From here on delivery is reliable again.
	last := testEvent(4)
	if err := pub.Publish(ctx, last); err != nil {
		t.Fatal(err)
	}
	r.waitForID(ctx, t, last.ID)
	if err := sub.Ping(ctx); err != nil {
		t.Errorf("Ping after recovery = %v", err)
	}
	wantRecoveredOnce(t, logs)
	select {
	case <-restored: // the receiver is told, so it can read what it missed
	default:
		t.Error("OnRestore was not called after the subscription came back")
	}
	if len(restored) != 0 {
		t.Errorf("OnRestore called %d more times, want once per loss", len(restored))
	}
}

// A frozen Redis (SIGSTOP) accepts connections and reads nothing: the
// worst case for timeouts, since no socket ever errors. Publish and Ping
// must still return by their deadline, the subscription must notice within
// seconds (with the default health check), and everything must resume on
// SIGCONT.
func TestFrozenRedis(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	srv := testenv.StartRedis(t)
	logs := &testenv.LogBuffer{}
	lostAt := make(chan time.Time, 1)
	onError := func(op string) {
		if op == redisbus.OpSubscribe {
			select {
			case lostAt <- time.Now():
			default:
			}
		}
	}
	pub := newBus(t, redisbus.Options{URL: srv.URL()})
	sub := newBus(t, redisbus.Options{URL: srv.URL(), Logger: logs.Logger(), OnError: onError})
	r := subscribed(ctx, t, pub, sub)

	srv.Freeze()
	frozenAt := time.Now()

	t.Run("ErrPublishWithinDeadline", func(t *testing.T) {
		// More publishes at once than the pool has connections (10 per
		// CPU): some write into the frozen pooled connections, some wait
		// for the pool, some dial a new one and hang in the handshake.
		n := 10*runtime.GOMAXPROCS(0) + 10
		const budget, slack = 2 * time.Second, 500 * time.Millisecond
		errs := make(chan error, n)
		var wg sync.WaitGroup
		start := time.Now()
		for range n {
			wg.Go(func() {
				pctx, cancel := context.WithTimeout(ctx, budget)
				defer cancel()
				start := time.Now()
				err := pub.Publish(pctx, testEvent(2))
				switch d := time.Since(start); {
				case err == nil:
					errs <- errors.New("Publish succeeded with Redis frozen")
				case d > budget+slack:
					errs <- fmt.Errorf("Publish took %v to fail (%w), want at most %v", d, err, budget+slack)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		t.Logf("%d concurrent publishes failed within %v", n, time.Since(start).Round(time.Millisecond))
	})
	t.Run("ErrPingWithinDeadline", func(t *testing.T) {
		for name, b := range map[string]*redisbus.Bus{"publisher": pub, "subscriber": sub} {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			start := time.Now()
			err := b.Ping(pctx)
			d := time.Since(start)
			cancel()
			if err == nil || d > 1500*time.Millisecond {
				t.Errorf("%s: Ping = %v after %v, want an error within 1s", name, err, d)
			}
		}
	})
	t.Run("SubscriptionLostWithinSeconds", func(t *testing.T) {
		// The default watchdog: HealthCheckInterval of silence, then
		// PingTimeout for the pong.
		const within = redisbus.DefaultHealthCheckInterval + redisbus.DefaultPingTimeout + time.Second
		select {
		case at := <-lostAt:
			if d := at.Sub(frozenAt); d > within {
				t.Errorf("subscription declared lost %v after the freeze, want within %v", d, within)
			} else {
				t.Logf("subscription declared lost %v after the freeze", d.Round(time.Millisecond))
			}
		case <-ctx.Done():
			t.Fatalf("subscription never declared lost; log:\n%s", logs)
		}
		logs.WaitFor(ctx, t, "redis subscription lost")
	})

	srv.Thaw()
	thawedAt := time.Now()
	logs.WaitFor(ctx, t, "redis subscription restored")
	t.Logf("subscription restored %v after the thaw", time.Since(thawedAt).Round(time.Millisecond))
	next := testEvent(3)
	if err := pub.Publish(ctx, next); err != nil {
		t.Fatalf("Publish after the thaw: %v", err)
	}
	r.waitForID(ctx, t, next.ID)
	if err := sub.Ping(ctx); err != nil {
		t.Errorf("Ping after the thaw = %v", err)
	}
	wantRecoveredOnce(t, logs)
}

// A link that dies without closing the socket (a partition) is only found
// by the health check.
func TestHealthCheckReplacesSilentlyDeadLink(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	direct := testenv.Redis(t)
	prefix := testenv.Prefix(t)
	px := startProxy(t, direct)
	logs := &testenv.LogBuffer{}
	sub := newBus(t, redisbus.Options{
		URL: px.url(direct), Prefix: prefix, Logger: logs.Logger(),
		HealthCheckInterval: 200 * time.Millisecond, PingTimeout: 200 * time.Millisecond,
	})
	pub := newBus(t, redisbus.Options{Prefix: prefix})
	r := subscribed(ctx, t, pub, sub)

	px.freeze()
	logs.WaitFor(ctx, t, "redis subscription lost")
	logs.WaitFor(ctx, t, "redis subscription restored")
	next := testEvent(2)
	if err := pub.Publish(ctx, next); err != nil {
		t.Fatal(err)
	}
	r.waitForID(ctx, t, next.ID)
}

// proxy forwards TCP to Redis; freeze makes its current connections drop
// all traffic while staying open, like a network partition. New
// connections work normally.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	links  []*link
	wg     sync.WaitGroup
}

type link struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func startProxy(t testing.TB, redisURL string) *proxy {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target += ":6379"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// url is redisURL with the proxy as host.
func (p *proxy) url(redisURL string) string {
	u, _ := url.Parse(redisURL)
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		p.links = append(p.links, l)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, c, s)
		go p.pipe(l, s, c)
	}
}

func (p *proxy) pipe(l *link, from, to net.Conn) {
	defer p.wg.Done()
	defer l.client.Close()
	defer l.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !l.frozen.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.frozen.Store(true)
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, l := range p.links {
		l.client.Close()
		l.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
