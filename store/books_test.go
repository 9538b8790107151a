package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/store"
)

func mustCreate(t testing.TB, s *store.Store, b store.Book) store.Book {
	t.Helper()
	got, err := s.Create(testContext(t), b)
	if err != nil {
		t.Fatalf("Create(%+v): %v", b, err)
	}
	return got
}

func mustGet(t testing.TB, s *store.Store, id int64) store.Book {
	t.Helper()
	got, err := s.Get(testContext(t), id)
	if err != nil {
		t.Fatalf("Get(%d): %v", id, err)
	}
	return got
}

func TestCreate(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		t.Run("OK", func(t *testing.T) {
			before := time.Now().UTC().Add(-time.Second)
			in := store.Book{
				ID: 999, Version: 7, CreatedAt: time.Unix(1, 0), // ignored
				Title: "Dune", Author: "Frank Herbert", ISBN: "9780441013593", PriceCents: 1099, Stock: 4,
			}
			got, err := s.Create(ctx, in)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if got.ID <= 0 || got.ID == 999 || got.Version != 1 {
				t.Errorf("ID=%d Version=%d, want a new ID and version 1", got.ID, got.Version)
			}
			if got.Title != in.Title || got.Author != in.Author || got.ISBN != in.ISBN ||
				got.PriceCents != in.PriceCents || got.Stock != in.Stock {
				t.Errorf("Create returned %+v, fields differ from %+v", got, in)
			}
			if got.CreatedAt != got.UpdatedAt || got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
				t.Errorf("CreatedAt=%v UpdatedAt=%v, want both now", got.CreatedAt, got.UpdatedAt)
			}
			if stored := mustGet(t, s, got.ID); stored != got {
				t.Errorf("Get = %+v, want %+v", stored, got)
			}
		})
		t.Run("ErrConflict", func(t *testing.T) {
			mustCreate(t, s, store.Book{Title: "First", Author: "A", ISBN: "9780306406157"})
			_, err := s.Create(ctx, store.Book{Title: "Second", Author: "B", ISBN: "9780306406157"})
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Create with a taken ISBN: err = %v, want ErrConflict", err)
			}
		})
		t.Run("ManyBooksWithoutISBN", func(t *testing.T) {
			for i := range 3 {
				b := mustCreate(t, s, store.Book{Title: fmt.Sprintf("No ISBN %d", i), Author: "Anon"})
				if got := mustGet(t, s, b.ID); got.ISBN != "" {
					t.Errorf("ISBN = %q, want empty", got.ISBN)
				}
			}
		})
	})
}

func TestGet(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		t.Run("ErrNotFound", func(t *testing.T) {
			_, err := s.Get(testContext(t), 12345)
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
		t.Run("TimestampsRoundTripExactly", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			got := mustGet(t, s, b.ID)
			for name, ts := range map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt} {
				if ts.Location() != time.UTC {
					t.Errorf("%s location = %v, want UTC", name, ts.Location())
				}
				if ts.Nanosecond()%1000 != 0 {
					t.Errorf("%s = %v has sub-microsecond digits", name, ts)
				}
			}
			if got != b {
				t.Errorf("Get = %+v, want exactly %+v", got, b)
			}
			updated, err := s.Update(testContext(t), b.ID, 0, func(b *store.Book) error { b.Stock++; return nil })
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got := mustGet(t, s, b.ID); got != updated {
				t.Errorf("after Update, Get = %+v, want exactly %+v", got, updated)
			}
		})
	})
}

