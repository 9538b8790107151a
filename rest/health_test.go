package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

// faultyStore fails every call with err; it stands in for a broken database.
type faultyStore struct{ err error }

func (f faultyStore) Create(context.Context, store.Book) (store.Book, error) {
	return store.Book{}, f.err
}
func (f faultyStore) Get(context.Context, int64) (store.Book, error) { return store.Book{}, f.err }
func (f faultyStore) Epoch() string                                  { return "" }
func (f faultyStore) Update(context.Context, int64, int64, func(*store.Book) error) (store.Book, error) {
	return store.Book{}, f.err
}
func (f faultyStore) Delete(context.Context, int64, int64) (store.Book, error) {
	return store.Book{}, f.err
}
func (f faultyStore) List(context.Context, store.ListOptions) (store.Page, error) {
	return store.Page{}, f.err
}
func (f faultyStore) Ping(context.Context) error { return f.err }

// panicStore panics in Get, like a handler bug would.
type panicStore struct{ faultyStore }

func (panicStore) Get(context.Context, int64) (store.Book, error) { panic("boom: secret internals") }

func TestHealthz(t *testing.T) {
	e := newEnv(t, func(o *rest.Options) { o.Books = faultyStore{err: errors.New("db down")} })
	r := e.do(t, request{method: "GET", path: "/healthz"})
	if r.status != http.StatusOK || string(r.body) != `{"status":"ok"}` {
		t.Errorf("healthz = %d %s, want 200 {\"status\":\"ok\"} even with the database down", r.status, r.body)
	}
}

