package rest_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/rest"
)

// badTokens returns tokens that must all be refused with 401.
func badTokens(t *testing.T) map[string]string {
	t.Helper()
	expiredIssuer, err := auth.New([]byte(testSecret), auth.Options{Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := expiredIssuer.Issue("old", auth.RoleAdmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherIssuer, err := auth.New([]byte(strings.Repeat("x", 40)), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := otherIssuer.Issue("mallory", auth.RoleAdmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":"mallory","role":"admin","exp":%d}`, time.Now().Add(time.Hour).Unix())) + "."
	return map[string]string{"Expired": expired, "WrongSignature": forged, "AlgNone": none, "Malformed": "not.a.jwt"}
}

// TestRefusals sends requests that must all be refused. They share one
// server, and after each one the test checks that nothing was published; at
// the end, that the seeded books are untouched.
func TestRefusals(t *testing.T) {
	e := newEnv(t, nil)
	b1 := e.createBook(t, `{"title":"One","author":"A","isbn":"9780306406157","price":1}`)
	b2 := e.createBook(t, `{"title":"Two","author":"B","isbn":"0-8044-2957-X"}`)
	path1 := "/api/v1/books/" + jsonInt(b1.ID)
	path2 := "/api/v1/books/" + jsonInt(b2.ID)
	eventsBefore := len(e.published())

	viewer, editor, admin := e.token(t, auth.RoleViewer), e.token(t, auth.RoleEditor), e.token(t, auth.RoleAdmin)
	valid := `{"title":"New","author":"Someone"}`
	huge := `{"title":"` + strings.Repeat("a", 1<<20) + `","author":"b"}`
	bad := badTokens(t)

	type tc struct {
		name       string
		method     string
		path       string
		token      string
		body       string
		headers    map[string]string
		wantStatus int
		wantType   string // slug after urn:bookhub:problem:
		wantField  string // a field the errors list must name
		wantHeader map[string]string
	}
	tests := []tc{
		// 400: malformed bodies.
		{name: "MalformedJSON", method: "POST", path: "/api/v1/books", token: editor, body: `{"title": `, wantStatus: 400, wantType: "malformed-body"},
		{name: "SyntaxError", method: "POST", path: "/api/v1/books", token: editor, body: `{"title" "a"}`, wantStatus: 400, wantType: "malformed-body"},
		{name: "TrailingGarbage", method: "POST", path: "/api/v1/books", token: editor, body: valid + ` x`, wantStatus: 400, wantType: "malformed-body"},
		{name: "TwoObjects", method: "POST", path: "/api/v1/books", token: editor, body: valid + valid, wantStatus: 400, wantType: "malformed-body"},
		{name: "ArrayBody", method: "POST", path: "/api/v1/books", token: editor, body: `[` + valid + `]`, wantStatus: 400, wantType: "malformed-body"},
		{name: "NullBody", method: "POST", path: "/api/v1/books", token: editor, body: `null`, wantStatus: 400, wantType: "malformed-body"},
		{name: "StringBody", method: "POST", path: "/api/v1/books", token: editor, body: `"book"`, wantStatus: 400, wantType: "malformed-body"},
		{name: "EmptyBody", method: "POST", path: "/api/v1/books", token: editor, headers: map[string]string{"Content-Type": "application/json"}, wantStatus: 400, wantType: "malformed-body"},
		{name: "DuplicateKey", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","title":"b","author":"c"}`, wantStatus: 400, wantType: "malformed-body", wantField: "title"},
		{name: "InvalidUTF8", method: "POST", path: "/api/v1/books", token: editor, body: "{\"title\":\"\xff\",\"author\":\"b\"}", wantStatus: 400, wantType: "malformed-body"},
		// 400: fields.
		{name: "UnknownField", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","colour":"red"}`, wantStatus: 400, wantType: "invalid-field", wantField: "colour"},
		{name: "TitleNumber", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":1,"author":"b"}`, wantStatus: 400, wantType: "invalid-field", wantField: "title"},
		{name: "AuthorBoolean", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":true}`, wantStatus: 400, wantType: "invalid-field", wantField: "author"},
		{name: "ISBNNumber", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":9780306406157}`, wantStatus: 400, wantType: "invalid-field", wantField: "isbn"},
		{name: "PriceString", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":"12.50"}`, wantStatus: 400, wantType: "invalid-field", wantField: "price"},
		{name: "PriceObject", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":{"amount":1}}`, wantStatus: 400, wantType: "invalid-field", wantField: "price"},
		{name: "StockString", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","stock":"3"}`, wantStatus: 400, wantType: "invalid-field", wantField: "stock"},
		{name: "StockArray", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","stock":[3]}`, wantStatus: 400, wantType: "invalid-field", wantField: "stock"},
		{name: "ReadOnlyID", method: "POST", path: "/api/v1/books", token: editor, body: `{"id":5,"title":"a","author":"b"}`, wantStatus: 400, wantType: "invalid-field", wantField: "id"},
		{name: "ReadOnlyVersion", method: "POST", path: "/api/v1/books", token: editor, body: `{"version":1,"title":"a","author":"b"}`, wantStatus: 400, wantType: "invalid-field", wantField: "version"},
		{name: "ReadOnlyCreatedAt", method: "PATCH", path: path1, token: editor, body: `{"created_at":"2020-01-01T00:00:00Z"}`, wantStatus: 422, wantType: "validation", wantField: "created_at"},
		{name: "ReadOnlyUpdatedAt", method: "POST", path: "/api/v1/books", token: editor, body: `{"updated_at":"x","title":"a","author":"b"}`, wantStatus: 400, wantType: "invalid-field", wantField: "updated_at"},
		{name: "PatchWrongType", method: "PATCH", path: path1, token: editor, body: `{"stock":"many"}`, wantStatus: 400, wantType: "invalid-field", wantField: "stock"},
		// 422: values.
		{name: "MissingTitle", method: "POST", path: "/api/v1/books", token: editor, body: `{"author":"b"}`, wantStatus: 422, wantType: "validation", wantField: "title"},
		{name: "MissingAuthor", method: "PUT", path: path1, token: editor, body: `{"title":"a"}`, wantStatus: 422, wantType: "validation", wantField: "author"},
		{name: "BlankTitle", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"  \t ","author":"b"}`, wantStatus: 422, wantType: "validation", wantField: "title"},
		{name: "NullTitle", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":null,"author":"b"}`, wantStatus: 422, wantType: "validation", wantField: "title"},
		{name: "TitleTooLong", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"` + strings.Repeat("a", 256) + `","author":"b"}`, wantStatus: 422, wantType: "validation", wantField: "title"},
		{name: "AuthorTooLong", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"` + strings.Repeat("ü", 256) + `"}`, wantStatus: 422, wantType: "validation", wantField: "author"},
		{name: "PriceThreeDecimals", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":12.345}`, wantStatus: 422, wantType: "validation", wantField: "price"},
		{name: "PriceTinyExponent", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":1e-3}`, wantStatus: 422, wantType: "validation", wantField: "price"},
		{name: "PriceNegative", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":-0.01}`, wantStatus: 422, wantType: "validation", wantField: "price"},
		{name: "PriceHuge", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":1e300}`, wantStatus: 422, wantType: "validation", wantField: "price"},
		{name: "PriceHugeExponent", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":1e99999999999999999999}`, wantStatus: 422, wantType: "validation", wantField: "price"},
		{name: "PriceNull", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","price":null}`, wantStatus: 422, wantType: "validation", wantField: "price"},
		{name: "StockNegative", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","stock":-1}`, wantStatus: 422, wantType: "validation", wantField: "stock"},
		{name: "StockFraction", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","stock":1.5}`, wantStatus: 422, wantType: "validation", wantField: "stock"},
		{name: "StockTooLarge", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","stock":9007199254740992}`, wantStatus: 422, wantType: "validation", wantField: "stock"},
		{name: "ISBNBadChecksum", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"9780306406158"}`, wantStatus: 422, wantType: "validation", wantField: "isbn"},
		{name: "ISBN10BadChecksum", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"0306406153"}`, wantStatus: 422, wantType: "validation", wantField: "isbn"},
		{name: "ISBN10XNotLast", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"X306406152"}`, wantStatus: 422, wantType: "validation", wantField: "isbn"},
		{name: "ISBN13BadPrefix", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"1234567890128"}`, wantStatus: 422, wantType: "validation", wantField: "isbn"},
		{name: "ISBNWrongLength", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"97803064061"}`, wantStatus: 422, wantType: "validation", wantField: "isbn"},
		{name: "ISBNLetters", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"ISBN 9780306406157"}`, wantStatus: 422, wantType: "validation", wantField: "isbn"},
		{name: "ISBNEmpty", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":""}`, wantStatus: 422, wantType: "validation", wantField: "isbn"},
		{name: "SeveralInvalidFields", method: "POST", path: "/api/v1/books", token: editor, body: `{"author":"b","price":1.001}`, wantStatus: 422, wantType: "validation", wantField: "price"},
		{name: "PatchNullTitle", method: "PATCH", path: path1, token: editor, body: `{"title":null}`, wantStatus: 422, wantType: "validation", wantField: "title"},
		{name: "PatchNullAuthor", method: "PATCH", path: path1, token: editor, body: `{"author":null}`, wantStatus: 422, wantType: "validation", wantField: "author"},
		{name: "PatchNullStock", method: "PATCH", path: path1, token: editor, body: `{"stock":null}`, wantStatus: 422, wantType: "validation", wantField: "stock"},
		{name: "PatchEmptyTitle", method: "PATCH", path: path1, token: editor, body: `{"title":""}`, wantStatus: 422, wantType: "validation", wantField: "title"},
		// 409.
		{name: "DuplicateISBN", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"9780306406157"}`, wantStatus: 409, wantType: "conflict"},
		{name: "DuplicateISBNHyphenated", method: "POST", path: "/api/v1/books", token: editor, body: `{"title":"a","author":"b","isbn":"978-0-306-40615-7"}`, wantStatus: 409, wantType: "conflict"},
		{name: "DuplicateISBNOnPut", method: "PUT", path: path2, token: editor, body: `{"title":"a","author":"b","isbn":"9780306406157"}`, wantStatus: 409, wantType: "conflict"},
		{name: "DuplicateISBNOnPatch", method: "PATCH", path: path2, token: editor, body: `{"isbn":"9780306406157"}`, wantStatus: 409, wantType: "conflict"},
		// 412 and bad If-Match.
		{name: "StalePut", method: "PUT", path: path1, token: editor, body: valid, headers: map[string]string{"If-Match": `"7"`}, wantStatus: 412, wantType: "precondition-failed"},
		{name: "StalePatch", method: "PATCH", path: path1, token: editor, body: `{"stock":1}`, headers: map[string]string{"If-Match": `W/"2"`}, wantStatus: 412, wantType: "precondition-failed"},
		{name: "StaleDelete", method: "DELETE", path: path1, token: admin, headers: map[string]string{"If-Match": `"2"`}, wantStatus: 412, wantType: "precondition-failed"},
		{name: "IfMatchListWithoutCurrent", method: "PATCH", path: path1, token: editor, body: `{"stock":1}`, headers: map[string]string{"If-Match": `"2", "3"`}, wantStatus: 412, wantType: "precondition-failed"},
		{name: "IfMatchForeignTag", method: "PATCH", path: path1, token: editor, body: `{"stock":1}`, headers: map[string]string{"If-Match": `"abc"`}, wantStatus: 412, wantType: "precondition-failed"},
		{name: "IfMatchUnquoted", method: "PATCH", path: path1, token: editor, body: `{"stock":1}`, headers: map[string]string{"If-Match": `1`}, wantStatus: 400, wantType: "invalid-parameter", wantField: "If-Match"},
		// 404.
		{name: "GetMissing", method: "GET", path: "/api/v1/books/999999", wantStatus: 404, wantType: "not-found"},
		{name: "PutMissing", method: "PUT", path: "/api/v1/books/999999", token: editor, body: valid, wantStatus: 404, wantType: "not-found"},
		{name: "PatchMissing", method: "PATCH", path: "/api/v1/books/999999", token: editor, body: `{"stock":1}`, wantStatus: 404, wantType: "not-found"},
		{name: "PatchMissingWithIfMatchList", method: "PATCH", path: "/api/v1/books/999999", token: editor, body: `{"stock":1}`, headers: map[string]string{"If-Match": `"1", "2"`}, wantStatus: 404, wantType: "not-found"},
		{name: "DeleteMissing", method: "DELETE", path: "/api/v1/books/999999", token: admin, wantStatus: 404, wantType: "not-found"},
		{name: "UnknownRoute", method: "GET", path: "/api/v1/authors", wantStatus: 404, wantType: "not-found"},
		{name: "TrailingSlash", method: "GET", path: "/api/v1/books/", wantStatus: 404, wantType: "not-found"},
		// 405.
		{name: "DeleteCollection", method: "DELETE", path: "/api/v1/books", token: admin, wantStatus: 405, wantType: "method-not-allowed", wantHeader: map[string]string{"Allow": "GET, HEAD, POST"}},
		{name: "PostHealthz", method: "POST", path: "/healthz", body: `{}`, wantStatus: 405, wantType: "method-not-allowed", wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		// 400: bad ids.
		{name: "IDNotNumeric", method: "GET", path: "/api/v1/books/abc", wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "IDZero", method: "GET", path: "/api/v1/books/0", wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "IDNegative", method: "GET", path: "/api/v1/books/-1", wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "IDPlusSign", method: "GET", path: "/api/v1/books/+1", wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "IDFraction", method: "GET", path: "/api/v1/books/1.5", wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "IDOverflow", method: "GET", path: "/api/v1/books/9223372036854775808", wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "IDHuge", method: "GET", path: "/api/v1/books/99999999999999999999999", wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "PutIDNotNumeric", method: "PUT", path: "/api/v1/books/abc", token: editor, body: valid, wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		{name: "DeleteIDNotNumeric", method: "DELETE", path: "/api/v1/books/x1", token: admin, wantStatus: 400, wantType: "invalid-parameter", wantField: "id"},
		// 413.
		{name: "BodyOverLimit", method: "POST", path: "/api/v1/books", token: editor, body: huge, wantStatus: 413, wantType: "body-too-large"},
		// 415.
		{name: "TextPlain", method: "POST", path: "/api/v1/books", token: editor, body: valid, headers: map[string]string{"Content-Type": "text/plain"}, wantStatus: 415, wantType: "unsupported-media-type"},
		{name: "NoContentType", method: "POST", path: "/api/v1/books", token: editor, body: valid, headers: map[string]string{"Content-Type": ""}, wantStatus: 415, wantType: "unsupported-media-type"},
		{name: "MergePatchOnPost", method: "POST", path: "/api/v1/books", token: editor, body: valid, headers: map[string]string{"Content-Type": "application/merge-patch+json"}, wantStatus: 415, wantType: "unsupported-media-type"},
		{name: "MergePatchOnPut", method: "PUT", path: path1, token: editor, body: valid, headers: map[string]string{"Content-Type": "application/merge-patch+json"}, wantStatus: 415, wantType: "unsupported-media-type"},
		{name: "FormOnPatch", method: "PATCH", path: path1, token: editor, body: `stock=1`, headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, wantStatus: 415, wantType: "unsupported-media-type"},
		{name: "Latin1Charset", method: "POST", path: "/api/v1/books", token: editor, body: valid, headers: map[string]string{"Content-Type": "application/json; charset=latin1"}, wantStatus: 415, wantType: "unsupported-media-type"},
		// 401 and 403.
		{name: "PostWithoutToken", method: "POST", path: "/api/v1/books", body: valid, wantStatus: 401, wantType: "unauthorized", wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="bookhub"`}},
		{name: "DeleteWithoutToken", method: "DELETE", path: path1, wantStatus: 401, wantType: "unauthorized"},
		{name: "BasicAuth", method: "POST", path: "/api/v1/books", body: valid, headers: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, wantStatus: 401, wantType: "unauthorized"},
		{name: "QueryTokenNotAccepted", method: "POST", path: "/api/v1/books?token=" + admin, body: valid, wantStatus: 401, wantType: "unauthorized"},
		{name: "ViewerPost", method: "POST", path: "/api/v1/books", token: viewer, body: valid, wantStatus: 403, wantType: "forbidden"},
		{name: "ViewerPut", method: "PUT", path: path1, token: viewer, body: valid, wantStatus: 403, wantType: "forbidden"},
		{name: "ViewerPatch", method: "PATCH", path: path1, token: viewer, body: `{"stock":1}`, wantStatus: 403, wantType: "forbidden"},
		{name: "EditorDelete", method: "DELETE", path: path1, token: editor, wantStatus: 403, wantType: "forbidden"},
		// 400: list parameters.
		{name: "LimitZero", method: "GET", path: "/api/v1/books?limit=0", wantStatus: 400, wantType: "invalid-parameter", wantField: "limit"},
		{name: "LimitTooLarge", method: "GET", path: "/api/v1/books?limit=101", wantStatus: 400, wantType: "invalid-parameter", wantField: "limit"},
		{name: "LimitNotNumeric", method: "GET", path: "/api/v1/books?limit=ten", wantStatus: 400, wantType: "invalid-parameter", wantField: "limit"},
		{name: "LimitPlusSign", method: "GET", path: "/api/v1/books?limit=%2B5", wantStatus: 400, wantType: "invalid-parameter", wantField: "limit"},
		{name: "LimitTwice", method: "GET", path: "/api/v1/books?limit=5&limit=6", wantStatus: 400, wantType: "invalid-parameter", wantField: "limit"},
		{name: "MinPriceNotNumeric", method: "GET", path: "/api/v1/books?min_price=cheap", wantStatus: 400, wantType: "invalid-parameter", wantField: "min_price"},
		{name: "MinPriceThreeDecimals", method: "GET", path: "/api/v1/books?min_price=1.005", wantStatus: 400, wantType: "invalid-parameter", wantField: "min_price"},
		{name: "MaxPriceNegative", method: "GET", path: "/api/v1/books?max_price=-1", wantStatus: 400, wantType: "invalid-parameter", wantField: "max_price"},
		{name: "MinAboveMax", method: "GET", path: "/api/v1/books?min_price=5&max_price=4.99", wantStatus: 400, wantType: "invalid-parameter", wantField: "min_price"},
		{name: "UnknownSort", method: "GET", path: "/api/v1/books?sort=isbn", wantStatus: 400, wantType: "invalid-parameter", wantField: "sort"},
		{name: "BadCursor", method: "GET", path: "/api/v1/books?cursor=garbage", wantStatus: 400, wantType: "invalid-parameter", wantField: "cursor"},
		{name: "UnknownParameter", method: "GET", path: "/api/v1/books?titel=A", wantStatus: 400, wantType: "invalid-parameter", wantField: "titel"},
		{name: "MalformedQuery", method: "GET", path: "/api/v1/books?limit=%zz", wantStatus: 400, wantType: "invalid-parameter"},
	}
	for name, tok := range bad {
		tests = append(tests,
			tc{name: "Token" + name, method: "POST", path: "/api/v1/books", token: tok, body: valid, wantStatus: 401, wantType: "unauthorized",
				wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="bookhub", error="invalid_token"`}},
			tc{name: "DeleteToken" + name, method: "DELETE", path: path1, token: tok, wantStatus: 401, wantType: "unauthorized"})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, request{method: tt.method, path: tt.path, token: tt.token, body: tt.body, headers: tt.headers})
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			p := r.problem(t)
			if want := "urn:bookhub:problem:" + tt.wantType; p.Type != want {
				t.Errorf("type %q, want %q", p.Type, want)
			}
			if p.Detail == "" {
				t.Errorf("problem without detail: %s", r.body)
			}
			if tt.wantField != "" {
				found := false
				for _, fe := range p.Errors {
					found = found || fe.Field == tt.wantField && fe.Message != ""
				}
				if !found {
					t.Errorf("errors do not name field %q: %s", tt.wantField, r.body)
				}
			}
			for k, v := range tt.wantHeader {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if r.header.Get("ETag") != "" {
				t.Errorf("problem response carries ETag %q", r.header.Get("ETag"))
			}
			if n := len(e.published()); n != eventsBefore {
				t.Errorf("refused request published %d event(s)", n-eventsBefore)
			}
		})
	}

	t.Run("NothingWasWritten", func(t *testing.T) {
		r := e.do(t, request{method: "GET", path: "/api/v1/books?limit=100"})
		page := decodeStrictList(t, r.body)
		if len(page.Books) != 2 {
			t.Fatalf("%d books, want the 2 seeded: %s", len(page.Books), r.body)
		}
		for _, b := range page.Books {
			if b.Version != 1 {
				t.Errorf("book %d was changed to version %d", b.ID, b.Version)
			}
		}
	})
}

func TestSeveralFieldErrorsAreAllListed(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(t, request{method: "POST", path: "/api/v1/books", token: e.token(t, auth.RoleEditor),
		body: `{"title":"","price":1.001,"stock":-2,"isbn":"123"}`})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	p := r.problem(t)
	got := map[string]bool{}
	for _, fe := range p.Errors {
		got[fe.Field] = true
	}
	for _, f := range []string{"title", "author", "price", "stock", "isbn"} {
		if !got[f] {
			t.Errorf("field %s not listed: %s", f, r.body)
		}
	}
}

func TestChunkedBodyOverLimit(t *testing.T) {
	e := newEnv(t, func(o *rest.Options) { o.MaxBodyBytes = 1024 })
	body := `{"title":"` + strings.Repeat("a", 4096) + `","author":"b"}`
	req, err := http.NewRequestWithContext(testContext(t), "POST", e.srv.URL+"/api/v1/books", io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked: the server learns the size only by reading
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token(t, auth.RoleEditor))
	r := e.send(t, req)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if p := r.problem(t); p.Type != "urn:bookhub:problem:body-too-large" {
		t.Errorf("type %q", p.Type)
	}
	if len(e.published()) != 0 {
		t.Errorf("oversize body published an event")
	}
	list := e.do(t, request{method: "GET", path: "/api/v1/books"})
	if page := decodeStrictList(t, list.body); len(page.Books) != 0 {
		t.Errorf("oversize body created a book: %s", list.body)
	}
}
