package authstate_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/redisconn"
)

// revocationLog records OnRevoke calls and signals each one.
type revocationLog struct {
	mu     sync.Mutex
	got    []authstate.Revocation
	notify chan struct{}
}

func newRevocationLog() *revocationLog { return &revocationLog{notify: make(chan struct{}, 1)} }

func (l *revocationLog) onRevoke(r authstate.Revocation) {
	l.mu.Lock()
	l.got = append(l.got, r)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *revocationLog) all() []authstate.Revocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]authstate.Revocation(nil), l.got...)
}

// count returns how many learned revocations match cond.
func (l *revocationLog) count(cond func(authstate.Revocation) bool) int {
	n := 0
	for _, r := range l.all() {
		if cond(r) {
			n++
		}
	}
	return n
}

// waitFor blocks until a revocation matching cond was learned.
func (l *revocationLog) waitFor(ctx context.Context, t testing.TB, what string, cond func(authstate.Revocation) bool) {
	t.Helper()
	for l.count(cond) == 0 {
		select {
		case <-l.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for OnRevoke of %s: %v (have %+v)", what, ctx.Err(), l.all())
		}
	}
}

func ofSession(s string) func(authstate.Revocation) bool {
	return func(r authstate.Revocation) bool { return r.Session == s }
}

func TestRevokeRefuses(t *testing.T) {
	until := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		r    authstate.Revocation
		want string
	}{
		{"ErrNothing", authstate.Revocation{Until: until}, "covers nothing"},
		{"ErrSubjectWithoutGeneration", authstate.Revocation{Subject: "alice", Until: until}, "both Subject and MinGeneration"},
		{"ErrGenerationWithoutSubject", authstate.Revocation{MinGeneration: 2, Session: "s", Until: until}, "both Subject and MinGeneration"},
		{"ErrNoUntil", authstate.Revocation{Session: "s"}, "Until"},
	}
	impls := map[string]func(t *testing.T) authstate.Revocations{
		"Memory": func(t *testing.T) authstate.Revocations {
			return authstate.NewMemoryRevocations(authstate.RevocationOptions{})
		},
		"Redis": func(t *testing.T) authstate.Revocations { return newRedisRevocations(t, authstate.RevocationOptions{}) },
	}
	for impl, mk := range impls {
		t.Run(impl, func(t *testing.T) {
			revs := mk(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					err := revs.Revoke(testCtx(t, 5*time.Second), tt.r)
					if err == nil || !strings.Contains(err.Error(), tt.want) {
						t.Fatalf("Revoke = %v, want an error mentioning %q", err, tt.want)
					}
					if revs.IsRevoked(tt.r.Subject, 0, tt.r.Session) {
						t.Error("a refused revocation was recorded")
					}
				})
			}
			t.Run("ErrClosed", func(t *testing.T) {
				if err := revs.Close(); err != nil {
					t.Fatal(err)
				}
				err := revs.Revoke(testCtx(t, 5*time.Second), authstate.Revocation{Session: "late", Until: until})
				if !errors.Is(err, authstate.ErrClosed) {
					t.Fatalf("Revoke after Close = %v, want ErrClosed", err)
				}
				if revs.IsRevoked("", 0, "late") {
					t.Error("a revocation after Close was recorded")
				}
			})
		})
	}
}