func TestUpdate(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		t.Run("OK", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "Old", Author: "A", ISBN: "9780140449136", PriceCents: 100, Stock: 1})
			got, err := s.Update(ctx, b.ID, 1, func(b *store.Book) error {
				b.Title, b.Author, b.ISBN, b.PriceCents, b.Stock = "New", "B", "9780140449143", 250, 9
				return nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			want := store.Book{ID: b.ID, Title: "New", Author: "B", ISBN: "9780140449143", PriceCents: 250, Stock: 9,
				Version: 2, CreatedAt: b.CreatedAt, UpdatedAt: got.UpdatedAt}
			if got != want {
				t.Errorf("Update returned %+v, want %+v", got, want)
			}
			if got.UpdatedAt.Before(b.UpdatedAt) {
				t.Errorf("UpdatedAt went back: %v < %v", got.UpdatedAt, b.UpdatedAt)
			}
			if stored := mustGet(t, s, b.ID); stored != got {
				t.Errorf("Get = %+v, want %+v", stored, got)
			}
		})
		t.Run("IfVersionZeroSkipsCheck", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			for want := int64(2); want <= 3; want++ {
				got, err := s.Update(ctx, b.ID, 0, func(b *store.Book) error { b.Stock++; return nil })
				if err != nil || got.Version != want {
					t.Fatalf("Update: version %d, err %v; want version %d", got.Version, err, want)
				}
			}
		})
		t.Run("OtherFieldsRestored", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			got, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error {
				x.ID, x.Version, x.CreatedAt, x.UpdatedAt = 424242, 99, time.Unix(0, 0), time.Unix(0, 0)
				return nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got.ID != b.ID || got.Version != 2 || got.CreatedAt != b.CreatedAt || got.UpdatedAt.Before(b.UpdatedAt) {
				t.Errorf("Update returned %+v; apply's changes to ID, Version and timestamps must be undone", got)
			}
			if _, err := s.Get(ctx, 424242); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a book with the id set by apply exists: %v", err)
			}
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			called := false
			_, err := s.Update(ctx, 987654, 0, func(*store.Book) error { called = true; return nil })
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			if called {
				t.Error("apply was called for a missing book")
			}
		})
		t.Run("ErrStale", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			for _, v := range []int64{2, -1} {
				_, err := s.Update(ctx, b.ID, v, func(b *store.Book) error { b.Title = "changed"; return nil })
				if !errors.Is(err, store.ErrStale) {
					t.Fatalf("ifVersion %d: err = %v, want ErrStale", v, err)
				}
			}
			if got := mustGet(t, s, b.ID); got != b {
				t.Errorf("stale update changed the book: %+v", got)
			}
		})
		t.Run("ApplyErrorRollsBack", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A", Stock: 1})
			refused := errors.New("out of stock")
			_, err := s.Update(ctx, b.ID, 1, func(x *store.Book) error {
				x.Title, x.Stock = "half-written", 0
				return refused
			})
			if !errors.Is(err, refused) {
				t.Fatalf("err = %v, want it to wrap apply's error", err)
			}
			if got := mustGet(t, s, b.ID); got != b {
				t.Errorf("after a failed apply the book is %+v, want unchanged %+v", got, b)
			}
		})
		t.Run("ErrConflict", func(t *testing.T) {
			mustCreate(t, s, store.Book{Title: "Holder", Author: "A", ISBN: "9780262033848"})
			b := mustCreate(t, s, store.Book{Title: "Taker", Author: "A", ISBN: "9780131103627"})
			_, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.ISBN = "9780262033848"; return nil })
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			if got := mustGet(t, s, b.ID); got != b {
				t.Errorf("conflicting update changed the book: %+v", got)
			}
		})
		t.Run("ClearingISBNFreesIt", func(t *testing.T) {
			a := mustCreate(t, s, store.Book{Title: "A", Author: "A", ISBN: "9780201633610"})
			if _, err := s.Update(ctx, a.ID, 0, func(x *store.Book) error { x.ISBN = ""; return nil }); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got := mustGet(t, s, a.ID); got.ISBN != "" {
				t.Errorf("ISBN = %q, want empty", got.ISBN)
			}
			mustCreate(t, s, store.Book{Title: "B", Author: "B", ISBN: "9780201633610"})
		})
	})
}

// TestUpdateConcurrentSameVersion races updates that all expect version 1:
// optimistic locking must let exactly one through.
func TestUpdateConcurrentSameVersion(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		const writers = 8
		b := mustCreate(t, s, store.Book{Title: "Contended", Author: "A"})
		ctx := testContext(t)
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			errs     = make([]error, writers)
			versions = make([]int64, writers)
		)
		for i := range writers {
			wg.Go(func() {
				<-start
				got, err := s.Update(ctx, b.ID, 1, func(x *store.Book) error { x.Stock = int64(i + 1); return nil })
				errs[i], versions[i] = err, got.Version
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				if versions[i] != 2 {
					t.Errorf("winner got version %d, want 2", versions[i])
				}
			case !errors.Is(err, store.ErrStale):
				t.Errorf("writer %d: err = %v, want nil or ErrStale", i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("%d writers succeeded, want exactly 1", winners)
		}
		if got := mustGet(t, s, b.ID); got.Version != 2 || got.Stock == 0 {
			t.Errorf("final book %+v, want version 2 with one writer's stock", got)
		}
	})
}

func TestDelete(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		t.Run("OK", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "Gone", Author: "A", ISBN: "9780596007126"})
			got, err := s.Delete(ctx, b.ID, 1)
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if got != b {
				t.Errorf("Delete returned %+v, want the book as it was %+v", got, b)
			}
			if _, err := s.Get(ctx, b.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
			}
			// The ISBN is free again: deletion is hard, not a soft flag.
			mustCreate(t, s, store.Book{Title: "Reuse", Author: "A", ISBN: "9780596007126"})
		})
		t.Run("IfVersionZeroSkipsCheck", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			if _, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Stock = 3; return nil }); err != nil {
				t.Fatal(err)
			}
			got, err := s.Delete(ctx, b.ID, 0)
			if err != nil || got.Version != 2 || got.Stock != 3 {
				t.Fatalf("Delete = %+v, %v; want the version 2 book", got, err)
			}
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			if _, err := s.Delete(ctx, b.ID, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Delete(ctx, b.ID, 0); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("second Delete: err = %v, want ErrNotFound", err)
			}
		})
		t.Run("ErrStale", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			if _, err := s.Delete(ctx, b.ID, 2); !errors.Is(err, store.ErrStale) {
				t.Fatalf("err = %v, want ErrStale", err)
			}
			if got := mustGet(t, s, b.ID); got != b {
				t.Errorf("stale delete changed the book: %+v", got)
			}
		})
	})
}
