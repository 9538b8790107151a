package store_test

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/store"
)

// seedForPaging creates n books whose title, author and price repeat, so
// every sort has runs of equal values that only the id tie-break orders,
// then updates some so updated_at order differs from id order.
func seedForPaging(t *testing.T, s *store.Store, n int) []store.Book {
	t.Helper()
	titles := []string{"Delta", "Alpha", "Gamma", "Beta"}
	authors := []string{"Cid", "Ann", "Bob"}
	prices := []int64{2500, 500, 1500, 1000, 2000}
	books := make([]store.Book, 0, n)
	for i := range n {
		books = append(books, mustCreate(t, s, store.Book{
			Title:      titles[i%len(titles)],
			Author:     authors[i%len(authors)],
			PriceCents: prices[i%len(prices)],
		}))
	}
	for i := n - 1; i >= 0; i -= 3 {
		b, err := s.Update(testContext(t), books[i].ID, 0, func(b *store.Book) error { b.Stock++; return nil })
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		books[i] = b
	}
	return books
}

// compareBy orders books the way List documents for an ascending sort.
func compareBy(field string) func(a, b store.Book) int {
	return func(a, b store.Book) int {
		var c int
		switch field {
		case "title":
			c = strings.Compare(a.Title, b.Title)
		case "author":
			c = strings.Compare(a.Author, b.Author)
		case "price":
			c = cmp.Compare(a.PriceCents, b.PriceCents)
		case "created_at":
			c = a.CreatedAt.Compare(b.CreatedAt)
		case "updated_at":
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		}
		return cmp.Or(c, cmp.Compare(a.ID, b.ID))
	}
}

// walk follows cursors to the end and returns every book seen.
func walk(t *testing.T, s *store.Store, opts store.ListOptions) []store.Book {
	t.Helper()
	var all []store.Book
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not terminate")
		}
		page, err := s.List(testContext(t), opts)
		if err != nil {
			t.Fatalf("List(%+v): %v", opts, err)
		}
		all = append(all, page.Books...)
		if page.NextCursor == "" {
			return all
		}
		if len(page.Books) != opts.Limit {
			t.Fatalf("page with a next cursor has %d books, want %d", len(page.Books), opts.Limit)
		}
		opts.Cursor = page.NextCursor
	}
}

func ids(books []store.Book) []int64 {
	out := make([]int64, len(books))
	for i, b := range books {
		out[i] = b.ID
	}
	return out
}

func TestListWalksEverySort(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		books := seedForPaging(t, s, 23)
		for _, field := range store.SortFields {
			for _, desc := range []bool{false, true} {
				sortName := field
				if desc {
					sortName = "-" + field
				}
				t.Run(sortName, func(t *testing.T) {
					want := slices.Clone(books)
					slices.SortFunc(want, compareBy(field))
					if desc {
						slices.Reverse(want)
					}
					got := walk(t, s, store.ListOptions{Sort: sortName, Limit: 4})
					if !slices.Equal(ids(got), ids(want)) {
						t.Fatalf("walk by %s gave ids\n%v\nwant\n%v", sortName, ids(got), ids(want))
					}
					if !slices.Equal(got, want) {
						t.Errorf("listed books differ from stored ones")
					}
				})
			}
		}
		t.Run("FilteredWalk", func(t *testing.T) {
			var want []store.Book
			for _, b := range books {
				if b.Author == "Bob" {
					want = append(want, b)
				}
			}
			slices.SortFunc(want, compareBy("price"))
			slices.Reverse(want)
			got := walk(t, s, store.ListOptions{Author: "bob", Sort: "-price", Limit: 2})
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("got ids %v, want %v", ids(got), ids(want))
			}
		})
		t.Run("RowsInsertedBehindTheCursorAreNotRepeated", func(t *testing.T) {
			page, err := s.List(testContext(t), store.ListOptions{Sort: "-id", Limit: 5})
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, store.Book{Title: "Newer", Author: "Zed"}) // sorts before the cursor
			rest := walk(t, s, store.ListOptions{Sort: "-id", Limit: 5, Cursor: page.NextCursor})
			got := append(ids(page.Books), ids(rest)...)
			want := ids(books)
			slices.Reverse(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got ids %v, want %v", got, want)
			}
		})
	})
}

