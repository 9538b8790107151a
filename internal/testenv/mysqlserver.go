package testenv

import (
	"context"
	"os/exec"
	"path/filepath"
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
	proc *process
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
	s := &MySQLServer{t: t, Port: FreePorts(t, 1)[0], dir: t.TempDir()}
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
	s.proc = startProcess(s.t, 30*time.Second, "ready for connections", "mariadbd",
		"--no-defaults", "--datadir="+filepath.Join(s.dir, "data"),
		"--port="+s.Port, "--bind-address=127.0.0.1", "--socket="+filepath.Join(s.dir, "sock"),
		"--user=root", "--innodb-buffer-pool-size=16M", "--skip-log-bin", "--skip-name-resolve")
}

// Stop kills the server (SIGKILL: a crash) and waits for it to exit.
// Stopping a stopped server does nothing.
func (s *MySQLServer) Stop() {
	s.proc.kill()
	s.proc = nil
}
