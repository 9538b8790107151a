package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ClaimUnpublished hands publish the oldest outbox rows that are still
// unpublished and were committed before olderThan (at most limit of them),
// and marks published the ones whose Seq publish returns. It returns how
// many rows it claimed.
//
// On MySQL the rows are claimed with SELECT ... FOR UPDATE SKIP LOCKED and
// stay locked while publish runs, so instances sweeping at the same moment
// take disjoint rows and none publishes a row another is publishing. The
// olderThan grace keeps the sweep off rows whose committing instance is
// handing them to its relay right now (the normal path), so in the normal
// case no row is published twice; when it happens anyway (a crash between
// publish and mark), receivers drop the duplicate by its offset.
//
// The claim runs at READ COMMITTED on MySQL: its locking read then locks
// only the rows it returns. Under REPEATABLE READ it would also lock the
// gaps it scanned, among them the end of the unpublished range where every
// new outbox row is inserted, so each write would wait (holding the books
// stream's lock, so every other write too) until publish returned.
func (s *Store) ClaimUnpublished(ctx context.Context, olderThan time.Time, limit int,
	publish func([]Change) (published []int64)) (int, error) {
	var opts []*sql.TxOptions
	if s.driver == DriverMySQL {
		opts = append(opts, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	}
	// SQLite compares the stored times as text, which orders instants
	// only when every value is in UTC, as the store writes them.
	olderThan = olderThan.UTC()
	var claimed int
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where("published_at IS NULL AND committed_at < ?", olderThan).Order("id").Limit(limit)
		if s.driver == DriverMySQL {
			q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
		}
		var rows []outboxRow
		if err := q.Find(&rows).Error; err != nil {
			return translate(err)
		}
		claimed = len(rows)
		if claimed == 0 {
			return nil
		}
		changes := make([]Change, 0, len(rows))
		for _, r := range rows {
			c, err := r.change(s.epoch)
			if err != nil {
				return err
			}
			changes = append(changes, c)
		}
		return markPublished(tx, publish(changes), s.now())
	}, opts...)
	if err != nil {
		return 0, fmt.Errorf("sweep outbox: %w", translate(err))
	}
	return claimed, nil
}

// MarkPublished records that the rows with these Seq values reached the
// bus, so the sweep leaves them alone and Prune may remove them.
func (s *Store) MarkPublished(ctx context.Context, seqs []int64) error {
	if err := markPublished(s.db.WithContext(ctx), seqs, s.now()); err != nil {
		return fmt.Errorf("mark %d outbox rows published: %w", len(seqs), translate(err))
	}
	return nil
}

func markPublished(tx *gorm.DB, seqs []int64, now time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	return tx.Model(&outboxRow{}).Where("id IN ? AND published_at IS NULL", seqs).Update("published_at", now).Error
}

// pruneBatch bounds one DELETE, so pruning a large backlog never holds
// locks long enough to stall writers.
const pruneBatch = 1000

// Prune deletes the oldest history: the longest run of rows from the start
// of "books" that are all published, older than maxAge and more than keep
// positions behind the head. The history keeps at least keep events and
// every event younger than maxAge, and stays contiguous from its first
// event, which is what lets History's callers tell whether it still reaches
// back far enough: a row that must stay keeps every later row. (Commit times
// need not grow with offsets: instances' clocks differ, and a create takes
// its time before it waits for the stream's lock.) Unpublished rows are
// never pruned; one stuck unpublished row holds pruning back until it is
// published, which the outbox lag shows. It returns the rows deleted.
func (s *Store) Prune(ctx context.Context, maxAge time.Duration, keep uint64) (int64, error) {
	return s.prune(ctx, maxAge, keep, pruneBatch)
}

// pruneRow is what Prune reads of a row to decide whether it may go.
type pruneRow struct {
	BooksOffset uint64     `gorm:"column:books_offset"`
	CommittedAt time.Time  `gorm:"column:committed_at"`
	PublishedAt *time.Time `gorm:"column:published_at"`
}

// prune is Prune deleting at most batch rows per statement.
func (s *Store) prune(ctx context.Context, maxAge time.Duration, keep uint64, batch int) (int64, error) {
	pos, err := s.CurrentPosition(ctx, streamBooks)
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	if pos.Offset <= keep {
		return 0, nil
	}
	cutoff, below := s.now().Add(-maxAge), pos.Offset-keep
	db := s.db.WithContext(ctx)
	var total int64
	for {
		// The first rows of history, by offset (an index range read).
		var rows []pruneRow
		if err := db.Model(&outboxRow{}).Select("books_offset", "committed_at", "published_at").
			Where("books_offset <= ?", below).Order("books_offset").Limit(batch).Find(&rows).Error; err != nil {
			return total, fmt.Errorf("prune outbox: %w", translate(err))
		}
		n := 0
		for n < len(rows) && rows[n].PublishedAt != nil && rows[n].CommittedAt.Before(cutoff) {
			n++
		}
		if n == 0 {
			return total, nil
		}
		// rows[:n] are all the rows up to rows[n-1]'s offset (no offset
		// below pos is still to commit) and a published row stays
		// published, so the range can go as read. Deleting by the offset
		// index locks that range and the gap just past it, not the head
		// where writers insert (unless keep is 0).
		res := db.Exec("DELETE FROM outbox WHERE books_offset <= ?", rows[n-1].BooksOffset)
		if res.Error != nil {
			return total, fmt.Errorf("prune outbox: %w", translate(res.Error))
		}
		total += res.RowsAffected
		if n < len(rows) || len(rows) < batch {
			return total, nil
		}
	}
}

// OutboxStats describes the outbox for metrics.
type OutboxStats struct {
	// Rows counts every row: the durable history plus the unpublished.
	Rows int64
	// Unpublished counts rows not yet on the bus.
	Unpublished int64
	// OldestUnpublished is the commit time of the oldest of them (zero when
	// there is none); now minus it is the outbox's lag.
	OldestUnpublished time.Time
}

// OutboxStats counts the outbox's rows.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	db := s.db.WithContext(ctx)
	if err := db.Model(&outboxRow{}).Count(&st.Rows).Error; err != nil {
		return OutboxStats{}, fmt.Errorf("count outbox: %w", translate(err))
	}
	var oldest []outboxRow
	q := db.Model(&outboxRow{}).Where("published_at IS NULL")
	if err := q.Count(&st.Unpublished).Error; err != nil {
		return OutboxStats{}, fmt.Errorf("count unpublished outbox rows: %w", translate(err))
	}
	if st.Unpublished > 0 {
		if err := db.Where("published_at IS NULL").Order("id").Limit(1).Find(&oldest).Error; err != nil {
			return OutboxStats{}, fmt.Errorf("oldest unpublished outbox row: %w", translate(err))
		}
		if len(oldest) == 1 {
			st.OldestUnpublished = oldest[0].CommittedAt.UTC()
		}
	}
	return st, nil
}
