package redisconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/redisconn"
)

const secret = "s3cretPassw0rd"

func TestOpenRefusesBadURLs(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		cluster bool
		dial    time.Duration
		want    string // substring of the error
	}{
		{"ErrEmpty", "", false, 0, "scheme"},
		{"ErrWrongScheme", "http://user:" + secret + "@localhost:6379", false, 0, "scheme"},
		{"ErrUnixScheme", "unix:///tmp/redis.sock", false, 0, "scheme"},
		{"ErrBadPort", "redis://user:" + secret + "@localhost:notaport/0", false, 0, "invalid URL"},
		{"ErrBadUserinfo", "redis://user:" + secret + "@local host/0", false, 0, "invalid URL"},
		{"ErrBadEscapeInPassword", "redis://user:%zz" + secret + "@localhost/0", false, 0, "percent-encoding"},
		{"ErrBadDB", "redis://:" + secret + "@localhost:6379/abc", false, 0, "database"},
		{"ErrUnknownQueryOption", "redis://:" + secret + "@localhost:6379/0?bogus=1", false, 0, "invalid URL"},
		{"ErrNegativeDialTimeout", "redis://:" + secret + "@localhost:6379/0", false, -time.Second, "negative"},
		{"ErrClusterDB", "redis://:" + secret + "@localhost:6379/1", true, 0, "only database 0"},
		{"ErrClusterBadAddr", "redis://localhost:6379?addr=user:" + secret + "@h:1", true, 0, "addr parameter 1"},
		{"ErrClusterNoPort", "redis://:" + secret + "@localhost:6379?addr=h:1&addr=nohost", true, 0, "addr parameter 2"},
		{"ErrClusterWrongScheme", "http://:" + secret + "@localhost:6379", true, 0, "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisconn.Open(tt.url, redisconn.Options{Cluster: tt.cluster, DialTimeout: tt.dial})
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestOpenFixesRetriesAndTimeouts(t *testing.T) {
	t.Run("Single", func(t *testing.T) {
		c, err := redisconn.Open("redis://:"+secret+"@127.0.0.1:6390/2?dial_timeout=3s&max_retries=7", redisconn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		o := c.UniversalClient.(*redis.Client).Options()
		// go-redis turns the -1 it was given into 0 retries; its default is 3.
		if o.MaxRetries != 0 || !o.ContextTimeoutEnabled || o.DB != 2 {
			t.Errorf("MaxRetries=%d ContextTimeoutEnabled=%v DB=%d, want 0 true 2", o.MaxRetries, o.ContextTimeoutEnabled, o.DB)
		}
		if c.Cluster != nil || c.Addr != "127.0.0.1:6390" || c.DialTimeout != 3*time.Second || c.ReadTimeout <= 0 {
			t.Errorf("client = %+v", c)
		}
	})
	t.Run("OptionBeatsURL", func(t *testing.T) {
		c, err := redisconn.Open("redis://127.0.0.1:6390?dial_timeout=3s", redisconn.Options{DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.DialTimeout != time.Second {
			t.Errorf("DialTimeout = %v, want 1s", c.DialTimeout)
		}
	})
	t.Run("Default", func(t *testing.T) {
		c, err := redisconn.Open("redis://127.0.0.1:6390", redisconn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.DialTimeout != redisconn.DefaultDialTimeout {
			t.Errorf("DialTimeout = %v, want %v", c.DialTimeout, redisconn.DefaultDialTimeout)
		}
	})
	t.Run("Cluster", func(t *testing.T) {
		c, err := redisconn.Open("redis://:"+secret+"@127.0.0.1:7001?addr=127.0.0.1:7002", redisconn.Options{Cluster: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.Cluster == nil {
			t.Fatal("Cluster is nil")
		}
		o := c.Cluster.Options()
		if o.MaxRetries != -1 || !o.ContextTimeoutEnabled {
			t.Errorf("MaxRetries=%d ContextTimeoutEnabled=%v, want -1 true", o.MaxRetries, o.ContextTimeoutEnabled)
		}
		if c.Addr != "127.0.0.1:7001,127.0.0.1:7002" || strings.Contains(c.Addr, secret) {
			t.Errorf("Addr = %q", c.Addr)
		}
	})
}

func TestOpenTalksToRedis(t *testing.T) {
	u := testenv.Redis(t)
	c, err := redisconn.Open(u, redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://user:" + secret + "@host:6379/0", "redis://xxxxx@host:6379/0"},
		{"rediss://:" + secret + "@host", "rediss://xxxxx@host"},
		{"redis://u:p@ss:" + secret + "@host", "redis://xxxxx@host"}, // '@' in the password
		{"redis://host:6379", "redis://host:6379"},
		{"user:" + secret + "@host", "xxxxx@host"}, // no scheme
		{"", ""},
	}
	for _, tt := range tests {
		if got := redisconn.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestScrub(t *testing.T) {
	base := errors.New("dial: auth " + secret + " refused")
	tests := []struct {
		name   string
		err    error
		url    string
		want   string
		isBase bool // the same error comes back
	}{
		{"Nil", nil, "redis://:" + secret + "@h", "", false},
		{"Replaced", base, "redis://:" + secret + "@h", "dial: auth xxxxx refused", false},
		{"UnparsableURL", base, "redis://:" + secret + "@local host/0", "dial: auth xxxxx refused", false},
		{"NoPassword", base, "redis://h:6379", base.Error(), true},
		{"PasswordNotQuoted", base, "redis://:other@h", base.Error(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redisconn.Scrub(tt.err, tt.url)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("Scrub(nil) = %v", got)
				}
				return
			}
			if got.Error() != tt.want {
				t.Errorf("Scrub = %q, want %q", got, tt.want)
			}
			if tt.isBase && got != tt.err { //nolint:errorlint // identity on purpose: nothing to scrub means the same error back
				t.Errorf("Scrub wrapped an error that held no password")
			}
		})
	}
}

func TestKeys(t *testing.T) {
	def := redisconn.Keys{}
	tests := []struct{ name, got, want string }{
		{"Events", def.Events(), "bookhub:{" + events.ChannelBooks + "}:events"},
		{"Revocations", def.Revocations(), "bookhub:{auth}:revocations"},
		{"RevocationsVersion", def.RevocationsVersion(), "bookhub:{auth}:revocations:version"},
		{"Tickets", def.Tickets("abc"), "bookhub:{auth}:ticket:abc"},
		{"RateLimit", def.RateLimit("login", "alice"), "bookhub:{auth}:ratelimit:login:alice"},
		{"Prefix", redisconn.Keys{Prefix: "x:"}.Events(), "x:{books}:events"},
		{"UserBracesAfterTag", def.RateLimit("login", "{evil}"), "bookhub:{auth}:ratelimit:login:{evil}"},
		{"CacheGeneration", def.CacheGeneration("book:7"), "bookhub:{cache}:gen:book:7"},
		{"CacheEntry", def.CacheEntry("list", "k1"), "bookhub:{cache}:entry:list#k1"},
		{"CacheEntryEmptyKey", def.CacheEntry("book:7", ""), "bookhub:{cache}:entry:book:7#"},
		{"CacheEntryBracesInKey", def.CacheEntry("list", "{evil}"), "bookhub:{cache}:entry:list#{evil}"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	// Multi-key commands on the auth keys need one slot in a cluster.
	for _, k := range []string{def.Revocations(), def.RevocationsVersion(), def.Tickets("a"), def.RateLimit("s", "k")} {
		if tag := hashTag(k); tag != "auth" {
			t.Errorf("%s hashes on %q, want auth", k, tag)
		}
	}
	// The cache's scripts read and bump several of its keys at once.
	for _, k := range []string{def.CacheGeneration("all"), def.CacheGeneration("book:1"), def.CacheEntry("list", "{x}"), (redisconn.Keys{Prefix: "p:"}).CacheEntry("book:1", "")} {
		if tag := hashTag(k); tag != "cache" {
			t.Errorf("%s hashes on %q, want cache", k, tag)
		}
	}
}

// hashTag returns what Redis Cluster hashes a key on: the content of the
// first {...} when non-empty, else the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestKeysValidate(t *testing.T) {
	for _, p := range []string{"", "bookhub:", "team-a:"} {
		if err := (redisconn.Keys{Prefix: p}).Validate(); err != nil {
			t.Errorf("Validate(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"{x}:", "a}", "{"} {
		if err := (redisconn.Keys{Prefix: p}).Validate(); !errors.Is(err, redisconn.ErrBadPrefix) {
			t.Errorf("Validate(%q) = %v, want ErrBadPrefix", p, err)
		}
	}
}
