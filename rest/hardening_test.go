package rest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

// These tests cover the input classes of issue 6: list parameters beyond
// their limits, forged cursors, invisible and control characters in text,
// the two forms of one ISBN, and read-only fields sent back on PUT/PATCH.
// Where the database changes the outcome they run on SQLite and MySQL.

// forEachDB runs test on a fresh API server over each database: SQLite in a
// temporary folder and a new MySQL database from testenv.MySQL.
func forEachDB(t *testing.T, test func(t *testing.T, e *env)) {
	t.Helper()
	dbs := []struct {
		name string
		url  func(t testing.TB) string
	}{
		{"sqlite", func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "books.db") }},
		{"mysql", testenv.MySQL},
	}
	for _, db := range dbs {
		t.Run(db.name, func(t *testing.T) {
			st, err := store.Open(testContext(t), store.Options{URL: db.url(t), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			e := newEnv(t, func(o *rest.Options) { o.Books = st })
			e.store = st
			test(t, e)
		})
	}
}

// wantProblem checks that r is a problem of the given status and type slug
// whose errors list names field (when field is not "").
func wantProblem(t *testing.T, r response, status int, slug, field string) wireProblem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	p := r.problem(t)
	if p.Type != "urn:bookhub:problem:"+slug {
		t.Errorf("type %q, want %s", p.Type, slug)
	}
	if field != "" {
		found := false
		for _, fe := range p.Errors {
			found = found || fe.Field == field && fe.Message != ""
		}
		if !found {
			t.Errorf("errors do not name %q: %s", field, r.body)
		}
	}
	return p
}

func TestListParameterLimits(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		e.createBook(t, `{"title":"100% pure","author":"Ann"}`)
		q := url.QueryEscape
		tests := []struct {
			name       string
			query      string
			wantStatus int
			wantField  string
		}{
			{"QueryAtMax", "q=" + q(strings.Repeat("a", 255)), 200, ""},
			{"QueryOfPercentsAtMax", "q=" + q(strings.Repeat("%", 255)), 200, ""},
			{"QueryMultibyteAtMax", "q=" + q(strings.Repeat("€", 255)), 200, ""},
			{"QueryTooLong", "q=" + q(strings.Repeat("a", 256)), 400, "q"},
			// Escaping doubled these into a LIKE pattern SQLite refused (500).
			{"QueryOfPercentsTooLong", "q=" + q(strings.Repeat("%", 25001)), 400, "q"},
			{"QueryHuge", "q=" + strings.Repeat("x", 200_000), 400, "q"},
			{"QueryInvalidUTF8", "q=%FF", 400, "q"},
			{"AuthorAtMax", "author=" + q(strings.Repeat("b", 255)), 200, ""},
			{"AuthorTooLong", "author=" + q(strings.Repeat("b", 256)), 400, "author"},
			{"AuthorInvalidUTF8", "author=A%C3", 400, "author"},
			{"CursorTooLong", "cursor=" + strings.Repeat("A", store.MaxCursorLen+1), 400, "cursor"},
			{"SortTooLong", "sort=" + strings.Repeat("-", 33), 400, "sort"},
			{"LimitTooLong", "limit=" + strings.Repeat("0", 40) + "5", 400, "limit"},
			{"MinPriceTooLong", "min_price=1." + strings.Repeat("0", 40), 400, "min_price"},
			{"MaxPriceTooLong", "max_price=" + strings.Repeat("9", 1000), 400, "max_price"},
			{"UnknownParameter", "colour=red", 400, "colour"},
			{"UnknownEmptyParameter", "colour=", 400, "colour"},
			{"UnknownParameterWithLongName", strings.Repeat("n", 5000) + "=1", 400, strings.Repeat("n", 64) + "…"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(t, request{method: "GET", path: "/api/v1/books?" + tt.query})
				if tt.wantStatus == 200 {
					if r.status != 200 {
						t.Fatalf("status %d: %s", r.status, r.body)
					}
					decodeStrictList(t, r.body)
					return
				}
				wantProblem(t, r, tt.wantStatus, "invalid-parameter", tt.wantField)
				if len(r.body) > 4096 {
					t.Errorf("problem is %d bytes: the value must not be echoed", len(r.body))
				}
			})
		}
	})
}

