package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/bookhub/bookhub/events"
)

// How positions are assigned, and why the order is safe.
//
// Every write appends one row to the outbox table inside its own
// transaction, as the last statement before COMMIT. The row takes the next
// offset of the "books" stream from the streams table under a row lock
// (SELECT ... FOR UPDATE on MySQL; SQLite transactions here begin IMMEDIATE
// and exclude every other writer). The lock is held until the transaction
// ends, so the transaction holding offset N commits (or rolls back, returning
// N) before any other can take N+1: offsets are gap-free and in commit order,
// with any number of instances writing. The lock is taken last so that it is
// held only for the increment, the insert and the commit.
//
// A book's own channel uses the book's version as its offset (1 for the
// create, +1 per update, version+1 for the delete): versions are already
// bumped by exactly one under the book's row lock, so they are gap-free and
// in commit order per book. Book ids are never reused (AUTO_INCREMENT,
// SQLite AUTOINCREMENT), so one epoch serves every channel: the epoch of the
// "books" stream, created with the schema and changed only by resetting it.
//
// The outbox is also the durable history clients resume from: a row stays
// after it is published, until it is older than the retention and beyond the
// history size (Prune).

// streamBooks is the streams row of the "books" channel.
const streamBooks = events.ChannelBooks

// Change is one committed write as the outbox records it: what happened, the
// book, and its position on each channel.
type Change struct {
	// Seq identifies the outbox row (MarkPublished takes it). It is not a
	// position: ids are allocated before commit, out of commit order.
	Seq     int64
	EventID string
	Type    events.Type
	// Book is the book after the change; for a delete, as it was.
	Book   Book
	Origin string
	// At is the time of the change, taken in its transaction.
	At    time.Time
	Epoch string
	// Offset is the position on "books", BookOffset on "books:<id>".
	Offset     uint64
	BookOffset uint64
}

// Position is a channel's current position: the offset of its latest event
// (0 before the first) and the epoch of its history.
type Position struct {
	Offset uint64
	Epoch  string
}

type streamRow struct {
	Name       string `gorm:"column:name;primaryKey"`
	Epoch      string `gorm:"column:epoch"`
	LastOffset uint64 `gorm:"column:last_offset"`
}

func (streamRow) TableName() string { return "streams" }

type outboxRow struct {
	ID          int64      `gorm:"column:id;primaryKey;autoIncrement"`
	EventID     string     `gorm:"column:event_id"`
	Type        string     `gorm:"column:type"`
	BookID      int64      `gorm:"column:book_id"`
	BooksOffset uint64     `gorm:"column:books_offset"`
	BookOffset  uint64     `gorm:"column:book_offset"`
	Payload     string     `gorm:"column:payload"`
	Origin      string     `gorm:"column:origin"`
	CommittedAt time.Time  `gorm:"column:committed_at"`
	PublishedAt *time.Time `gorm:"column:published_at"`
}

func (outboxRow) TableName() string { return "outbox" }

