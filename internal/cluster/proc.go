package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one child (a bookhub instance or nginx) whose output goes to a
// log file. A goroutine waits for it, so exit is observable without
// blocking and a crash is never mistaken for a hang.
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the child has exited and err is set
	err  error
}

// startProcess runs bin with args and env, appending stdout and stderr to
// logPath.
func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	// The child gets its own copy of the descriptor.
	defer f.Close()
	// No context: the child outlives this call; kill and terminate end it.
	cmd := exec.Command(bin, args...) //nolint:noctx
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the child is gone.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL, as a crash would, and waits until the child is gone.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends sig and waits up to grace for the child to exit; one
// still running then is killed and reported. A non-zero exit is an error.
func (p *process) terminate(sig syscall.Signal, grace time.Duration) error {
	if p.exited() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("%s did not exit within %v of %v and was killed", p.name, grace, sig)
	}
}

// exitErr describes how the child ended, or nil for a clean exit.
func (p *process) exitErr() error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("%s exited: %w", p.name, p.err)
	}
	return nil
}

// waitHTTP polls url until it answers 200, the child exits, or timeout.
func (p *process) waitHTTP(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := poll(ctx, url, p.done)
	switch {
	case err == nil:
		return nil
	case p.exited():
		status := "exit status 0"
		if p.err != nil {
			status = p.err.Error()
		}
		return fmt.Errorf("%s exited before %s answered (%s):\n%s", p.name, url, status, tail(p.log, 40))
	default:
		return fmt.Errorf("%s: %s never answered 200 within %v (%w):\n%s", p.name, url, timeout, err, tail(p.log, 40))
	}
}

var errExited = errors.New("process exited")

// poll GETs url until it answers 200; it stops early when stop closes.
func poll(ctx context.Context, url string, stop <-chan struct{}) error {
	var last error
	for {
		last = get200(ctx, url)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		case <-stop:
			return errExited
		case <-time.After(25 * time.Millisecond): // an HTTP probe has no signal to wait on
		}
	}
}

// tail returns the last n lines of a log file, indented, for a failure
// message.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "    (no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d earlier lines in %s)", len(lines)-n, filepath.Base(path))}, lines[len(lines)-n:]...)
	}
	return "    " + strings.Join(lines, "\n    ")
}

// scanLog returns the lines of a log file that contain any of markers.
func scanLog(path string, markers ...string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		for _, m := range markers {
			if bytes.Contains(line, []byte(m)) {
				out = append(out, string(line))
				break
			}
		}
	}
	return out
}
