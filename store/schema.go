package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// bookRow is the gorm mapping of the books table. It never leaves the
// package: callers see Book, converted by toBook and fromBook, so storage
// details (NULL ISBNs, column names) cannot leak into the API.
type bookRow struct {
	ID     int64  `gorm:"column:id;primaryKey;autoIncrement"`
	Title  string `gorm:"column:title"`
	Author string `gorm:"column:author"`
	// ISBN is NULL when the book has none, so the UNIQUE index admits any
	// number of books without one.
	ISBN       *string   `gorm:"column:isbn"`
	PriceCents int64     `gorm:"column:price_cents"`
	Stock      int64     `gorm:"column:stock"`
	CostCents  int64     `gorm:"column:cost_cents"`
	Supplier   string    `gorm:"column:supplier"`
	Version    int64     `gorm:"column:version"`
	CreatedAt  time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt  time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

// TableName pins the table name so gorm's naming strategy cannot move it.
func (bookRow) TableName() string { return "books" }

func toBook(r bookRow) Book {
	b := Book{
		ID:         r.ID,
		Title:      r.Title,
		Author:     r.Author,
		PriceCents: r.PriceCents,
		Stock:      r.Stock,
		CostCents:  r.CostCents,
		Supplier:   r.Supplier,
		Version:    r.Version,
		CreatedAt:  r.CreatedAt.UTC(),
		UpdatedAt:  r.UpdatedAt.UTC(),
	}
	if r.ISBN != nil {
		b.ISBN = *r.ISBN
	}
	return b
}

func fromBook(b Book) bookRow {
	return bookRow{
		ID:         b.ID,
		Title:      b.Title,
		Author:     b.Author,
		ISBN:       nullableISBN(b.ISBN),
		PriceCents: b.PriceCents,
		Stock:      b.Stock,
		CostCents:  b.CostCents,
		Supplier:   b.Supplier,
		Version:    b.Version,
		CreatedAt:  b.CreatedAt,
		UpdatedAt:  b.UpdatedAt,
	}
}

func nullableISBN(isbn string) *string {
	if isbn == "" {
		return nil
	}
	return &isbn
}

// migration is one step of the schema. Steps are written as SQL per driver,
// not derived by gorm.AutoMigrate, because the schema needs driver-specific
// details AutoMigrate cannot express (SQLite NOCASE collation so author
// matching and title sorting ignore case as MySQL's _ci collations do; the
// exact DATETIME declaration the SQLite driver needs to return time.Time)
// and because AutoMigrate on SQLite may rebuild a table it thinks differs.
//
// Steps are applied once, in order, and recorded in schema_migrations. Each
// statement must be idempotent (IF NOT EXISTS) because MySQL commits DDL
// immediately: a step interrupted half-way is simply run again.
//
// A step may also carry run, a data change written in Go (it runs in the
// step's transaction, after the statements) for rules SQL cannot express
// portably, such as an ISBN check digit. run must be safe to repeat too.
type migration struct {
	version int64
	sqlite  []string
	mysql   []string
	run     func(s *Store, tx *gorm.DB) error
}

// migrations is append-only: never edit a released step, add a new one.
var migrations = []migration{
	{
		version: 1,
		sqlite: []string{
			`CREATE TABLE IF NOT EXISTS books (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				title VARCHAR(255) NOT NULL COLLATE NOCASE,
				author VARCHAR(255) NOT NULL COLLATE NOCASE,
				isbn VARCHAR(13) NULL,
				price_cents BIGINT NOT NULL,
				stock BIGINT NOT NULL,
				version BIGINT NOT NULL,
				created_at DATETIME NOT NULL,
				updated_at DATETIME NOT NULL
			)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS idx_books_isbn ON books (isbn)`,
			`CREATE INDEX IF NOT EXISTS idx_books_author_id ON books (author, id)`,
			`CREATE INDEX IF NOT EXISTS idx_books_title_id ON books (title, id)`,
			`CREATE INDEX IF NOT EXISTS idx_books_price_id ON books (price_cents, id)`,
			`CREATE INDEX IF NOT EXISTS idx_books_created_id ON books (created_at, id)`,
			`CREATE INDEX IF NOT EXISTS idx_books_updated_id ON books (updated_at, id)`,
		},
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS books (
				id BIGINT NOT NULL AUTO_INCREMENT,
				title VARCHAR(255) NOT NULL,
				author VARCHAR(255) NOT NULL,
				isbn VARCHAR(13) NULL,
				price_cents BIGINT NOT NULL,
				stock BIGINT NOT NULL,
				version BIGINT NOT NULL,
				created_at DATETIME(6) NOT NULL,
				updated_at DATETIME(6) NOT NULL,
				PRIMARY KEY (id),
				UNIQUE KEY idx_books_isbn (isbn),
				KEY idx_books_author_id (author, id),
				KEY idx_books_title_id (title, id),
				KEY idx_books_price_id (price_cents, id),
				KEY idx_books_created_id (created_at, id),
				KEY idx_books_updated_id (updated_at, id)
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,
		},
	},
	{
		// Books are kept with ISBN-13s only (see NormalizeISBN); rows
		// written before that may hold an ISBN-10.
		version: 2,
		run:     (*Store).convertISBN10s,
	},
	{
		// The outbox and the channel positions (see outbox.go). outbox is
		// also the durable history clients resume from.
		version: 3,
		sqlite: []string{
			`CREATE TABLE IF NOT EXISTS streams (
				name VARCHAR(64) NOT NULL PRIMARY KEY,
				epoch VARCHAR(32) NOT NULL,
				last_offset BIGINT NOT NULL
			)`,
			`CREATE TABLE IF NOT EXISTS outbox (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				event_id VARCHAR(32) NOT NULL,
				type VARCHAR(32) NOT NULL,
				book_id BIGINT NOT NULL,
				books_offset BIGINT NOT NULL,
				book_offset BIGINT NOT NULL,
				payload TEXT NOT NULL,
				origin VARCHAR(255) NOT NULL,
				committed_at DATETIME NOT NULL,
				published_at DATETIME NULL
			)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS idx_outbox_books_offset ON outbox (books_offset)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS idx_outbox_book_offset ON outbox (book_id, book_offset)`,
			`CREATE INDEX IF NOT EXISTS idx_outbox_published ON outbox (published_at, id)`,
		},
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS streams (
				name VARCHAR(64) NOT NULL,
				epoch VARCHAR(32) NOT NULL,
				last_offset BIGINT NOT NULL,
				PRIMARY KEY (name)
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
			`CREATE TABLE IF NOT EXISTS outbox (
				id BIGINT NOT NULL AUTO_INCREMENT,
				event_id VARCHAR(32) NOT NULL,
				type VARCHAR(32) NOT NULL,
				book_id BIGINT NOT NULL,
				books_offset BIGINT NOT NULL,
				book_offset BIGINT NOT NULL,
				payload MEDIUMTEXT NOT NULL,
				origin VARCHAR(255) NOT NULL,
				committed_at DATETIME(6) NOT NULL,
				published_at DATETIME(6) NULL,
				PRIMARY KEY (id),
				UNIQUE KEY idx_outbox_books_offset (books_offset),
				UNIQUE KEY idx_outbox_book_offset (book_id, book_offset),
				KEY idx_outbox_published (published_at, id)
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		},
	},
	{
		// Accounts and their refresh-token sessions (users.go,
		// sessions.go). email_key is the lower-cased email, so the unique
		// index is case-insensitive on both databases; MySQL columns that
		// hold keys use the binary collation, so uniqueness means exactly
		// equal (an OIDC subject is case-sensitive, and utf8mb4_unicode_ci
		// would also equate accented and plain letters).
		version: 4,
		sqlite: []string{
			`CREATE TABLE IF NOT EXISTS users (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				email VARCHAR(254) NULL,
				email_key VARCHAR(254) NULL,
				display_name VARCHAR(100) NOT NULL,
				password_hash VARCHAR(255) NULL,
				role VARCHAR(16) NOT NULL,
				disabled BOOLEAN NOT NULL DEFAULT 0,
				token_gen BIGINT NOT NULL DEFAULT 1,
				oidc_issuer VARCHAR(255) NULL,
				oidc_subject VARCHAR(255) NULL,
				created_at DATETIME NOT NULL,
				updated_at DATETIME NOT NULL
			)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS idx_users_email_key ON users (email_key)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS idx_users_oidc ON users (oidc_issuer, oidc_subject)`,
			`CREATE TABLE IF NOT EXISTS sessions (
				id VARCHAR(64) NOT NULL PRIMARY KEY,
				user_id BIGINT NOT NULL REFERENCES users (id),
				created_at DATETIME NOT NULL,
				expires_at DATETIME NOT NULL,
				revoked_at DATETIME NULL,
				revoke_reason VARCHAR(32) NOT NULL DEFAULT ''
			)`,
			`CREATE INDEX IF NOT EXISTS idx_sessions_user ON sessions (user_id)`,
			`CREATE INDEX IF NOT EXISTS idx_sessions_expires ON sessions (expires_at)`,
			`CREATE TABLE IF NOT EXISTS refresh_tokens (
				hash BLOB NOT NULL PRIMARY KEY,
				session_id VARCHAR(64) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
				created_at DATETIME NOT NULL,
				used_at DATETIME NULL,
				replaced_by BLOB NULL,
				superseded BOOLEAN NOT NULL DEFAULT 0
			)`,
			`CREATE INDEX IF NOT EXISTS idx_refresh_tokens_session ON refresh_tokens (session_id)`,
		},
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS users (
				id BIGINT NOT NULL AUTO_INCREMENT,
				email VARCHAR(254) NULL,
				email_key VARCHAR(254) NULL,
				display_name VARCHAR(100) NOT NULL COLLATE utf8mb4_unicode_ci,
				password_hash VARCHAR(255) NULL,
				role VARCHAR(16) NOT NULL,
				disabled BOOLEAN NOT NULL DEFAULT FALSE,
				token_gen BIGINT UNSIGNED NOT NULL DEFAULT 1,
				oidc_issuer VARCHAR(255) NULL,
				oidc_subject VARCHAR(255) NULL,
				created_at DATETIME(6) NOT NULL,
				updated_at DATETIME(6) NOT NULL,
				PRIMARY KEY (id),
				UNIQUE KEY idx_users_email_key (email_key),
				UNIQUE KEY idx_users_oidc (oidc_issuer, oidc_subject)
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
			`CREATE TABLE IF NOT EXISTS sessions (
				id VARCHAR(64) NOT NULL,
				user_id BIGINT NOT NULL,
				created_at DATETIME(6) NOT NULL,
				expires_at DATETIME(6) NOT NULL,
				revoked_at DATETIME(6) NULL,
				revoke_reason VARCHAR(32) NOT NULL DEFAULT '',
				PRIMARY KEY (id),
				KEY idx_sessions_user (user_id),
				KEY idx_sessions_expires (expires_at),
				CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id)
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
			`CREATE TABLE IF NOT EXISTS refresh_tokens (
				hash BINARY(32) NOT NULL,
				session_id VARCHAR(64) NOT NULL,
				created_at DATETIME(6) NOT NULL,
				used_at DATETIME(6) NULL,
				replaced_by BINARY(32) NULL,
				superseded BOOLEAN NOT NULL DEFAULT FALSE,
				PRIMARY KEY (hash),
				KEY idx_refresh_tokens_session (session_id),
				CONSTRAINT fk_refresh_tokens_session FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		},
	},
	{
		// Staff-only book fields. SQLite and MySQL have no portable ADD
		// COLUMN IF NOT EXISTS, so run checks for each column first.
		version: 5,
		run:     (*Store).addBookStaffColumns,
	},
}

// addBookStaffColumns is migration 5: books gain cost_cents and supplier,
// defaulting to 0 and "" for the rows already there.
func (s *Store) addBookStaffColumns(tx *gorm.DB) error {
	tx = tx.Session(&gorm.Session{NewDB: true})
	cols := []struct{ name, ddl string }{
		{"cost_cents", "ALTER TABLE books ADD COLUMN cost_cents BIGINT NOT NULL DEFAULT 0"},
		{"supplier", "ALTER TABLE books ADD COLUMN supplier VARCHAR(255) NOT NULL DEFAULT ''"},
	}
	for _, c := range cols {
		if tx.Migrator().HasColumn(&bookRow{}, c.name) {
			continue
		}
		if err := tx.Exec(c.ddl).Error; err != nil {
			return fmt.Errorf("add column books.%s: %w", c.name, err)
		}
	}
	return nil
}

// convertISBN10s is migration 2: it rewrites each stored ISBN-10 as the
// ISBN-13 of the same book, bumping the row's version and updated_at
// because its representation changes (a cached ETag must not keep showing
// the old form). A row keeps its ISBN-10, and a warning is logged, when the
// ISBN-10 is not valid or when another book already holds the ISBN-13: two
// rows for one book need a person to decide which to keep, and until then
// a client sending either form of that ISBN gets a conflict.
func (s *Store) convertISBN10s(tx *gorm.DB) error {
	// A fresh statement: the migration's connection carries the
	// schema_migrations table from reading which steps are applied.
	tx = tx.Session(&gorm.Session{NewDB: true})
	var rows []bookRow
	if err := tx.Select("id", "isbn").Where("LENGTH(isbn) = 10").Order("id").Find(&rows).Error; err != nil {
		return fmt.Errorf("find ISBN-10s: %w", err)
	}
	for _, r := range rows {
		isbn, err := NormalizeISBN(*r.ISBN)
		if err != nil {
			s.log.Warn("schema migration 2 left a book's ISBN-10 as it was: it is not a valid ISBN",
				"book_id", r.ID, "isbn", *r.ISBN)
			continue
		}
		var holders []int64
		if err := tx.Model(&bookRow{}).Where("isbn = ?", isbn).Pluck("id", &holders).Error; err != nil {
			return fmt.Errorf("look up ISBN %s: %w", isbn, err)
		}
		if len(holders) > 0 {
			s.log.Warn("schema migration 2 left a book's ISBN-10 as it was: another book has the same ISBN as ISBN-13; merge or correct them",
				"book_id", r.ID, "isbn", *r.ISBN, "isbn13", isbn, "other_book_id", holders[0])
			continue
		}
		err = tx.Model(&bookRow{}).Where("id = ?", r.ID).Updates(map[string]any{
			"isbn":       isbn,
			"version":    gorm.Expr("version + 1"),
			"updated_at": s.now(),
		}).Error
		if err != nil {
			return fmt.Errorf("convert ISBN of book %d: %w", r.ID, err)
		}
	}
	return nil
}

// migrateLock names the MySQL advisory lock that stops two instances
// starting together from applying the same step twice.
const migrateLock = "bookhub.store.migrate"

// migrate brings the schema up to date. On MySQL it holds an advisory lock
// on one connection for the duration; SQLite serializes writers itself and
// runs each step in a transaction.
func (s *Store) migrate(ctx context.Context) error {
	return s.db.WithContext(ctx).Connection(func(conn *gorm.DB) (err error) {
		if s.driver == DriverMySQL {
			var got sql.NullInt64
			if err := conn.Raw("SELECT GET_LOCK(?, ?)", migrateLock, 60).Row().Scan(&got); err != nil {
				return fmt.Errorf("acquire migration lock: %w", err)
			}
			if !got.Valid || got.Int64 != 1 {
				return errors.New("acquire migration lock: timed out after 60s")
			}
			defer func() {
				// Release even if ctx is done; the connection is reused.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if rerr := conn.WithContext(rctx).Exec("SELECT RELEASE_LOCK(?)", migrateLock).Error; rerr != nil && err == nil {
					err = fmt.Errorf("release migration lock: %w", rerr)
				}
			}()
		}
		if err := conn.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version BIGINT NOT NULL PRIMARY KEY,
			applied_at VARCHAR(40) NOT NULL
		)`).Error; err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var applied []int64
		if err := conn.Table("schema_migrations").Pluck("version", &applied).Error; err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		done := make(map[int64]bool, len(applied))
		for _, v := range applied {
			done[v] = true
		}
		for _, m := range migrations {
			if done[m.version] {
				continue
			}
			err := s.apply(conn, m)
			if isDuplicateKey(err) {
				// Another process sharing the SQLite file applied it
				// first (MySQL's lock prevents this); the steps are
				// idempotent, so the schema is as intended.
				continue
			}
			if err != nil {
				return fmt.Errorf("schema migration %d: %w", m.version, err)
			}
			s.log.Info("applied schema migration", "version", m.version, "driver", string(s.driver))
		}
		return nil
	})
}

func (s *Store) apply(conn *gorm.DB, m migration) error {
	stmts := m.sqlite
	if s.driver == DriverMySQL {
		stmts = m.mysql
	}
	return conn.Transaction(func(tx *gorm.DB) error {
		for _, q := range stmts {
			if err := tx.Exec(q).Error; err != nil {
				return err
			}
		}
		if m.run != nil {
			if err := m.run(s, tx); err != nil {
				return err
			}
		}
		return tx.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
			m.version, s.now().Format(time.RFC3339Nano)).Error
	})
}
