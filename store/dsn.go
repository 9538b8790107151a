package store

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Driver names the database a URL points at.
type Driver string

// The supported drivers.
const (
	DriverSQLite Driver = "sqlite"
	DriverMySQL  Driver = "mysql"
)

// ParseURL tells which driver a database URL is for and returns the DSN that
// driver takes. Accepted forms:
//
//	mysql://user:pass@host:3306/db?param=value
//	user:pass@tcp(host:3306)/db?parseTime=true   (go-sql-driver DSN)
//	sqlite:///path/to/file.db  or  sqlite://relative/file.db  or  file.db
//
// A bare path may not contain '@': that is almost always a mistyped MySQL
// DSN, and as a file name it would write the password to disk.
//
// MySQL DSNs always get parseTime=true and UTC times, which the store needs.
// Errors never contain the password, not even a fragment of a mangled one.
func ParseURL(raw string) (Driver, string, error) {
	switch {
	case raw == "":
		return "", "", fmt.Errorf("empty database url")
	case strings.HasPrefix(raw, "mysql://"):
		dsn, err := mysqlURLToDSN(raw)
		return DriverMySQL, dsn, err
	case strings.HasPrefix(raw, "sqlite://"):
		return DriverSQLite, strings.TrimPrefix(raw, "sqlite://"), nil
	case strings.Contains(raw, "@tcp(") || strings.Contains(raw, "@unix("):
		cfg, err := mysql.ParseDSN(raw)
		if err != nil {
			// The driver's messages may quote a misparsed piece of the
			// password (e.g. as a database name), so they are screened.
			return "", "", fmt.Errorf("parse mysql dsn: %s", detail(err, passwordRegion(raw)))
		}
		return DriverMySQL, normalizeMySQL(cfg), nil
	case strings.Contains(raw, "://"):
		// Quote the scheme only when url.Parse vouches for it: the text
		// before "://" of a malformed URL may be user:password@host.
		if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
			return "", "", fmt.Errorf("unsupported database scheme %q (want mysql:// or sqlite://)", u.Scheme)
		}
		return "", "", fmt.Errorf("unsupported database url (want mysql:// or sqlite://)")
	case strings.Contains(raw, "@"):
		// Most likely a MySQL DSN missing its tcp(...) part. Taken as a
		// SQLite path it would put the password into a file name.
		return "", "", fmt.Errorf("database url has user@host but neither a mysql:// scheme nor an @tcp(host:port) address")
	default:
		return DriverSQLite, raw, nil
	}
}

func mysqlURLToDSN(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the URL, which may hold a password.
		return "", fmt.Errorf("parse mysql url: malformed")
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("parse mysql url: no host")
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" {
		return "", fmt.Errorf("parse mysql url: no database name")
	}
	if len(u.RawQuery) > 0 {
		// Let the driver parse extra parameters the way it documents them.
		extra, err := mysql.ParseDSN("/x?" + u.RawQuery)
		if err != nil {
			// An unescaped '?' in a password moves part of it into the
			// query, so the driver's message is screened.
			return "", fmt.Errorf("parse mysql url parameters: %s", detail(err, passwordRegion(raw)))
		}
		cfg.Params = extra.Params
		if extra.Timeout != 0 {
			cfg.Timeout = extra.Timeout
		}
		if extra.TLSConfig != "" {
			cfg.TLSConfig = extra.TLSConfig
		}
	}
	return normalizeMySQL(cfg), nil
}

func normalizeMySQL(cfg *mysql.Config) string {
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return cfg.FormatDSN()
}
