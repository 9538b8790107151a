package testenv

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// MySQLServer is a throwaway MariaDB server that a test may kill and start
// again, unlike the shared one. It listens on 127.0.0.1 only, root has no
// password, and its data lives in the test's temporary folder.
type MySQLServer struct {
	t    testing.TB
	Port string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMySQL initialises a data folder and starts mariadbd on a free
// loopback port, stopping it when t ends. Without the MariaDB server
// binaries the test is skipped (or fails under BOOKHUB_REQUIRE_SERVICES=1).
func StartMySQL(t testing.TB) *MySQLServer {
	t.Helper()
	for _, bin := range []string{"mariadbd", "mariadb-install-db"} {
		if _, err := exec.LookPath(bin); err != nil {
			Unavailable(t, "this test starts its own MariaDB and needs %s: %v", bin, err)
		}
	}
	s := &MySQLServer{t: t, Port: freePort(t), dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(s.dir, "data"),
		"--user=root", "--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the mysql:// URL of the server's built-in "mysql" database, which
// exists from the start; bookhub's tables go there beside the system ones.
func (s *MySQLServer) URL() string { return "mysql://root@127.0.0.1:" + s.Port + "/mysql" }

// Start (re)starts mariadbd on its port and data folder and waits until it
// accepts connections.
func (s *MySQLServer) Start() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.Command("mariadbd", "--no-defaults", "--datadir="+filepath.Join(s.dir, "data"), //nolint:noctx // outlives this call; Stop ends it
		"--port="+s.Port, "--bind-address=127.0.0.1", "--socket="+filepath.Join(s.dir, "sock"),
		"--user=root", "--innodb-buffer-pool-size=16M", "--skip-log-bin", "--skip-name-resolve")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start mariadbd: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	ready := make(chan struct{})
	var log strings.Builder
	go func(done chan struct{}) {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "ready for connections") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(done)
	}(s.done)
	select {
	case <-ready:
	case <-s.done:
		s.t.Fatalf("mariadbd on port %s exited at start:\n%s", s.Port, log.String())
	case <-ctx.Done():
		s.Stop()
		s.t.Fatal("mariadbd did not become ready within 30s")
	}
}

// Stop kills the server (SIGKILL: a crash) and waits for it to exit.
// Stopping a stopped server does nothing.
func (s *MySQLServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}
