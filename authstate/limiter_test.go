package authstate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/redisconn"
)

// allowN calls Allow n times for key and fails unless every call is ok.
func allowN(t *testing.T, l authstate.Limiter, key string, n int, wantErr error) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	for i := range n {
		ok, retry, err := l.Allow(ctx, key)
		if !errors.Is(err, wantErr) {
			t.Fatalf("Allow %d of %s: err %v, want %v", i+1, key, err, wantErr)
		}
		if !ok || retry != 0 {
			t.Fatalf("Allow %d of %s = %v, %v; want allowed", i+1, key, ok, retry)
		}
	}
}

// wantRefused checks that the next request of key is refused with a
// retryAfter in (0, window].
func wantRefused(t *testing.T, l authstate.Limiter, key string, window time.Duration, wantErr error) time.Duration {
	t.Helper()
	ok, retry, err := l.Allow(testCtx(t, 10*time.Second), key)
	if !errors.Is(err, wantErr) {
		t.Fatalf("Allow of %s: err %v, want %v", key, err, wantErr)
	}
	if ok {
		t.Fatalf("request over the limit of %s allowed", key)
	}
	if retry <= 0 || retry > window {
		t.Fatalf("retryAfter = %v, want in (0, %v]", retry, window)
	}
	return retry
}

