package redisbus_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/internal/testenv"
)

// redisCluster is a throwaway three-master Redis Cluster on 127.0.0.1,
// killed when the test ends.
type redisCluster struct {
	nodes []*testenv.RedisServer
}

// startCluster starts three cluster-enabled redis-servers, joins them with
// redis-cli --cluster create and waits until every node reports
// cluster_state:ok.
func startCluster(t testing.TB) *redisCluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		testenv.Unavailable(t, "cluster test needs the redis-cli binary: %v", err)
	}
	dir := t.TempDir()
	// A node also listens on a cluster bus port, port+10000 unless set, which
	// overflows for high ephemeral ports: pick it explicitly.
	ports := testenv.FreePorts(t, 6)
	c := &redisCluster{}
	for i := range 3 {
		port, bus := ports[2*i], ports[2*i+1]
		c.nodes = append(c.nodes, testenv.StartRedisOn(t, port,
			"--cluster-enabled", "yes", "--cluster-port", bus,
			"--cluster-config-file", filepath.Join(dir, "nodes-"+port+".conf")))
	}

	ctx := testCtx(t, 60*time.Second)
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}

	// redis-cli returns once the nodes agree on the configuration; each
	// node declares the cluster usable on its own shortly after.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, n := range c.nodes {
		rc := client(t, n)
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				t.Fatalf("node %s never reported cluster_state:ok (last: %v)\n%s", n.Addr(), err, info)
			}
		}
	}
	return c
}

// client is a plain client of this one server, closed when t ends.
func client(t testing.TB, s *testenv.RedisServer) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// seedURL names node first, and the others given, as seeds.
func (c *redisCluster) seedURL(first int, more ...int) string {
	u := "redis://" + c.nodes[first].Addr()
	for i, n := range more {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + c.nodes[n].Addr()
	}
	return u
}

// owner returns the node that serves key's hash slot, as every node sees
// it, and the slot.
func (c *redisCluster) owner(ctx context.Context, t testing.TB, key string) (*testenv.RedisServer, int) {
	t.Helper()
	rc := client(t, c.nodes[0])
	slot, err := rc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	shards, err := rc.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start > slot || slot > r.End {
				continue
			}
			for _, sn := range sh.Nodes {
				if sn.Role != "master" {
					continue
				}
				for _, n := range c.nodes {
					if strconv.FormatInt(sn.Port, 10) == n.Port {
						return n, int(slot)
					}
				}
			}
		}
	}
	t.Fatalf("no node serves slot %d", slot)
	return nil, 0
}

