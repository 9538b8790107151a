package store

import "context"

// ExecForTest runs one raw statement. Black-box tests use it to write what
// the store itself now refuses (rows from before a rule existed) and to
// rewind schema_migrations so a step runs again.
func (s *Store) ExecForTest(ctx context.Context, sql string, args ...any) error {
	return s.db.WithContext(ctx).Exec(sql, args...).Error
}
