package main

import (
	"net/http"
	"strings"

	"github.com/bookhub/bookhub/problem"
)

// routes dispatches the public port by path. It replaces http.ServeMux,
// which redirects ("/api" to "/api/", unclean paths to clean ones) with an
// HTML body: here nothing redirects, and whatever no part serves reaches the
// web assets, which answer problem+json 404.
func routes(api, ws, web http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/ws":
			ws.ServeHTTP(w, r)
		case p == "/healthz", p == "/readyz", strings.HasPrefix(p, "/api/"):
			api.ServeHTTP(w, r)
		default:
			web.ServeHTTP(w, r)
		}
	})
}

// assets serves the embedded web files for GET and HEAD only (405 with
// Allow otherwise), and turns the file server's own refusals and redirects
// (a text/plain 404, a 301 from /index.html to ./) into problem+json.
func assets(files http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			refuse(w, r, problem.MethodNotAllowed.New(r.Method+" is not allowed here; see the Allow header"))
			return
		}
		files.ServeHTTP(&assetWriter{w: w, r: r, header: http.Header{}}, r)
	})
}

// assetWriter holds the file server's headers back until it knows the
// status: a success goes out as written, anything else as a problem.
type assetWriter struct {
	w       http.ResponseWriter
	r       *http.Request
	header  http.Header
	wrote   bool
	refused bool
}

func (a *assetWriter) Header() http.Header { return a.header }

func (a *assetWriter) WriteHeader(code int) {
	if a.wrote {
		return
	}
	a.wrote = true
	if code >= http.StatusMultipleChoices && code != http.StatusNotModified {
		a.refused = true
		refuse(a.w, a.r, assetProblem(code))
		return
	}
	h := a.w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	a.w.WriteHeader(code)
}

func (a *assetWriter) Write(p []byte) (int, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	if a.refused {
		return len(p), nil // the problem body is already out
	}
	return a.w.Write(p)
}

// assetProblem maps a status of the file server to a problem. Redirects
// become 404: the page lives at its canonical path only.
func assetProblem(code int) problem.Problem {
	if code < http.StatusBadRequest || code == http.StatusNotFound {
		return problem.NotFound.New("no page or asset has this path")
	}
	text := http.StatusText(code)
	if text == "" {
		text = "error"
	}
	return problem.New(code, strings.ReplaceAll(strings.ToLower(text), " ", "-"), "the asset could not be served")
}
