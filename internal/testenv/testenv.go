// Package testenv gives integration tests the real services they need.
//
// A test asks for MySQL or Redis; when the service is not configured or not
// reachable the test is skipped with a message saying how to enable it,
// unless BOOKHUB_REQUIRE_SERVICES=1 (set by CI), where that is a failure.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/bookhub/bookhub/store"
)

// Environment variables read by this package.
const (
	EnvMySQL   = "BOOKHUB_TEST_MYSQL_URL"
	EnvRedis   = "BOOKHUB_TEST_REDIS_URL"
	EnvRequire = "BOOKHUB_REQUIRE_SERVICES"
)

// Required reports whether missing services must fail tests.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Unavailable skips t, or fails it when services are required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s=1, so this is a failure)", msg, EnvRequire)
	}
	t.Skip(msg)
}

// MySQL returns the mysql:// URL of a fresh, empty database on the server
// named by BOOKHUB_TEST_MYSQL_URL. The database is dropped when t ends.
func MySQL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvMySQL)
	if base == "" {
		Unavailable(t, "MySQL integration test skipped: set %s=mysql://root@127.0.0.1:3306/test to run it", EnvMySQL)
	}
	driver, dsn, err := store.ParseURL(base)
	if err != nil || driver != store.DriverMySQL {
		t.Fatalf("%s: want a mysql:// url: %v", EnvMySQL, err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("%s: %v", EnvMySQL, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open mysql: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(ctx); err != nil {
		Unavailable(t, "MySQL at %s unreachable (%v): start it or unset %s", cfg.Addr, err, EnvMySQL)
	}
	name := "bookhub_test_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u := "mysql://" + cfg.User
	if cfg.Passwd != "" {
		u += ":" + cfg.Passwd
	}
	return u + "@" + cfg.Addr + "/" + name
}

// Redis returns the redis:// URL named by BOOKHUB_TEST_REDIS_URL after
// checking that the server answers.
//
// Tests share that server, so each must use its own key/channel prefix; use
// Prefix(t).
func Redis(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvRedis)
	if u == "" {
		Unavailable(t, "Redis integration test skipped: set %s=redis://127.0.0.1:6379/0 to run it", EnvRedis)
	}
	addr, err := redisAddr(u)
	if err != nil {
		t.Fatalf("%s: %v", EnvRedis, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		Unavailable(t, "Redis at %s unreachable (%v): start it or unset %s", addr, err, EnvRedis)
	}
	conn.Close()
	return u
}

// Prefix returns a Redis key/channel prefix unique to this test.
func Prefix(t testing.TB) string {
	t.Helper()
	return "bookhub-test-" + randomHex(6) + ":"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
