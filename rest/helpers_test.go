package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

const testSecret = "test-secret-that-is-at-least-32-bytes-long!"

// env is one API server over a fresh SQLite store, with the events it
// published and the log lines it wrote.
type env struct {
	srv    *httptest.Server
	store  *store.Store
	tokens *auth.Tokens
	logs   *testenv.LogBuffer

	mu      sync.Mutex
	changes []store.Change
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t testing.TB) *store.Store { return openStoreWith(t, nil) }

// openStoreWith opens a fresh SQLite store that hands each committed change
// to onCommit.
func openStoreWith(t testing.TB, onCommit func(store.Change)) *store.Store {
	t.Helper()
	st, err := store.Open(testContext(t), store.Options{
		URL:      filepath.Join(t.TempDir(), "books.db"),
		Logger:   slog.New(slog.DiscardHandler),
		Origin:   "test-instance",
		OnCommit: onCommit,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newTokens(t testing.TB) *auth.Tokens {
	t.Helper()
	tk, err := auth.New([]byte(testSecret), auth.Options{})
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return tk
}

// newEnv starts a server on a real store. mod may adjust the options (nil
// Books means the real store).
func newEnv(t testing.TB, mod func(*rest.Options)) *env {
	t.Helper()
	e := &env{tokens: newTokens(t), logs: &testenv.LogBuffer{}}
	opts := rest.Options{
		Tokens:   e.tokens,
		Instance: "test-instance",
		Logger:   slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	if opts.Books == nil {
		e.store = openStoreWith(t, func(c store.Change) {
			e.mu.Lock()
			e.changes = append(e.changes, c)
			e.mu.Unlock()
		})
		opts.Books = e.store
	}
	h, err := rest.New(opts)
	if err != nil {
		t.Fatalf("rest.New: %v", err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// published returns the changes committed so far. The store hands them over
// before the write returns, so no waiting is needed after a response.
func (e *env) published() []store.Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]store.Change(nil), e.changes...)
}

func (e *env) token(t testing.TB, role auth.Role) string {
	t.Helper()
	tok, err := e.tokens.Issue("tester-"+string(role), role, time.Hour)
	if err != nil {
		t.Fatalf("issue token: %v", err)
	}
	return tok
}

// request is one HTTP call. Body is sent as application/json unless headers
// set another Content-Type.
type request struct {
	method  string
	path    string
	token   string
	body    string
	headers map[string]string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(t testing.TB, r request) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(testContext(t), r.method, e.srv.URL+r.path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	return e.send(t, req)
}

func (e *env) send(t testing.TB, req *http.Request) response {
	t.Helper()
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// wireBook mirrors the documented wire format; Price stays a json.Number so
// tests see its exact text.
type wireBook struct {
	ID        int64       `json:"id"`
	Title     string      `json:"title"`
	Author    string      `json:"author"`
	ISBN      *string     `json:"isbn"`
	Price     json.Number `json:"price"`
	Stock     int64       `json:"stock"`
	Version   int64       `json:"version"`
	CreatedAt string      `json:"created_at"`
	UpdatedAt string      `json:"updated_at"`
	// Staff-only: present for editors and admins.
	CostPrice *json.Number `json:"cost_price"`
	Supplier  *string      `json:"supplier"`
}

type wireList struct {
	Books      []wireBook `json:"books"`
	NextCursor string     `json:"next_cursor"`
	Position   struct {
		Channel string `json:"channel"`
		Offset  uint64 `json:"offset"`
		Epoch   string `json:"epoch"`
	} `json:"position"`
}

func decodeStrictList(t testing.TB, b []byte) wireList {
	t.Helper()
	l := decodeStrict[wireList](t, b)
	if l.Books == nil {
		t.Errorf("books is null or missing, want an array: %s", b)
	}
	return l
}

type wireProblem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func decodeStrict[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, b, err)
	}
	return v
}

func (r response) book(t testing.TB) wireBook {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (body %s)", ct, r.body)
	}
	return decodeStrict[wireBook](t, r.body)
}

// problem checks the problem+json shape and returns it.
func (r response) problem(t testing.TB) wireProblem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, r.body)
	}
	p := decodeStrict[wireProblem](t, r.body)
	if p.Status != r.status {
		t.Errorf("problem status %d != response status %d", p.Status, r.status)
	}
	if !strings.HasPrefix(p.Type, "urn:bookhub:problem:") || p.Title == "" || p.Instance == "" {
		t.Errorf("problem lacks type/title/instance: %s", r.body)
	}
	if p.RequestID == "" || p.RequestID != r.header.Get("X-Request-ID") {
		t.Errorf("problem request_id %q, header %q", p.RequestID, r.header.Get("X-Request-ID"))
	}
	return p
}

// createBook creates a book through the API and returns it.
func (e *env) createBook(t testing.TB, body string) wireBook {
	t.Helper()
	r := e.do(t, request{method: "POST", path: "/api/v1/books", token: e.token(t, auth.RoleEditor), body: body})
	if r.status != http.StatusCreated {
		t.Fatalf("create %s: status %d: %s", body, r.status, r.body)
	}
	return r.book(t)
}
