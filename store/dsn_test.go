package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/bookhub/bookhub/store"
)

func TestParseURLMySQL(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		user, pass string
		addr, db   string
		timeout    time.Duration
		params     map[string]string
		tls        string
	}{
		{
			name: "URLWithPassword",
			raw:  "mysql://app:s3cret@db.example:3307/bookhub",
			user: "app", pass: "s3cret", addr: "db.example:3307", db: "bookhub", timeout: 5 * time.Second,
		},
		{
			name: "URLDefaultPort",
			raw:  "mysql://root@127.0.0.1/test",
			user: "root", addr: "127.0.0.1:3306", db: "test", timeout: 5 * time.Second,
		},
		{
			name: "URLIPv6DefaultPort",
			raw:  "mysql://root@[::1]/test",
			user: "root", addr: "[::1]:3306", db: "test", timeout: 5 * time.Second,
		},
		{
			name: "URLEscapedPassword",
			raw:  "mysql://app:p%40ss%3Aw%2Frd@db:3306/bookhub",
			user: "app", pass: "p@ss:w/rd", addr: "db:3306", db: "bookhub", timeout: 5 * time.Second,
		},
		{
			name: "URLParameters",
			raw:  "mysql://app@db:3306/bookhub?timeout=2s&tls=skip-verify&sql_mode=ANSI",
			user: "app", addr: "db:3306", db: "bookhub", timeout: 2 * time.Second,
			params: map[string]string{"sql_mode": "ANSI"}, tls: "skip-verify",
		},
		{
			name: "DriverDSN",
			raw:  "app:pw@tcp(db:3306)/bookhub",
			user: "app", pass: "pw", addr: "db:3306", db: "bookhub", timeout: 5 * time.Second,
		},
		{
			name: "DriverDSNKeepsOwnTimeout",
			raw:  "app:pw@tcp(db:3306)/bookhub?timeout=9s&parseTime=false",
			user: "app", pass: "pw", addr: "db:3306", db: "bookhub", timeout: 9 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			driver, dsn, err := store.ParseURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if driver != store.DriverMySQL {
				t.Fatalf("driver = %q, want %q", driver, store.DriverMySQL)
			}
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatalf("result %q is not a driver DSN: %v", dsn, err)
			}
			if cfg.User != tt.user || cfg.Passwd != tt.pass || cfg.Addr != tt.addr || cfg.DBName != tt.db {
				t.Errorf("got user=%q pass=%q addr=%q db=%q, want %q %q %q %q",
					cfg.User, cfg.Passwd, cfg.Addr, cfg.DBName, tt.user, tt.pass, tt.addr, tt.db)
			}
			if !cfg.ParseTime || cfg.Loc != time.UTC {
				t.Errorf("parseTime=%v loc=%v, want true and UTC (the store needs both)", cfg.ParseTime, cfg.Loc)
			}
			if cfg.Timeout != tt.timeout {
				t.Errorf("timeout = %v, want %v", cfg.Timeout, tt.timeout)
			}
			for k, v := range tt.params {
				if cfg.Params[k] != v {
					t.Errorf("param %s = %q, want %q", k, cfg.Params[k], v)
				}
			}
			if cfg.TLSConfig != tt.tls {
				t.Errorf("tls = %q, want %q", cfg.TLSConfig, tt.tls)
			}
		})
	}
}

func TestParseURLSQLite(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"AbsolutePath", "sqlite:///var/lib/bookhub/books.db", "/var/lib/bookhub/books.db"},
		{"RelativePath", "sqlite://data/books.db", "data/books.db"},
		{"BarePath", "data/books.db", "data/books.db"},
		{"BareFileName", "books.db", "books.db"},
		{"KeepsParameters", "sqlite://books.db?_pragma=cache_size(-20000)", "books.db?_pragma=cache_size(-20000)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			driver, dsn, err := store.ParseURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if driver != store.DriverSQLite || dsn != tt.want {
				t.Errorf("got (%q, %q), want (%q, %q)", driver, dsn, store.DriverSQLite, tt.want)
			}
		})
	}
}

// TestParseURLRefuses checks every refusal, and that no error quotes any
// part of the password, however the input is mangled.
func TestParseURLRefuses(t *testing.T) {
	const secret = "Hunter2Secret"
	tests := []struct {
		name    string
		raw     string
		errText string // a substring the error must contain
	}{
		{"Empty", "", "empty database url"},
		{"UnsupportedScheme", "postgres://app:" + secret + "@db/bookhub", `unsupported database scheme "postgres"`},
		{"UnparsableSchemeWithPassword", "x:" + secret + "\x7f@h://db", "unsupported database url"},
		{"MySQLNoHost", "mysql://app:" + secret + "@/bookhub", "no host"},
		{"MySQLNoDatabase", "mysql://app:" + secret + "@db:3306", "no database name"},
		{"MySQLNoDatabaseSlashOnly", "mysql://app:" + secret + "@db:3306/", "no database name"},
		{"MySQLMalformedURL", "mysql://app:" + secret + "@db:33x06/bookhub", "malformed"},
		{"MySQLBadEscapeInPassword", "mysql://app:" + secret + "%zz@db/bookhub", "malformed"},
		{"MySQLControlCharacter", "mysql://app:" + secret + "\n@db/bookhub", "malformed"},
		{"MySQLBadParameter", "mysql://app:" + secret + "@db/bookhub?parseTime=maybe", "invalid bool value: maybe"},
		{"MySQLUnescapedQuestionMarkInPassword", "mysql://app:123/x?timeout=" + secret + "@db/bookhub", "parse mysql url parameters"},
		{"BarePathLooksLikeMySQL", "app:" + secret + "@db.example:3306/bookhub", "neither a mysql:// scheme"},
		{"DriverDSNNoSlash", "app:" + secret + "@tcp(db:3306)", "missing the slash"},
		{"DriverDSNUnterminatedAddress", "app:" + secret + "@tcp(db:3306/bookhub", "parse mysql dsn"},
		{"DriverDSNPasswordAsDatabaseName", "app:ab/%zz" + secret + "@tcp(db)", "parse mysql dsn"},
		{"DriverDSNPasswordAsParameter", "app:x/y?timeout=" + secret + "@tcp(db)", "parse mysql dsn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			driver, dsn, err := store.ParseURL(tt.raw)
			if err == nil {
				t.Fatalf("ParseURL(%q) = (%q, %q), want an error", tt.raw, driver, dsn)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not mention %q", err, tt.errText)
			}
			for i := 0; i+4 <= len(secret); i++ {
				if piece := secret[i : i+4]; strings.Contains(err.Error(), piece) {
					t.Fatalf("error %q contains %q, part of the password", err, piece)
				}
			}
		})
	}
}
