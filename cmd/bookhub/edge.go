package main

import (
	"io"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bookhub/bookhub/problem"
)

// maxRequestTarget caps the request target (path and query string) of the
// public port. Every URL bookhub serves fits in a few hundred bytes; 8 KiB
// is what common proxies accept, and refusing more up front means no part
// behind the edge ever parses a megabyte of query string.
const maxRequestTarget = 8 << 10

// maxInstanceLen bounds the path echoed as a problem's instance: echoing a
// huge path back would only amplify the request.
const maxInstanceLen = 1 << 10

// edge is the first handler of the public port. In order, it
//
//   - picks the request id (a sane incoming X-Request-ID, else a fresh one),
//     sets it on the response and puts it in the context, so every part
//     behind it answers with the same id;
//   - gives a body its read deadline (see bodyAllowance) and lifts it once
//     the body has been read, and makes sure a response to a request whose
//     body was left unread never waits for that body;
//   - refuses an oversize request target (414), a path that is not in
//     canonical form (404: http.ServeMux would redirect it) and an upgrade
//     request with a body (400), all as problem+json, before any routing.
type edge struct {
	next http.Handler
	// readTimeout is the base allowance of a body; minRate (bytes per
	// second) adds time per declared byte; maxBody is what an undeclared
	// (chunked) body is assumed to be, and caps a declared length.
	readTimeout time.Duration
	minRate     int64
	maxBody     int64
}

// bodyAllowance is how long a body of the declared length (-1: chunked) may
// take to arrive. A fixed ReadTimeout would either cut off an honest upload
// of the largest body over a slow link or let a stalled small one hold its
// connection just as long; an allowance that grows with the size at a
// modest minimum rate serves both.
func (e *edge) bodyAllowance(declared int64) time.Duration {
	if declared < 0 || declared > e.maxBody {
		// A longer declared body is refused unread; a chunked one is cut
		// off at maxBody anyway.
		declared = e.maxBody
	}
	return e.readTimeout + time.Duration(float64(declared)/float64(e.minRate)*float64(time.Second))
}

// serverReadTimeout is the http.Server.ReadTimeout backstop: headers plus the
// largest body allowance. It covers what net/http answers without calling
// the edge (OPTIONS *, which reads a body of its own); the edge replaces it
// with a tighter deadline for every request it sees.
func (e *edge) serverReadTimeout() time.Duration {
	return e.readTimeout + e.bodyAllowance(e.maxBody)
}

func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(problem.RequestIDHeader)
	if !problem.ValidRequestID(id) {
		id = problem.NewRequestID()
	}
	w.Header().Set(problem.RequestIDHeader, id)
	r = r.WithContext(problem.WithRequestID(r.Context(), id))

	rc := http.NewResponseController(w)
	if r.ContentLength == 0 {
		// Nothing left to read. A deadline left from Server.ReadTimeout
		// would only hit net/http's background read and cancel the
		// context of a handler that is merely slow.
		_ = rc.SetReadDeadline(time.Time{})
	} else {
		_ = rc.SetReadDeadline(time.Now().Add(e.bodyAllowance(r.ContentLength)))
		body := &watchedBody{ReadCloser: r.Body, rc: rc}
		r.Body = body
		defer func() {
			if !body.eof.Load() {
				// net/http drains up to 256 KiB of unread body before it
				// reuses a connection, after small responses only once the
				// handler has returned. An expired deadline makes that drain
				// fail at once, and net/http then closes the connection
				// (with "Connection: close") instead of waiting for a body
				// that may never come.
				_ = rc.SetReadDeadline(time.Now())
			}
		}()
	}

	target := r.RequestURI
	if target == "" { // a request built in-process rather than read from the wire
		target = r.URL.RequestURI()
	}
	switch {
	case len(target) > maxRequestTarget:
		refuse(w, r, problem.URITooLong.New("the request target (path and query) exceeds the limit of 8 KiB"))
	case !canonicalPath(r.URL.Path):
		refuse(w, r, problem.NotFound.New("the path is not in canonical form (empty, \".\" or \"..\" segments); nothing is served under it"))
	case r.ContentLength != 0 && r.Header.Get("Upgrade") != "":
		// A WebSocket handshake is a GET without a body. Refusing here also
		// keeps the unread-body handling above away from a hijacked
		// connection.
		refuse(w, r, problem.BadRequest.New("an upgrade request must not carry a body"))
	default:
		e.next.ServeHTTP(w, r)
	}
}

// refuse writes p, with the path as its instance when that is short, and
// closes the connection when the request carried a body: it will not be
// read, and the next request could not be told apart from its rest.
func refuse(w http.ResponseWriter, r *http.Request, p problem.Problem) {
	if len(r.URL.Path) <= maxInstanceLen {
		p.Instance = r.URL.Path
	}
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	problem.Write(w, p)
}

// canonicalPath reports whether p is absolute and already clean: no empty,
// "." or ".." segments. A trailing slash is allowed (the parts behind the
// edge answer 404 for paths they do not serve).
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	if clean != "/" && strings.HasSuffix(p, "/") {
		clean += "/"
	}
	return clean == p
}

// watchedBody notes when its body has been read to the end and then lifts
// the read deadline: from then on net/http only reads in the background to
// notice a client that hangs up, and that must not cancel the request.
type watchedBody struct {
	io.ReadCloser
	rc  *http.ResponseController
	eof atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.eof.CompareAndSwap(false, true) {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
