package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/store"
)

// wantConflict fails t unless err is a *ConflictError for entity and field
// that also matches ErrConflict and does not quote secret.
func wantConflict(t *testing.T, err error, entity, field, secret string) {
	t.Helper()
	var ce *store.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("err = %v, want a *ConflictError matching ErrConflict", err)
	}
	if ce.Entity != entity || ce.Field != field {
		t.Errorf("ConflictError = %+v, want {%s %s}", *ce, entity, field)
	}
	if secret != "" && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(secret)) {
		t.Errorf("error text %q quotes the duplicated value", err)
	}
}

func TestTypedErrors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		b := mustCreate(t, s, store.Book{Title: "First", Author: "A", ISBN: "9780306406157"})
		t.Run("ConflictErrorNamesBookISBN", func(t *testing.T) {
			_, err := s.Create(ctx, store.Book{Title: "Second", Author: "B", ISBN: "9780306406157"})
			wantConflict(t, err, "book", "isbn", "9780306406157")
		})
		t.Run("ConflictErrorOnUpdate", func(t *testing.T) {
			other := mustCreate(t, s, store.Book{Title: "Other", Author: "B"})
			_, err := s.Update(ctx, other.ID, 0, func(x *store.Book) error { x.ISBN = "9780306406157"; return nil })
			wantConflict(t, err, "book", "isbn", "9780306406157")
		})
		t.Run("NotFoundErrorNamesBook", func(t *testing.T) {
			for name, call := range map[string]func() error{
				"Get":    func() error { _, err := s.Get(ctx, 987654); return err },
				"Update": func() error { _, err := s.Update(ctx, 987654, 0, func(*store.Book) error { return nil }); return err },
				"Delete": func() error { _, err := s.Delete(ctx, 987654, 0); return err },
			} {
				err := call()
				var nf *store.NotFoundError
				if !errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) || nf.Entity != "book" {
					t.Errorf("%s: err = %v, want a book *NotFoundError matching ErrNotFound", name, err)
				}
			}
		})
		t.Run("StaleErrorNamesBook", func(t *testing.T) {
			_, err := s.Update(ctx, b.ID, b.Version+5, func(*store.Book) error { return nil })
			var se *store.StaleError
			if !errors.As(err, &se) || !errors.Is(err, store.ErrStale) || se.Entity != "book" {
				t.Errorf("err = %v, want a book *StaleError matching ErrStale", err)
			}
		})
	})
}

func TestValidationErrorKinds(t *testing.T) {
	_, bookErr := store.Book{Title: "", Author: "A"}.Normalize()
	if !errors.Is(bookErr, store.ErrInvalidBook) || !errors.Is(bookErr, store.ErrInvalid) || errors.Is(bookErr, store.ErrInvalidUser) {
		t.Errorf("book validation error %v: want ErrInvalidBook and ErrInvalid, not ErrInvalidUser", bookErr)
	}
	if !errors.Is(store.ErrInvalidBook, store.ErrInvalid) || !errors.Is(store.ErrInvalidUser, store.ErrInvalid) {
		t.Error("ErrInvalidBook and ErrInvalidUser must match ErrInvalid")
	}
}

func TestStaffBookFields(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		t.Run("RoundTrip", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "Staff", Author: "A", PriceCents: 900, CostCents: 450, Supplier: "  Acme Books  "})
			if b.CostCents != 450 || b.Supplier != "Acme Books" {
				t.Fatalf("Create = %+v, want cost 450 and trimmed supplier", b)
			}
			if got := mustGet(t, s, b.ID); got != b {
				t.Errorf("Get = %+v, want %+v", got, b)
			}
			up, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.CostCents, x.Supplier = 500, ""; return nil })
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if up.CostCents != 500 || up.Supplier != "" || mustGet(t, s, b.ID) != up {
				t.Errorf("Update = %+v, want cost 500, no supplier, as stored", up)
			}
			page, err := s.List(ctx, store.ListOptions{Limit: store.MaxLimit})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			found := false
			for _, x := range page.Books {
				found = found || x == up
			}
			if !found {
				t.Errorf("List does not return %+v", up)
			}
		})
		t.Run("OutboxCarriesThem", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "Outboxed", Author: "A", CostCents: 7, Supplier: "Zed"})
			hist, _, err := s.History(ctx, events.BookChannel(b.ID), 0, 10)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if len(hist) != 1 || hist[0].Book != b {
				t.Fatalf("history %+v, want one change with %+v", hist, b)
			}
		})
		t.Run("OldSnapshotsDecodeAsZero", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "Old", Author: "A", CostCents: 7, Supplier: "Zed"})
			old := `{"id":1,"title":"Old","author":"A","price_cents":0,"stock":0,"version":1,"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}`
			if err := s.ExecForTest(ctx, "UPDATE outbox SET payload = ? WHERE book_id = ?", old, b.ID); err != nil {
				t.Fatalf("rewrite payload: %v", err)
			}
			hist, _, err := s.History(ctx, events.BookChannel(b.ID), 0, 10)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if len(hist) != 1 || hist[0].Book.CostCents != 0 || hist[0].Book.Supplier != "" || hist[0].Book.Title != "Old" {
				t.Errorf("history %+v, want the old snapshot with zero cost and no supplier", hist)
			}
		})
		t.Run("Refusals", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "Valid", Author: "A"})
			tests := []struct {
				name  string
				book  store.Book
				field string
			}{
				{"NegativeCost", store.Book{Title: "T", Author: "A", CostCents: -1}, "CostCents"},
				{"SupplierControlChar", store.Book{Title: "T", Author: "A", Supplier: "Ac\tme"}, "Supplier"},
				{"SupplierTab", store.Book{Title: "T", Author: "A", Supplier: "\t"}, "Supplier"},
				{"SupplierInvisibleOnly", store.Book{Title: "T", Author: "A", Supplier: "\u200b"}, "Supplier"},
				{"SupplierTooLong", store.Book{Title: "T", Author: "A", Supplier: strings.Repeat("s", store.MaxTextLen+1)}, "Supplier"},
				{"SupplierCombiningFirst", store.Book{Title: "T", Author: "A", Supplier: "\u0301x"}, "Supplier"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					for op, call := range map[string]func() error{
						"Create": func() error { _, err := s.Create(ctx, tt.book); return err },
						"Update": func() error {
							_, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error {
								x.CostCents, x.Supplier = tt.book.CostCents, tt.book.Supplier
								return nil
							})
							return err
						},
					} {
						err := call()
						var ve *store.ValidationError
						if !errors.As(err, &ve) || !errors.Is(err, store.ErrInvalidBook) || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field {
							t.Errorf("%s: err = %v, want a ValidationError naming only %s", op, err, tt.field)
						}
					}
					if got := mustGet(t, s, b.ID); got.Version != b.Version {
						t.Errorf("refused update wrote: version %d", got.Version)
					}
				})
			}
			t.Run("WhiteSpaceOnlySupplierIsNone", func(t *testing.T) {
				got := mustCreate(t, s, store.Book{Title: "T", Author: "A", Supplier: "   "})
				if got.Supplier != "" {
					t.Errorf("supplier %q, want empty", got.Supplier)
				}
			})
		})
	})
}
