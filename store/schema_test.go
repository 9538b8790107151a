package store_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/store"
)

// insertRaw writes a row behind the store's back, as an older version of
// bookhub or a manual import could have, and returns it as stored.
func insertRaw(t testing.TB, s *store.Store, title, author, isbn string) store.Book {
	t.Helper()
	ctx := testContext(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var isbnArg any
	if isbn != "" {
		isbnArg = isbn
	}
	if err := s.ExecForTest(ctx, `INSERT INTO books (title, author, isbn, price_cents, stock, version, created_at, updated_at)
		VALUES (?, ?, ?, 0, 0, 1, ?, ?)`, title, author, isbnArg, now, now); err != nil {
		t.Fatalf("insert raw row: %v", err)
	}
	page, err := s.List(ctx, store.ListOptions{Sort: "-id", Limit: 1})
	if err != nil || len(page.Books) != 1 {
		t.Fatalf("read back raw row: %+v, %v", page, err)
	}
	return page.Books[0]
}

// TestMigrationConvertsISBN10s runs migration 2 on rows written before it:
// ISBN-10s become ISBN-13s, except where that would make two books share an
// ISBN or where the ISBN-10 is not valid; those stay and are logged.
func TestMigrationConvertsISBN10s(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			ctx := testContext(t)
			u := d.url(t)
			old, err := store.Open(ctx, store.Options{URL: u, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			holder := insertRaw(t, old, "Holder", "A", "9780306406157")
			twin := insertRaw(t, old, "Twin", "A", "0306406152") // the same book as holder
			plain := insertRaw(t, old, "Plain", "A", "080442957X")
			broken := insertRaw(t, old, "Broken", "A", "0306406153") // bad check digit
			none := insertRaw(t, old, "None", "A", "")
			if err := old.ExecForTest(ctx, "DELETE FROM schema_migrations WHERE version = 2"); err != nil {
				t.Fatalf("rewind migration 2: %v", err)
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}

			logs := &testenv.LogBuffer{}
			s, err := store.Open(ctx, store.Options{URL: u, Logger: logs.Logger()})
			if err != nil {
				t.Fatalf("Open runs migration 2: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			tests := []struct {
				name        string
				before      store.Book
				wantISBN    string
				wantVersion int64
			}{
				{"Converted", plain, "9780804429573", 2},
				{"ISBN13Untouched", holder, "9780306406157", 1},
				{"CollisionKeepsISBN10", twin, "0306406152", 1},
				{"InvalidKeepsISBN10", broken, "0306406153", 1},
				{"NoISBN", none, "", 1},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got := mustGet(t, s, tt.before.ID)
					if got.ISBN != tt.wantISBN || got.Version != tt.wantVersion {
						t.Errorf("after migration: isbn %q version %d, want %q version %d", got.ISBN, got.Version, tt.wantISBN, tt.wantVersion)
					}
					if got.UpdatedAt.Before(tt.before.UpdatedAt) {
						t.Errorf("updated_at went back: %v < %v", got.UpdatedAt, tt.before.UpdatedAt)
					}
				})
			}
			for _, want := range []string{
				"another book has the same ISBN as ISBN-13", `isbn=0306406152`, `other_book_id=` + strconv.FormatInt(holder.ID, 10),
				"it is not a valid ISBN", `isbn=0306406153`,
			} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("migration log lacks %q:\n%s", want, logs)
				}
			}

			t.Run("ISBN10OfTheCollidedBookIsErrConflict", func(t *testing.T) {
				_, err := s.Create(ctx, store.Book{Title: "Third", Author: "A", ISBN: "0-306-40615-2"})
				if !errors.Is(err, store.ErrConflict) {
					t.Errorf("Create with the ISBN of two stored books: err = %v, want ErrConflict", err)
				}
			})
			t.Run("RunsOnce", func(t *testing.T) {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				again := openStore(t, u)
				if got := mustGet(t, again, plain.ID); got.Version != 2 {
					t.Errorf("reopening ran migration 2 again: version %d", got.Version)
				}
			})
		})
	}
}

// TestMigrationsRerun rewinds the account and staff-field migrations and
// opens the store again: an interrupted step (MySQL commits DDL at once)
// must be safe to run twice, keeping the rows and values already there.
func TestMigrationsRerun(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			ctx := testContext(t)
			u := d.url(t)
			old, err := store.Open(ctx, store.Options{URL: u, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			// A row as migration 1 wrote it: the staff columns default.
			plain := insertRaw(t, old, "Plain", "A", "")
			b := mustCreate(t, old, store.Book{Title: "Staff", Author: "A", CostCents: 12, Supplier: "S"})
			user := mustCreateUser(t, old, store.NewUser{Email: "m@x.io", DisplayName: "M", Role: auth.RoleAdmin})
			if err := old.ExecForTest(ctx, "DELETE FROM schema_migrations WHERE version IN (4, 5)"); err != nil {
				t.Fatalf("rewind migrations: %v", err)
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, u)
			if got := mustGet(t, s, b.ID); got != b {
				t.Errorf("book after rerun %+v, want %+v", got, b)
			}
			if got := mustGet(t, s, plain.ID); got.CostCents != 0 || got.Supplier != "" {
				t.Errorf("old row %+v, want zero cost and no supplier", got)
			}
			if got := mustGetUser(t, s, user.ID); got != user {
				t.Errorf("user after rerun %+v, want %+v", got, user)
			}
		})
	}
}
