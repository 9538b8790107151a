package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors returned by the store, wrapped with context. Match with errors.Is;
// the typed errors below (NotFoundError, ConflictError, StaleError) match
// these sentinels and say which entity and field are concerned.
var (
	// ErrNotFound: no row has that key. Usually a *NotFoundError.
	ErrNotFound = errors.New("not found")
	// ErrConflict: another row already has that unique value. Usually a
	// *ConflictError.
	ErrConflict = errors.New("conflict")
	// ErrStale: the caller's expected version is not the current one.
	// Usually a *StaleError.
	ErrStale = errors.New("stale version")
	// ErrInvalid: a value breaks one of the entity's rules. The error is a
	// *ValidationError, which names the fields.
	ErrInvalid = errors.New("invalid")
	// ErrInvalidQuery: a bad sort field, limit or cursor in ListOptions (or
	// a bad limit in UserListOptions); a cursor is bad when List could not
	// have issued it.
	ErrInvalidQuery = errors.New("invalid list query")
	// ErrUnavailable: the database could not be reached; the operation did
	// not happen (or, for a write cut off mid-commit, may not have: callers
	// retry with If-Match). Worth retrying later.
	ErrUnavailable = errors.New("database unavailable")
)

// NotFoundError says which entity was missing. It matches ErrNotFound.
type NotFoundError struct {
	// Entity is "book", "user" or "session".
	Entity string
	// Key says what was looked up ("id 42", "email", "oidc identity"). It
	// never holds a private value such as an email address: errors end up
	// in logs.
	Key string
}

func (e *NotFoundError) Error() string {
	if e.Key == "" {
		return e.Entity + " not found"
	}
	return e.Entity + " not found (" + e.Key + ")"
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ConflictError says which unique field of which entity is already taken.
// It matches ErrConflict. It never holds the duplicated value: MySQL quotes
// it in its message, and an email address has no place in a log line.
type ConflictError struct {
	// Entity is "book", "user" or "session"; "" when the index is not one
	// the store knows.
	Entity string
	// Field is the API's name of the column: "isbn", "email",
	// "oidc_subject", "id".
	Field string
}

func (e *ConflictError) Error() string {
	if e.Entity == "" {
		return ErrConflict.Error() + ": a unique value is already in use"
	}
	return fmt.Sprintf("%s: another %s already has this %s", ErrConflict, e.Entity, e.Field)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// StaleError says whose version was stale. It matches ErrStale.
type StaleError struct {
	Entity string
}

func (e *StaleError) Error() string { return e.Entity + " version is stale" }

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// kindError is a named error that also matches a more general sentinel, so
// ErrInvalidBook stays distinct from ErrInvalidUser while both are ErrInvalid.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// uniqueIndex is a unique index the store declares, and what a violation of
// it means for callers.
type uniqueIndex struct {
	// name is the index name, as MySQL's ER_DUP_ENTRY message names it.
	name string
	// columns is how SQLite names it: "UNIQUE constraint failed: <columns>".
	columns string
	entity  string
	field   string
}

// uniqueIndexes lists every unique index of the schema (schema.go).
var uniqueIndexes = []uniqueIndex{
	{name: "idx_books_isbn", columns: "books.isbn", entity: "book", field: "isbn"},
	{name: "idx_users_email_key", columns: "users.email_key", entity: "user", field: "email"},
	{name: "idx_users_oidc", columns: "users.oidc_issuer, users.oidc_subject", entity: "user", field: "oidc_subject"},
}

// conflictOf names the unique index a duplicate-key error comes from. It
// reads only the index name (MySQL: "... for key 'books.idx_books_isbn'",
// older servers without the table) or the column list (SQLite), never the
// duplicated value. Primary keys are not listed: a write that supplies its
// own (CreateSession) knows which statement failed.
func conflictOf(err error) *ConflictError {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		msg := myErr.Message
		if i := strings.LastIndex(msg, "for key '"); i >= 0 {
			key := strings.TrimSuffix(msg[i+len("for key '"):], "'")
			if j := strings.LastIndexByte(key, '.'); j >= 0 {
				key = key[j+1:]
			}
			for _, ix := range uniqueIndexes {
				if ix.name == key {
					return &ConflictError{Entity: ix.entity, Field: ix.field}
				}
			}
		}
		return &ConflictError{}
	}
	var liteErr *gosqlite.Error
	if errors.As(err, &liteErr) {
		msg := liteErr.Error()
		if i := strings.LastIndex(msg, "constraint failed: "); i >= 0 {
			cols := msg[i+len("constraint failed: "):]
			// The driver may append " (<code>)" after the column list.
			if i := strings.Index(cols, " ("); i >= 0 {
				cols = cols[:i]
			}
			for _, ix := range uniqueIndexes {
				if ix.columns == cols {
					return &ConflictError{Entity: ix.entity, Field: ix.field}
				}
			}
		}
	}
	return &ConflictError{}
}

// notFound upgrades the generic ErrNotFound that translate returns for a
// missing row into a *NotFoundError naming the entity; other errors are
// translated as usual.
func notFound(err error, entity, key string) error {
	err = translate(err)
	var nf *NotFoundError
	if errors.Is(err, ErrNotFound) && !errors.As(err, &nf) {
		return &NotFoundError{Entity: entity, Key: key}
	}
	return err
}

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

// translate maps driver errors onto the package's sentinels: a missing row
// is ErrNotFound itself (see notFound for the typed form), a duplicate a
// *ConflictError. It drops the driver's text for duplicates on purpose:
// MySQL quotes the duplicate value. Errors already translated pass as they
// are, so translating twice is harmless.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case isDuplicateKey(err):
		return conflictOf(err)
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