// snapshot is the book as the outbox keeps it. It is the store's own format,
// not the API's: the relay renders the wire form when it publishes, so a
// change of the API's JSON does not strand history written before it.
type snapshot struct {
	ID         int64  `json:"id"`
	Title      string `json:"title"`
	Author     string `json:"author"`
	ISBN       string `json:"isbn,omitempty"`
	PriceCents int64  `json:"price_cents"`
	Stock      int64  `json:"stock"`
	// CostCents and Supplier came with migration 5; snapshots written
	// before it lack them and decode as zero, as the columns defaulted.
	CostCents int64     `json:"cost_cents"`
	Supplier  string    `json:"supplier"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (r outboxRow) change(epoch string) (Change, error) {
	var snap snapshot
	if err := json.Unmarshal([]byte(r.Payload), &snap); err != nil {
		return Change{}, fmt.Errorf("decode outbox row %d: %w", r.ID, err)
	}
	return Change{
		Seq: r.ID, EventID: r.EventID, Type: events.Type(r.Type),
		Book: Book{ID: snap.ID, Title: snap.Title, Author: snap.Author, ISBN: snap.ISBN,
			PriceCents: snap.PriceCents, Stock: snap.Stock,
			CostCents: snap.CostCents, Supplier: snap.Supplier, Version: snap.Version,
			CreatedAt: snap.CreatedAt.UTC(), UpdatedAt: snap.UpdatedAt.UTC()},
		Origin: r.Origin, At: r.CommittedAt.UTC(), Epoch: epoch,
		Offset: r.BooksOffset, BookOffset: r.BookOffset,
	}, nil
}

// ensureStreams creates the "books" stream with a fresh epoch unless it
// exists, and remembers its epoch.
func (s *Store) ensureStreams(ctx context.Context) error {
	// In a transaction: SQLite begins it IMMEDIATE, so instances opening
	// the same file together queue on busy_timeout instead of failing.
	return s.inTx(ctx, func(tx *gorm.DB) error {
		row := streamRow{Name: streamBooks, Epoch: newEpoch()}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
			return fmt.Errorf("create stream %q: %w", streamBooks, translate(err))
		}
		var got streamRow
		if err := tx.Where("name = ?", streamBooks).Take(&got).Error; err != nil {
			return fmt.Errorf("read stream %q: %w", streamBooks, translate(err))
		}
		s.epoch = got.Epoch
		return nil
	})
}

// newEpoch is 64 random bits, hex: unique per history, short on the wire.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}

// Epoch returns the epoch of every channel's history.
func (s *Store) Epoch() string { return s.epoch }

// appendChange records a write in the outbox as the last step of its
// transaction tx, taking the next offset of "books" (see the top of this
// file). bookOffset is the change's position on the book's channel.
func (s *Store) appendChange(tx *gorm.DB, typ events.Type, b Book, bookOffset uint64, at time.Time) (Change, error) {
	if s.beforeAppend != nil {
		s.beforeAppend(b)
	}
	next, err := s.nextOffset(tx)
	if err != nil {
		return Change{}, err
	}
	payload, err := json.Marshal(snapshot(b)) // the same fields, the store's own JSON names
	if err != nil {
		return Change{}, fmt.Errorf("encode outbox payload: %w", err)
	}
	row := outboxRow{
		EventID: events.NewID(), Type: string(typ), BookID: b.ID,
		BooksOffset: next, BookOffset: bookOffset, Payload: string(payload),
		Origin: s.origin, CommittedAt: at,
	}
	if err := tx.Create(&row).Error; err != nil {
		return Change{}, fmt.Errorf("insert outbox row: %w", translate(err))
	}
	return row.change(s.epoch)
}

// nextOffset takes the next offset of "books" in tx, locking the stream's
// row until tx ends.
//
// On MySQL one statement both locks and increments, and hands the new value
// back through LAST_INSERT_ID(expr) in the OK packet: a round trip saved
// inside the one section every write of the deployment queues for (the
// lock is held until COMMIT). SQLite runs in-process and its transactions
// here already exclude other writers, so a plain read and update serve.
func (s *Store) nextOffset(tx *gorm.DB) (uint64, error) {
	if s.driver == DriverMySQL {
		res, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context,
			"UPDATE streams SET last_offset = LAST_INSERT_ID(last_offset + 1) WHERE name = ?", streamBooks)
		if err != nil {
			return 0, fmt.Errorf("advance stream %q: %w", streamBooks, translate(err))
		}
		next, err := res.LastInsertId()
		if err != nil {
			return 0, fmt.Errorf("advance stream %q: read the offset: %w", streamBooks, err)
		}
		if next <= 0 {
			return 0, fmt.Errorf("advance stream %q: no offset returned", streamBooks)
		}
		return uint64(next), nil
	}
	var st streamRow
	if err := tx.Where("name = ?", streamBooks).Take(&st).Error; err != nil {
		return 0, fmt.Errorf("read stream %q: %w", streamBooks, translate(err))
	}
	next := st.LastOffset + 1
	if err := tx.Model(&streamRow{}).Where("name = ?", streamBooks).Update("last_offset", next).Error; err != nil {
		return 0, fmt.Errorf("advance stream %q: %w", streamBooks, translate(err))
	}
	return next, nil
}

// committed hands a committed change to Options.OnCommit.
func (s *Store) committed(c Change) {
	if s.onCommit != nil {
		s.onCommit(c)
	}
}

// readTx runs fn in a read-only transaction that sees one consistent
// snapshot: MySQL REPEATABLE READ; on SQLite, read-only makes the driver
// BEGIN DEFERRED instead of the IMMEDIATE that writes use, so the
// transaction reads one WAL snapshot without taking the write lock. (Under
// the write lock, an instance that reads in a loop starves the writers of
// other instances on the same file into SQLITE_BUSY, and reads could not run
// in parallel when MaxOpenConns is raised.)
func (s *Store) readTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.driver == DriverMySQL {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return s.db.WithContext(ctx).Transaction(fn, opts)
}

// positionTx returns the current position of the channel of bookID (0:
// "books") as tx sees it.
func (s *Store) positionTx(tx *gorm.DB, bookID int64) (Position, error) {
	var st streamRow
	if err := tx.Where("name = ?", streamBooks).Take(&st).Error; err != nil {
		return Position{}, fmt.Errorf("read stream %q: %w", streamBooks, translate(err))
	}
	if bookID == 0 {
		return Position{Offset: st.LastOffset, Epoch: st.Epoch}, nil
	}
	var versions []int64
	if err := tx.Model(&bookRow{}).Where("id = ?", bookID).Limit(1).Pluck("version", &versions).Error; err != nil {
		return Position{}, fmt.Errorf("read version of book %d: %w", bookID, translate(err))
	}
	if len(versions) == 1 {
		return Position{Offset: uint64(versions[0]), Epoch: st.Epoch}, nil
	}
	// Deleted (or never created): its last event, if history still has it.
	var last []uint64
	if err := tx.Model(&outboxRow{}).Where("book_id = ?", bookID).
		Order("book_offset DESC").Limit(1).Pluck("book_offset", &last).Error; err != nil {
		return Position{}, fmt.Errorf("read history of book %d: %w", bookID, translate(err))
	}
	if len(last) == 1 {
		return Position{Offset: last[0], Epoch: st.Epoch}, nil
	}
	return Position{Epoch: st.Epoch}, nil
}

// CurrentPosition returns the current position of a channel ("books" or
// "books:<id>"). An unknown channel name is ErrInvalidQuery.
func (s *Store) CurrentPosition(ctx context.Context, channel string) (Position, error) {
	bookID, ok := events.ParseChannel(channel)
	if !ok {
		return Position{}, fmt.Errorf("position of %q: %w: unknown channel", channel, ErrInvalidQuery)
	}
	var pos Position
	err := s.readTx(ctx, func(tx *gorm.DB) error {
		var err error
		pos, err = s.positionTx(tx, bookID)
		return err
	})
	if err != nil {
		return Position{}, fmt.Errorf("position of %q: %w", channel, translate(err))
	}
	return pos, nil
}

// History returns up to limit changes on channel ("books" or "books:<id>")
// with an offset above after, in offset order, and the channel's current
// position, read in one snapshot. The changes are contiguous from the first
// one kept: if history no longer reaches back to after+1, the first change's
// offset tells (callers compare it with after+1).
func (s *Store) History(ctx context.Context, channel string, after uint64, limit int) ([]Change, Position, error) {
	bookID, ok := events.ParseChannel(channel)
	if !ok {
		return nil, Position{}, fmt.Errorf("history of %q: %w: unknown channel", channel, ErrInvalidQuery)
	}
	if limit <= 0 {
		return nil, Position{}, fmt.Errorf("history of %q: %w: limit %d", channel, ErrInvalidQuery, limit)
	}
	var (
		pos  Position
		rows []outboxRow
	)
	err := s.readTx(ctx, func(tx *gorm.DB) error {
		var err error
		if pos, err = s.positionTx(tx, bookID); err != nil {
			return err
		}
		if after >= pos.Offset {
			return nil
		}
		q := tx.Model(&outboxRow{})
		if bookID == 0 {
			q = q.Where("books_offset > ?", after).Order("books_offset")
		} else {
			q = q.Where("book_id = ? AND book_offset > ?", bookID, after).Order("book_offset")
		}
		return q.Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, Position{}, fmt.Errorf("history of %q after %d: %w", channel, after, translate(err))
	}
	out := make([]Change, 0, len(rows))
	for _, r := range rows {
		c, err := r.change(pos.Epoch)
		if err != nil {
			return nil, Position{}, err
		}
		out = append(out, c)
	}
	return out, pos, nil
}
