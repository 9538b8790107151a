package store_test

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/bookhub/bookhub/store"
)

// BenchmarkCreateWithOutbox measures committed writes through Create on each
// driver. Every create appends its outbox row under the row lock of the
// "books" stream, which serializes commits across all writers; Parallel
// shows what that leaves with 16 writers. writes/s is committed creates per
// second of wall time.
func BenchmarkCreateWithOutbox(b *testing.B) {
	for _, d := range driverCases {
		b.Run(d.name, func(b *testing.B) {
			s, err := store.Open(testContext(b), store.Options{URL: d.url(b), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatalf("Open: %v", err)
			}
			b.Cleanup(func() { s.Close() })
			ctx := testContext(b)
			var n atomic.Int64 // ISBNs stay unique across runs of one store
			create := func(b *testing.B) {
				book := store.Book{Title: "Bench", Author: "B", ISBN: benchISBN(n.Add(1)), PriceCents: 999}
				if _, err := s.Create(ctx, book); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("Serial", func(b *testing.B) {
				for b.Loop() {
					create(b)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
			b.Run("Parallel", func(b *testing.B) {
				b.SetParallelism(8) // 8 × GOMAXPROCS writers
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						create(b)
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
		})
	}
}

// benchISBN returns the n-th valid ISBN-13 (978 prefix), so the benchmark
// also runs against store versions that check ISBNs.
func benchISBN(n int64) string {
	body := fmt.Sprintf("978%09d", n)
	sum := 0
	for i, c := range body {
		d := int(c - '0')
		if i%2 == 1 {
			d *= 3
		}
		sum += d
	}
	return fmt.Sprintf("%s%d", body, (10-sum%10)%10)
}
