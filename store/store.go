package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
)

// Defaults applied by Open to zero Options fields.
const (
	// DefaultMySQLMaxOpenConns bounds a MySQL pool; enough for a busy
	// instance without letting a fleet of instances exhaust max_connections.
	DefaultMySQLMaxOpenConns = 20
	// DefaultSQLiteMaxOpenConns is 1 because SQLite allows one writer: a
	// single connection makes writers queue in Go, honouring contexts,
	// instead of failing with SQLITE_BUSY.
	DefaultSQLiteMaxOpenConns = 1
	// DefaultSlowQuery is the duration above which a statement is logged.
	DefaultSlowQuery = 200 * time.Millisecond
	// sqliteBusyTimeout is how long SQLite waits for another process's lock.
	sqliteBusyTimeout = 5 * time.Second
	// mysqlConnMaxLifetime recycles connections so a failover or a load
	// balancer that drops idle connections does not leave dead ones pooled.
	mysqlConnMaxLifetime = 5 * time.Minute
)

// Options configure Open.
type Options struct {
	// URL names the database, in any form ParseURL accepts. Required.
	URL string
	// Logger receives slow statements and database errors at warn level,
	// without parameter values. Nil means slog.Default().
	Logger *slog.Logger
	// MaxOpenConns bounds the connection pool. 0 means
	// DefaultMySQLMaxOpenConns for MySQL and DefaultSQLiteMaxOpenConns for
	// SQLite; raising it for SQLite allows concurrent reads while writers
	// still queue on SQLite's lock (busy_timeout 5s).
	MaxOpenConns int
	// SlowQuery is the duration above which a statement is logged. 0 means
	// DefaultSlowQuery; a negative value disables slow-statement logging.
	SlowQuery time.Duration
	// Origin names this instance in the outbox rows it writes.
	Origin string
	// OnCommit, when set, is called after each write commits, on the
	// writing goroutine, with the change the write appended to the outbox.
	// The outbox relay uses it to publish at once instead of polling. It
	// must not block.
	OnCommit func(Change)
}

// Store keeps books in MySQL or SQLite. It is safe for concurrent use; every
// method honours its context's deadline and cancellation.
type Store struct {
	db     *gorm.DB
	sqlDB  *sql.DB
	driver Driver
	log    *slog.Logger
	now    func() time.Time
	origin string
	// epoch is the history epoch of every channel, read at Open.
	epoch    string
	onCommit func(Change)
	// beforeAppend is a test hook run inside a write's transaction just
	// before its outbox row takes an offset.
	beforeAppend func(Book)
}

// Open connects to the database named by opts.URL, brings its schema up to
// date and checks that it answers. For SQLite it creates the file's parent
// directory and turns on WAL so readers do not block the writer. Errors
// never contain the database password.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL == "" {
		return nil, errors.New("open store: no database url")
	}
	if opts.MaxOpenConns < 0 {
		return nil, fmt.Errorf("open store: MaxOpenConns %d is negative", opts.MaxOpenConns)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SlowQuery == 0 {
		opts.SlowQuery = DefaultSlowQuery
	}
	driver, dsn, err := ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{driver: driver, log: opts.Logger, now: nowMicro, origin: opts.Origin, onCommit: opts.OnCommit}
	gcfg := &gorm.Config{
		Logger:                 newGormLogger(opts.Logger, opts.SlowQuery),
		NowFunc:                nowMicro,
		SkipDefaultTransaction: true, // writes run in explicit transactions
		// gorm would ping without a context; Open pings with the caller's.
		DisableAutomaticPing: true,
	}
	var password string
	switch driver {
	case DriverSQLite:
		err = s.openSQLite(dsn, opts.MaxOpenConns, gcfg)
	case DriverMySQL:
		password, err = s.openMySQL(dsn, opts.MaxOpenConns, gcfg)
	default:
		err = fmt.Errorf("unsupported driver %q", driver)
	}
	if err != nil {
		return nil, redact(fmt.Errorf("open %s store: %w", driver, err), password)
	}
	if err := s.Ping(ctx); err != nil {
		s.sqlDB.Close()
		return nil, redact(fmt.Errorf("open %s store: %w", driver, err), password)
	}
	if err := s.migrate(ctx); err != nil {
		s.sqlDB.Close()
		return nil, redact(fmt.Errorf("open %s store: %w", driver, err), password)
	}
	if err := s.ensureStreams(ctx); err != nil {
		s.sqlDB.Close()
		return nil, redact(fmt.Errorf("open %s store: %w", driver, err), password)
	}
	return s, nil
}

