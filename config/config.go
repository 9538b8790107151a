// Package config reads bookhub's settings from flags and environment
// variables into one typed struct. Flags win over the environment; every
// error names the setting at fault. Secrets never appear in errors or logs.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bookhub/bookhub/store"
)

// Environment variables bookhub reads.
const (
	EnvAddr         = "BOOKHUB_ADDR"
	EnvDatabaseURL  = "BOOKHUB_DATABASE_URL"
	EnvRedisURL     = "BOOKHUB_REDIS_URL"
	EnvRedisPrefix  = "BOOKHUB_REDIS_PREFIX"
	EnvRedisSharded = "BOOKHUB_REDIS_SHARDED"
	EnvRedisCluster = "BOOKHUB_REDIS_CLUSTER"
	EnvJWTSecret    = "BOOKHUB_JWT_SECRET"
	EnvInstance     = "BOOKHUB_INSTANCE"
	EnvMetricsAddr  = "BOOKHUB_METRICS_ADDR"
	EnvDataDir      = "BOOKHUB_DATA_DIR"
	EnvLogLevel     = "BOOKHUB_LOG_LEVEL"
	EnvLogFormat    = "BOOKHUB_LOG_FORMAT"
	EnvOrigins      = "BOOKHUB_ALLOWED_ORIGINS"
	// EnvWSMaxConnsPerSubject caps the sockets one token subject may hold
	// open on one instance.
	EnvWSMaxConnsPerSubject = "BOOKHUB_WS_MAX_CONNS_PER_SUBJECT"
	// EnvHistorySize and EnvHistoryMaxAge bound the durable event history
	// clients resume from: published events are pruned once both older than
	// the age and more than the size behind the newest.
	EnvHistorySize   = "BOOKHUB_HISTORY_SIZE"
	EnvHistoryMaxAge = "BOOKHUB_HISTORY_MAX_AGE"
	// EnvReadCache turns the read cache of books off ("false"); it is on
	// by default: in Redis when BOOKHUB_REDIS_URL is set, in-process
	// otherwise.
	EnvReadCache = "BOOKHUB_READ_CACHE"
	// EnvReadCacheLocal turns off ("false") the in-process layer in front
	// of the Redis read cache; it is on by default and matters only with
	// BOOKHUB_REDIS_URL and the read cache on.
	EnvReadCacheLocal = "BOOKHUB_READ_CACHE_LOCAL"
)

// EnvNames lists every environment variable bookhub reads, so deployment
// files can be checked against it.
func EnvNames() []string {
	names := []string{EnvAddr, EnvDatabaseURL, EnvRedisURL, EnvRedisPrefix, EnvRedisSharded, EnvRedisCluster,
		EnvJWTSecret, EnvInstance, EnvMetricsAddr, EnvDataDir, EnvLogLevel, EnvLogFormat, EnvOrigins,
		EnvWSMaxConnsPerSubject, EnvHistorySize, EnvHistoryMaxAge, EnvReadCache, EnvReadCacheLocal}
	return append(names, securityEnvNames()...)
}

// Secret is a string that prints as "[redacted]" in logs and %v.
type Secret string

// String hides the value.
func (Secret) String() string { return "[redacted]" }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value {
	if s == "" {
		return slog.StringValue("")
	}
	return slog.StringValue("[redacted]")
}

// Config is every setting of a bookhub instance.
type Config struct {
	// Addr is the HTTP listen address (REST, WebSocket, web assets).
	Addr string
	// DatabaseURL selects MySQL; empty means the embedded SQLite file in DataDir.
	DatabaseURL Secret
	// RedisURL selects the Redis bus; empty means the in-process bus.
	RedisURL Secret
	// RedisPrefix prefixes every Redis key and channel.
	RedisPrefix string
	// RedisSharded uses sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+).
	RedisSharded bool
	// RedisCluster treats RedisURL as the seed nodes of a Redis Cluster
	// (redis://host1:6379?addr=host2:6379); it implies RedisSharded.
	RedisCluster bool
	// JWTSecret signs and verifies tokens. Empty is allowed only in embedded
	// mode, where the binary generates one and keeps it in DataDir.
	JWTSecret Secret
	// Instance names this instance in logs, events and welcome frames.
	Instance string
	// MetricsAddr serves Prometheus /metrics on its own listener; empty = off.
	MetricsAddr string
	// DataDir holds the SQLite file and the generated JWT secret.
	DataDir string
	// LogLevel and LogFormat ("text" or "json") configure slog.
	LogLevel  slog.Level
	LogFormat string
	// AllowedOrigins are host patterns allowed to open WebSockets from a
	// browser page of another origin (same-origin is always allowed).
	AllowedOrigins []string
	// WSMaxConnsPerSubject caps the WebSocket connections one token subject
	// may hold on this instance (hub.Options.MaxConnsPerSubject); -1 means
	// no cap. Never 0: Load refuses it, since "0 sockets" and "unlimited"
	// are both plausible readings.
	WSMaxConnsPerSubject int
	// HistorySize and HistoryMaxAge bound the durable history (see
	// EnvHistorySize); a resume can reach back at most HistorySize events.
	HistorySize   int
	HistoryMaxAge time.Duration
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
	// WSCloseSpread is the window over which a stop spreads the closes of
	// the WebSockets, so their clients do not reconnect elsewhere in one
	// burst; 0 closes them all at once. It must leave room within
	// ShutdownTimeout.
	WSCloseSpread time.Duration
	// ReadTimeout bounds how long a client may take to send its request
	// line and headers, and is the base allowance for its body.
	ReadTimeout time.Duration
	// ReadMinRate, in bytes per second, is the slowest upload the body
	// deadline still waits for: a body of n bytes must arrive within
	// ReadTimeout + n/ReadMinRate.
	ReadMinRate int64
	// ReadCache caches book reads (see EnvReadCache).
	ReadCache bool
	// ReadCacheLocal keeps copies of Redis cache hits in process, served
	// after a freshness check (see EnvReadCacheLocal and cache.Options.NoLocal).
	ReadCacheLocal bool
	// Security holds the settings of accounts and tokens.
	Security Security
}

