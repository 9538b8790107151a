package signin_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/signin"
	"github.com/bookhub/bookhub/signin/oidctest"
)

const callbackPath = "/auth/test/callback"

var stateKey = []byte("0123456789abcdef0123456789abcdef")

// syncBuffer is a log sink safe for the server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type result struct {
	ext signin.External
	err error
}

// harness is an app with /login (Begin) and the callback (Finish) in front
// of a test provider.
type harness struct {
	t       *testing.T
	ctx     context.Context
	idp     *oidctest.Server
	p       *signin.Provider
	app     *httptest.Server
	clock   *testenv.Clock
	logs    *syncBuffer
	results chan result
}

func newHarness(t *testing.T, idpOpts oidctest.Options, tweak func(*signin.Config, *signin.Options)) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, clock: testenv.NewClock(time.Now()), logs: &syncBuffer{}, results: make(chan result, 1)}
	idpOpts.Now = h.clock.Now
	h.idp = oidctest.Start(t, idpOpts)

	mux := http.NewServeMux()
	h.app = httptest.NewUnstartedServer(mux)
	cfg := signin.Config{
		Name:         "test",
		IssuerURL:    h.idp.Issuer(),
		ClientID:     h.idp.ClientID(),
		ClientSecret: h.idp.ClientSecret(),
		RedirectURL:  "http://" + h.app.Listener.Addr().String() + callbackPath,
	}
	opts := signin.Options{
		StateKey:   stateKey,
		Now:        h.clock.Now,
		HTTPClient: h.idp.Client(),
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&cfg, &opts)
	}
	p, err := signin.New(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.p = p
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		if err := p.Begin(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET "+callbackPath, func(w http.ResponseWriter, r *http.Request) {
		ext, err := p.Finish(w, r)
		h.results <- result{ext, err}
		if err != nil {
			http.Error(w, "sign-in failed", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	h.app.Start()
	t.Cleanup(h.app.Close)
	return h
}

// browser returns a client with its own cookie jar that follows redirects
// up to, but not into, the callback, so a test can look at or spoil the
// callback before it is made.
func (h *harness) browser() *http.Client {
	h.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Path == callbackPath {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// authorize runs /login and the provider's /authorize and returns the
// callback URL the provider redirected to.
func (h *harness) authorize(c *http.Client, returnTo string) *url.URL {
	h.t.Helper()
	u := h.app.URL + "/login"
	if returnTo != "" {
		u += "?return_to=" + url.QueryEscape(returnTo)
	}
	resp := h.get(c, u)
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("authorize: status %d, want 302 to the callback", resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		h.t.Fatalf("authorize: %v", err)
	}
	if loc.Path != callbackPath {
		h.t.Fatalf("authorize ended at %s, want the callback", loc)
	}
	return loc
}

// callback makes the callback request and returns what Finish returned.
func (h *harness) callback(c *http.Client, u *url.URL) result {
	h.t.Helper()
	h.get(c, u.String())
	select {
	case r := <-h.results:
		return r
	case <-h.ctx.Done():
		h.t.Fatal("callback: Finish was not called")
		return result{}
	}
}

func (h *harness) get(c *http.Client, u string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, u, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", u, err)
	}
	_ = resp.Body.Close()
	return resp
}

// flowCookie returns the flow cookie the browser would send to u, or nil.
func flowCookie(c *http.Client, u *url.URL) *http.Cookie {
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "bookhub_signin_test" {
			return ck
		}
	}
	return nil
}

// kind names the sentinel an error wraps, for readable failures.
func kind(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, signin.ErrFlowInvalid):
		return "ErrFlowInvalid"
	case errors.Is(err, signin.ErrInvalidReturnTo):
		return "ErrInvalidReturnTo"
	case errors.Is(err, signin.ErrDenied):
		return "ErrDenied"
	case errors.Is(err, signin.ErrUnavailable):
		return "ErrUnavailable"
	case errors.Is(err, signin.ErrInvalidToken):
		return "ErrInvalidToken"
	case errors.Is(err, signin.ErrProvider):
		return "ErrProvider"
	default:
		return "unclassified"
	}
}
