package store

import (
	"context"
	"time"
)

// SetBeforeAppend installs the hook each write runs inside its transaction
// just before its outbox row takes an offset. Call it before the first write:
// the field is not guarded.
func (s *Store) SetBeforeAppend(f func(Book)) { s.beforeAppend = f }

// SetClock replaces the store's clock (the times of changes, publications and
// the prune cutoff). now must return UTC times truncated to the microsecond,
// as the real clock does. Call it while no other goroutine uses the store.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// PruneInBatches is Prune deleting at most batch rows per statement.
func (s *Store) PruneInBatches(ctx context.Context, maxAge time.Duration, keep uint64, batch int) (int64, error) {
	return s.prune(ctx, maxAge, keep, batch)
}
