package store_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/store"
)

// driverCase names a database and makes a fresh, empty one for a test.
type driverCase struct {
	name   string
	driver store.Driver
	url    func(t testing.TB) string
}

var driverCases = []driverCase{
	{name: "sqlite", driver: store.DriverSQLite, url: sqliteURL},
	{name: "mysql", driver: store.DriverMySQL, url: testenv.MySQL},
}

func sqliteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "data", "books.db")
}

// forEachDriver runs test once per driver, each time on a new empty store.
func forEachDriver(t *testing.T, test func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			test(t, openStore(t, d.url(t)))
		})
	}
}

func openStore(t testing.TB, rawURL string) *store.Store {
	t.Helper()
	s, err := store.Open(testContext(t), store.Options{URL: rawURL, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testLogger shows the store's warnings in the test's output.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func TestOpenReportsDriverAndPings(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			s := openStore(t, d.url(t))
			if got := s.Driver(); got != d.driver {
				t.Errorf("Driver() = %q, want %q", got, d.driver)
			}
			if err := s.Ping(testContext(t)); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
}

func TestOpenReopensExistingDatabase(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			ctx := testContext(t)
			u := d.url(t)
			first, err := store.Open(ctx, store.Options{URL: u, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("first Open: %v", err)
			}
			b, err := first.Create(ctx, store.Book{Title: "Kept", Author: "A", ISBN: "9780306406157"})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := first.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			second := openStore(t, u) // migrations must be idempotent
			got, err := second.Get(ctx, b.ID)
			if err != nil {
				t.Fatalf("Get after reopen: %v", err)
			}
			if got != b {
				t.Errorf("after reopen got %+v, want %+v", got, b)
			}
		})
	}
}

// TestOpenConcurrently starts several instances on one new database at
// once, as a scaled deployment does: each must come up on one schema.
func TestOpenConcurrently(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			const instances = 4
			u := d.url(t)
			var wg sync.WaitGroup
			stores := make([]*store.Store, instances)
			errs := make([]error, instances)
			for i := range instances {
				wg.Go(func() {
					stores[i], errs[i] = store.Open(testContext(t), store.Options{URL: u, Logger: testLogger(t)})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("instance %d: Open: %v", i, err)
					continue
				}
				t.Cleanup(func() { stores[i].Close() })
			}
			if t.Failed() {
				return
			}
			b := mustCreate(t, stores[0], store.Book{Title: "Shared", Author: "A"})
			if got := mustGet(t, stores[instances-1], b.ID); got != b {
				t.Errorf("other instance sees %+v, want %+v", got, b)
			}
		})
	}
}

func TestOpenSQLiteCreatesDirectoryAndUsesWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "books.db")
	s := openStore(t, "sqlite://"+path)
	if _, err := s.Create(testContext(t), store.Book{Title: "T", Author: "A"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	// The -wal file exists only in WAL mode, while a connection is open.
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no write-ahead log next to the database: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    store.Options
		errText string
	}{
		{"NoURL", store.Options{}, "no database url"},
		{"UnsupportedScheme", store.Options{URL: "redis://localhost:6379/0"}, "unsupported database scheme"},
		{"NegativeMaxOpenConns", store.Options{URL: sqliteURL(t), MaxOpenConns: -1}, "negative"},
		{"SQLiteNoPath", store.Options{URL: "sqlite://"}, "no file path"},
		{"SQLiteParentIsAFile", store.Options{URL: "sqlite://" + filepath.Join(file, "books.db")}, "create database directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = testLogger(t)
			s, err := store.Open(testContext(t), tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not mention %q", err, tt.errText)
			}
		})
	}
}

func TestOpenMySQLErrorsHideThePassword(t *testing.T) {
	const secret = "Sup3rS3cretPassw0rd"
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"UnreachableURL", func(*testing.T) string {
			return "mysql://bookhub:" + secret + "@127.0.0.1:1/bookhub"
		}},
		{"UnreachableDriverDSN", func(*testing.T) string {
			return "bookhub:" + secret + "@tcp(127.0.0.1:1)/bookhub"
		}},
		{"WrongPassword", func(t *testing.T) string {
			u, err := url.Parse(testenv.MySQL(t))
			if err != nil {
				t.Fatal(err)
			}
			u.User = url.UserPassword("root", secret)
			return u.String()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(testContext(t), 20*time.Second)
			defer cancel()
			s, err := store.Open(ctx, store.Options{URL: tt.url(t), Logger: testLogger(t)})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error contains the password: %v", err)
			}
			for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
				if strings.Contains(u.Error(), secret) {
					t.Fatalf("wrapped error contains the password: %v", u)
				}
			}
		})
	}
}

func TestClosedStoreFails(t *testing.T) {
	s, err := store.Open(testContext(t), store.Options{URL: sqliteURL(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(testContext(t)); err == nil {
		t.Error("Ping after Close succeeded")
	}
}
