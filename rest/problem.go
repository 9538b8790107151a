package rest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/problem"
	"github.com/bookhub/bookhub/store"
)

// kind is one class of problem: its status, type slug and title. It is the
// problem package's Kind, so the API speaks the same dialect as the rest of
// the public port.
type kind = problem.Kind

// newKind keeps the table below one line per kind (vet wants keyed fields
// for another package's struct).
func newKind(status int, slug, title string) kind {
	return kind{Status: status, Slug: slug, Title: title}
}

// The problem kinds the API sends. Clients switch on the type URI, so these
// slugs are part of the wire contract.
var (
	kindMalformed        = newKind(http.StatusBadRequest, "malformed-body", "Malformed request body")
	kindInvalidField     = newKind(http.StatusBadRequest, "invalid-field", "Invalid field in request body")
	kindInvalidParameter = problem.InvalidParameter
	kindUnauthorized     = problem.Unauthorized
	kindForbidden        = newKind(http.StatusForbidden, "forbidden", "Insufficient role")
	kindNotFound         = problem.NotFound
	kindMethodNotAllowed = problem.MethodNotAllowed
	kindRequestTimeout   = newKind(http.StatusRequestTimeout, "request-timeout", "Request body timed out")
	kindConflict         = newKind(http.StatusConflict, "conflict", "Conflict")
	kindPrecondition     = newKind(http.StatusPreconditionFailed, "precondition-failed", "Precondition failed")
	kindTooLarge         = newKind(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large")
	kindMediaType        = newKind(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type")
	kindValidation       = newKind(http.StatusUnprocessableEntity, "validation", "Validation failed")
	kindClientClosed     = newKind(statusClientClosed, "client-closed-request", "Client closed request")
	kindInternal         = problem.Internal
	kindUnavailable      = problem.Unavailable
)

// statusClientClosed is nginx's non-standard code for a request whose client
// went away; the client never sees it, but logs and metrics tell it apart
// from a server fault.
const statusClientClosed = 499

// fieldError names one offending field of a request body or query.
type fieldError = problem.FieldError

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
		return e.kind.Slug + ": " + e.detail + ": " + e.cause.Error()
	}
	return e.kind.Slug + ": " + e.detail
}

func (e *apiError) Unwrap() error { return e.cause }

func newError(k kind, detail string) *apiError { return &apiError{kind: k, detail: detail} }

func newErrorf(k kind, format string, args ...any) *apiError {
	return &apiError{kind: k, detail: fmt.Sprintf(format, args...)}
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
	p := ae.kind.New(ae.detail)
	p.Instance = c.Request.URL.Path
	p.RequestID = requestIDOf(c)
	p.Errors = ae.fields
	if ae.challenge != "" {
		c.Header("WWW-Authenticate", ae.challenge)
	}
	if ae.kind == kindRequestTimeout {
		// RFC 9110 §15.5.9: the rest of the body may still arrive, so the
		// connection cannot carry another request.
		c.Header("Connection", "close")
	}
	// problem.Write also drops validators (ETag) a handler may have set
	// before failing: a problem describes this response, not the book.
	problem.Write(c.Writer, p)
}

// classify maps any error to an apiError and logs what the client must not
// see. Store sentinels are translated here and only here.
func (a *api) classify(c *gin.Context, err error) *apiError {
	ctx := c.Request.Context()
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		if v, ok := storeValidation(err).(*apiError); ok {
			return v
		}
	}
	if acc := classifyAccounts(c, err); acc != nil {
		if acc.kind.Status >= http.StatusInternalServerError {
			a.logFault(c, acc.kind.Status, err)
		}
		return acc
	}
	var ae *apiError
	switch {
	case errors.Is(err, errBodyTimeout):
		// Checked first: readBody wraps a failed read as malformed, but a
		// client too slow for the edge's body deadline deserves to know.
		return newError(kindRequestTimeout, "the request body did not arrive in time; send it faster or in a smaller request")
	case errors.As(err, &ae):
		if ae.kind.Status >= http.StatusInternalServerError {
			a.logFault(c, ae.kind.Status, err)
		}
		return ae
	case errors.Is(err, store.ErrNotFound):
		return notFoundError(err)
	case errors.Is(err, store.ErrConflict):
		return conflictError(err)
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

// notFoundError renders a store *NotFoundError, naming its entity.
func notFoundError(err error) *apiError {
	var nf *store.NotFoundError
	if errors.As(err, &nf) && nf.Entity != "" {
		return newErrorf(kindNotFound, "no %s has this id", nf.Entity)
	}
	return newError(kindNotFound, "not found")
}

// conflictError renders a store *ConflictError, naming the field that is
// taken (never its value).
func conflictError(err error) *apiError {
	var ce *store.ConflictError
	if errors.As(err, &ce) && ce.Entity != "" && ce.Field != "" {
		return &apiError{kind: kindConflict,
			detail: fmt.Sprintf("another %s already has this %s", ce.Entity, ce.Field),
			fields: []fieldError{{Field: ce.Field, Message: "is already in use"}}}
	}
	return newError(kindConflict, "the request conflicts with the stored data")
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
