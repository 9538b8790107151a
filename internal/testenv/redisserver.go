package testenv

import (
	"bufio"
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RedisServer is a throwaway redis-server that a test may stop and start
// again, unlike the shared one. It listens on 127.0.0.1 only and keeps
// nothing on disk.
type RedisServer struct {
	t    testing.TB
	Port string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts a private redis-server on a free loopback port, with
// extra arguments appended, and stops it when t ends. Without the
// redis-server binary the test is skipped (or fails under
// BOOKHUB_REQUIRE_SERVICES=1).
func StartRedis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "this test starts its own Redis and needs the redis-server binary: %v", err)
	}
	s := &RedisServer{t: t, Port: freePort(t), args: extra}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's redis:// URL.
func (s *RedisServer) URL() string { return "redis://127.0.0.1:" + s.Port + "/0" }

// Start (re)starts the server on its port and waits until it accepts
// connections.
func (s *RedisServer) Start() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := append([]string{"--port", s.Port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.t.TempDir()}, s.args...)
	cmd := exec.Command("redis-server", args...) //nolint:noctx // the server outlives this call; Stop ends it
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	ready := make(chan struct{})
	go func(done chan struct{}) {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(done)
	}(s.done)
	select {
	case <-ready:
	case <-s.done:
		s.t.Fatalf("redis-server on port %s exited at start (port taken?)", s.Port)
	case <-ctx.Done():
		s.Stop()
		s.t.Fatal("redis-server did not become ready within 10s")
	}
}

// Stop kills the server (SIGKILL: a crash, not a clean shutdown) and waits
// for it to exit. Stopping a stopped server does nothing.
func (s *RedisServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func freePort(t testing.TB) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
