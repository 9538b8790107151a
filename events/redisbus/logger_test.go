package redisbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/bookhub/bookhub/events/redisbus"
)

// jsonLog is a JSON slog logger writing into buf at level.
func jsonLog(buf *bytes.Buffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level}))
}

func TestLoggerWritesStructuredWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := redisbus.NewLogger(jsonLog(&buf, slog.LevelInfo))
	l.Printf(context.Background(), "redis: discarding bad PubSub connection: %v", "read tcp: i/o timeout")

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line (%v): %q", err, buf.String())
	}
	want := map[string]any{"level": "WARN", "component": "go-redis", "msg": "discarding bad PubSub connection: read tcp: i/o timeout"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, line[k], v, buf.String())
		}
	}
}

func TestLoggerHonoursLevel(t *testing.T) {
	var buf bytes.Buffer
	l := redisbus.NewLogger(jsonLog(&buf, slog.LevelError))
	l.Printf(context.Background(), "pool: %d connections closed", 3)
	if buf.Len() != 0 {
		t.Errorf("logged below the handler's level: %q", buf.String())
	}
}

func TestLoggerAcceptsNilContext(t *testing.T) {
	var buf bytes.Buffer
	l := redisbus.NewLogger(jsonLog(&buf, slog.LevelInfo))
	//nolint:staticcheck // go-redis may pass a nil context; the adapter must cope.
	l.Printf(nil, "no context")
	if !strings.Contains(buf.String(), "no context") {
		t.Errorf("line lost: %q", buf.String())
	}
}

// Installed as go-redis's global logger, it receives what go-redis itself
// prints. This test changes process-wide state and restores go-redis's
// default when done, so it must not run in parallel.
func TestLoggerReceivesGoRedisLines(t *testing.T) {
	var buf bytes.Buffer
	redis.SetLogger(redisbus.NewLogger(jsonLog(&buf, slog.LevelInfo)))
	t.Cleanup(logging.Enable) // back to go-redis's stderr logger
	// go-redis warns, at construction and without touching the network,
	// about a read buffer too small for RESP3.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadBufferSize: 1})
	t.Cleanup(func() { c.Close() })
	if !strings.Contains(buf.String(), `"component":"go-redis"`) || !strings.Contains(buf.String(), "ReadBufferSize") {
		t.Errorf("go-redis line not routed through the adapter: %q", buf.String())
	}
}