// nowMicro is the store's clock: UTC, truncated to the microsecond that
// DATETIME(6) keeps, so a value read back equals the value written.
func nowMicro() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func (s *Store) openSQLite(dsn string, maxOpen int, gcfg *gorm.Config) error {
	path, query, _ := strings.Cut(dsn, "?")
	if path == "" {
		return errors.New("sqlite url has no file path")
	}
	file := strings.TrimPrefix(path, "file:")
	if !strings.HasPrefix(file, ":memory:") {
		if err := os.MkdirAll(filepath.Dir(file), 0o750); err != nil {
			return fmt.Errorf("create database directory: %w", err)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("parse sqlite parameters: %w", err)
	}
	// Pragmas in the DSN apply to every new connection, not just the first.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)") // durable enough with WAL, much faster
	q.Add("_pragma", "foreign_keys(1)")
	if q.Get("_txlock") == "" {
		// Take the write lock at BEGIN: a deferred transaction that later
		// upgrades can fail with SQLITE_BUSY regardless of busy_timeout.
		q.Set("_txlock", "immediate")
	}
	db, err := gorm.Open(sqlite.Open(path+"?"+q.Encode()), gcfg)
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	if maxOpen == 0 {
		maxOpen = DefaultSQLiteMaxOpenConns
	}
	sqlDB.SetMaxOpenConns(maxOpen)
	// Keep connections: closing the last one would drop an in-memory
	// database and re-running the pragmas costs time.
	sqlDB.SetMaxIdleConns(maxOpen)
	s.db, s.sqlDB = db, sqlDB
	return nil
}

// openMySQL returns the password so Open can keep it out of errors.
func (s *Store) openMySQL(dsn string, maxOpen int, gcfg *gorm.Config) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("parse mysql dsn: %s", detail(err, passwordRegion(dsn)))
	}
	// Interpolating parameters client-side saves the prepare and close
	// round trips database/sql otherwise makes for every statement. The
	// driver refuses it for collations where that is unsafe; then do
	// without.
	cfg.InterpolateParams = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		cfg.InterpolateParams = false
		if connector, err = mysql.NewConnector(cfg); err != nil {
			return cfg.Passwd, fmt.Errorf("configure mysql: %w", err)
		}
	}
	sqlDB := sql.OpenDB(connector)
	if maxOpen == 0 {
		maxOpen = DefaultMySQLMaxOpenConns
	}
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(maxOpen)
	sqlDB.SetConnMaxLifetime(mysqlConnMaxLifetime)
	db, err := gorm.Open(gormmysql.New(gormmysql.Config{
		Conn:      sqlDB,
		DSNConfig: cfg,
		// gorm would ask for the version without a context, so an
		// unreachable server would stall Open past the caller's deadline.
		SkipInitializeWithVersion: true,
	}), gcfg)
	if err != nil {
		sqlDB.Close()
		return cfg.Passwd, err
	}
	s.db, s.sqlDB = db, sqlDB
	return cfg.Passwd, nil
}

// Close releases the connection pool. Calls in flight may fail.
func (s *Store) Close() error {
	if err := s.sqlDB.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Ping checks that the database answers; readiness probes call it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.driver, translate(err))
	}
	return nil
}

// Driver tells which database the store uses.
func (s *Store) Driver() Driver { return s.driver }

// inTx runs fn in one transaction: committed if fn returns nil, rolled back
// otherwise (or on panic). Every write goes through here so that a later
// change (an outbox row describing the write) can join the same transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}
