// Package rest serves bookhub's REST API: book CRUD under /api/v1, plus the
// /healthz and /readyz probes.
//
// Every request passes one explicit pipeline, in this order:
//
//	request id -> access log -> [error renderer] -> panic recovery ->
//	body size limit -> auth (per route group) -> validation (id, media type)
//	-> handler
//
// Handlers never write error responses themselves: they return an error, and
// the single error renderer (renderErrors, which wraps recovery so a
// recovered panic takes the same path) turns it into RFC 9457
// application/problem+json. Internal details are logged, never sent.
//
// Every GET route also answers HEAD, with the same status and headers and no
// body.
//
// The API does not publish events: every write appends its change to the
// store's outbox in the write's own transaction, and the relay publishes it.
// Reads report their position in the event stream (Bookhub-Offset and
// Bookhub-Epoch headers, and a position member on the list), so a client can
// load a snapshot and then subscribe from exactly there.
package rest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/store"
)

// BookStore is what the API needs from the book store. *store.Store
// satisfies it; tests may substitute their own to inject faults.
type BookStore interface {
	// Create inserts b and returns it with id, version and timestamps set.
	// It returns store.ErrConflict when the ISBN is taken.
	Create(ctx context.Context, b store.Book) (store.Book, error)
	// Get returns one book or store.ErrNotFound.
	Get(ctx context.Context, id int64) (store.Book, error)
	// Update applies apply to the current book in one transaction and bumps
	// its version. ifVersion 0 means any version; otherwise a different
	// current version yields store.ErrStale.
	Update(ctx context.Context, id int64, ifVersion int64, apply func(*store.Book) error) (store.Book, error)
	// Delete removes a book (ifVersion as for Update) and returns it as it
	// was.
	Delete(ctx context.Context, id int64, ifVersion int64) (store.Book, error)
	// List returns one page; a bad cursor or sort yields
	// store.ErrInvalidQuery.
	List(ctx context.Context, opts store.ListOptions) (store.Page, error)
	// Ping reports whether the database answers; /readyz uses it.
	Ping(ctx context.Context) error
	// Epoch is the epoch of the event history, for position headers.
	Epoch() string
}

// Verifier checks bearer tokens. *auth.Tokens satisfies it.
type Verifier interface {
	Verify(token string) (auth.Identity, error)
}

var _ Verifier = (*auth.Tokens)(nil)

// Check is one dependency probed by /readyz. Ping must honour its context:
// /readyz gives all checks together readyTimeout.
type Check struct {
	// Name labels the check in the /readyz response and in logs.
	Name string
	Ping func(context.Context) error
}

// Options configure the handler returned by New.
type Options struct {
	// Books and Tokens are required; Tokens defaults to Accounts when that
	// is set.
	Books  BookStore
	Tokens Verifier
	// Instance names this process in logs.
	Instance string
	// Logger receives the access log and error reports; nil means
	// slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes caps request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Checks are probed by /readyz in addition to the book store, which is
	// always checked under the name "database".
	Checks []Check
	// Observe, when set, is called once per request after the response is
	// written, with the route pattern ("unmatched" for unknown routes), so
	// that metrics have bounded cardinality.
	Observe func(method, route string, status int, d time.Duration)
	// Accounts enables sign-in (/api/v1/auth/...), user management
	// (/api/v1/users) and WebSocket tickets; nil leaves them out.
	Accounts Accounts
	// SignIn lists the "Sign in with ..." providers.
	SignIn []SignInProvider
	// AllowRegistration is reported by /api/v1/auth/providers, so a sign-in
	// page knows whether to offer registration (Accounts enforces it).
	AllowRegistration bool
	// JWKS serves /.well-known/jwks.json when set.
	JWKS http.Handler
	// CORSOrigins lists the browser origins allowed to call the API from
	// another site ("https://dash.example.com"); "*" allows any. Empty, the
	// default, sends no CORS headers: browsers then refuse cross-site calls.
	CORSOrigins []string
	// TrustedProxies lists the addresses or CIDRs of the load balancers
	// whose X-Forwarded-For names the client; rate limits key on it. Empty,
	// the default, trusts none: the client is the TCP peer.
	TrustedProxies []string
}

// DefaultMaxBodyBytes is the body cap for a zero Options.MaxBodyBytes.
const DefaultMaxBodyBytes int64 = 1 << 20

// readyTimeout bounds one /readyz call: probes are for load balancers, which
// give up after a few seconds anyway.
const readyTimeout = 2 * time.Second

