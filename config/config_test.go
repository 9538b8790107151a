package config_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/config"
)

const goodSecret = "0123456789abcdef0123456789abcdef"

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || !c.Embedded() || c.RedisPrefix != "bookhub:" || c.DataDir != "data" || c.LogLevel != slog.LevelInfo || c.Instance == "" {
		t.Fatalf("defaults = %+v", c)
	}
}

// TestReadCacheSettings: the cache and its local layer are on by default
// and each can be turned off.
func TestReadCacheSettings(t *testing.T) {
	c, err := config.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ReadCache || !c.ReadCacheLocal {
		t.Fatalf("defaults: ReadCache %v, ReadCacheLocal %v; want both on", c.ReadCache, c.ReadCacheLocal)
	}
	c, err = config.Load(nil, env(map[string]string{config.EnvReadCacheLocal: "false"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ReadCache || c.ReadCacheLocal {
		t.Fatalf("%s=false: ReadCache %v, ReadCacheLocal %v", config.EnvReadCacheLocal, c.ReadCache, c.ReadCacheLocal)
	}
}

func TestReadDeadlineSettings(t *testing.T) {
	c, err := config.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadTimeout != config.DefaultReadTimeout || c.ReadMinRate != config.DefaultReadMinRate {
		t.Fatalf("defaults: read timeout %s, min rate %d", c.ReadTimeout, c.ReadMinRate)
	}
	c, err = config.Load([]string{"--read-timeout", "3s", "--read-min-rate", "1024"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadTimeout != 3*time.Second || c.ReadMinRate != 1024 {
		t.Fatalf("flags: read timeout %s, min rate %d", c.ReadTimeout, c.ReadMinRate)
	}
}

func TestWSMaxConnsPerSubject(t *testing.T) {
	cases := []struct {
		name string
		env  string
		args []string
		want int
	}{
		{"Default", "", nil, config.DefaultWSMaxConnsPerSubject},
		{"Env", "5", nil, 5},
		{"FlagOverridesEnv", "5", []string{"--ws-max-conns-per-subject", "7"}, 7},
		{"NoCap", "-1", nil, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(tc.args, env(map[string]string{config.EnvWSMaxConnsPerSubject: tc.env}), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.WSMaxConnsPerSubject != tc.want {
				t.Fatalf("WSMaxConnsPerSubject = %d, want %d", c.WSMaxConnsPerSubject, tc.want)
			}
		})
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, err := config.Load([]string{"--addr", "127.0.0.1:9000", "--instance", "b"}, env(map[string]string{
		config.EnvAddr: ":7000", config.EnvInstance: "a",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9000" || c.Instance != "b" {
		t.Fatalf("got addr %q instance %q", c.Addr, c.Instance)
	}
}

func TestClusterImpliesSharded(t *testing.T) {
	c, err := config.Load([]string{"--redis-cluster=true"}, env(map[string]string{
		config.EnvRedisURL: "redis://a:6379?addr=b:6379&addr=c:6379",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.RedisCluster || !c.RedisSharded {
		t.Fatalf("cluster %v sharded %v", c.RedisCluster, c.RedisSharded)
	}
}

func TestScaledMode(t *testing.T) {
	for _, db := range []string{"mysql://bookhub:pw@db:3306/bookhub", "bookhub:pw@tcp(db:3306)/bookhub?parseTime=true"} {
		c, err := config.Load(nil, env(map[string]string{
			config.EnvDatabaseURL: db, config.EnvRedisURL: "redis://cache:6379/0", config.EnvJWTSecret: goodSecret,
			config.EnvRedisSharded: "true",
		}), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", db, err)
		}
		if c.Embedded() || !c.RedisSharded {
			t.Fatalf("config = %+v", c)
		}
	}
}

// TestErrorsNameTheSetting: every refusal says which setting is wrong, and
// never prints a secret.
func TestErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"BadAddr", map[string]string{config.EnvAddr: "8080"}, nil, config.EnvAddr},
		{"BadMetricsAddr", map[string]string{config.EnvMetricsAddr: "nope"}, nil, config.EnvMetricsAddr},
		{"MySQLWithoutSecret", map[string]string{config.EnvDatabaseURL: "mysql://root:hunter2@db:3306/x"}, nil, config.EnvJWTSecret},
		{"PostgresURL", map[string]string{config.EnvDatabaseURL: "postgres://root:hunter2@db/x", config.EnvJWTSecret: goodSecret}, nil, config.EnvDatabaseURL},
		{"SQLiteAsDatabaseURL", map[string]string{config.EnvDatabaseURL: "sqlite://x.db", config.EnvJWTSecret: goodSecret}, nil, config.EnvDatabaseURL},
		{"BadRedis", map[string]string{config.EnvRedisURL: "http://hunter2@cache"}, nil, config.EnvRedisURL},
		{"ShortSecret", map[string]string{config.EnvJWTSecret: "hunter2"}, nil, config.EnvJWTSecret},
		{"BadLevel", map[string]string{config.EnvLogLevel: "loud"}, nil, config.EnvLogLevel},
		{"BadFormat", map[string]string{config.EnvLogFormat: "xml"}, nil, config.EnvLogFormat},
		{"BadSharded", map[string]string{config.EnvRedisSharded: "maybe"}, nil, config.EnvRedisSharded},
		{"BadCluster", map[string]string{config.EnvRedisCluster: "2"}, nil, config.EnvRedisCluster},
		{"BadReadCacheLocal", map[string]string{config.EnvReadCacheLocal: "sometimes"}, nil, config.EnvReadCacheLocal},
		{"ZeroReadTimeout", nil, []string{"--read-timeout", "0s"}, "read-timeout"},
		{"NegativeReadMinRate", nil, []string{"--read-min-rate", "-1"}, "read-min-rate"},
		{"ZeroWSMaxConns", map[string]string{config.EnvWSMaxConnsPerSubject: "0"}, nil, config.EnvWSMaxConnsPerSubject},
		{"NegativeWSMaxConns", map[string]string{config.EnvWSMaxConnsPerSubject: "-5"}, nil, config.EnvWSMaxConnsPerSubject},
		{"BadWSMaxConns", nil, []string{"--ws-max-conns-per-subject", "lots"}, config.EnvWSMaxConnsPerSubject},
		{"UnknownFlag", nil, []string{"--nope"}, "nope"},
		{"ExtraArgs", nil, []string{"extra"}, "unexpected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(tc.args, env(tc.env), io.Discard)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks a secret", err)
			}
		})
	}
}

func TestSecretIsRedacted(t *testing.T) {
	s := config.Secret("hunter2")
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "secret", s)
	if out := b.String() + fmt.Sprint(s) + fmt.Sprintf("%v %+v", s, struct{ S config.Secret }{s}); strings.Contains(out, "hunter2") {
		t.Fatalf("secret printed: %s", out)
	}
}

func TestDeliverySettings(t *testing.T) {
	c, err := config.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HistorySize != config.DefaultHistorySize || c.HistoryMaxAge != config.DefaultHistoryMaxAge || c.WSCloseSpread != config.DefaultWSCloseSpread {
		t.Fatalf("defaults: history %d / %v, close spread %v", c.HistorySize, c.HistoryMaxAge, c.WSCloseSpread)
	}
	c, err = config.Load([]string{"--ws-close-spread", "0", "--history-size", "50"},
		env(map[string]string{config.EnvHistorySize: "7", config.EnvHistoryMaxAge: "90m"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HistorySize != 50 || c.HistoryMaxAge != 90*time.Minute || c.WSCloseSpread != 0 {
		t.Fatalf("set: history %d / %v, close spread %v", c.HistorySize, c.HistoryMaxAge, c.WSCloseSpread)
	}
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"SizeZero":          {env: map[string]string{config.EnvHistorySize: "0"}, want: config.EnvHistorySize},
		"SizeWords":         {env: map[string]string{config.EnvHistorySize: "lots"}, want: config.EnvHistorySize},
		"AgeNegative":       {env: map[string]string{config.EnvHistoryMaxAge: "-1h"}, want: config.EnvHistoryMaxAge},
		"AgeNoUnit":         {env: map[string]string{config.EnvHistoryMaxAge: "24"}, want: config.EnvHistoryMaxAge},
		"SpreadNegative":    {args: []string{"--ws-close-spread", "-1s"}, want: "ws-close-spread"},
		"SpreadPastTimeout": {args: []string{"--ws-close-spread", "10s"}, want: "ws-close-spread"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
