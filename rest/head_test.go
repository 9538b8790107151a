package rest_test

import (
	"net/http"
	"testing"
)

// TestHeadAnswersLikeGet: every GET route answers HEAD with the GET's status
// and headers (ETag and Content-Length included) and without a body.
func TestHeadAnswersLikeGet(t *testing.T) {
	e := newEnv(t, nil)
	b := e.createBook(t, `{"title":"Dune","author":"Frank Herbert"}`)
	path := "/api/v1/books/" + jsonInt(b.ID)
	for _, tt := range []struct {
		name    string
		path    string
		headers map[string]string
		status  int
	}{
		{"List", "/api/v1/books", nil, http.StatusOK},
		{"ListBadQuery", "/api/v1/books?limit=0", nil, http.StatusBadRequest},
		{"Book", path, nil, http.StatusOK},
		{"BookNotModified", path, map[string]string{"If-None-Match": `"1"`}, http.StatusNotModified},
		{"BookMissing", "/api/v1/books/424242", nil, http.StatusNotFound},
		{"BookBadID", "/api/v1/books/x", nil, http.StatusBadRequest},
		{"Healthz", "/healthz", nil, http.StatusOK},
		{"Readyz", "/readyz", nil, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			get := e.do(t, request{method: "GET", path: tt.path, headers: tt.headers})
			head := e.do(t, request{method: "HEAD", path: tt.path, headers: tt.headers})
			if get.status != tt.status || head.status != tt.status {
				t.Fatalf("GET %d, HEAD %d, want %d", get.status, head.status, tt.status)
			}
			if len(head.body) != 0 {
				t.Errorf("HEAD sent a body: %s", head.body)
			}
			for _, h := range []string{"Content-Type", "ETag", "Cache-Control", "Link"} {
				if g, hd := get.header.Get(h), head.header.Get(h); g != hd {
					t.Errorf("%s: GET %q, HEAD %q", h, g, hd)
				}
			}
			// /readyz reports check durations, whose digits may differ.
			if g, hd := get.header.Get("Content-Length"), head.header.Get("Content-Length"); g != hd && tt.name != "Readyz" {
				t.Errorf("Content-Length: GET %q, HEAD %q", g, hd)
			}
			if tt.status == http.StatusOK && head.header.Get("Content-Length") == "" {
				t.Error("HEAD has no Content-Length")
			}
		})
	}
	t.Run("AllowListsHead", func(t *testing.T) {
		r := e.do(t, request{method: "PUT", path: "/healthz"})
		r.problem(t)
		if got := r.header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("Allow = %q, want GET, HEAD", got)
		}
	})
}
