package authstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/redisconn"
)

// testCtx returns a context that ends before the test's own deadline.
func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sharedRedis connects to the shared test Redis and returns the client and
// keys under a prefix of this test's own. Every key under the prefix is
// deleted when t ends; the server itself is never flushed.
func sharedRedis(t testing.TB) (*redisconn.Client, redisconn.Keys) {
	t.Helper()
	return openRedis(t, testenv.Redis(t), redisconn.Keys{Prefix: testenv.Prefix(t)})
}

// openRedis connects to url and cleans up keys' prefix at the end.
func openRedis(t testing.TB, url string, keys redisconn.Keys) (*redisconn.Client, redisconn.Keys) {
	t.Helper()
	c, err := redisconn.Open(url, redisconn.Options{DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, keys.Prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		// A test that stopped its private server has nothing to clean.
		_ = iter.Err()
	})
	return c, keys
}

// deadRedis returns a client pointed at a loopback port nothing listens on.
func deadRedis(t testing.TB) *redisconn.Client {
	t.Helper()
	c, err := redisconn.Open("redis://127.0.0.1:"+testenv.FreePorts(t, 1)[0]+"/0", redisconn.Options{DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newClock() *testenv.Clock { return testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

// waitExpired waits until Redis has expired key: the condition itself,
// checked every few milliseconds, rather than a guess at how long it takes.
func waitExpired(ctx context.Context, t testing.TB, c *redisconn.Client, key string) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := c.Exists(ctx, key).Result()
		if err != nil {
			t.Fatalf("EXISTS %s: %v", key, err)
		}
		if n == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s never expired: %v", key, ctx.Err())
		}
	}
}