type readyBody struct {
	Status string `json:"status"`
	Checks []struct {
		Name       string `json:"name"`
		Status     string `json:"status"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"checks"`
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	failing := func(context.Context) error {
		return errors.New("dial redis://:hunter2@10.0.0.1:6379: refused")
	}
	tests := []struct {
		name       string
		books      rest.BookStore // nil: the real store
		checks     []rest.Check
		wantStatus int
		want       map[string]string
	}{
		{"OK", nil, []rest.Check{{Name: "events", Ping: ok}}, http.StatusOK,
			map[string]string{"database": "ok", "events": "ok"}},
		{"FailingCheck", nil, []rest.Check{{Name: "events", Ping: failing}}, http.StatusServiceUnavailable,
			map[string]string{"database": "ok", "events": "failed"}},
		{"DatabaseDown", faultyStore{err: errors.New("password=hunter2 refused")}, nil, http.StatusServiceUnavailable,
			map[string]string{"database": "failed"}},
		{"CheckTimedOut", nil, []rest.Check{{Name: "slow", Ping: func(context.Context) error { return context.DeadlineExceeded }}},
			http.StatusServiceUnavailable, map[string]string{"database": "ok", "slow": "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *rest.Options) { o.Books, o.Checks = tt.books, tt.checks })
			r := e.do(t, request{method: "GET", path: "/readyz"})
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if strings.Contains(string(r.body), "hunter2") {
				t.Errorf("readyz leaks a secret: %s", r.body)
			}
			var body readyBody
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, c := range body.Checks {
				got[c.Name] = c.Status
			}
			if len(got) != len(tt.want) {
				t.Errorf("checks %v, want %v", got, tt.want)
			}
			for name, status := range tt.want {
				if got[name] != status {
					t.Errorf("check %s = %q, want %q", name, got[name], status)
				}
			}
			if wantStatus := map[bool]string{true: "ok", false: "unavailable"}[tt.wantStatus == 200]; body.Status != wantStatus {
				t.Errorf("status %q, want %q", body.Status, wantStatus)
			}
		})
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, func(o *rest.Options) { o.Books = panicStore{faultyStore{err: store.ErrNotFound}} })
	r := e.do(t, request{method: "GET", path: "/api/v1/books/1"})
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	p := r.problem(t)
	if p.Type != "urn:bookhub:problem:internal" || strings.Contains(string(r.body), "boom") {
		t.Errorf("panic problem wrong or leaking: %s", r.body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "panic serving request") || !strings.Contains(logs, "boom: secret internals") ||
		!strings.Contains(logs, "goroutine ") || !strings.Contains(logs, p.RequestID) {
		t.Errorf("panic not logged with stack and request id:\n%s", logs)
	}
	// The server survives: the next request is served normally.
	if r := e.do(t, request{method: "GET", path: "/api/v1/books"}); r.status != http.StatusNotFound {
		t.Errorf("after panic: status %d, want the store's 404", r.status)
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, nil)
	generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
	tests := []struct {
		name     string
		incoming string
		wantEcho bool
	}{
		{"GeneratedWhenAbsent", "", false},
		{"EchoedWhenSane", "abc-123_DEF.4:5", true},
		{"EchoedUUID", "0b7c3e3e-7d0e-4c2e-9f6a-2d8f1a2b3c4d", true},
		{"ReplacedWhenUnsafe", "abc 123 <script>", false},
		{"ReplacedWhenTooLong", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.incoming != "" {
				h["X-Request-ID"] = tt.incoming
			}
			r := e.do(t, request{method: "GET", path: "/api/v1/books/999", headers: h})
			got := r.header.Get("X-Request-ID")
			if tt.wantEcho && got != tt.incoming || !tt.wantEcho && !generated.MatchString(got) {
				t.Errorf("X-Request-ID = %q for incoming %q", got, tt.incoming)
			}
			if p := r.problem(t); p.RequestID != got {
				t.Errorf("problem request_id %q != header %q", p.RequestID, got)
			}
		})
	}
}

func TestAccessLogAndObserve(t *testing.T) {
	type obs struct {
		method, route string
		status        int
	}
	var mu sync.Mutex
	var seen []obs
	e := newEnv(t, func(o *rest.Options) {
		o.Observe = func(method, route string, status int, d time.Duration) {
			mu.Lock()
			seen = append(seen, obs{method, route, status})
			mu.Unlock()
		}
	})
	tok := e.token(t, auth.RoleEditor)
	b := e.createBook(t, `{"title":"a","author":"b"}`)
	e.do(t, request{method: "PATCH", path: "/api/v1/books/" + jsonInt(b.ID) + "?token=" + tok, token: tok, body: `{"stock":2}`,
		headers: map[string]string{"X-Request-ID": "req-observe-1"}})
	e.do(t, request{method: "GET", path: "/nowhere/" + tok})

	mu.Lock()
	got := append([]obs(nil), seen...)
	mu.Unlock()
	want := []obs{{"POST", "/api/v1/books", 201}, {"PATCH", "/api/v1/books/:id", 200}, {"GET", "unmatched", 404}}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("observation %d = %v, want %v", i, got[i], want[i])
		}
	}

	var line map[string]any
	for l := range strings.SplitSeq(e.logs.String(), "\n") {
		if strings.Contains(l, `"request_id":"req-observe-1"`) && strings.Contains(l, `"msg":"http request"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no access log line for the PATCH:\n%s", e.logs)
	}
	for k, v := range map[string]any{"method": "PATCH", "route": "/api/v1/books/:id", "status": float64(200), "sub": "tester-editor"} {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Errorf("access log lacks duration: %v", line)
	}
	if n, _ := line["bytes"].(float64); n <= 0 {
		t.Errorf("access log bytes = %v", line["bytes"])
	}
	if strings.Contains(e.logs.String(), tok) {
		t.Errorf("a token reached the logs")
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	st := faultyStore{}
	tk := newTokens(t)
	tests := []struct {
		name string
		opts rest.Options
	}{
		{"NoBooks", rest.Options{Tokens: tk}},
		{"NoTokens", rest.Options{Books: st}},
		{"NegativeBodyLimit", rest.Options{Books: st, Tokens: tk, MaxBodyBytes: -1}},
		{"CheckWithoutPing", rest.Options{Books: st, Tokens: tk, Checks: []rest.Check{{Name: "x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = slog.New(slog.DiscardHandler)
			if h, err := rest.New(tt.opts); err == nil || h != nil {
				t.Errorf("New = %v, %v; want an error", h, err)
			}
		})
	}
}