// TestListForgedCursors sends cursors no server issued. Each must be a 400
// naming the cursor on both databases (MySQL answered 500 to times outside
// years 1-9999), and the edge values must still work.
func TestListForgedCursors(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	forEachDB(t, func(t *testing.T, e *env) {
		e.createBook(t, `{"title":"a","author":"b"}`)
		tests := []struct {
			name   string
			query  string
			wantOK bool
		}{
			{"YearZero", "sort=created_at&cursor=" + enc(`{"s":"created_at","k":"0000-06-01T00:00:00Z","i":1}`), false},
			{"Year10000ByOffset", "sort=-created_at&cursor=" + enc(`{"s":"-created_at","k":"9999-12-31T23:00:00-05:00","i":1}`), false},
			{"YearBeforeOneByOffset", "sort=updated_at&cursor=" + enc(`{"s":"updated_at","k":"0001-01-01T00:00:00+00:01","i":1}`), false},
			{"NegativeID", "cursor=" + enc(`{"s":"id","k":-1,"i":-1}`), false},
			{"ZeroID", "sort=price&cursor=" + enc(`{"s":"price","k":0,"i":0}`), false},
			{"IDOverflow", "cursor=" + enc(`{"s":"id","k":1,"i":99999999999999999999}`), false},
			{"TitleTooLong", "sort=title&cursor=" + enc(`{"s":"title","k":"`+strings.Repeat("x", 256)+`","i":1}`), false},
			{"WrongSort", "sort=title&cursor=" + enc(`{"s":"author","k":"x","i":1}`), false},
			{"NullKey", "sort=author&cursor=" + enc(`{"s":"author","k":null,"i":1}`), false},
			{"NegativePrice", "sort=price&cursor=" + enc(`{"s":"price","k":-100,"i":1}`), false},
			{"TrailingData", "cursor=" + enc(`{"s":"id","k":1,"i":1}{"s":"id","k":1,"i":1}`), false},
			{"NotBase64URL", "cursor=" + url.QueryEscape("eyJzIjoiaWQiLCJrIjoxLCJpIjoxfQ=="), false},
			{"YearOne", "sort=created_at&cursor=" + enc(`{"s":"created_at","k":"0001-01-01T00:00:00Z","i":1}`), true},
			{"Year9999", "sort=-updated_at&cursor=" + enc(`{"s":"-updated_at","k":"9999-12-31T23:59:59.999999Z","i":1}`), true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(t, request{method: "GET", path: "/api/v1/books?" + tt.query})
				if tt.wantOK {
					if r.status != http.StatusOK {
						t.Fatalf("status %d: %s", r.status, r.body)
					}
					return
				}
				wantProblem(t, r, http.StatusBadRequest, "invalid-parameter", "cursor")
			})
		}
		if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
			t.Errorf("a forged cursor was logged as a fault:\n%s", e.logs)
		}
	})
}