func TestListLimits(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		t.Run("EmptyStore", func(t *testing.T) {
			page, err := s.List(ctx, store.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if page.Books == nil || len(page.Books) != 0 || page.NextCursor != "" {
				t.Errorf("got %+v, want an empty non-nil page without cursor", page)
			}
		})
		for i := range store.DefaultLimit + 5 {
			mustCreate(t, s, store.Book{Title: fmt.Sprintf("Book %02d", i), Author: "A"})
		}
		tests := []struct {
			name       string
			limit      int
			wantLen    int
			wantCursor bool
		}{
			{"ZeroMeansDefault", 0, store.DefaultLimit, true},
			{"One", 1, 1, true},
			{"ExactlyAll", store.DefaultLimit + 5, store.DefaultLimit + 5, false},
			{"Max", store.MaxLimit, store.DefaultLimit + 5, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				page, err := s.List(ctx, store.ListOptions{Limit: tt.limit})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Books) != tt.wantLen || (page.NextCursor != "") != tt.wantCursor {
					t.Errorf("got %d books, cursor %q; want %d books, cursor: %v",
						len(page.Books), page.NextCursor, tt.wantLen, tt.wantCursor)
				}
			})
		}
	})
}

func TestListFilters(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		for _, b := range []store.Book{
			{Title: "Go Programming", Author: "Alan Donovan", PriceCents: 3999},
			{Title: "The C Programming Language", Author: "Brian Kernighan", PriceCents: 4500},
			{Title: "100% Go", Author: "Ann", PriceCents: 1000},
			{Title: "snake_case guide", Author: "Bob", PriceCents: 1500},
			{Title: "Bang! Bang!", Author: "Cid", PriceCents: 2000},
			{Title: `back\slash`, Author: "Dee", PriceCents: 2500},
			{Title: "Plain", Author: "alan donovan", PriceCents: 2500},
		} {
			mustCreate(t, s, b)
		}
		price := func(c int64) *int64 { return &c }
		tests := []struct {
			name string
			opts store.ListOptions
			want []string
		}{
			{"NoFilter", store.ListOptions{}, []string{"100% Go", "Bang! Bang!", "Go Programming", "Plain",
				"The C Programming Language", `back\slash`, "snake_case guide"}},
			{"AuthorIgnoresCase", store.ListOptions{Author: "ALAN DONOVAN"}, []string{"Go Programming", "Plain"}},
			{"AuthorIsNotASubstringMatch", store.ListOptions{Author: "Alan"}, nil},
			{"QueryMatchesTitleIgnoringCase", store.ListOptions{Query: "PROGRAMMING"}, []string{"Go Programming", "The C Programming Language"}},
			{"QueryMatchesAuthor", store.ListOptions{Query: "kernig"}, []string{"The C Programming Language"}},
			{"QueryPercentIsLiteral", store.ListOptions{Query: "%"}, []string{"100% Go"}},
			{"QueryUnderscoreIsLiteral", store.ListOptions{Query: "_"}, []string{"snake_case guide"}},
			{"QueryBangIsLiteral", store.ListOptions{Query: "!"}, []string{"Bang! Bang!"}},
			{"QueryBackslashIsLiteral", store.ListOptions{Query: `\`}, []string{`back\slash`}},
			{"QueryNoMatch", store.ListOptions{Query: "zzz"}, nil},
			{"MinPriceInclusive", store.ListOptions{MinPriceCents: price(2500)}, []string{"Go Programming", "Plain",
				"The C Programming Language", `back\slash`}},
			{"MaxPriceInclusive", store.ListOptions{MaxPriceCents: price(1500)}, []string{"100% Go", "snake_case guide"}},
			{"PriceRange", store.ListOptions{MinPriceCents: price(1500), MaxPriceCents: price(2000)}, []string{"Bang! Bang!", "snake_case guide"}},
			{"PriceExact", store.ListOptions{MinPriceCents: price(1000), MaxPriceCents: price(1000)}, []string{"100% Go"}},
			{"Combined", store.ListOptions{Query: "go", MaxPriceCents: price(2000)}, []string{"100% Go"}},
		}
		t.Run("TitleSortIgnoresCase", func(t *testing.T) {
			page, err := s.List(testContext(t), store.ListOptions{Sort: "title"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range page.Books {
				got = append(got, b.Title)
			}
			want := []string{"100% Go", `back\slash`, "Bang! Bang!", "Go Programming", "Plain",
				"snake_case guide", "The C Programming Language"}
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.opts.Limit = store.MaxLimit
				page, err := s.List(testContext(t), tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, b := range page.Books {
					got = append(got, b.Title)
				}
				slices.Sort(got)
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	})
}

func TestListRefusesBadQueries(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		for range 3 {
			mustCreate(t, s, store.Book{Title: "T", Author: "A"})
		}
		page, err := s.List(testContext(t), store.ListOptions{Sort: "price", Limit: 1})
		if err != nil || page.NextCursor == "" {
			t.Fatalf("List: %+v, %v", page, err)
		}
		priceCursor := page.NextCursor
		encode := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		one, two := int64(1), int64(2)
		tests := []struct {
			name string
			opts store.ListOptions
		}{
			{"NegativeLimit", store.ListOptions{Limit: -1}},
			{"LimitAboveMax", store.ListOptions{Limit: store.MaxLimit + 1}},
			{"UnknownSort", store.ListOptions{Sort: "isbn"}},
			{"SortOnlyDash", store.ListOptions{Sort: "-"}},
			{"SortDoubleDash", store.ListOptions{Sort: "--id"}},
			{"SortWrongCase", store.ListOptions{Sort: "PRICE"}},
			{"SortColumnName", store.ListOptions{Sort: "price_cents"}},
			{"SortInjection", store.ListOptions{Sort: "id; DROP TABLE books"}},
			{"CursorNotBase64", store.ListOptions{Cursor: "***"}},
			{"CursorNotJSON", store.ListOptions{Cursor: encode("hello")}},
			{"CursorMissingKey", store.ListOptions{Cursor: encode(`{"s":"id","i":3}`)}},
			{"CursorUnknownField", store.ListOptions{Cursor: encode(`{"s":"id","k":3,"i":3,"x":1}`)}},
			{"CursorKeyWrongType", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":"cheap","i":1}`)}},
			{"CursorBadTime", store.ListOptions{Sort: "created_at", Cursor: encode(`{"s":"created_at","k":"yesterday","i":1}`)}},
			{"CursorForOtherDirection", store.ListOptions{Sort: "-price", Cursor: priceCursor}},
			{"CursorForOtherField", store.ListOptions{Sort: "title", Cursor: priceCursor}},
			{"CursorForDefaultSort", store.ListOptions{Cursor: priceCursor}},
			// Forged cursors: anything List could not have issued.
			{"CursorTooLong", store.ListOptions{Cursor: strings.Repeat("A", store.MaxCursorLen+1)}},
			{"CursorPadded", store.ListOptions{Cursor: base64.URLEncoding.EncodeToString([]byte(`{"s":"id","k":3,"i":3}`))}},
			{"CursorTrailingData", store.ListOptions{Cursor: encode(`{"s":"id","k":3,"i":3} {}`)}},
			{"CursorTrailingGarbage", store.ListOptions{Cursor: encode(`{"s":"id","k":3,"i":3}x`)}},
			{"CursorMissingID", store.ListOptions{Cursor: encode(`{"s":"id","k":3}`)}},
			{"CursorZeroID", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":1,"i":0}`)}},
			{"CursorNegativeID", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":1,"i":-5}`)}},
			{"CursorIDTooLarge", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":1,"i":9223372036854775808}`)}},
			{"CursorFractionalID", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":1,"i":1.5}`)}},
			{"CursorIDKeyDiffers", store.ListOptions{Cursor: encode(`{"s":"id","k":7,"i":3}`)}},
			{"CursorNullKey", store.ListOptions{Sort: "title", Cursor: encode(`{"s":"title","k":null,"i":1}`)}},
			{"CursorNullIntKey", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":null,"i":1}`)}},
			{"CursorNegativePrice", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":-1,"i":1}`)}},
			{"CursorMissingSort", store.ListOptions{Cursor: encode(`{"k":3,"i":3}`)}},
			{"CursorUnknownSort", store.ListOptions{Sort: "title", Cursor: encode(`{"s":"isbn","k":"x","i":1}`)}},
			{"CursorTitleTooLong", store.ListOptions{Sort: "title", Cursor: encode(`{"s":"title","k":"` + strings.Repeat("a", store.MaxTextLen+1) + `","i":1}`)}},
			{"CursorYearZero", store.ListOptions{Sort: "created_at", Cursor: encode(`{"s":"created_at","k":"0000-12-31T23:59:59Z","i":1}`)}},
			{"CursorYearBeforeOneByOffset", store.ListOptions{Sort: "created_at", Cursor: encode(`{"s":"created_at","k":"0001-01-01T00:30:00+01:00","i":1}`)}},
			{"CursorYear10000ByOffset", store.ListOptions{Sort: "-updated_at", Cursor: encode(`{"s":"-updated_at","k":"9999-12-31T23:59:59-05:00","i":1}`)}},
			{"CursorTimeNotRFC3339", store.ListOptions{Sort: "created_at", Cursor: encode(`{"s":"created_at","k":"2024-01-01 10:00:00","i":1}`)}},
			{"CursorTimeNumber", store.ListOptions{Sort: "created_at", Cursor: encode(`{"s":"created_at","k":1700000000,"i":1}`)}},
			{"MinPriceAboveMax", store.ListOptions{MinPriceCents: &two, MaxPriceCents: &one}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				page, err := s.List(testContext(t), tt.opts)
				if !errors.Is(err, store.ErrInvalidQuery) {
					t.Fatalf("List(%+v) = %+v, %v; want ErrInvalidQuery", tt.opts, page, err)
				}
			})
		}
	})
}

// TestListAcceptsEveryCursorItCanIssue follows the longest cursor List can
// hand out and cursors at the edges of what decodeCursor allows, so the
// limits refuse only forgeries.
func TestListAcceptsEveryCursorItCanIssue(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		// "<" is escaped as six bytes (\u003c) in JSON: the longest key.
		long := strings.Repeat("<", store.MaxTextLen)
		for range 2 {
			mustCreate(t, s, store.Book{Title: long, Author: long})
		}
		for _, sort := range []string{"-title", "-author"} {
			t.Run("Longest/"+sort, func(t *testing.T) {
				page, err := s.List(ctx, store.ListOptions{Sort: sort, Limit: 1})
				if err != nil || page.NextCursor == "" {
					t.Fatalf("List: %+v, %v", page, err)
				}
				if n := len(page.NextCursor); n > store.MaxCursorLen || n < store.MaxCursorLen*9/10 {
					t.Errorf("cursor is %d bytes; want it at most MaxCursorLen %d and close to it (or lower the limit)", n, store.MaxCursorLen)
				}
				next, err := s.List(ctx, store.ListOptions{Sort: sort, Limit: 1, Cursor: page.NextCursor})
				if err != nil || len(next.Books) != 1 {
					t.Errorf("following the cursor: %+v, %v", next, err)
				}
			})
		}
		encode := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		edges := []struct {
			name string
			opts store.ListOptions
		}{
			{"YearOne", store.ListOptions{Sort: "created_at", Cursor: encode(`{"s":"created_at","k":"0001-01-01T00:00:00Z","i":1}`)}},
			{"Year9999", store.ListOptions{Sort: "-updated_at", Cursor: encode(`{"s":"-updated_at","k":"9999-12-31T23:59:59.999999999Z","i":1}`)}},
			{"OffsetWithinRange", store.ListOptions{Sort: "created_at", Cursor: encode(`{"s":"created_at","k":"2024-06-01T12:00:00.5+02:00","i":1}`)}},
			{"LargestID", store.ListOptions{Cursor: encode(`{"s":"id","k":9223372036854775807,"i":9223372036854775807}`)}},
			{"ZeroPrice", store.ListOptions{Sort: "price", Cursor: encode(`{"s":"price","k":0,"i":1}`)}},
			{"TitleOfMaxLength", store.ListOptions{Sort: "title", Cursor: encode(`{"s":"title","k":"` + strings.Repeat("é", store.MaxTextLen) + `","i":1}`)}},
			{"TitleWithNUL", store.ListOptions{Sort: "title", Cursor: encode(`{"s":"title","k":"\u0000","i":1}`)}},
		}
		for _, tt := range edges {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.List(ctx, tt.opts); err != nil {
					t.Errorf("List(%+v): %v", tt.opts, err)
				}
			})
		}
	})
}
