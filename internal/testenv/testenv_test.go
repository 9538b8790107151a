package testenv_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/internal/testenv"
)

func TestLogBufferWaitsForConcurrentWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var logs testenv.LogBuffer // the zero value is ready
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { logs.Logger().Info("hello from a goroutine") })
	}
	wg.Go(func() { logs.Logger().Debug("debug is kept") })
	logs.WaitFor(ctx, t, "debug is kept")
	wg.Wait()
	if n := logs.Count("hello from a goroutine"); n != 8 {
		t.Errorf("Count = %d, want 8:\n%s", n, logs.String())
	}
}

func TestFreePortsAreDistinctAndUnbound(t *testing.T) {
	ports := testenv.FreePorts(t, 4)
	if len(ports) != 4 || len(slices.Compact(slices.Sorted(slices.Values(ports)))) != 4 {
		t.Fatalf("FreePorts(4) = %v, want 4 distinct ports", ports)
	}
	var lc net.ListenConfig
	for _, p := range ports {
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:"+p)
		if err != nil {
			t.Errorf("port %s is still held: %v", p, err)
			continue
		}
		ln.Close()
	}
}

// A restart keeps the port, so clients reconnect as after a real crash.
func TestRedisServerRestartsOnItsPort(t *testing.T) {
	srv := testenv.StartRedis(t)
	addr := srv.Addr()
	if srv.URL() != "redis://"+addr+"/0" {
		t.Errorf("URL = %q, want it to name %s", srv.URL(), addr)
	}
	dial := func() error {
		var d net.Dialer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("dial a started server: %v", err)
	}
	srv.Stop()
	srv.Stop() // stopping twice does nothing
	if err := dial(); err == nil {
		t.Fatal("dial succeeded after Stop")
	}
	srv.Start()
	if err := dial(); err != nil {
		t.Fatalf("dial after restart on %s: %v", addr, err)
	}
	if srv.Addr() != addr {
		t.Errorf("Addr after restart = %s, want %s", srv.Addr(), addr)
	}
}

// A frozen server keeps its connections and answers nothing until thawed;
// then it answers what it was sent meanwhile.
func TestRedisServerFreezeAndThaw(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ping := func(wait time.Duration) (string, error) {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	if got, err := ping(2 * time.Second); err != nil || got != "+PONG\r\n" {
		t.Fatalf("PING before Freeze = %q, %v", got, err)
	}

	srv.Freeze()
	// A bounded wait: the point is that no answer comes within it.
	got, err := ping(300 * time.Millisecond)
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("PING while frozen = %q, %v; want a read timeout", got, err)
	}

	srv.Thaw()
	srv.Thaw() // thawing twice does nothing
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("answer after Thaw = %q, %v; want the PONG of the PING sent while frozen", buf[:n], err)
	}
}