// Defaults of the flag-only settings.
const (
	DefaultShutdownTimeout = 10 * time.Second
	DefaultWSCloseSpread   = 3 * time.Second
	DefaultReadTimeout     = 10 * time.Second
	DefaultReadMinRate     = 16 << 10
)

// DefaultWSMaxConnsPerSubject is the default of EnvWSMaxConnsPerSubject,
// the hub's own default (hub.DefaultMaxConnsPerSubject): generous for a
// person with many tabs and devices, small for one leaked token.
const DefaultWSMaxConnsPerSubject = 100

// Defaults of the history settings.
const (
	DefaultHistorySize   = 10000
	DefaultHistoryMaxAge = 24 * time.Hour
)

// Embedded reports whether the instance runs without external services.
func (c Config) Embedded() bool { return c.DatabaseURL == "" }

// Load parses args (without the program name and subcommand) over the
// environment looked up with getenv. Flags override the environment.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	host, _ := os.Hostname()
	c := Config{
		Addr:            envOr(getenv, EnvAddr, ":8080"),
		DatabaseURL:     Secret(getenv(EnvDatabaseURL)),
		RedisURL:        Secret(getenv(EnvRedisURL)),
		RedisPrefix:     envOr(getenv, EnvRedisPrefix, "bookhub:"),
		JWTSecret:       Secret(getenv(EnvJWTSecret)),
		Instance:        envOr(getenv, EnvInstance, host),
		MetricsAddr:     getenv(EnvMetricsAddr),
		DataDir:         envOr(getenv, EnvDataDir, "data"),
		LogFormat:       envOr(getenv, EnvLogFormat, "text"),
		ShutdownTimeout: DefaultShutdownTimeout,
		WSCloseSpread:   DefaultWSCloseSpread,
		ReadTimeout:     DefaultReadTimeout,
		ReadMinRate:     DefaultReadMinRate,
	}
	level := envOr(getenv, EnvLogLevel, "info")
	sharded := getenv(EnvRedisSharded)
	cluster := getenv(EnvRedisCluster)
	origins := getenv(EnvOrigins)
	wsMaxConns := envOr(getenv, EnvWSMaxConnsPerSubject, strconv.Itoa(DefaultWSMaxConnsPerSubject))
	historySize := envOr(getenv, EnvHistorySize, strconv.Itoa(DefaultHistorySize))
	historyAge := envOr(getenv, EnvHistoryMaxAge, DefaultHistoryMaxAge.String())

	fs := flag.NewFlagSet("bookhub serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address ($"+EnvAddr+")")
	fs.Func("database-url", "MySQL URL; unset = embedded SQLite ($"+EnvDatabaseURL+")", func(s string) error { c.DatabaseURL = Secret(s); return nil })
	fs.Func("redis-url", "Redis URL; unset = in-process bus ($"+EnvRedisURL+")", func(s string) error { c.RedisURL = Secret(s); return nil })
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of Redis keys and channels ($"+EnvRedisPrefix+")")
	fs.StringVar(&sharded, "redis-sharded", sharded, "use Redis 7 sharded pub/sub: true|false ($"+EnvRedisSharded+")")
	fs.StringVar(&cluster, "redis-cluster", cluster, "BOOKHUB_REDIS_URL names Redis Cluster seed nodes: true|false ($"+EnvRedisCluster+")")
	fs.StringVar(&c.Instance, "instance", c.Instance, "instance name ($"+EnvInstance+")")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "Prometheus listen address; empty = off ($"+EnvMetricsAddr+")")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "folder of the embedded database and generated secret ($"+EnvDataDir+")")
	fs.StringVar(&level, "log-level", level, "debug|info|warn|error ($"+EnvLogLevel+")")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text|json ($"+EnvLogFormat+")")
	fs.StringVar(&origins, "allowed-origins", origins, "comma-separated browser origins allowed to open sockets ($"+EnvOrigins+")")
	fs.StringVar(&wsMaxConns, "ws-max-conns-per-subject", wsMaxConns, "WebSocket connections one token subject may hold on this instance; -1 = no cap ($"+EnvWSMaxConnsPerSubject+")")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful stop may take")
	fs.DurationVar(&c.WSCloseSpread, "ws-close-spread", c.WSCloseSpread, "window over which a stop spreads WebSocket closes; 0 = all at once")
	fs.StringVar(&historySize, "history-size", historySize, "events the durable history keeps at least ($"+EnvHistorySize+")")
	fs.StringVar(&historyAge, "history-max-age", historyAge, "age of events the durable history keeps at least ($"+EnvHistoryMaxAge+")")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time allowed for request headers, and the base allowance of a body")
	fs.Int64Var(&c.ReadMinRate, "read-min-rate", c.ReadMinRate, "slowest body upload waited for, in bytes per second")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	var errs []error
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %q is not debug, info, warn or error", EnvLogLevel, level))
	}
	var err error
	if c.RedisSharded, err = parseBool(EnvRedisSharded, sharded); err != nil {
		errs = append(errs, err)
	}
	if c.RedisCluster, err = parseBool(EnvRedisCluster, cluster); err != nil {
		errs = append(errs, err)
	}
	if c.RedisCluster {
		c.RedisSharded = true
	}
	if c.WSMaxConnsPerSubject, err = parseConnCap(EnvWSMaxConnsPerSubject, wsMaxConns); err != nil {
		errs = append(errs, err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(historySize)); err != nil || n < 1 {
		errs = append(errs, fmt.Errorf("%s: %q is not a positive number of events", EnvHistorySize, historySize))
	} else {
		c.HistorySize = n
	}
	if d, err := time.ParseDuration(strings.TrimSpace(historyAge)); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("%s: %q is not a positive duration like 24h", EnvHistoryMaxAge, historyAge))
	} else {
		c.HistoryMaxAge = d
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
	}
	if c.ReadCache, err = parseBool(EnvReadCache, envOr(getenv, EnvReadCache, "true")); err != nil {
		errs = append(errs, err)
	}
	if c.ReadCacheLocal, err = parseBool(EnvReadCacheLocal, envOr(getenv, EnvReadCacheLocal, "true")); err != nil {
		errs = append(errs, err)
	}
	sec, secErrs := loadSecurity(getenv)
	c.Security = sec
	errs = append(errs, secErrs...)
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