// TestTextFieldRules sends titles and authors that only look non-empty or
// carry control characters: each is a 422 naming the field, on POST, PUT
// and PATCH alike, and changes nothing.
func TestTextFieldRules(t *testing.T) {
	e := newEnv(t, nil)
	editor := e.token(t, auth.RoleEditor)
	b := e.createBook(t, `{"title":"Kept","author":"Kept"}`)
	path := "/api/v1/books/" + jsonInt(b.ID)
	tests := []struct {
		name, title, author, field string
	}{
		{"TitleNUL", `\u0000`, "A", "title"},
		{"TitleNULs", `\u0000\u0000\u0000`, "A", "title"},
		{"TitleZeroWidthSpace", `\u200b`, "A", "title"},
		{"TitleJoinersAndBOM", `\u200d\ufeff\u2060\u200c`, "A", "title"},
		{"TitleFormatAndSpaces", ` \u200b \u2060 `, "A", "title"},
		{"TitleSoftHyphen", `\u00ad`, "A", "title"},
		{"TitleTab", `Dune\tMessiah`, "A", "title"},
		{"TitleNewline", `Dune\n`, "A", "title"},
		{"TitleDEL", "Dune\u007f", "A", "title"},
		{"TitleC1", `Dune\u0085`, "A", "title"},
		{"TitleLineSeparator", `Dune\u2028`, "A", "title"},
		{"TitleCombiningOnly", `\u0301\u0302`, "A", "title"},
		{"AuthorNUL", "T", `\u0000`, "author"},
		{"AuthorBOM", "T", `\ufeff`, "author"},
		{"AuthorWordJoiner", "T", `\u2060`, "author"},
		{"AuthorEscapeSequence", "T", `\u001b[2J`, "author"},
	}
	for _, tt := range tests {
		for _, m := range []struct {
			method, path, body string
		}{
			{"POST", "/api/v1/books", `{"title":"` + tt.title + `","author":"` + tt.author + `"}`},
			{"PUT", path, `{"title":"` + tt.title + `","author":"` + tt.author + `"}`},
			{"PATCH", path, `{"` + tt.field + `":"` + map[string]string{"title": tt.title, "author": tt.author}[tt.field] + `"}`},
		} {
			t.Run(tt.name+"/"+m.method, func(t *testing.T) {
				r := e.do(t, request{method: m.method, path: m.path, token: editor, body: m.body})
				wantProblem(t, r, http.StatusUnprocessableEntity, "validation", tt.field)
			})
		}
	}
	t.Run("NothingChanged", func(t *testing.T) {
		if got := e.do(t, request{method: "GET", path: path}).book(t); got.Version != 1 || got.Title != "Kept" {
			t.Errorf("book changed: %+v", got)
		}
		page := decodeStrictList(t, e.do(t, request{method: "GET", path: "/api/v1/books"}).body)
		if len(page.Books) != 1 {
			t.Errorf("%d books, want 1", len(page.Books))
		}
	})
}

// TestTextFieldsKeptExactly checks what the text rule lets through survives
// both databases byte for byte.
func TestTextFieldsKeptExactly(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tests := []struct {
			name, in, want string
		}{
			{"TrimmedSpaces", "  \u00a0Dune\u3000 ", "Dune"},
			{"EmojiJoiner", "\U0001F469\u200D\U0001F4BB at work", "\U0001F469\u200D\U0001F4BB at work"},
			{"InnerZeroWidthSpace", "Ab\u200Bcd", "Ab\u200Bcd"},
			{"DecomposedAccent", "Cafe\u0301", "Cafe\u0301"},
			{"FlagTagSequence", "Scotland \U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",
				"Scotland \U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				body, _ := json.Marshal(map[string]string{"title": tt.in, "author": tt.in})
				b := e.createBook(t, string(body))
				got := e.do(t, request{method: "GET", path: "/api/v1/books/" + jsonInt(b.ID)}).book(t)
				if got.Title != tt.want || got.Author != tt.want {
					t.Errorf("stored %q / %q, want %q", got.Title, got.Author, tt.want)
				}
			})
		}
	})
}

// TestISBNForms checks that an ISBN-10 and the ISBN-13 of one book are one
// ISBN: stored and returned as ISBN-13, and a conflict in either direction.
func TestISBNForms(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		editor := e.token(t, auth.RoleEditor)
		ten := e.createBook(t, `{"title":"Ten","author":"A","isbn":"0-306-40615-2"}`)
		if ten.ISBN == nil || *ten.ISBN != "9780306406157" {
			t.Fatalf("ISBN-10 stored as %v, want 9780306406157", ten.ISBN)
		}
		thirteen := e.createBook(t, `{"title":"Thirteen","author":"A","isbn":"978-0-8044-2957-3"}`)
		other := e.createBook(t, `{"title":"Other","author":"A"}`)
		tests := []struct {
			name, method, path, body string
			wantStatus               int
		}{
			{"PostISBN13OfStoredISBN10", "POST", "/api/v1/books", `{"title":"x","author":"y","isbn":"9780306406157"}`, 409},
			{"PostISBN10OfStoredISBN13", "POST", "/api/v1/books", `{"title":"x","author":"y","isbn":"080442957X"}`, 409},
			{"PostISBN10LowerX", "POST", "/api/v1/books", `{"title":"x","author":"y","isbn":"080442957x"}`, 409},
			{"PutISBN10OfAnother", "PUT", "/api/v1/books/" + jsonInt(other.ID), `{"title":"x","author":"y","isbn":"0 8044 2957 X"}`, 409},
			{"PatchISBN10OfAnother", "PATCH", "/api/v1/books/" + jsonInt(other.ID), `{"isbn":"0306406152"}`, 409},
			{"PatchOwnISBNInOtherForm", "PATCH", "/api/v1/books/" + jsonInt(thirteen.ID), `{"isbn":"0-8044-2957-X"}`, 200},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(t, request{method: tt.method, path: tt.path, token: editor, body: tt.body})
				if tt.wantStatus == 200 {
					if r.status != 200 {
						t.Fatalf("status %d: %s", r.status, r.body)
					}
					if b := r.book(t); b.ISBN == nil || *b.ISBN != "9780804429573" {
						t.Errorf("isbn %v, want 9780804429573", b.ISBN)
					}
					return
				}
				p := wantProblem(t, r, tt.wantStatus, "conflict", "isbn")
				if p.Title != "Conflict" || p.Detail != "another book already has this isbn" {
					t.Errorf("title %q detail %q, want the generic conflict naming book and isbn", p.Title, p.Detail)
				}
			})
		}
	})
}

