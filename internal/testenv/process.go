package testenv

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is one throwaway server a test runs as a child process. Both the
// Redis and the MariaDB helpers use it, so starting, the wait for readiness
// and crash-style stopping behave the same for every service.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
}

// startProcess runs name with args and waits, at most timeout, until a line
// of its output (stdout and stderr alike: servers differ in where they log)
// contains ready. It fails t, with what the server printed, when the
// process exits first; it kills the process and fails t when it stays
// silent too long. The caller owns the process and must kill it.
func startProcess(t testing.TB, timeout time.Duration, ready, name string, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// One pipe for both streams: a server that refuses its arguments often
	// says why on stderr even when it logs to stdout.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe for %s: %v", name, err)
	}
	cmd := exec.Command(name, args...) //nolint:noctx // the server outlives this call; kill ends it
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close() // the child holds its own copy; EOF comes when it exits
	if err != nil {
		r.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	up := make(chan struct{})
	var out strings.Builder // written until up, read only after done
	go func() {
		defer close(p.done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), ready) {
				close(up)
				break
			}
		}
		// Keep draining so the server never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, r)
		_ = cmd.Wait()
	}()
	select {
	case <-up:
	case <-p.done:
		t.Fatalf("%s exited at start (port taken?):\n%s", name, out.String())
	case <-ctx.Done():
		p.kill()
		t.Fatalf("%s did not print %q within %v", name, ready, timeout)
	}
	return p
}

// kill stops the process with SIGKILL, as a crash would, and waits until it
// is gone. Killing a nil or finished process does nothing.
func (p *process) kill() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// signal sends sig to a running process, failing t when that is
// impossible. A nil or finished process is left alone: there is nothing to
// suspend or resume.
func (p *process) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %v to %s: %v", sig, p.cmd.Path, err)
	}
}

// FreePorts returns n distinct loopback TCP ports that nothing listened on
// a moment ago. All n are held open until the last is picked, so none
// repeats; another process may still take one before the caller binds it.
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	var lc net.ListenConfig
	ports := make([]string, 0, n)
	for range n {
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		defer ln.Close()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ports = append(ports, port)
	}
	return ports
}
