package authstate_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/redisconn"
)

// startCluster starts a throwaway three-master Redis Cluster on 127.0.0.1
// and returns its seed URL once every node reports cluster_state:ok.
// (The same setup as the events/redisbus cluster tests.)
func startCluster(t testing.TB) string {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		testenv.Unavailable(t, "cluster test needs the redis-cli binary: %v", err)
	}
	dir := t.TempDir()
	ports := testenv.FreePorts(t, 6) // a client port and a cluster bus port per node
	var nodes []*testenv.RedisServer
	for i := range 3 {
		port, bus := ports[2*i], ports[2*i+1]
		nodes = append(nodes, testenv.StartRedisOn(t, port,
			"--cluster-enabled", "yes", "--cluster-port", bus,
			"--cluster-config-file", filepath.Join(dir, "nodes-"+port+".conf")))
	}
	ctx := testCtx(t, 60*time.Second)
	args := []string{"--cluster", "create"}
	for _, n := range nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, n := range nodes {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		t.Cleanup(func() { rc.Close() })
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				t.Fatalf("node %s never reported cluster_state:ok (last: %v)", n.Addr(), err)
			}
		}
	}
	u := "redis://" + nodes[0].Addr() + "?addr=" + nodes[1].Addr() + "&addr=" + nodes[2].Addr()
	return u
}

// TestCluster checks that the multi-key MULTI of Revoke, and everything
// else, works on a Redis Cluster: the {auth} hash tag keeps every key in
// one slot.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := startCluster(t)
	c, err := redisconn.Open(url, redisconn.Options{Cluster: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	keys := redisconn.Keys{Prefix: testenv.Prefix(t)}
	ctx := testCtx(t, 20*time.Second)

	t.Run("Revocations", func(t *testing.T) {
		logB := newRevocationLog()
		a := startRedisRevocations(t, c, keys, authstate.RevocationOptions{})
		b := startRedisRevocations(t, c, keys, authstate.RevocationOptions{OnRevoke: logB.onRevoke})
		if err := a.Revoke(ctx, authstate.Revocation{Session: "fam", Until: time.Now().Add(time.Minute)}); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		logB.waitFor(ctx, t, "fam on b", ofSession("fam"))
		if !b.IsRevoked("", 0, "fam") {
			t.Error("not shared over the cluster")
		}
	})
	t.Run("Tickets", func(t *testing.T) {
		tk, err := authstate.NewRedisTickets(c, keys)
		if err != nil {
			t.Fatal(err)
		}
		ticket, err := tk.Issue(ctx, []byte("p"), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tk.Redeem(ctx, ticket); err != nil || string(got) != "p" {
			t.Fatalf("Redeem = %q, %v", got, err)
		}
	})
	t.Run("Limiter", func(t *testing.T) {
		l, err := authstate.NewRedisLimiter(c, keys, "login", authstate.Limit{Requests: 2, Window: time.Minute}, authstate.LimiterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		allowN(t, l, "alice", 2, nil)
		wantRefused(t, l, "alice", time.Minute, nil)
	})
}
