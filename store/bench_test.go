package store_test

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/bookhub/bookhub/store"
)

func benchStore(b *testing.B, seed int) (*store.Store, []store.Book) {
	b.Helper()
	s, err := store.Open(testContext(b), store.Options{
		URL:    sqliteURL(b),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	books := make([]store.Book, 0, seed)
	for i := range seed {
		books = append(books, mustCreate(b, s, store.Book{
			Title:      fmt.Sprintf("Title %d", i%97),
			Author:     fmt.Sprintf("Author %d", i%13),
			PriceCents: int64(100 + i%500),
			Stock:      int64(i % 7),
		}))
	}
	return s, books
}

func BenchmarkCreate(b *testing.B) {
	s, _ := benchStore(b, 0)
	ctx := testContext(b)
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Create(ctx, store.Book{Title: "Bench", Author: "B", ISBN: benchISBN(int64(i)), PriceCents: 999}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s, books := benchStore(b, 1000)
	ctx := testContext(b)
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Get(ctx, books[i%len(books)].ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList(b *testing.B) {
	s, _ := benchStore(b, 2000)
	ctx := testContext(b)
	for _, bc := range []struct {
		name string
		opts store.ListOptions
	}{
		{"FirstPageByID", store.ListOptions{}},
		{"ByPriceDesc", store.ListOptions{Sort: "-price"}},
		{"AuthorFilter", store.ListOptions{Author: "author 7", Sort: "title"}},
		{"QuerySubstring", store.ListOptions{Query: "tle 4"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			next := bc.opts
			for b.Loop() {
				// Walk forward so deep pages are measured too, restarting
				// at the end.
				p, err := s.List(ctx, next)
				if err != nil {
					b.Fatal(err)
				}
				if next.Cursor = p.NextCursor; next.Cursor == "" {
					next = bc.opts
				}
			}
		})
	}
}
