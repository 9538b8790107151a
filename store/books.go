package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/bookhub/bookhub/events"
)

// Every write applies the entity's rules (Book.Normalize) itself, so no
// writer can store a value the API would refuse or an ISBN-10 that dodges
// the unique index. The API checks the same rules first, field by field, to
// report them in its own terms; here they are the last line.
//
// Every write appends its change to the outbox in the same transaction (see
// outbox.go), and hands it to Options.OnCommit once committed.

// Create inserts b and returns it as stored: normalized by Book.Normalize
// (an ISBN-10 becomes its ISBN-13), with its new ID, Version 1 and
// CreatedAt = UpdatedAt = now (UTC, microsecond precision, so the values
// round-trip exactly). b's ID, Version and timestamps are ignored. A book
// that breaks a rule yields a *ValidationError (ErrInvalidBook); a taken
// ISBN yields &ConflictError{Entity: "book", Field: "isbn"} (ErrConflict).
func (s *Store) Create(ctx context.Context, b Book) (Book, error) {
	b, err := b.Normalize()
	if err != nil {
		return Book{}, fmt.Errorf("create book: %w", err)
	}
	now := s.now()
	b.ID, b.Version, b.CreatedAt, b.UpdatedAt = 0, 1, now, now
	row := fromBook(b)
	var change Change
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		var err error
		change, err = s.appendChange(tx, events.BookCreated, toBook(row), 1, now)
		return err
	})
	if err != nil {
		return Book{}, fmt.Errorf("create book: %w", translate(err))
	}
	s.committed(change)
	return toBook(row), nil
}

// Get returns the book with that id, or a *NotFoundError (ErrNotFound).
func (s *Store) Get(ctx context.Context, id int64) (Book, error) {
	var row bookRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return Book{}, fmt.Errorf("get book %d: %w", id, notFound(err, "book", bookKey(id)))
	}
	return toBook(row), nil
}

// Update changes a book in one transaction and returns it as stored.
//
// It loads the row (locking it on MySQL, so concurrent updates of one book
// queue instead of racing), fails with ErrNotFound if there is none and with
// ErrStale if ifVersion is not 0 and not the current version, then calls
// apply with the current book, so apply can make checks against the stored
// values that no concurrent write can invalidate. apply may change Title,
// Author, ISBN, PriceCents and Stock; changes to other fields are undone.
// If apply fails, nothing is written and its error is returned wrapped. The
// fields apply changed must follow Book.Normalize's rules (an ISBN-10
// becomes its ISBN-13), else nothing is written and the error is a
// *ValidationError; unchanged fields are not checked, so a row stored before
// a rule existed stays editable. Otherwise Version is bumped and UpdatedAt
// set to now. A taken ISBN yields a *ConflictError (ErrConflict).
func (s *Store) Update(ctx context.Context, id int64, ifVersion int64, apply func(*Book) error) (Book, error) {
	var (
		out    Book
		change Change
	)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		cur, err := s.loadForWrite(tx, id, ifVersion)
		if err != nil {
			return err
		}
		next := cur
		if err := apply(&next); err != nil {
			return err
		}
		if next, err = next.normalizeChanges(cur); err != nil {
			return err
		}
		// Only the editable fields survive apply.
		next.ID, next.Version, next.CreatedAt = cur.ID, cur.Version+1, cur.CreatedAt
		next.UpdatedAt = s.now()
		res := tx.Model(&bookRow{}).
			Where("id = ? AND version = ?", id, cur.Version).
			Updates(map[string]any{
				"title":       next.Title,
				"author":      next.Author,
				"isbn":        nullableISBN(next.ISBN),
				"price_cents": next.PriceCents,
				"stock":       next.Stock,
				"cost_cents":  next.CostCents,
				"supplier":    next.Supplier,
				"version":     next.Version,
				"updated_at":  next.UpdatedAt,
			})
		if res.Error != nil {
			return translate(res.Error)
		}
		if res.RowsAffected != 1 {
			// Unreachable while the row is locked (MySQL) or the database
			// is (SQLite); kept as the guard that makes versions safe.
			return &StaleError{Entity: "book"}
		}
		out = next
		change, err = s.appendChange(tx, events.BookUpdated, next, uint64(next.Version), next.UpdatedAt)
		return err
	})
	if err != nil {
		return Book{}, fmt.Errorf("update book %d: %w", id, translate(err))
	}
	s.committed(change)
	return out, nil
}

// Delete removes a book and returns it as it was just before. It fails with
// a *NotFoundError if there is none and with a *StaleError if ifVersion is
// not 0 and not the current version. Deletion is permanent.
func (s *Store) Delete(ctx context.Context, id int64, ifVersion int64) (Book, error) {
	var (
		out    Book
		change Change
	)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		cur, err := s.loadForWrite(tx, id, ifVersion)
		if err != nil {
			return err
		}
		res := tx.Where("id = ? AND version = ?", id, cur.Version).Delete(&bookRow{})
		if res.Error != nil {
			return translate(res.Error)
		}
		if res.RowsAffected != 1 {
			return &StaleError{Entity: "book"}
		}
		out = cur
		// The delete is the book's last event: one past its last version.
		change, err = s.appendChange(tx, events.BookDeleted, cur, uint64(cur.Version)+1, s.now())
		return err
	})
	if err != nil {
		return Book{}, fmt.Errorf("delete book %d: %w", id, translate(err))
	}
	s.committed(change)
	return out, nil
}

// loadForWrite reads the row a write is about to change and checks the
// caller's expected version. On MySQL the read takes a row lock held until
// the transaction ends (SELECT ... FOR UPDATE); SQLite transactions here
// begin IMMEDIATE, which already excludes other writers.
func (s *Store) loadForWrite(tx *gorm.DB, id int64, ifVersion int64) (Book, error) {
	q := tx
	if s.driver == DriverMySQL {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var row bookRow
	if err := q.Where("id = ?", id).Take(&row).Error; err != nil {
		return Book{}, notFound(err, "book", bookKey(id))
	}
	if ifVersion != 0 && ifVersion != row.Version {
		return Book{}, fmt.Errorf("%w: have version %d, current is %d", &StaleError{Entity: "book"}, ifVersion, row.Version)
	}
	return toBook(row), nil
}

// bookKey is the Key of a book's NotFoundError.
func bookKey(id int64) string { return fmt.Sprintf("id %d", id) }