func TestMemoryLimiter(t *testing.T) {
	clk := newClock() // on a whole second: windows of 1m start at it
	limit := authstate.Limit{Requests: 3, Window: time.Minute}
	l, err := authstate.NewMemoryLimiter(limit, authstate.LimiterOptions{Now: clk.Now, MaxKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Truncate(time.Minute).Add(20 * time.Second))

	allowN(t, l, "alice", 3, nil)
	if retry := wantRefused(t, l, "alice", time.Minute, nil); retry != 40*time.Second {
		t.Errorf("retryAfter = %v, want the 40s left in the window", retry)
	}
	t.Run("OtherKeyOwnCount", func(t *testing.T) { allowN(t, l, "bob", 3, nil) })
	t.Run("KeysBeyondMaxShareOneCount", func(t *testing.T) {
		allowN(t, l, "carol", 2, nil)
		allowN(t, l, "dave", 1, nil)
		wantRefused(t, l, "erin", time.Minute, nil)
		wantRefused(t, l, "alice", time.Minute, nil) // tracked keys keep their own
	})
	t.Run("NextWindowStartsAfresh", func(t *testing.T) {
		clk.Advance(40 * time.Second)
		allowN(t, l, "alice", 3, nil)
		allowN(t, l, "erin", 3, nil)
	})
}

func TestNewLimiterRefuses(t *testing.T) {
	c, keys := sharedRedis(t)
	ok := authstate.Limit{Requests: 1, Window: time.Second}
	tests := []struct {
		name  string
		scope string
		limit authstate.Limit
		keys  redisconn.Keys
		opts  authstate.LimiterOptions
		want  string
		both  bool // NewMemoryLimiter refuses it too
	}{
		{"ErrNoRequests", "login", authstate.Limit{Window: time.Second}, keys, authstate.LimiterOptions{}, "at least 1 request", true},
		{"ErrNegativeRequests", "login", authstate.Limit{Requests: -1, Window: time.Second}, keys, authstate.LimiterOptions{}, "at least 1 request", true},
		{"ErrNoWindow", "login", authstate.Limit{Requests: 1}, keys, authstate.LimiterOptions{}, "at least 1 request", true},
		{"ErrSubMillisecondWindow", "login", authstate.Limit{Requests: 1, Window: time.Microsecond}, keys, authstate.LimiterOptions{}, "1ms", true},
		{"ErrNegativeMaxKeys", "login", ok, keys, authstate.LimiterOptions{MaxKeys: -1}, "MaxKeys", true},
		{"ErrEmptyScope", "", ok, keys, authstate.LimiterOptions{}, "scope", false},
		{"ErrScopeWithColon", "a:b", ok, keys, authstate.LimiterOptions{}, "scope", false},
		{"ErrBadPrefix", "login", ok, redisconn.Keys{Prefix: "{x}"}, authstate.LimiterOptions{}, "prefix", false},
		{"ErrNegativeTimeout", "login", ok, keys, authstate.LimiterOptions{Timeout: -1}, "Timeout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := authstate.NewRedisLimiter(c, tt.keys, tt.scope, tt.limit, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewRedisLimiter = %v, want an error mentioning %q", err, tt.want)
			}
			if !tt.both {
				return
			}
			if _, err := authstate.NewMemoryLimiter(tt.limit, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewMemoryLimiter = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := authstate.NewRedisLimiter(nil, keys, "login", ok, authstate.LimiterOptions{}); err == nil {
		t.Error("nil client accepted")
	}
}

func TestRedisLimiter(t *testing.T) {
	c, keys := sharedRedis(t)
	window := 10 * time.Second
	limit := authstate.Limit{Requests: 5, Window: window}
	newLimiter := func(scope string) *authstate.RedisLimiter {
		l, err := authstate.NewRedisLimiter(c, keys, scope, limit, authstate.LimiterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := newLimiter("login"), newLimiter("login")

	t.Run("NThenRefused", func(t *testing.T) {
		allowN(t, a, "alice", 5, nil)
		wantRefused(t, a, "alice", window, nil)
	})
	t.Run("SharedBetweenInstances", func(t *testing.T) {
		allowN(t, a, "bob", 3, nil)
		allowN(t, b, "bob", 2, nil)
		wantRefused(t, b, "bob", window, nil)
		wantRefused(t, a, "bob", window, nil)
	})
	t.Run("ScopesAndKeysApart", func(t *testing.T) {
		allowN(t, newLimiter("api"), "alice", 5, nil)
		allowN(t, a, "alice2", 5, nil)
	})
	t.Run("CounterExpiresWithWindow", func(t *testing.T) {
		pttl := c.PTTL(testCtx(t, 5*time.Second), keys.RateLimit("login", "alice")).Val()
		if pttl <= 0 || pttl > window {
			t.Errorf("PTTL = %v, want in (0, %v]", pttl, window)
		}
	})
	t.Run("NewWindowAfterExpiry", func(t *testing.T) {
		short, err := authstate.NewRedisLimiter(c, keys, "short", authstate.Limit{Requests: 1, Window: 30 * time.Millisecond}, authstate.LimiterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		allowN(t, short, "k", 1, nil)
		wantRefused(t, short, "k", 30*time.Millisecond, nil)
		waitExpired(testCtx(t, 5*time.Second), t, c, keys.RateLimit("short", "k"))
		allowN(t, short, "k", 1, nil)
	})
}

func TestRedisLimiterFallsBack(t *testing.T) {
	var logs testenv.LogBuffer
	window := time.Minute
	l, err := authstate.NewRedisLimiter(deadRedis(t), redisconn.Keys{Prefix: testenv.Prefix(t)}, "login",
		authstate.Limit{Requests: 3, Window: window}, authstate.LimiterOptions{Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	// Neither closed for everyone nor unlimited: the in-process count.
	allowN(t, l, "alice", 3, authstate.ErrShared)
	wantRefused(t, l, "alice", window, authstate.ErrShared)
	allowN(t, l, "bob", 3, authstate.ErrShared)
	if n := logs.Count("redis rate limit failing"); n != 1 {
		t.Errorf("failure logged %d times over 8 requests, want once:\n%s", n, logs.String())
	}
}

func TestRedisLimiterOutageAndRecovery(t *testing.T) {
	srv := testenv.StartRedis(t)
	keys := redisconn.Keys{Prefix: testenv.Prefix(t)}
	c, _ := openRedis(t, srv.URL(), keys)
	var logs testenv.LogBuffer
	l, err := authstate.NewRedisLimiter(c, keys, "login", authstate.Limit{Requests: 2, Window: time.Minute},
		authstate.LimiterOptions{Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	allowN(t, l, "alice", 1, nil)
	srv.Stop()
	allowN(t, l, "alice", 2, authstate.ErrShared) // the fallback counts from zero
	wantRefused(t, l, "alice", time.Minute, authstate.ErrShared)
	srv.Start() // empty
	allowN(t, l, "alice", 2, nil)
	wantRefused(t, l, "alice", time.Minute, nil)
	if !strings.Contains(logs.String(), "redis rate limit restored") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}