// shardSubscribers counts the sharded subscriptions to channel on node.
func shardSubscribers(ctx context.Context, t testing.TB, node *testenv.RedisServer, channel string) int64 {
	t.Helper()
	n, err := client(t, node).PubSubShardNumSub(ctx, channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[channel]
}

// Two Bus values seeded with different nodes behave like two bookhub
// instances on one cluster.
func TestClusterDeliversOnceInOrderToEveryInstance(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	cl := startCluster(t)
	prefix := testenv.Prefix(t)
	// Sharded is left false: Cluster implies it.
	a := newBus(t, redisbus.Options{URL: cl.seedURL(0, 1), Cluster: true, Prefix: prefix})
	b := newBus(t, redisbus.Options{URL: cl.seedURL(2), Cluster: true, Prefix: prefix})
	ra, rb := newRecorder(), newRecorder()
	if err := a.Subscribe(ctx, ra.handle); err != nil {
		t.Fatalf("Subscribe a: %v", err)
	}
	if err := b.Subscribe(ctx, rb.handle); err != nil {
		t.Fatalf("Subscribe b: %v", err)
	}

	t.Run("SubscriptionsAreShardedOnTheSlotOwner", func(t *testing.T) {
		owner, slot := cl.owner(ctx, t, a.Channel())
		if got := shardSubscribers(ctx, t, owner, a.Channel()); got != 2 {
			t.Errorf("node %s (slot %d) has %d sharded subscribers, want 2", owner.Addr(), slot, got)
		}
	})

	t.Run("OK", func(t *testing.T) {
		wantDeliveredOnceInOrder(ctx, t, a, 500, map[string]*recorder{"publishing instance": ra, "other instance": rb})
	})

	t.Run("PingOK", func(t *testing.T) {
		for _, bus := range []*redisbus.Bus{a, b} {
			if err := bus.Ping(ctx); err != nil {
				t.Errorf("Ping = %v", err)
			}
		}
	})

	t.Run("ErrWrongPasswordNotLeaked", func(t *testing.T) {
		const secret = "s3cretPassw0rd"
		u := strings.Replace(cl.seedURL(0, 1), "://", "://nobody:"+secret+"@", 1)
		wantNewRefused(t, redisbus.Options{URL: u, Cluster: true}, "", secret) // credentials the cluster does not know
	})
}

// Moving the events slot to another node (as resharding or a failover
// does) ends the sharded subscription on the old node; the bus must find
// the new owner by itself.
func TestClusterSubscriptionFollowsSlotMove(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	cl := startCluster(t)
	prefix := testenv.Prefix(t)
	logs := &testenv.LogBuffer{}
	pub := newBus(t, redisbus.Options{URL: cl.seedURL(0), Cluster: true, Prefix: prefix})
	sub := newBus(t, redisbus.Options{URL: cl.seedURL(1), Cluster: true, Prefix: prefix, Logger: logs.Logger()})
	r := subscribed(ctx, t, pub, sub)

	src, slot := cl.owner(ctx, t, sub.Channel())
	dst := cl.nodes[0]
	if dst == src {
		dst = cl.nodes[1]
	}
	moveSlot(ctx, t, cl, slot, src, dst)
	logs.WaitFor(ctx, t, "redis subscription lost")
	logs.WaitFor(ctx, t, "redis subscription restored")

	// The publisher's slot map is stale too: its SPUBLISH meets a MOVED
	// redirect, which is followed (it is not a retry: the command never ran).
	next := testEvent(2)
	if err := pub.Publish(ctx, next); err != nil {
		t.Fatalf("Publish after the move: %v", err)
	}
	r.waitForID(ctx, t, next.ID)
	if got := shardSubscribers(ctx, t, dst, sub.Channel()); got != 1 {
		t.Errorf("new owner %s has %d sharded subscribers, want 1", dst.Addr(), got)
	}
	if err := sub.Ping(ctx); err != nil {
		t.Errorf("Ping after the move = %v", err)
	}
	wantRecoveredOnce(t, logs)
}

// moveSlot hands an empty slot from src to dst the way redis-cli reshard
// does, then tells every node.
func moveSlot(ctx context.Context, t testing.TB, cl *redisCluster, slot int, src, dst *testenv.RedisServer) {
	t.Helper()
	id := func(n *testenv.RedisServer) string {
		v, err := client(t, n).Do(ctx, "cluster", "myid").Text()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	srcID, dstID := id(src), id(dst)
	setSlot := func(n *testenv.RedisServer, args ...any) {
		t.Helper()
		cmd := append([]any{"cluster", "setslot", slot}, args...)
		if err := client(t, n).Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", cmd, n.Addr(), err)
		}
	}
	setSlot(dst, "importing", srcID)
	setSlot(src, "migrating", dstID)
	setSlot(dst, "node", dstID)
	setSlot(src, "node", dstID)
	for _, n := range cl.nodes {
		if n != src && n != dst {
			setSlot(n, "node", dstID)
		}
	}
}

// A publish whose connection dies before Redis ran it must fail, not be
// sent again: the same re-send after a lost reply would deliver twice. The
// cluster client re-sends after network errors whatever MaxRetries says, so
// this runs against both client kinds. CLIENT PAUSE holds the command on
// the server while its connection is killed.
func TestPublishIsNotResentAfterConnectionLoss(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	single := testenv.StartRedis(t)
	cl := startCluster(t)
	tests := []struct {
		name    string
		url     string
		cluster bool
		node    func(channel string) *testenv.RedisServer
	}{
		{"SingleServer", single.URL(), false, func(string) *testenv.RedisServer { return single }},
		{"Cluster", cl.seedURL(0), true, func(channel string) *testenv.RedisServer {
			n, _ := cl.owner(ctx, t, channel)
			return n
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := testenv.Prefix(t)
			opts := redisbus.Options{URL: tt.url, Cluster: tt.cluster, Sharded: true, Prefix: prefix}
			pub, sub := newBus(t, opts), newBus(t, opts)
			r := subscribed(ctx, t, pub, sub) // also connects the publisher and loads its slot map

			admin := client(t, tt.node(pub.Channel()))
			if err := admin.Do(ctx, "client", "pause", 30000, "write").Err(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { admin.Do(context.Background(), "client", "unpause") })
			lost := testEvent(2)
			published := make(chan error, 1)
			go func() { published <- pub.Publish(ctx, lost) }()
			waitForBlocked(ctx, t, admin, "spublish")
			if err := admin.Do(ctx, "client", "kill", "type", "normal", "skipme", "yes").Err(); err != nil {
				t.Fatal(err)
			}
			if err := admin.Do(ctx, "client", "unpause").Err(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-published:
				if err == nil {
					t.Fatal("Publish succeeded: it was sent again on a new connection")
				}
			case <-ctx.Done():
				t.Fatal("Publish did not return")
			}

			after := testEvent(3)
			if err := pub.Publish(ctx, after); err != nil {
				t.Fatalf("Publish after the loss: %v", err)
			}
			if got := r.waitForID(ctx, t, after.ID); containsID(got, lost.ID) {
				t.Errorf("the failed publish was delivered: %v", ids(got))
			}
		})
	}
}

// waitForBlocked polls CLIENT LIST until a client is blocked (flag b, as
// CLIENT PAUSE holds it) in command cmd. The publisher's idle pooled
// connection also shows its last command, so the flag is what tells the
// held publish apart.
func waitForBlocked(ctx context.Context, t testing.TB, admin *redis.Client, cmd string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(list, "\n") {
			var blocked, inCmd bool
			for _, f := range strings.Fields(line) {
				if flags, ok := strings.CutPrefix(f, "flags="); ok {
					blocked = strings.Contains(flags, "b")
				}
				inCmd = inCmd || f == "cmd="+cmd
			}
			if blocked && inCmd {
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("no client blocked in %s:\n%s", cmd, list)
		}
	}
}

func TestClusterNewRefusesBadInput(t *testing.T) {
	const secret = "s3cretPassw0rd"
	tests := []struct {
		name string
		url  string
		want string // substring of the error
	}{
		{"ErrWrongScheme", "http://user:" + secret + "@127.0.0.1:7000?addr=127.0.0.1:7001", "scheme"},
		{"ErrPasswordInSeedAddr", "redis://127.0.0.1:7000?addr=user:" + secret + "@127.0.0.1:7001", "addr parameter 1"},
		{"ErrSeedAddrWithoutPort", "redis://:" + secret + "@127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1", "addr parameter 2"},
		{"ErrDatabaseNotZero", "redis://:" + secret + "@127.0.0.1:7000/3", "database 0"},
		{"ErrUnknownQueryOption", "redis://:" + secret + "@127.0.0.1:7000?bogus=1", "invalid URL"},
		{"ErrBadDialTimeout", "redis://:" + secret + "@127.0.0.1:7000?dial_timeout=soon", "invalid URL"},
		{"ErrBadPort", "redis://user:" + secret + "@127.0.0.1:notaport", "invalid URL"},
		{"ErrBadEscapeInPassword", "redis://user:%zz" + secret + "@127.0.0.1:7000", "percent-encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantNewRefused(t, redisbus.Options{URL: tt.url, Cluster: true}, tt.want, secret)
		})
	}

	t.Run("ErrUnreachableSeedsNamedNotPassword", func(t *testing.T) {
		ports := testenv.FreePorts(t, 2)
		seeds := "127.0.0.1:" + ports[0]
		u := "redis://user:" + secret + "@" + seeds + "?addr=127.0.0.1:" + ports[1]
		wantNewRefused(t, redisbus.Options{URL: u, Cluster: true, DialTimeout: time.Second}, seeds, secret)
	})
}

// BenchmarkClusterPublish measures a full round trip through a real
// cluster: SPUBLISH on one instance, delivery to a subscriber of another
// instance seeded with a different node.
func BenchmarkClusterPublish(b *testing.B) {
	cl := startCluster(b)
	prefix := testenv.Prefix(b)
	pub := newBus(b, redisbus.Options{URL: cl.seedURL(0), Cluster: true, Prefix: prefix})
	sub := newBus(b, redisbus.Options{URL: cl.seedURL(2), Cluster: true, Prefix: prefix})
	benchRoundTrip(b, pub, sub)
}
