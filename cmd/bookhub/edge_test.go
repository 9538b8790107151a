package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/problem"
)

// TestEveryRefusalIsProblemJSON: what no part serves, what would have been
// redirected, and what the edge bounds, all answer problem+json on the
// public port, never a redirect or an HTML or text body.
func TestEveryRefusalIsProblemJSON(t *testing.T) {
	app := startTunedApp(t, nil, nil)
	long := strings.Repeat("a", maxRequestTarget)
	tests := []struct {
		name, method, target string
		headers              map[string]string
		body                 string
		status               int
		slug                 string
		allow                string
	}{
		{name: "DoubleSlash", method: "GET", target: "//", status: 404, slug: "not-found"},
		{name: "DoubleSlashBeforeAPI", method: "GET", target: "//api/v1/books", status: 404, slug: "not-found"},
		{name: "EmptySegment", method: "GET", target: "/api/v1//books", status: 404, slug: "not-found"},
		{name: "DotDot", method: "GET", target: "/api/v1/../v1/books", status: 404, slug: "not-found"},
		{name: "EncodedDotDot", method: "GET", target: "/api/v1/books/%2e%2e", status: 404, slug: "not-found"},
		{name: "DotSegment", method: "GET", target: "/./", status: 404, slug: "not-found"},
		{name: "TrailingDot", method: "GET", target: "/api/v1/books/.", status: 404, slug: "not-found"},
		{name: "DotDotAboveRoot", method: "GET", target: "/../etc/passwd", status: 404, slug: "not-found"},
		{name: "APIWithoutSlash", method: "GET", target: "/api", status: 404, slug: "not-found"},
		{name: "IndexHTMLIsNotRedirected", method: "GET", target: "/index.html", status: 404, slug: "not-found"},
		{name: "MissingAsset", method: "GET", target: "/app.css", status: 404, slug: "not-found"},
		{name: "PostToRoot", method: "POST", target: "/", headers: map[string]string{"Content-Length": "2"}, body: "{}", status: 405, slug: "method-not-allowed", allow: "GET, HEAD"},
		{name: "DeleteAsset", method: "DELETE", target: "/", status: 405, slug: "method-not-allowed", allow: "GET, HEAD"},
		{name: "UnknownAPIRoute", method: "GET", target: "/api/v2/books", status: 404, slug: "not-found"},
		{name: "APITrailingSlash", method: "GET", target: "/api/v1/books/", status: 404, slug: "not-found"},
		{name: "PostToHealthz", method: "POST", target: "/healthz", status: 405, slug: "method-not-allowed", allow: "GET, HEAD"},
		{name: "DeleteBookList", method: "DELETE", target: "/api/v1/books", status: 405, slug: "method-not-allowed", allow: "GET, HEAD, POST"},
		{name: "QueryTooLong", method: "GET", target: "/api/v1/books?q=" + long, status: 414, slug: "uri-too-long"},
		{name: "SubscribeListTooLong", method: "GET", target: "/ws?subscribe=" + strings.Repeat("books:1,", maxRequestTarget/8), status: 414, slug: "uri-too-long"},
		{name: "PathTooLong", method: "GET", target: "/" + long, status: 414, slug: "uri-too-long"},
		{name: "UpgradeWithBody", method: "GET", target: "/ws", headers: map[string]string{
			"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Content-Length": "5"}, body: "hello", status: 400, slug: "bad-request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, app.Addr(), 10*time.Second)
			c.send(t, tt.method, tt.target, tt.headers, tt.body)
			resp, body := c.response(t, tt.method)
			checkProblem(t, resp, body, tt.status, tt.slug)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
	t.Run("ExactlyAtTheLimitIsServed", func(t *testing.T) {
		target := "/api/v1/books?q="
		target += strings.Repeat("a", maxRequestTarget-len(target))
		c := dialRaw(t, app.Addr(), 10*time.Second)
		c.send(t, "GET", target, nil, "")
		if resp, body := c.response(t, "GET"); resp.StatusCode == http.StatusRequestURITooLong {
			t.Fatalf("a target of exactly %d bytes was refused: %s", maxRequestTarget, body)
		}
	})
}

// TestOneRequestIDPerResponse: the edge keeps a sane incoming X-Request-ID
// and replaces anything else, and every part answers with that one id.
func TestOneRequestIDPerResponse(t *testing.T) {
	app := startTunedApp(t, nil, nil)
	for _, tt := range []struct{ name, target, incoming string }{
		{"RESTKeepsSaneID", "/api/v1/books/999", "trace-0123:abc_DEF.9"},
		{"EdgeKeepsSaneID", "//x", "trace-0123:abc_DEF.9"},
		{"AssetKeepsSaneID", "/missing", "trace-0123:abc_DEF.9"},
		{"RESTReplacesMarkup", "/api/v1/books/999", "<script>"},
		{"RESTReplacesOverlong", "/api/v1/books/999", strings.Repeat("a", problem.MaxRequestIDLen+1)},
		{"RESTMintsOne", "/api/v1/books/999", ""},
		{"EdgeMintsOne", "/api/v1/../x", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, app.Addr(), 10*time.Second)
			h := map[string]string{}
			if tt.incoming != "" {
				h["X-Request-ID"] = tt.incoming
			}
			c.send(t, "GET", tt.target, h, "")
			resp, body := c.response(t, "GET")
			p := checkProblem(t, resp, body, http.StatusNotFound, "not-found")
			switch {
			case problem.ValidRequestID(tt.incoming) && p.RequestID != tt.incoming:
				t.Errorf("request id %q, want the incoming %q", p.RequestID, tt.incoming)
			case !problem.ValidRequestID(tt.incoming) && (p.RequestID == tt.incoming || !problem.ValidRequestID(p.RequestID)):
				t.Errorf("request id %q for incoming %q, want a fresh sane one", p.RequestID, tt.incoming)
			}
		})
	}
	t.Run("SuccessCarriesItToo", func(t *testing.T) {
		resp := do(t, "GET", app.base()+"/healthz", "", nil, nil)
		if ids := resp.Header.Values("X-Request-ID"); len(ids) != 1 || !problem.ValidRequestID(ids[0]) {
			t.Errorf("X-Request-ID = %q", ids)
		}
	})
}

