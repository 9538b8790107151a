package rest_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/problem"
	"github.com/bookhub/bookhub/rest"
)

// wrapped serves the API behind outer, the way bookhub's edge does.
func wrapped(t *testing.T, outer func(http.Handler) http.Handler) (*env, *httptest.Server) {
	t.Helper()
	e := newEnv(t, nil)
	h, err := rest.New(rest.Options{Books: e.store, Tokens: e.tokens})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(outer(h))
	t.Cleanup(srv.Close)
	return e, srv
}

// TestRequestIDFromContext: an id an outer handler put in the context wins
// over the client's header, so one response never carries two ids.
func TestRequestIDFromContext(t *testing.T) {
	_, srv := wrapped(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(problem.WithRequestID(r.Context(), "edge-id-1")))
		})
	})
	req, _ := http.NewRequestWithContext(testContext(t), "GET", srv.URL+"/api/v1/books/424242", nil)
	req.Header.Set("X-Request-ID", "client-id-2")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	if p := r.problem(t); p.RequestID != "edge-id-1" {
		t.Errorf("request_id %q, want the context's edge-id-1", p.RequestID)
	}
}

// TestBodyDeadlineIs408: a body cut off by a read deadline (bookhub's edge
// sets one) is answered 408 with Connection: close, not 400.
func TestBodyDeadlineIs408(t *testing.T) {
	e, srv := wrapped(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			h.ServeHTTP(w, r)
		})
	})
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	head := "POST /api/v1/books HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n" +
		"Authorization: Bearer " + e.token(t, auth.RoleEditor) + "\r\n\r\n{"
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	if r.status != http.StatusRequestTimeout {
		t.Fatalf("status %d: %s", r.status, b)
	}
	if p := r.problem(t); p.Type != "urn:bookhub:problem:request-timeout" || !strings.Contains(p.Detail, "in time") {
		t.Errorf("problem %+v", p)
	}
	if !resp.Close {
		t.Error("408 without Connection: close")
	}
	if len(e.published()) != 0 {
		t.Error("a cut-off body published an event")
	}
}
