package rest_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

// checkEvent asserts the committed change ev announces the book the client
// received in body, rendered exactly as the response.
func checkEvent(t *testing.T, ev store.Change, typ events.Type, body []byte) {
	t.Helper()
	var b wireBook
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("decode response book: %v", err)
	}
	if ev.Type != typ || ev.Book.ID != b.ID || ev.Origin != "test-instance" {
		t.Errorf("event = {type %s, book %d, origin %q}, want {%s, %d, test-instance}", ev.Type, ev.Book.ID, ev.Origin, typ, b.ID)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(ev.EventID) {
		t.Errorf("event id %q is not 32 hex digits", ev.EventID)
	}
	if rendered, err := rest.EncodeBook(ev.Book); err != nil || string(rendered) != string(body) {
		t.Errorf("event book\n%s (%v)\nwant the response body\n%s", rendered, err, body)
	}
	if typ != events.BookDeleted && ev.At.Format(time.RFC3339Nano) != b.UpdatedAt {
		t.Errorf("event at %s, want updated_at %s", ev.At.Format(time.RFC3339Nano), b.UpdatedAt)
	}
	if ev.At.Location() != time.UTC {
		t.Errorf("event at %s is not UTC", ev.At)
	}
}

func TestCreateBook(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(t, request{method: "POST", path: "/api/v1/books", token: e.token(t, auth.RoleEditor),
		body: `{"title":"  Dune ","author":"Frank Herbert","isbn":"978-0 306-40615-7","price":12.5,"stock":3}`})
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	b := r.book(t)
	if b.ID <= 0 || b.Title != "Dune" || b.Author != "Frank Herbert" || b.ISBN == nil || *b.ISBN != "9780306406157" ||
		b.Price.String() != "12.50" || b.Stock != 3 || b.Version != 1 {
		t.Errorf("created %s", r.body)
	}
	if !strings.Contains(string(r.body), `"price":12.50,`) {
		t.Errorf("price not rendered with two decimals: %s", r.body)
	}
	for _, ts := range []string{b.CreatedAt, b.UpdatedAt} {
		if p, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(p) > time.Minute {
			t.Errorf("timestamp %q is not a recent RFC 3339 UTC time (%v)", ts, err)
		}
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/books/"+jsonInt(b.ID) {
		t.Errorf("Location = %q", loc)
	}
	if et := r.header.Get("ETag"); et != `"1"` {
		t.Errorf("ETag = %q, want \"1\"", et)
	}
	evs := e.published()
	if len(evs) != 1 {
		t.Fatalf("published %d events, want 1", len(evs))
	}
	checkEvent(t, evs[0], events.BookCreated, r.body)

	// An editor reads what an editor wrote, staff-only fields included.
	got := e.do(t, request{method: "GET", path: "/api/v1/books/" + jsonInt(b.ID), token: e.token(t, auth.RoleEditor)})
	if got.status != http.StatusOK || string(got.body) != string(r.body) {
		t.Errorf("GET = %d %s, want the created book %s", got.status, got.body, r.body)
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestCreateBookAccepts covers the edges of what a valid body may hold.
func TestCreateBookAccepts(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("é", 255)
	tests := []struct {
		name      string
		body      string
		wantPrice string
		wantISBN  any // nil or string
		wantStock int64
		wantTitle string
	}{
		{"Defaults", `{"title":"a","author":"b"}`, "0.00", nil, 0, "a"},
		{"IntegerPrice", `{"title":"a","author":"b","price":12}`, "12.00", nil, 0, "a"},
		{"OneCent", `{"title":"a","author":"b","price":0.01}`, "0.01", nil, 0, "a"},
		{"ExponentPrice", `{"title":"a","author":"b","price":1.25e1}`, "12.50", nil, 0, "a"},
		{"NegativeExponentPrice", `{"title":"a","author":"b","price":1999E-2}`, "19.99", nil, 0, "a"},
		{"TrailingZerosAreNotDecimals", `{"title":"a","author":"b","price":12.500}`, "12.50", nil, 0, "a"},
		{"NegativeZero", `{"title":"a","author":"b","price":-0}`, "0.00", nil, 0, "a"},
		{"LargeExactPrice", `{"title":"a","author":"b","price":90071992547409.91}`, "90071992547409.91", nil, 0, "a"},
		{"ISBN10WithXBecomesISBN13", `{"title":"a","author":"b","isbn":"0-8044-2957-X"}`, "0.00", "9780804429573", 0, "a"},
		{"ISBN10WithLowerXBecomesISBN13", `{"title":"a","author":"b","isbn":"155404295x"}`, "0.00", "9781554042951", 0, "a"},
		{"ISBN13With979", `{"title":"a","author":"b","isbn":"979-10-90636-07-1"}`, "0.00", "9791090636071", 0, "a"},
		{"NullISBN", `{"title":"a","author":"b","isbn":null}`, "0.00", nil, 0, "a"},
		{"StockWholeNumberWithDecimals", `{"title":"a","author":"b","stock":7.0}`, "0.00", nil, 7, "a"},
		{"TitleOf255Characters", `{"title":"` + long + `","author":"b"}`, "0.00", nil, 0, long},
		{"EscapedTitle", `{"title":"\u00e9t\u00e9 \"quoted\"","author":"b"}`, "0.00", nil, 0, `été "quoted"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.createBook(t, tt.body)
			if b.Price.String() != tt.wantPrice || b.Stock != tt.wantStock || b.Title != tt.wantTitle {
				t.Errorf("got price %s stock %d title %q, want %s %d %q", b.Price, b.Stock, b.Title, tt.wantPrice, tt.wantStock, tt.wantTitle)
			}
			switch want := tt.wantISBN.(type) {
			case nil:
				if b.ISBN != nil {
					t.Errorf("isbn = %q, want null", *b.ISBN)
				}
			case string:
				if b.ISBN == nil || *b.ISBN != want {
					t.Errorf("isbn = %v, want %q", b.ISBN, want)
				}
			}
		})
	}
}

func TestGetBookConditional(t *testing.T) {
	e := newEnv(t, nil)
	b := e.createBook(t, `{"title":"a","author":"b"}`)
	path := "/api/v1/books/" + jsonInt(b.ID)
	tests := []struct {
		name        string
		ifNoneMatch string
		wantStatus  int
	}{
		{"NoHeader", "", http.StatusOK},
		{"MatchingETag", `"1"`, http.StatusNotModified},
		{"WeakMatchingETag", `W/"1"`, http.StatusNotModified},
		{"Star", `*`, http.StatusNotModified},
		{"ListWithMatch", `"7", "1"`, http.StatusNotModified},
		{"OtherETag", `"2"`, http.StatusOK},
		{"MalformedIsIgnored", `1`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.ifNoneMatch != "" {
				h["If-None-Match"] = tt.ifNoneMatch
			}
			r := e.do(t, request{method: "GET", path: path, headers: h})
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if r.header.Get("ETag") != `"1"` {
				t.Errorf("ETag = %q", r.header.Get("ETag"))
			}
			if tt.wantStatus == http.StatusNotModified && len(r.body) != 0 {
				t.Errorf("304 with body %s", r.body)
			}
		})
	}
}

func TestUpdateBook(t *testing.T) {
	editor := func(e *env) string { return e.token(t, auth.RoleEditor) }
	tests := []struct {
		name        string
		method      string
		contentType string
		ifMatch     string
		body        string
		want        func(t *testing.T, b wireBook)
	}{
		{"PutReplacesEverything", "PUT", "application/json", "", `{"title":"New","author":"Other"}`,
			func(t *testing.T, b wireBook) {
				if b.Title != "New" || b.Author != "Other" || b.ISBN != nil || b.Price.String() != "0.00" || b.Stock != 0 {
					t.Errorf("PUT kept old fields: %+v", b)
				}
			}},
		{"PatchChangesOnlyGivenFields", "PATCH", "application/merge-patch+json", "", `{"stock":9}`,
			func(t *testing.T, b wireBook) {
				if b.Title != "Old" || b.ISBN == nil || b.Price.String() != "5.25" || b.Stock != 9 {
					t.Errorf("PATCH changed other fields: %+v", b)
				}
			}},
		{"PatchNullRemovesISBN", "PATCH", "application/json; charset=UTF-8", "", `{"isbn":null,"price":7}`,
			func(t *testing.T, b wireBook) {
				if b.ISBN != nil || b.Price.String() != "7.00" || b.Title != "Old" {
					t.Errorf("PATCH null isbn: %+v", b)
				}
			}},
		{"EmptyPatchStillBumpsVersion", "PATCH", "application/json", "", `{}`,
			func(t *testing.T, b wireBook) {
				if b.Title != "Old" {
					t.Errorf("empty PATCH changed fields: %+v", b)
				}
			}},
		{"FreshIfMatch", "PATCH", "application/json", `"1"`, `{"title":"T"}`, nil},
		{"WeakIfMatchTolerated", "PUT", "application/json", `W/"1"`, `{"title":"T","author":"A"}`, nil},
		{"StarIfMatch", "PATCH", "application/json", `*`, `{"title":"T"}`, nil},
		{"IfMatchListWithCurrent", "PATCH", "application/json", `"5", "1"`, `{"title":"T"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			old := e.createBook(t, `{"title":"Old","author":"Someone","isbn":"9780306406157","price":5.25,"stock":1}`)
			h := map[string]string{"Content-Type": tt.contentType}
			if tt.ifMatch != "" {
				h["If-Match"] = tt.ifMatch
			}
			r := e.do(t, request{method: tt.method, path: "/api/v1/books/" + jsonInt(old.ID), token: editor(e), body: tt.body, headers: h})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			b := r.book(t)
			if b.ID != old.ID || b.Version != 2 || b.CreatedAt != old.CreatedAt || b.UpdatedAt < old.UpdatedAt {
				t.Errorf("identity/version/timestamps wrong: old %+v new %+v", old, b)
			}
			if et := r.header.Get("ETag"); et != `"2"` {
				t.Errorf("ETag = %q, want \"2\"", et)
			}
			if tt.want != nil {
				tt.want(t, b)
			}
			evs := e.published()
			if len(evs) != 2 {
				t.Fatalf("published %d events, want created + updated", len(evs))
			}
			checkEvent(t, evs[1], events.BookUpdated, r.body)
		})
	}
}

func TestDeleteBook(t *testing.T) {
	e := newEnv(t, nil)
	b := e.createBook(t, `{"title":"a","author":"b","price":1.5}`)
	path := "/api/v1/books/" + jsonInt(b.ID)
	before := e.do(t, request{method: "GET", path: path, token: e.token(t, auth.RoleEditor)})

	r := e.do(t, request{method: "DELETE", path: path, token: e.token(t, auth.RoleAdmin), headers: map[string]string{"If-Match": `"1"`}})
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("DELETE = %d %s, want 204 without body", r.status, r.body)
	}
	evs := e.published()
	if len(evs) != 2 {
		t.Fatalf("published %d events, want created + deleted", len(evs))
	}
	checkEvent(t, evs[1], events.BookDeleted, before.body)
	if d := time.Since(evs[1].At); d < 0 || d > time.Minute {
		t.Errorf("deleted event at %s is not the deletion time", evs[1].At)
	}

	if r := e.do(t, request{method: "GET", path: path}); r.status != http.StatusNotFound {
		t.Errorf("GET after delete = %d", r.status)
	}
	if r := e.do(t, request{method: "DELETE", path: path, token: e.token(t, auth.RoleAdmin)}); r.status != http.StatusNotFound {
		t.Errorf("second DELETE = %d", r.status)
	}
	if n := len(e.published()); n != 2 {
		t.Errorf("failed DELETE published: %d events", n)
	}
}

func TestStoreFaultIsNotLeaked(t *testing.T) {
	e := newEnv(t, func(o *rest.Options) {
		o.Books = faultyStore{err: errors.New("dial tcp db:3306: secret-password rejected")}
	})
	r := e.do(t, request{method: "GET", path: "/api/v1/books/1"})
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d", r.status)
	}
	if p := r.problem(t); p.Type != "urn:bookhub:problem:internal" || strings.Contains(string(r.body), "secret-password") {
		t.Errorf("internal error leaked or mistyped: %s", r.body)
	}
	if !strings.Contains(e.logs.String(), "secret-password") {
		t.Errorf("internal error not logged")
	}
}
