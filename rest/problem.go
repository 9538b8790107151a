package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/store"
)

// problemPrefix starts every problem type URI. URNs rather than URLs: bookhub
// does not host documentation pages a client could dereference.
const problemPrefix = "urn:bookhub:problem:"

const contentTypeProblem = "application/problem+json"

// kind is one class of problem: its status, type slug and title. The title
// is the same for every occurrence (RFC 9457 §3.1.3); detail varies.
type kind struct {
	status int
	slug   string
	title  string
}

// The problem kinds the API sends. Clients switch on the type URI, so these
// slugs are part of the wire contract.
var (
	kindMalformed        = kind{http.StatusBadRequest, "malformed-body", "Malformed request body"}
	kindInvalidField     = kind{http.StatusBadRequest, "invalid-field", "Invalid field in request body"}
	kindInvalidParameter = kind{http.StatusBadRequest, "invalid-parameter", "Invalid parameter"}
	kindUnauthorized     = kind{http.StatusUnauthorized, "unauthorized", "Authentication required"}
	kindForbidden        = kind{http.StatusForbidden, "forbidden", "Insufficient role"}
	kindNotFound         = kind{http.StatusNotFound, "not-found", "Not found"}
	kindMethodNotAllowed = kind{http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"}
	kindConflict         = kind{http.StatusConflict, "isbn-conflict", "ISBN already in use"}
	kindPrecondition     = kind{http.StatusPreconditionFailed, "precondition-failed", "Precondition failed"}
	kindTooLarge         = kind{http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large"}
	kindMediaType        = kind{http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"}
	kindValidation       = kind{http.StatusUnprocessableEntity, "validation", "Validation failed"}
	kindClientClosed     = kind{statusClientClosed, "client-closed-request", "Client closed request"}
	kindInternal         = kind{http.StatusInternalServerError, "internal", "Internal server error"}
	kindUnavailable      = kind{http.StatusServiceUnavailable, "unavailable", "Service unavailable"}
)

// statusClientClosed is nginx's non-standard code for a request whose client
// went away; the client never sees it, but logs and metrics tell it apart
// from a server fault.
const statusClientClosed = 499

// fieldError names one offending field of a request body or query.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// apiError is an error whose rendering the handler decided. Its text is meant
// for the client.
type apiError struct {
	kind   kind
	detail string
	fields []fieldError
	// challenge is the WWW-Authenticate value sent with a 401.
	challenge string
	// cause is logged, never sent.
	cause error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.kind.slug + ": " + e.detail + ": " + e.cause.Error()
	}
	return e.kind.slug + ": " + e.detail
}

func (e *apiError) Unwrap() error { return e.cause }

func newError(k kind, detail string) *apiError { return &apiError{kind: k, detail: detail} }

func newErrorf(k kind, format string, args ...any) *apiError {
	return &apiError{kind: k, detail: fmt.Sprintf(format, args...)}
}

// problem is the RFC 9457 body, with bookhub's two extension members.
type problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []fieldError `json:"errors,omitempty"`
}

// renderErrors is the one place where errors become responses. It runs the
// rest of the chain and then renders the last error a handler or middleware
// recorded with c.Error.
func (a *api) renderErrors(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 {
		return
	}
	err := c.Errors.Last().Err
	ae := a.classify(c, err)
	if c.Writer.Written() {
		// Too late for a problem response (e.g. a panic mid-body); the
		// classification above has logged it.
		return
	}
	p := problem{
		Type:      problemPrefix + ae.kind.slug,
		Title:     ae.kind.title,
		Status:    ae.kind.status,
		Detail:    ae.detail,
		Instance:  c.Request.URL.Path,
		RequestID: requestIDOf(c),
		Errors:    ae.fields,
	}
	body, mErr := json.Marshal(p)
	if mErr != nil {
		// Only strings and ints: cannot happen, but never panic here.
		a.log.ErrorContext(c.Request.Context(), "encode problem", slog.Any("error", mErr))
		c.Status(http.StatusInternalServerError)
		return
	}
	if ae.challenge != "" {
		c.Header("WWW-Authenticate", ae.challenge)
	}
	// A problem describes this response, not the book: drop validators a
	// handler may have set before failing.
	c.Writer.Header().Del("ETag")
	c.Data(ae.kind.status, contentTypeProblem, body)
}

// classify maps any error to an apiError and logs what the client must not
// see. Store sentinels are translated here and only here.
func (a *api) classify(c *gin.Context, err error) *apiError {
	ctx := c.Request.Context()
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		if ae.kind.status >= http.StatusInternalServerError {
			a.logFault(c, ae.kind.status, err)
		}
		return ae
	case errors.Is(err, store.ErrNotFound):
		return newError(kindNotFound, "no book has this id")
	case errors.Is(err, store.ErrConflict):
		return newError(kindConflict, "another book already has this ISBN")
	case errors.Is(err, store.ErrStale):
		return newError(kindPrecondition,
			"the book has changed since the version named in If-Match; fetch it again and retry with its current ETag")
	case errors.Is(err, store.ErrInvalidQuery):
		return &apiError{kind: kindInvalidParameter,
			detail: "invalid cursor or sort; start again without a cursor",
			fields: []fieldError{{Field: "cursor", Message: "is invalid or does not belong to this query"}}}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		a.log.LogAttrs(ctx, slog.LevelInfo, "request canceled by client",
			slog.String("request_id", requestIDOf(c)), slog.String("error", err.Error()))
		return newError(kindClientClosed, "the client closed the request")
	case errors.Is(err, store.ErrUnavailable):
		a.logFault(c, http.StatusServiceUnavailable, err)
		c.Header("Retry-After", "2")
		return newError(kindUnavailable, "the database is unreachable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		a.logFault(c, http.StatusServiceUnavailable, err)
		return newError(kindUnavailable, "the request timed out; retry later")
	default:
		a.logFault(c, http.StatusInternalServerError, err)
		return newError(kindInternal, "the server failed to handle the request; quote the request id when reporting it")
	}
}

func (a *api) logFault(c *gin.Context, status int, err error) {
	a.log.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
		slog.String("method", c.Request.Method),
		slog.String("route", routeOf(c)),
		slog.Int("status", status),
		slog.String("request_id", requestIDOf(c)),
		slog.String("error", err.Error()),
	)
}
