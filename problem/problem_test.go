package problem_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/problem"
)

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("X-Request-ID", "rid-1")
	w.Header().Set("ETag", `"3"`)
	p := problem.NotFound.New("no book has this id")
	p.Instance = "/api/v1/books/3"
	p.Errors = []problem.FieldError{{Field: "id", Message: "unknown"}}
	problem.Write(w, p)

	if w.Code != http.StatusNotFound {
		t.Errorf("status %d", w.Code)
	}
	for h, want := range map[string]string{
		"Content-Type": "application/problem+json", "Cache-Control": "no-store",
		"X-Content-Type-Options": "nosniff", "ETag": "",
	} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	want := `{"type":"urn:bookhub:problem:not-found","title":"Not found","status":404,"detail":"no book has this id",` +
		`"instance":"/api/v1/books/3","request_id":"rid-1","errors":[{"field":"id","message":"unknown"}]}`
	if got := w.Body.String(); got != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
}

func TestKindsAreWellFormed(t *testing.T) {
	for _, k := range []problem.Kind{problem.NotFound, problem.MethodNotAllowed, problem.URITooLong, problem.BadRequest} {
		p := k.New("detail")
		var back problem.Problem
		if err := json.Unmarshal(problem.Encode(p), &back); err != nil {
			t.Fatal(err)
		}
		if back.Status != k.Status || back.Title != k.Title || back.Type != problem.TypePrefix+k.Slug ||
			http.StatusText(k.Status) == "" || strings.ContainsAny(k.Slug, " :/") {
			t.Errorf("kind %+v renders as %+v", k, back)
		}
	}
}

func TestRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc": true, "0f1e-2d3c_4b5a.69:78": true, strings.Repeat("a", problem.MaxRequestIDLen): true,
		"": false, "a b": false, "<script>": false, "a\nb": false, strings.Repeat("a", problem.MaxRequestIDLen+1): false,
	} {
		if got := problem.ValidRequestID(id); got != want {
			t.Errorf("ValidRequestID(%q) = %v", id, got)
		}
	}
	a, b := problem.NewRequestID(), problem.NewRequestID()
	if a == b || !problem.ValidRequestID(a) || len(a) != 24 {
		t.Errorf("NewRequestID gave %q and %q", a, b)
	}
	ctx := context.Background()
	if got := problem.RequestIDFrom(ctx); got != "" {
		t.Errorf("empty context has id %q", got)
	}
	if got := problem.RequestIDFrom(problem.WithRequestID(ctx, a)); got != a {
		t.Errorf("RequestIDFrom = %q, want %q", got, a)
	}
}
