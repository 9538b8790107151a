package rest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/store"
)

// seed puts n books straight into the store: book i (1-based) has price
// i.00 + 0.50, author "Author <i%3>" and title "Title <i>".
func seed(t *testing.T, e *env, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		_, err := e.store.Create(testContext(t), store.Book{
			Title:      fmt.Sprintf("Title %02d", i),
			Author:     fmt.Sprintf("Author %d", i%3),
			PriceCents: int64(i*100 + 50),
			Stock:      int64(i),
		})
		if err != nil {
			t.Fatalf("seed book %d: %v", i, err)
		}
	}
}

var linkRE = regexp.MustCompile(`^<(/api/v1/books\?[^>]+)>; rel="next"$`)

func TestListPaginationWalk(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e, 25)

	var ids []int64
	var pages []int
	next := "/api/v1/books?limit=10&author=&sort=id"
	for next != "" {
		r := e.do(t, request{method: "GET", path: next})
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", next, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		page := decodeStrictList(t, r.body)
		pages = append(pages, len(page.Books))
		for _, b := range page.Books {
			ids = append(ids, b.ID)
		}
		link := r.header.Get("Link")
		if page.NextCursor == "" {
			if link != "" || strings.Contains(string(r.body), "next_cursor") {
				t.Errorf("last page has Link %q or next_cursor: %s", link, r.body)
			}
			next = ""
			continue
		}
		m := linkRE.FindStringSubmatch(link)
		if m == nil {
			t.Fatalf("Link = %q, want <...>; rel=\"next\"", link)
		}
		u, err := url.Parse(m[1])
		if err != nil {
			t.Fatal(err)
		}
		if q := u.Query(); q.Get("cursor") != page.NextCursor || q.Get("limit") != "10" || q.Get("sort") != "id" {
			t.Errorf("Link %q lost the query or the cursor %q", link, page.NextCursor)
		}
		next = m[1]
	}
	if !slices.Equal(pages, []int{10, 10, 5}) {
		t.Errorf("page sizes %v, want [10 10 5]", pages)
	}
	if len(ids) != 25 || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 25 {
		t.Errorf("walk returned ids %v, want 25 distinct ascending", ids)
	}
}

func TestListFiltersAndSort(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e, 12)
	tests := []struct {
		name       string
		query      string
		wantTitles []string
	}{
		{"DefaultLimitAndOrder", "", []string{"Title 01", "Title 02", "Title 03", "Title 04", "Title 05", "Title 06",
			"Title 07", "Title 08", "Title 09", "Title 10", "Title 11", "Title 12"}},
		{"AuthorExactIgnoringCase", "author=author%201", []string{"Title 01", "Title 04", "Title 07", "Title 10"}},
		{"QuerySubstring", "q=tle%201", []string{"Title 10", "Title 11", "Title 12"}},
		{"PriceRangeInclusive", "min_price=3.50&max_price=5.5", []string{"Title 03", "Title 04", "Title 05"}},
		{"MinPriceExactCents", "min_price=11.51", []string{"Title 12"}},
		{"SortPriceDescending", "sort=-price&limit=3", []string{"Title 12", "Title 11", "Title 10"}},
		{"SortTitle", "sort=title&limit=2", []string{"Title 01", "Title 02"}},
		{"CombinedFilters", "author=Author%200&min_price=5&sort=-id", []string{"Title 12", "Title 09", "Title 06"}},
		{"NoMatch", "q=nothing-like-this", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, request{method: "GET", path: "/api/v1/books?" + tt.query})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			page := decodeStrictList(t, r.body)
			titles := []string{}
			for _, b := range page.Books {
				titles = append(titles, b.Title)
			}
			if !slices.Equal(titles, tt.wantTitles) {
				t.Errorf("titles %v, want %v", titles, tt.wantTitles)
			}
		})
	}
}

func TestListRendersPricesExactly(t *testing.T) {
	e := newEnv(t, nil)
	e.createBook(t, `{"title":"a","author":"b","price":0.1}`)
	e.createBook(t, `{"title":"c","author":"d","price":1234567.89}`)
	r := e.do(t, request{method: "GET", path: "/api/v1/books"})
	for _, want := range []string{`"price":0.10,`, `"price":1234567.89,`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("list lacks %s: %s", want, r.body)
		}
	}
}
