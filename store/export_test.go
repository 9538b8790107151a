package store

import (
	"context"
)

// ExecForTest runs one raw statement. Black-box tests use it to write what
// the store itself now refuses (rows from before a rule existed) and to
// rewind schema_migrations so a step runs again.
func (s *Store) ExecForTest(ctx context.Context, sql string, args ...any) error {
	return s.db.WithContext(ctx).Exec(sql, args...).Error
}

// LiveRefreshHashesForTest returns the hashes of a session's tokens that
// are neither used nor superseded.
func (s *Store) LiveRefreshHashesForTest(ctx context.Context, sessionID string) ([][]byte, error) {
	var hashes [][]byte
	err := s.db.WithContext(ctx).Model(&refreshRow{}).
		Where("session_id = ? AND used_at IS NULL AND superseded = ?", sessionID, false).
		Pluck("hash", &hashes).Error
	return hashes, err
}