func TestMemoryRevocations(t *testing.T) {
	clk := newClock()
	log := newRevocationLog()
	revs := authstate.NewMemoryRevocations(authstate.RevocationOptions{Now: clk.Now, OnRevoke: log.onRevoke})
	t.Cleanup(func() { revs.Close() })
	ctx := testCtx(t, 5*time.Second)
	revoke := func(r authstate.Revocation) {
		t.Helper()
		if err := revs.Revoke(ctx, r); err != nil {
			t.Fatalf("Revoke(%+v): %v", r, err)
		}
	}
	t0 := clk.Now()
	revoke(authstate.Revocation{Subject: "alice", MinGeneration: 5, Until: t0.Add(10 * time.Minute)})
	revoke(authstate.Revocation{Subject: "alice", MinGeneration: 3, Until: t0.Add(20 * time.Minute)}) // lower: merged, not lowered
	revoke(authstate.Revocation{Session: "fam-1", Until: t0.Add(5 * time.Minute)})
	revoke(authstate.Revocation{Session: "fam-1", Until: t0.Add(5 * time.Minute)}) // the same again
	revoke(authstate.Revocation{Session: "old", Until: t0.Add(-time.Second)})      // covers only expired tokens

	tests := []struct {
		name    string
		after   time.Duration // since t0
		subject string
		gen     uint64
		session string
		want    bool
	}{
		{"RevokedBelowMaxGeneration", 0, "alice", 4, "", true},
		{"RevokedOldGeneration", 0, "alice", 1, "", true},
		{"OKAtMinGeneration", 0, "alice", 5, "", false},
		{"OKNewerGeneration", 0, "alice", 9, "", false},
		{"OKOtherSubject", 0, "bob", 1, "", false},
		{"RevokedSession", 0, "bob", 1, "fam-1", true},
		{"OKOtherSession", 0, "bob", 1, "fam-2", false},
		{"OKPastUntilNoOp", 0, "", 0, "old", false},
		{"SessionForgottenAtUntil", 5 * time.Minute, "bob", 1, "fam-1", false},
		{"SubjectKeptToLatestUntil", 15 * time.Minute, "alice", 4, "", true},
		{"SubjectForgottenAtUntil", 20 * time.Minute, "alice", 4, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(t0.Add(tt.after))
			if got := revs.IsRevoked(tt.subject, tt.gen, tt.session); got != tt.want {
				t.Errorf("IsRevoked(%q, %d, %q) = %v, want %v", tt.subject, tt.gen, tt.session, got, tt.want)
			}
		})
	}
	if n := len(log.all()); n != 3 {
		t.Errorf("OnRevoke called %d times, want 3 (once per distinct live revocation): %+v", n, log.all())
	}
}

func TestIsRevokedDoesNotAllocate(t *testing.T) {
	revs := authstate.NewMemoryRevocations(authstate.RevocationOptions{})
	ctx := testCtx(t, 5*time.Second)
	until := time.Now().Add(time.Hour)
	for _, r := range []authstate.Revocation{
		{Subject: "alice", MinGeneration: 2, Until: until},
		{Session: "fam", Until: until},
	} {
		if err := revs.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var sink bool
	allocs := testing.AllocsPerRun(1000, func() {
		sink = revs.IsRevoked("alice", 1, "fam") || revs.IsRevoked("bob", 1, "other")
	})
	if allocs != 0 || !sink {
		t.Errorf("IsRevoked allocates %v times per run (revoked=%v), want 0", allocs, sink)
	}
}

func BenchmarkIsRevoked(b *testing.B) {
	revs := authstate.NewMemoryRevocations(authstate.RevocationOptions{})
	until := time.Now().Add(time.Hour)
	_ = revs.Revoke(context.Background(), authstate.Revocation{Subject: "alice", MinGeneration: 2, Until: until})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			revs.IsRevoked("bob", 1, "fam")
		}
	})
}

// newRedisRevocations starts a RedisRevocations on the shared test Redis
// under a fresh prefix.
func newRedisRevocations(t testing.TB, o authstate.RevocationOptions) *authstate.RedisRevocations {
	t.Helper()
	c, keys := sharedRedis(t)
	return startRedisRevocations(t, c, keys, o)
}