func (c Config) validate() []error {
	var errs []error
	if err := checkAddr(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvAddr, err))
	}
	if c.MetricsAddr != "" {
		if err := checkAddr(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvMetricsAddr, err))
		}
	}
	if c.DatabaseURL != "" {
		if driver, _, err := store.ParseURL(string(c.DatabaseURL)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvDatabaseURL, err))
		} else if driver != store.DriverMySQL {
			errs = append(errs, fmt.Errorf("%s: want a MySQL URL (mysql://user:pass@host:3306/db); leave it unset for the embedded database", EnvDatabaseURL))
		}
		if c.JWTSecret == "" {
			errs = append(errs, fmt.Errorf("%s is required when %s is set (every instance must share it)", EnvJWTSecret, EnvDatabaseURL))
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(string(c.RedisURL))
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: want redis://host:6379/0 or rediss://", EnvRedisURL))
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, fmt.Errorf("%s: must be at least 32 bytes (it is %d)", EnvJWTSecret, len(c.JWTSecret)))
	}
	if c.Instance == "" {
		errs = append(errs, fmt.Errorf("%s: empty (and the hostname is unknown)", EnvInstance))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("%s: %q is not text or json", EnvLogFormat, c.LogFormat))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown-timeout: must be positive"))
	}
	if c.WSCloseSpread < 0 || c.WSCloseSpread >= c.ShutdownTimeout {
		errs = append(errs, fmt.Errorf("ws-close-spread: must be between 0 and shutdown-timeout (%v)", c.ShutdownTimeout))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("read-timeout: must be positive"))
	}
	if c.ReadMinRate <= 0 {
		errs = append(errs, fmt.Errorf("read-min-rate: must be positive"))
	}
	return errs
}

func parseConnCap(name, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || (n < 1 && n != -1) {
		return 0, fmt.Errorf("%s: %q is not a positive number of connections, or -1 for no cap", name, v)
	}
	return n, nil
}

func parseBool(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%s: %q is not true or false", name, v)
}

func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port (e.g. :8080)", addr)
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
