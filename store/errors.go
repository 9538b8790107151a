package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"
)

// mysqlDuplicateEntry is ER_DUP_ENTRY, raised when a UNIQUE index rejects a row.
const mysqlDuplicateEntry = 1062

// isDuplicateKey reports whether err is a unique-constraint violation from
// either driver.
func isDuplicateKey(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == mysqlDuplicateEntry
	}
	var liteErr *gosqlite.Error
	if errors.As(err, &liteErr) {
		code := liteErr.Code()
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// translate maps driver errors onto the package's sentinels. It drops the
// driver's text for duplicates on purpose: MySQL quotes the duplicate value.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case isDuplicateKey(err):
		return ErrConflict
	case errors.Is(err, ErrUnavailable):
		return err
	case isConnectionError(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		return err
	}
}

// isConnectionError reports whether err means the database server could not
// be reached or the connection broke, as opposed to a refused statement.
func isConnectionError(err error) bool {
	var netErr net.Error
	return errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &netErr)
}

// expected reports whether err is part of normal operation (a missing row,
// a taken ISBN, a caller that went away) and so not worth a log line.
func expected(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound) ||
		errors.Is(err, context.Canceled) ||
		isDuplicateKey(err)
}

// safeError renders err for a log line. MySQL messages can quote row values
// ("Duplicate entry '...'", "Incorrect string value: '...'"), which may be
// private, so only the error number is kept for them.
func safeError(err error) string {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return fmt.Sprintf("mysql error %d (sqlstate %s)", myErr.Number, string(myErr.SQLState[:]))
	}
	return err.Error()
}