func startRedisRevocations(t testing.TB, c *redisconn.Client, keys redisconn.Keys, o authstate.RevocationOptions) *authstate.RedisRevocations {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler) // expected failures would clutter the test output
	}
	r, err := authstate.NewRedisRevocations(testCtx(t, 5*time.Second), c, keys, o)
	if err != nil {
		t.Fatalf("NewRedisRevocations: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func TestRedisRevocationsShared(t *testing.T) {
	c, keys := sharedRedis(t)
	logA, logB := newRevocationLog(), newRevocationLog()
	a := startRedisRevocations(t, c, keys, authstate.RevocationOptions{OnRevoke: logA.onRevoke})
	b := startRedisRevocations(t, c, keys, authstate.RevocationOptions{OnRevoke: logB.onRevoke})
	ctx := testCtx(t, 10*time.Second)

	until := time.Now().Add(time.Minute)
	if err := a.Revoke(ctx, authstate.Revocation{Subject: "alice", MinGeneration: 3, Session: "fam-a", Until: until}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !a.IsRevoked("alice", 2, "") || !a.IsRevoked("carol", 1, "fam-a") {
		t.Error("the revoking instance does not enforce its revocation at once")
	}
	// The brief's promise: another instance learns it within 1s.
	within, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	logB.waitFor(within, t, "fam-a on b", ofSession("fam-a"))
	if !b.IsRevoked("alice", 2, "") || b.IsRevoked("alice", 3, "") || !b.IsRevoked("carol", 1, "fam-a") {
		t.Error("the other instance enforces the revocation wrongly")
	}

	// A revocation from b the other way round; once a has learned it, a
	// has reloaded the set holding its own first one too, so a duplicate
	// OnRevoke for that one would have happened by now.
	if err := b.Revoke(ctx, authstate.Revocation{Session: "fam-b", Until: until}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	logA.waitFor(ctx, t, "fam-b on a", ofSession("fam-b"))
	for name, l := range map[string]*revocationLog{"a": logA, "b": logB} {
		if n := l.count(ofSession("fam-a")); n != 1 {
			t.Errorf("%s: OnRevoke of fam-a called %d times, want once", name, n)
		}
	}

	t.Run("StartingInstanceLearnsExisting", func(t *testing.T) {
		logC := newRevocationLog()
		late := startRedisRevocations(t, c, keys, authstate.RevocationOptions{OnRevoke: logC.onRevoke})
		if !late.IsRevoked("alice", 1, "") || !late.IsRevoked("x", 1, "fam-b") {
			t.Error("an instance started after the revocations does not enforce them")
		}
		if n := len(logC.all()); n != 2 {
			t.Errorf("OnRevoke called %d times at start, want 2", n)
		}
	})

	t.Run("SetExpiresWithLastEntry", func(t *testing.T) {
		pttl, err := c.PTTL(ctx, keys.Revocations()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 0 || pttl > time.Minute {
			t.Errorf("PTTL of the set = %v, want in (0, 1m]", pttl)
		}
	})
}

func TestRedisRevocationsExpire(t *testing.T) {
	c, keys := sharedRedis(t)
	// A clock of our own that starts at the real time: Redis's own clock
	// only decides when the whole set expires, at the last Until.
	clk := testenv.NewClock(time.Now().Truncate(time.Millisecond)) // Redis keeps Until in ms
	a := startRedisRevocations(t, c, keys, authstate.RevocationOptions{Now: clk.Now})
	ctx := testCtx(t, 10*time.Second)
	revoke := func(session string, ttl time.Duration) {
		t.Helper()
		if err := a.Revoke(ctx, authstate.Revocation{Session: session, Until: clk.Now().Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	revoke("short", time.Second)
	revoke("long", time.Minute)
	clk.Advance(time.Second)
	if a.IsRevoked("", 0, "short") {
		t.Error("revocation still enforced at its Until")
	}
	if !a.IsRevoked("", 0, "long") {
		t.Error("live revocation forgotten")
	}
	revoke("prune", time.Minute) // prunes expired members
	members, err := c.ZRange(ctx, keys.Revocations(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if strings.Contains(m, "short") {
			t.Errorf("expired member %s still in Redis", m)
		}
	}
	if len(members) != 2 {
		t.Errorf("set holds %d members, want 2: %v", len(members), members)
	}
}

func TestRedisRevocationsOutage(t *testing.T) {
	srv := testenv.StartRedis(t)
	keys := redisconn.Keys{Prefix: testenv.Prefix(t)}
	c1, _ := openRedis(t, srv.URL(), keys)
	c2, _ := openRedis(t, srv.URL(), keys)
	var logs testenv.LogBuffer
	poll := 50 * time.Millisecond
	a := startRedisRevocations(t, c1, keys, authstate.RevocationOptions{Poll: poll, Logger: logs.Logger()})
	logB := newRevocationLog()
	b := startRedisRevocations(t, c2, keys, authstate.RevocationOptions{Poll: poll, OnRevoke: logB.onRevoke})
	ctx := testCtx(t, 20*time.Second)

	srv.Stop()
	err := a.Revoke(ctx, authstate.Revocation{Session: "during-outage", Until: time.Now().Add(time.Minute)})
	if !errors.Is(err, authstate.ErrShared) {
		t.Fatalf("Revoke with Redis down = %v, want ErrShared", err)
	}
	if !a.IsRevoked("", 0, "during-outage") {
		t.Error("revocation not enforced locally while Redis is down")
	}
	logs.WaitFor(ctx, t, "redis revocations failing")

	srv.Start() // empty: as after a crash without persistence
	logs.WaitFor(ctx, t, "redis revocations restored")
	// The pending revocation is written again once Redis is back, and the
	// other instance learns it.
	logB.waitFor(ctx, t, "during-outage on b", ofSession("during-outage"))
	if !b.IsRevoked("", 0, "during-outage") {
		t.Error("the other instance does not enforce the revocation made during the outage")
	}
	if n := logs.Count("redis revocations failing"); n != 1 {
		t.Errorf("failure logged %d times, want once (rate-limited):\n%s", n, logs.String())
	}
}

func TestNewRedisRevocationsRefuses(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	live, keys := sharedRedis(t)
	tests := []struct {
		name   string
		client *redisconn.Client
		keys   redisconn.Keys
		opts   authstate.RevocationOptions
		want   string
	}{
		{"ErrNilClient", nil, keys, authstate.RevocationOptions{}, "nil Redis client"},
		{"ErrBadPrefix", live, redisconn.Keys{Prefix: "{x}"}, authstate.RevocationOptions{}, "prefix"},
		{"ErrNegativePoll", live, keys, authstate.RevocationOptions{Poll: -time.Second}, "negative Poll"},
		{"ErrRedisDown", deadRedis(t), keys, authstate.RevocationOptions{}, "load revocations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *authstate.RedisRevocations
			var err error
			if tt.client == nil {
				r, err = authstate.NewRedisRevocations(ctx, nil, tt.keys, tt.opts)
			} else {
				r, err = authstate.NewRedisRevocations(ctx, tt.client, tt.keys, tt.opts)
			}
			if err == nil {
				r.Close()
				t.Fatal("NewRedisRevocations succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestRedisRevocationsSkipUnreadableMembers(t *testing.T) {
	c, keys := sharedRedis(t)
	ctx := testCtx(t, 10*time.Second)
	score := float64(time.Now().Add(time.Minute).UnixMilli())
	for _, m := range []string{"not json", `{"u":1}`, `{"x":"","u":99999999999999}`} {
		if err := c.ZAdd(ctx, keys.Revocations(), redis.Z{Score: score, Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a := startRedisRevocations(t, c, keys, authstate.RevocationOptions{})
	if err := a.Revoke(ctx, authstate.Revocation{Session: "good", Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var logs testenv.LogBuffer
	log := newRevocationLog()
	b := startRedisRevocations(t, c, keys, authstate.RevocationOptions{Logger: logs.Logger(), OnRevoke: log.onRevoke})
	if !b.IsRevoked("", 0, "good") {
		t.Error("a readable revocation next to unreadable ones was not learned")
	}
	if n := len(log.all()); n != 1 {
		t.Errorf("learned %d revocations, want only the readable one: %+v", n, log.all())
	}
	if n := logs.Count("skipping unreadable revocation"); n != 3 {
		t.Errorf("logged %d unreadable members, want 3:\n%s", n, logs.String())
	}
}