// TestGetModifyPut sends a book back as it was read, with changes: the
// read-only fields are accepted when they equal the stored ones, refused
// naming the field when they differ, and a stale version is a 412.
func TestGetModifyPut(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		editor := e.token(t, auth.RoleEditor)
		// read returns a fresh book, its GET body, and that body as a map to
		// edit.
		read := func(t *testing.T) (wireBook, []byte, map[string]any) {
			t.Helper()
			b := e.createBook(t, `{"title":"Old","author":"A","isbn":"9780306406157","price":5.25,"stock":1}`)
			t.Cleanup(func() {
				// Free the ISBN for the next case.
				e.do(t, request{method: "DELETE", path: "/api/v1/books/" + jsonInt(b.ID), token: e.token(t, auth.RoleAdmin)})
			})
			r := e.do(t, request{method: "GET", path: "/api/v1/books/" + jsonInt(b.ID)})
			var m map[string]any
			dec := json.NewDecoder(strings.NewReader(string(r.body)))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			return b, r.body, m
		}
		shift := func(ts string, d time.Duration, layout string, loc *time.Location) string {
			p, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatal(err)
			}
			return p.Add(d).In(loc).Format(layout)
		}
		plus2 := time.FixedZone("", 2*3600)
		tests := []struct {
			name       string
			method     string
			ifMatch    string
			edit       func(b wireBook, m map[string]any)
			wantStatus int
			wantType   string
			wantField  string
		}{
			{"PutAsRead", "PUT", "", func(b wireBook, m map[string]any) { m["title"] = "New" }, 200, "", ""},
			{"PatchAsRead", "PATCH", "", func(b wireBook, m map[string]any) { m["stock"] = 7 }, 200, "", ""},
			{"PutAsReadWithIfMatch", "PUT", `"1"`, func(b wireBook, m map[string]any) { m["title"] = "New" }, 200, "", ""},
			{"PatchOnlyReadOnlyFields", "PATCH", "", func(b wireBook, m map[string]any) {
				for k := range m {
					if k != "id" && k != "version" && k != "created_at" && k != "updated_at" {
						delete(m, k)
					}
				}
			}, 200, "", ""},
			{"TimesInAnotherOffset", "PUT", "", func(b wireBook, m map[string]any) {
				m["created_at"] = shift(b.CreatedAt, 0, time.RFC3339Nano, plus2)
				m["updated_at"] = shift(b.UpdatedAt, 0, "2006-01-02T15:04:05.000000000Z07:00", time.UTC)
			}, 200, "", ""},
			{"IDDiffers", "PUT", "", func(b wireBook, m map[string]any) { m["id"] = b.ID + 1000 }, 422, "validation", "id"},
			{"CreatedAtDiffers", "PATCH", "", func(b wireBook, m map[string]any) {
				m["created_at"] = shift(b.CreatedAt, time.Microsecond, time.RFC3339Nano, time.UTC)
			}, 422, "validation", "created_at"},
			{"UpdatedAtDiffers", "PUT", "", func(b wireBook, m map[string]any) {
				m["updated_at"] = shift(b.UpdatedAt, -time.Hour, time.RFC3339Nano, plus2)
			}, 422, "validation", "updated_at"},
			{"VersionStale", "PUT", "", func(b wireBook, m map[string]any) { m["version"] = 2 }, 412, "precondition-failed", "version"},
			{"VersionStaleWinsOverOtherFields", "PUT", "", func(b wireBook, m map[string]any) {
				m["version"], m["id"] = 5, b.ID+1
			}, 412, "precondition-failed", "version"},
			{"IfMatchStillCounts", "PATCH", `"9"`, func(b wireBook, m map[string]any) {}, 412, "precondition-failed", ""},
			{"IDWrongType", "PUT", "", func(b wireBook, m map[string]any) { m["id"] = jsonInt(b.ID) }, 400, "invalid-field", "id"},
			{"VersionWrongType", "PATCH", "", func(b wireBook, m map[string]any) { m["version"] = "1" }, 400, "invalid-field", "version"},
			{"CreatedAtWrongType", "PUT", "", func(b wireBook, m map[string]any) { m["created_at"] = 1700000000 }, 400, "invalid-field", "created_at"},
			{"CreatedAtNotRFC3339", "PUT", "", func(b wireBook, m map[string]any) { m["created_at"] = "yesterday" }, 422, "validation", "created_at"},
			{"UpdatedAtNull", "PATCH", "", func(b wireBook, m map[string]any) { m["updated_at"] = nil }, 422, "validation", "updated_at"},
			{"VersionFraction", "PATCH", "", func(b wireBook, m map[string]any) { m["version"] = 1.5 }, 422, "validation", "version"},
			{"IDZero", "PATCH", "", func(b wireBook, m map[string]any) { m["id"] = 0 }, 422, "validation", "id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b, orig, m := read(t)
				tt.edit(b, m)
				body, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				h := map[string]string{}
				if tt.ifMatch != "" {
					h["If-Match"] = tt.ifMatch
				}
				before := len(e.published())
				path := "/api/v1/books/" + jsonInt(b.ID)
				r := e.do(t, request{method: tt.method, path: path, token: editor, body: string(body), headers: h})
				if tt.wantStatus == 200 {
					if r.status != 200 {
						t.Fatalf("status %d: %s", r.status, r.body)
					}
					got := r.book(t)
					if got.ID != b.ID || got.Version != 2 || got.CreatedAt != b.CreatedAt {
						t.Errorf("after %s: %+v", tt.method, got)
					}
					return
				}
				wantProblem(t, r, tt.wantStatus, tt.wantType, tt.wantField)
				if got := e.do(t, request{method: "GET", path: path}); string(got.body) != string(orig) {
					t.Errorf("refused write changed the book: %s, was %s", got.body, orig)
				}
				if n := len(e.published()) - before; n != 0 {
					t.Errorf("refused write published %d events", n)
				}
			})
		}
	})
}

// racingStore makes another write land on the book just before each
// Update, the way a concurrent client would between this client's GET and
// PUT reaching the database. The read-only check must see that write.
type racingStore struct{ *store.Store }

func (s racingStore) Update(ctx context.Context, id, ifVersion int64, apply func(*store.Book) error) (store.Book, error) {
	if _, err := s.Store.Update(ctx, id, 0, func(b *store.Book) error { b.Stock++; return nil }); err != nil {
		return store.Book{}, err
	}
	return s.Store.Update(ctx, id, ifVersion, apply)
}

func TestGetModifyPutSeesConcurrentWrite(t *testing.T) {
	st := openStore(t)
	e := newEnv(t, func(o *rest.Options) { o.Books = racingStore{st} })
	e.store = st
	b := e.createBook(t, `{"title":"Old","author":"A"}`)
	body, _ := json.Marshal(b)
	r := e.do(t, request{method: "PUT", path: "/api/v1/books/" + jsonInt(b.ID), token: e.token(t, auth.RoleEditor), body: string(body)})
	wantProblem(t, r, http.StatusPreconditionFailed, "precondition-failed", "version")
}
