package rest_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/rest"
)

// benchHandler returns the API over a real SQLite store, without a network
// in between, so the numbers measure the handler and the store.
func benchHandler(b *testing.B) (http.Handler, string) {
	b.Helper()
	tokens := newTokens(b)
	h, err := rest.New(rest.Options{
		Books:  openStore(b),
		Tokens: tokens,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokens.Issue("bench", auth.RoleEditor, 0x7fffffff)
	if err != nil {
		b.Fatal(err)
	}
	return h, tok
}

func serve(b *testing.B, h http.Handler, req *http.Request, want int) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s = %d: %s", req.Method, req.URL, w.Code, w.Body)
	}
}

func newPost(body, tok string) *http.Request {
	req := httptest.NewRequest("POST", "/api/v1/books", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

func BenchmarkGetBook(b *testing.B) {
	h, tok := benchHandler(b)
	serve(b, h, newPost(`{"title":"Dune","author":"Frank Herbert","isbn":"9780306406157","price":12.5,"stock":3}`, tok), http.StatusCreated)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, httptest.NewRequest("GET", "/api/v1/books/1", nil), http.StatusOK)
	}
}

func BenchmarkCreateBook(b *testing.B) {
	h, tok := benchHandler(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		body := fmt.Sprintf(`{"title":"Book %d","author":"Frank Herbert","price":12.5,"stock":3}`, i)
		serve(b, h, newPost(body, tok), http.StatusCreated)
	}
}
