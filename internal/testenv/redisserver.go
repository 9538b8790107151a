package testenv

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a throwaway redis-server that a test may stop and start
// again, unlike the shared one. It listens on 127.0.0.1 only and keeps
// nothing on disk.
type RedisServer struct {
	t testing.TB
	// Port is the loopback port the server listens on; it stays the same
	// across Stop and Start, so clients can reconnect as after a crash.
	Port string
	args []string
	proc *process
}

// StartRedis starts a private redis-server on a free loopback port, with
// extra arguments appended, and stops it when t ends. Without the
// redis-server binary the test is skipped (or fails under
// BOOKHUB_REQUIRE_SERVICES=1).
func StartRedis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	return StartRedisOn(t, FreePorts(t, 1)[0], extra...)
}

// StartRedisOn is StartRedis on a port the caller picked, for setups that
// must know ports in advance, such as a cluster whose nodes also need a
// separate bus port each (see FreePorts).
func StartRedisOn(t testing.TB, port string, extra ...string) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "this test starts its own Redis and needs the redis-server binary: %v", err)
	}
	s := &RedisServer{t: t, Port: port, args: extra}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port, for clients that take an address.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + s.Port }

// URL is the server's redis:// URL.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Start (re)starts the server on its port, with a fresh empty data folder,
// and waits until it accepts connections.
func (s *RedisServer) Start() {
	s.t.Helper()
	args := append([]string{"--port", s.Port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.t.TempDir()}, s.args...)
	s.proc = startProcess(s.t, 10*time.Second, "Ready to accept connections", "redis-server", args...)
}

// Stop kills the server (SIGKILL: a crash, not a clean shutdown) and waits
// for it to exit. Stopping a stopped server does nothing; a frozen one is
// killed all the same.
func (s *RedisServer) Stop() {
	s.proc.kill()
	s.proc = nil
}

// Freeze suspends the server with SIGSTOP: its sockets stay open and the
// kernel still accepts connections and buffers what clients send, but
// nothing is ever answered, which is how a hung or swapped-out Redis (or a
// black-holed network path) looks to a client, unlike a crash, whose
// connections are refused or reset. Thaw resumes it; the end of the test
// thaws it too (before the cleanups registered earlier run, so clients
// created before Freeze can close cleanly).
func (s *RedisServer) Freeze() {
	s.t.Helper()
	s.proc.signal(s.t, syscall.SIGSTOP)
	s.t.Cleanup(s.Thaw)
}

// Thaw resumes a frozen server with SIGCONT; it answers everything queued
// meanwhile. Thawing a running or stopped server does nothing.
func (s *RedisServer) Thaw() {
	s.t.Helper()
	s.proc.signal(s.t, syscall.SIGCONT)
}
