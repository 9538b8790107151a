package redisbus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Logger carries go-redis's own log lines (pool and pub/sub reconnects,
// discarded connections, push notifications) into slog, so they come out in
// the process's format and level instead of as bare lines on stderr.
//
// go-redis has one process-wide logger, so install it once, from main:
//
//	redis.SetLogger(redisbus.NewLogger(logger))
//
// Its lines carry no level; they report trouble, so they are logged at
// Warn, with component=go-redis. A Logger is safe for concurrent use.
type Logger struct {
	log *slog.Logger
}

// NewLogger returns a Logger that writes to l (slog.Default() when nil).
func NewLogger(l *slog.Logger) *Logger {
	if l == nil {
		l = slog.Default()
	}
	return &Logger{log: l.With("component", "go-redis")}
}

// Printf implements go-redis's logging interface. It formats only when
// Warn is enabled, drops the "redis: " prefix go-redis puts on some lines
// (component says it) and passes ctx on, so handlers that read request
// attributes from the context see them.
func (l *Logger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	msg = strings.TrimPrefix(msg, "redis: ")
	l.log.Log(ctx, slog.LevelWarn, msg)
}
