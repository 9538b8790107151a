package rest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// healthz says the process is alive. It checks no dependency: a database
// outage must not make an orchestrator restart healthy processes.
func (a *api) healthz(c *gin.Context) {
	c.Data(http.StatusOK, contentTypeJSON, []byte(`{"status":"ok"}`))
}

// checkResult is one entry of the /readyz body. Status is "ok", "timeout" or
// "failed"; the error itself is logged, never sent, since driver messages can
// carry hosts, user names or DSNs.
type checkResult struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	DurationMS int64  `json:"duration_ms"`
}

type readyJSON struct {
	Status string        `json:"status"`
	Checks []checkResult `json:"checks"`
}

// readyz runs every check concurrently under readyTimeout and answers 200
// when all pass, 503 otherwise. A check that ignores its context is reported
// as timed out; its goroutine finishes on its own and is then discarded.
func (a *api) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()

	type outcome struct {
		i   int
		err error
		d   time.Duration
	}
	done := make(chan outcome, len(a.checks)) // buffered: late checks never block
	for i, ch := range a.checks {
		go func() {
			start := time.Now()
			err := ch.Ping(ctx)
			done <- outcome{i: i, err: err, d: time.Since(start)}
		}()
	}

	results := make([]checkResult, len(a.checks))
	for i, ch := range a.checks {
		results[i] = checkResult{Name: ch.Name, Status: "timeout", DurationMS: readyTimeout.Milliseconds()}
	}
	ready := true
wait:
	for range a.checks {
		select {
		case o := <-done:
			r := &results[o.i]
			r.DurationMS = o.d.Milliseconds()
			r.Status = "ok"
			if o.err != nil {
				ready = false
				r.Status = "failed"
				if errors.Is(o.err, context.DeadlineExceeded) {
					r.Status = "timeout"
				}
				a.log.LogAttrs(ctx, slog.LevelWarn, "readiness check failed",
					slog.String("check", r.Name), slog.String("error", o.err.Error()))
			}
		case <-ctx.Done():
			ready = false
			break wait
		}
	}

	out := readyJSON{Status: "ok", Checks: results}
	status := http.StatusOK
	if !ready {
		out.Status = "unavailable"
		status = http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(out) // strings and ints only
	c.Data(status, contentTypeJSON, body)
}
