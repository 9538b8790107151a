package redisbus_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/internal/testenv"
)

// redisServer is a throwaway redis-server this test may kill, unlike the
// shared one.
type redisServer struct {
	t    testing.TB
	port string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startRedis starts redis-server on port ("" picks a free one), with extra
// arguments appended, and waits until it says it accepts connections.
func startRedis(t testing.TB, port string, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Unavailable(t, "fault test needs the redis-server binary: %v", err)
	}
	if port == "" {
		_, port, _ = net.SplitHostPort(closedAddr(t))
	}
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir()}, extra...)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s := &redisServer{t: t, port: port, cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		signaled := false
		for sc.Scan() {
			if !signaled {
				out.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "Ready to accept connections") {
					signaled = true
					close(ready)
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		if !signaled {
			close(ready)
		}
		close(s.done)
	}()
	t.Cleanup(s.kill)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("redis-server did not become ready")
	}
	select {
	case <-s.done:
		t.Fatalf("redis-server exited at start:\n%s", out.String())
	default:
	}
	return s
}

func (s *redisServer) url() string { return "redis://127.0.0.1:" + s.port + "/0" }

// kill stops the server abruptly (SIGKILL), as a crash would, and waits for
// it to be gone.
func (s *redisServer) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

func TestSubscriptionRecoversAfterRedisRestart(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	srv := startRedis(t, "")
	logger, logs := newLogger()
	pub := newBus(t, redisbus.Options{URL: srv.url(), DialTimeout: time.Second})
	sub := newBus(t, redisbus.Options{URL: srv.url(), DialTimeout: time.Second, Logger: logger})
	r := newRecorder()
	if err := sub.Subscribe(ctx, r.handle); err != nil {
		t.Fatal(err)
	}
	before := testEvent(1)
	if err := pub.Publish(ctx, before); err != nil {
		t.Fatal(err)
	}
	r.waitForID(ctx, t, before.ID)

	srv.kill()
	logs.waitFor(ctx, t, "redis subscription lost")

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

	startRedis(t, srv.port)
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
	if n := logs.count("redis subscription lost"); n != 1 {
		t.Errorf("\"lost\" logged %d times, want once:\n%s", n, logs.String())
	}
	if n := logs.count("redis subscription restored"); n != 1 {
		t.Errorf("\"restored\" logged %d times, want once:\n%s", n, logs.String())
	}
}

// A link that dies without closing the socket (a partition) is only found
// by the health check.
func TestHealthCheckReplacesSilentlyDeadLink(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	direct := testenv.Redis(t)
	prefix := testenv.Prefix(t)
	px := startProxy(t, direct)
	logger, logs := newLogger()
	sub := newBus(t, redisbus.Options{
		URL: px.url(direct), Prefix: prefix, Logger: logger, HealthCheckInterval: 200 * time.Millisecond,
	})
	pub := newBus(t, redisbus.Options{Prefix: prefix})
	r := newRecorder()
	if err := sub.Subscribe(ctx, r.handle); err != nil {
		t.Fatal(err)
	}
	first := testEvent(1)
	if err := pub.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	r.waitForID(ctx, t, first.ID)

	px.freeze()
	logs.waitFor(ctx, t, "redis subscription lost")
	logs.waitFor(ctx, t, "redis subscription restored")
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