// TestEdgeHandsItsIDOn: what the handler behind the edge finds in the
// context is the id the response carries (rest reuses it; see rest's own
// test), so no second id is minted behind the edge.
func TestEdgeHandsItsIDOn(t *testing.T) {
	var inner string
	ed := &edge{readTimeout: time.Second, minRate: 1 << 20, maxBody: 1 << 20,
		next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner = problem.RequestIDFrom(r.Context())
		})}
	srv := httptest.NewServer(ed)
	t.Cleanup(srv.Close)
	for _, incoming := range []string{"", "client-7", "bad id"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)
		if incoming != "" {
			req.Header.Set("X-Request-ID", incoming)
		}
		resp, err := srv.Client().Do(req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-ID"); got == "" || got != inner {
			t.Errorf("incoming %q: response id %q, handler saw %q", incoming, got, inner)
		}
	}
}

// TestHeadAnswersLikeGet: every GET route of the public port answers HEAD
// with the same status and headers, and no body.
func TestHeadAnswersLikeGet(t *testing.T) {
	app := startTunedApp(t, nil, nil)
	var b book
	if resp := do(t, "POST", app.base()+"/api/v1/books", issue(t, auth.RoleEditor), map[string]any{"title": "Dune", "author": "Frank Herbert"}, &b); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	bookPath := "/api/v1/books/" + itoa(b.ID)
	for _, tt := range []struct {
		name, path string
		headers    map[string]string
		status     int
		// timed: the body reports how long checks took, so its length
		// may differ between two calls by a digit.
		timed bool
	}{
		{"BookList", "/api/v1/books?limit=5", nil, 200, false},
		{"Book", bookPath, nil, 200, false},
		{"BookNotModified", bookPath, map[string]string{"If-None-Match": `"1"`}, 304, false},
		{"MissingBook", "/api/v1/books/999", nil, 404, false},
		{"Healthz", "/healthz", nil, 200, false},
		{"Readyz", "/readyz", nil, 200, true},
		{"WebPage", "/", nil, 200, false},
		{"MissingAsset", "/nope.js", nil, 404, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			get, getBody := fetch(t, "GET", app.base()+tt.path, tt.headers)
			head, headBody := fetch(t, "HEAD", app.base()+tt.path, tt.headers)
			if get.StatusCode != tt.status || head.StatusCode != tt.status {
				t.Fatalf("GET %d, HEAD %d, want %d", get.StatusCode, head.StatusCode, tt.status)
			}
			if len(headBody) != 0 {
				t.Errorf("HEAD sent a body: %q", headBody)
			}
			for _, h := range []string{"Content-Type", "ETag", "Content-Length", "Cache-Control", "Allow"} {
				if g, hd := get.Header.Get(h), head.Header.Get(h); g != hd && (!tt.timed || h != "Content-Length" || hd == "") {
					t.Errorf("%s: GET %q, HEAD %q", h, g, hd)
				}
			}
			if tt.status == 200 && get.Header.Get("Content-Length") == "" {
				t.Errorf("GET has no Content-Length (body %d bytes)", len(getBody))
			}
			if tt.path == bookPath && get.Header.Get("ETag") == "" {
				t.Error("GET of a book has no ETag")
			}
		})
	}
}

func fetch(t *testing.T, method, url string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestCanonicalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/api/v1/books": true, "/api/v1/books/": true, "/ws": true, "/a.b/c..d": true,
		"": false, "api": false, "//": false, "/a//b": false, "/a/./b": false, "/a/../b": false,
		"/a/.": false, "/a/..": false, "/..": false, "/./": false, "/a//": false, "*": false,
	} {
		if got := canonicalPath(p); got != want {
			t.Errorf("canonicalPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestBodyAllowance(t *testing.T) {
	e := &edge{readTimeout: 10 * time.Second, minRate: 16 << 10, maxBody: 1 << 20}
	for _, tt := range []struct {
		declared int64
		want     time.Duration
	}{
		{1, 10*time.Second + 61035*time.Nanosecond},
		{16 << 10, 11 * time.Second},
		{1 << 20, 74 * time.Second},
		{-1, 74 * time.Second},      // chunked: assume the largest body
		{1 << 30, 74 * time.Second}, // refused unread anyway
	} {
		if got := e.bodyAllowance(tt.declared); got.Round(time.Microsecond) != tt.want.Round(time.Microsecond) {
			t.Errorf("bodyAllowance(%d) = %s, want %s", tt.declared, got, tt.want)
		}
	}
	if got, want := e.serverReadTimeout(), 84*time.Second; got != want {
		t.Errorf("serverReadTimeout = %s, want %s", got, want)
	}
}
