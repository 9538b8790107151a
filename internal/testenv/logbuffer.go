package testenv

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// LogBuffer collects what a logger writes from any number of goroutines,
// so a test can check the log of a component that logs in the background,
// and wait for a line instead of sleeping. The zero value is ready to use.
type LogBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{} // one pending wake-up per write; made on first use
}

// Logger is a text logger at debug level that writes to b, so nothing the
// component logs is filtered out before the test sees it.
func (b *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write appends p and wakes a waiting WaitFor. It never fails.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	notify := b.signal()
	b.mu.Unlock()
	select {
	case notify <- struct{}{}:
	default:
	}
	return n, err
}

// String is everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count is how many times substr occurs in the log so far.
func (b *LogBuffer) Count(substr string) int { return strings.Count(b.String(), substr) }

// WaitFor returns once the log contains substr, and fails t with the log so
// far when ctx ends first.
func (b *LogBuffer) WaitFor(ctx context.Context, t testing.TB, substr string) {
	t.Helper()
	for {
		b.mu.Lock()
		out, notify := b.buf.String(), b.signal()
		b.mu.Unlock()
		if strings.Contains(out, substr) {
			return
		}
		select {
		case <-notify:
		case <-ctx.Done():
			t.Fatalf("waiting for log %q: %v; log so far:\n%s", substr, ctx.Err(), b.String())
		}
	}
}

// signal returns the wake-up channel, making it on first use; b.mu must be
// held.
func (b *LogBuffer) signal() chan struct{} {
	if b.notify == nil {
		b.notify = make(chan struct{}, 1)
	}
	return b.notify
}
