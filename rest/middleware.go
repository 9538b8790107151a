package rest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/problem"
)

// Keys of values the middleware stores in the gin context.
const (
	keyRequestID = "bookhub.request_id"
	keyIdentity  = "bookhub.identity"
	keyBookID    = "bookhub.book_id"
)

// requestID uses the id an outer handler put in the context (bookhub's edge
// router, so the whole response carries one id), else a sane incoming
// X-Request-ID (so a proxy's id correlates across services), else a fresh
// one, and echoes it.
func (a *api) requestID(c *gin.Context) {
	id := problem.RequestIDFrom(c.Request.Context())
	if id == "" {
		id = c.GetHeader(problem.RequestIDHeader)
	}
	if !problem.ValidRequestID(id) {
		id = problem.NewRequestID()
	}
	c.Set(keyRequestID, id)
	c.Header(problem.RequestIDHeader, id)
	c.Next()
}

func requestIDOf(c *gin.Context) string { return c.GetString(keyRequestID) }

// routeOf returns the route pattern, never the raw path, so logs and metrics
// have bounded cardinality.
func routeOf(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// accessLog writes one structured line per request. It logs the route
// pattern rather than the path or query, and never the Authorization header,
// so tokens stay out of the logs whatever a client puts in its URL.
func (a *api) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	d := time.Since(start)
	status := c.Writer.Status()
	route := routeOf(c)
	bytes := c.Writer.Size()
	if bytes < 0 {
		bytes = 0
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.Int("bytes", bytes),
		slog.String("request_id", requestIDOf(c)),
	}
	if v, ok := c.Get(keyIdentity); ok {
		attrs = append(attrs, slog.String("sub", v.(auth.Identity).Subject))
	}
	level := slog.LevelInfo
	if status >= http.StatusInternalServerError {
		level = slog.LevelWarn
	}
	a.log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
	if a.observe != nil {
		a.observe(c.Request.Method, route, status, d)
	}
}

// errPanic is what a recovered panic becomes; its text never reaches clients.
var errPanic = errors.New("handler panicked")

// recovery turns a panic into a 500 problem (via renderErrors) and logs the
// stack. http.ErrAbortHandler is re-raised: it is net/http's way to abort a
// response on purpose.
func (a *api) recovery(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			panic(v)
		}
		a.log.LogAttrs(c.Request.Context(), slog.LevelError, "panic serving request",
			slog.String("method", c.Request.Method),
			slog.String("route", routeOf(c)),
			slog.String("request_id", requestIDOf(c)),
			slog.String("panic", fmt.Sprint(v)),
			slog.String("stack", string(debug.Stack())),
		)
		_ = c.Error(fmt.Errorf("%w: %v", errPanic, v))
		c.Abort()
	}()
	c.Next()
}

// limitBody refuses a declared oversize body before reading a byte and caps
// the rest (chunked bodies have no Content-Length) with http.MaxBytesReader,
// whose error readBody turns into a 413.
func (a *api) limitBody(c *gin.Context) {
	if c.Request.ContentLength > a.maxBody {
		_ = c.Error(tooLarge(a.maxBody))
		c.Abort()
		return
	}
	// Hand MaxBytesReader net/http's own writer, not gin's wrapper: only then
	// can it tell the server to close the connection instead of draining an
	// oversize body after the 413.
	var w http.ResponseWriter = c.Writer
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		w = u.Unwrap()
	}
	c.Request.Body = http.MaxBytesReader(w, timeoutBody{c.Request.Body}, a.maxBody)
	c.Next()
}

// errBodyTimeout marks a body read cut off by a read deadline (the edge's
// body deadline), which classify answers with 408 rather than 400.
var errBodyTimeout = errors.New("request body read deadline exceeded")

// timeoutBody tags deadline errors of the body it wraps with errBodyTimeout.
// Only body reads are tagged: a database timeout is not the client's fault.
type timeoutBody struct{ io.ReadCloser }

func (b timeoutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: %w", errBodyTimeout, err)
	}
	return n, err
}

func tooLarge(limit int64) *apiError {
	return newErrorf(kindTooLarge, "the request body exceeds the limit of %d bytes", limit)
}

// optionalIdentity authenticates a bearer token when one is sent, for
// routes anybody may call whose answer depends on the role (staff-only
// fields). A token that is sent must be valid: a silent downgrade to
// anonymous would hide an expired token from its client.
func (a *api) optionalIdentity(c *gin.Context) {
	// The representation depends on the token: shared caches must key on it.
	c.Writer.Header().Add("Vary", "Authorization")
	if c.GetHeader("Authorization") == "" {
		c.Next()
		return
	}
	a.requireRole(auth.RoleViewer)(c)
}

// staff reports whether the caller may see staff-only book fields.
func staff(c *gin.Context) bool { return identityOf(c).Role.AtLeast(auth.RoleEditor) }

// requireRole authenticates the Authorization: Bearer header (never a query
// token: URLs end up in proxy logs) and checks the role.
func (a *api) requireRole(min auth.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		token := auth.FromHeader(c.Request)
		if token == "" {
			_ = c.Error(&apiError{kind: kindUnauthorized,
				detail:    "this request needs an \"Authorization: Bearer <token>\" header",
				challenge: `Bearer realm="bookhub"`})
			c.Abort()
			return
		}
		id, err := a.tokens.Verify(token)
		if err != nil {
			// The reason (expired, bad signature, ...) is only logged at
			// debug: telling a forger which check failed helps nobody else.
			a.log.LogAttrs(c.Request.Context(), slog.LevelDebug, "token refused",
				slog.String("request_id", requestIDOf(c)), slog.String("error", err.Error()))
			_ = c.Error(&apiError{kind: kindUnauthorized,
				detail:    "the bearer token is invalid or expired",
				challenge: `Bearer realm="bookhub", error="invalid_token"`})
			c.Abort()
			return
		}
		c.Set(keyIdentity, id)
		if !id.Role.AtLeast(min) {
			_ = c.Error(newErrorf(kindForbidden, "role %q may not do this; it needs %q or higher", id.Role, min))
			c.Abort()
			return
		}
		c.Next()
	}
}

// bookID validates the :id path parameter: decimal digits only, positive,
// within int64.
func (a *api) bookID(c *gin.Context) {
	raw := c.Param("id")
	id, ok := parseID(raw)
	if !ok {
		_ = c.Error(&apiError{kind: kindInvalidParameter,
			detail: "the book id must be a positive integer",
			fields: []fieldError{{Field: "id", Message: "must be a positive integer"}}})
		c.Abort()
		return
	}
	c.Set(keyBookID, id)
	c.Next()
}

func parseID(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

func bookIDOf(c *gin.Context) int64 { return c.GetInt64(keyBookID) }

// requireJSON refuses bodies that are not JSON (415). mergePatch also admits
// application/merge-patch+json, the media type RFC 7396 defines for PATCH.
func requireJSON(mergePatch bool) gin.HandlerFunc {
	want := "application/json"
	if mergePatch {
		want += " or application/merge-patch+json"
	}
	return func(c *gin.Context) {
		mt, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
		ok := err == nil && (mt == "application/json" || mergePatch && mt == "application/merge-patch+json")
		if cs, has := params["charset"]; ok && has && !strings.EqualFold(cs, "utf-8") {
			ok = false
		}
		if !ok {
			_ = c.Error(newErrorf(kindMediaType, "the request body must be %s (UTF-8)", want))
			c.Abort()
			return
		}
		c.Next()
	}
}