// api holds the dependencies the handlers share. It is immutable after New,
// so handlers run concurrently without locks.
type api struct {
	books    BookStore
	tokens   Verifier
	instance string
	log      *slog.Logger
	maxBody  int64
	checks   []Check
	observe  func(method, route string, status int, d time.Duration)

	accounts          Accounts
	signIn            []SignInProvider
	allowRegistration bool
	jwks              http.Handler
	cors              corsPolicy
	trustedProxies    []string
}

// New returns the HTTP handler of the REST API and the health probes.
//
// It puts gin into release mode. gin's mode is process-wide, but release mode
// only silences gin's own debug output, which bookhub never wants.
func New(opts Options) (http.Handler, error) {
	if opts.Tokens == nil && opts.Accounts != nil {
		opts.Tokens = opts.Accounts // it verifies tokens, revocations included
	}
	switch {
	case opts.Books == nil:
		return nil, errors.New("rest: Options.Books is required")
	case opts.Tokens == nil:
		return nil, errors.New("rest: Options.Tokens is required")
	case opts.MaxBodyBytes < 0:
		return nil, errors.New("rest: Options.MaxBodyBytes must not be negative")
	}
	for _, ch := range opts.Checks {
		if ch.Name == "" || ch.Ping == nil {
			return nil, errors.New("rest: every Options.Checks entry needs a Name and a Ping")
		}
	}
	a := &api{
		books:    opts.Books,
		tokens:   opts.Tokens,
		instance: opts.Instance,
		log:      opts.Logger,
		maxBody:  opts.MaxBodyBytes,
		checks:   append([]Check{{Name: "database", Ping: opts.Books.Ping}}, opts.Checks...),
		observe:  opts.Observe,

		accounts:          opts.Accounts,
		signIn:            opts.SignIn,
		allowRegistration: opts.AllowRegistration,
		jwks:              opts.JWKS,
		cors:              newCORSPolicy(opts.CORSOrigins),
		trustedProxies:    opts.TrustedProxies,
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.maxBody == 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	return a.routes()
}

// routes builds the gin engine. gin.New, not gin.Default: bookhub installs
// its own logger and recovery so both speak slog and problem+json.
func (a *api) routes() (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// A redirect would turn a POST to /books/ into a confusing 307; an API
	// answers 404 instead.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	// A nil list trusts no proxy: gin's default trusts every one, which
	// would let any client pick the address its rate limit keys on.
	if err := r.SetTrustedProxies(a.trustedProxies); err != nil {
		return nil, fmt.Errorf("rest: Options.TrustedProxies: %w", err)
	}

	r.Use(a.requestID, a.accessLog, a.renderErrors, a.recovery, a.cors.handle, a.limitBody)
	r.NoRoute(handle(func(*gin.Context) error {
		return newError(kindNotFound, "no such route")
	}))
	r.NoMethod(handle(func(c *gin.Context) error {
		return newErrorf(kindMethodNotAllowed, "%s is not allowed here; see the Allow header", c.Request.Method)
	}))

	get(r, "/healthz", a.healthz)
	get(r, "/readyz", a.readyz)

	v1 := r.Group("/api/v1")
	// Reads are public; a token, when sent, must be valid, and an editor's
	// or admin's shows the staff-only fields.
	get(v1, "/books", a.optionalIdentity, handle(a.listBooks))
	get(v1, "/books/:id", a.optionalIdentity, a.bookID, handle(a.getBook))

	editor := v1.Group("", a.requireRole(auth.RoleEditor))
	editor.POST("/books", requireJSON(false), handle(a.createBook))
	editor.PUT("/books/:id", a.bookID, requireJSON(false), handle(a.replaceBook))
	editor.PATCH("/books/:id", a.bookID, requireJSON(true), handle(a.patchBook))

	admin := v1.Group("", a.requireRole(auth.RoleAdmin))
	admin.DELETE("/books/:id", a.bookID, handle(a.deleteBook))

	if a.accounts != nil {
		a.authRoutes(v1)
	}
	if a.jwks != nil {
		r.GET("/.well-known/jwks.json", gin.WrapH(a.jwks))
		r.HEAD("/.well-known/jwks.json", gin.WrapH(a.jwks))
	}
	return r, nil
}

// get registers a GET route and its HEAD twin (RFC 9110 §9.3.2: HEAD is GET
// without the body). The handlers run unchanged: net/http discards the body
// of a HEAD response and still counts it into Content-Length when the whole
// body fits its buffer, so both methods send the same headers.
func get(r gin.IRoutes, path string, handlers ...gin.HandlerFunc) {
	r.GET(path, handlers...)
	r.HEAD(path, handlers...)
}

// handle adapts a handler that returns its error to gin: the error goes to
// the context for renderErrors, and the chain stops.
func handle(h func(*gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			_ = c.Error(err)
			c.Abort()
		}
	}
}
