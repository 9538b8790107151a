package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
)

// gormLogger routes gorm's statement trace to slog. gorm's default logger
// prints every slow statement with its parameters interpolated to stdout;
// parameters can be private (a customer's search text), and a service logs
// through one structured logger. This adapter logs only:
//
//   - statements slower than slow, at warn;
//   - statements that failed for an unexpected reason, at warn (missing rows,
//     duplicate ISBNs and cancelled requests are normal and not logged);
//
// always with "?" placeholders in place of values. Caveat: gorm's DB.Scan
// traces through its own recorder, which bypasses ParamsFilter and would log
// values; this package uses Take, Find, Pluck and Row instead.
type gormLogger struct {
	log  *slog.Logger
	slow time.Duration // <= 0 disables slow-statement logging
}

var (
	_ gormlogger.Interface = (*gormLogger)(nil)
	_ gorm.ParamsFilter    = (*gormLogger)(nil)
)

func newGormLogger(log *slog.Logger, slow time.Duration) *gormLogger {
	return &gormLogger{log: log, slow: slow}
}

// LogMode is ignored: the slog handler's level decides what is shown.
func (l *gormLogger) LogMode(gormlogger.LogLevel) gormlogger.Interface { return l }

// Info is dropped; gorm uses it for chatter such as migration notes.
func (l *gormLogger) Info(context.Context, string, ...any) {}

// Warn forwards gorm's own warnings.
func (l *gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

// Error forwards gorm's own errors, at warn: the caller gets the error too
// and decides how serious it is.
func (l *gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

// ParamsFilter drops the parameters before gorm renders the statement for
// Trace, so the SQL that reaches the log keeps its placeholders.
func (l *gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

// Trace is called by gorm after every statement.
func (l *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !expected(err):
		sql, rows := fc()
		l.log.WarnContext(ctx, "sql statement failed",
			"sql", sql, "rows", rows, "elapsed", elapsed, "error", safeError(err))
	case l.slow > 0 && elapsed > l.slow:
		sql, rows := fc()
		l.log.WarnContext(ctx, "slow sql statement",
			"sql", sql, "rows", rows, "elapsed", elapsed, "threshold", l.slow)
	}
}
