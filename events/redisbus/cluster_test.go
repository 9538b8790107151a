package redisbus_test

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/internal/testenv"
)

// redisCluster is a throwaway three-master Redis Cluster on 127.0.0.1,
// killed when the test ends.
type redisCluster struct {
	nodes []*redisServer
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
	ports := freePorts(t, 6)
	c := &redisCluster{}
	for i := range 3 {
		port, bus := ports[2*i], ports[2*i+1]
		c.nodes = append(c.nodes, startRedis(t, port,
			"--cluster-enabled", "yes", "--cluster-port", bus,
			"--cluster-config-file", filepath.Join(dir, "nodes-"+port+".conf")))
	}

	ctx := testCtx(t, 60*time.Second)
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.addr())
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
		rc := n.client(t)
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				t.Fatalf("node %s never reported cluster_state:ok (last: %v)\n%s", n.addr(), err, info)
			}
		}
	}
	return c
}

func (s *redisServer) addr() string { return "127.0.0.1:" + s.port }

// client is a plain client of this one node, closed when t ends.
func (s *redisServer) client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// seedURL names node first, and the others given, as seeds.
func (c *redisCluster) seedURL(first int, more ...int) string {
	u := "redis://" + c.nodes[first].addr()
	for i, n := range more {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + c.nodes[n].addr()
	}
	return u
}

// owner returns the node that serves key's hash slot, as every node sees
// it, and the slot.
func (c *redisCluster) owner(ctx context.Context, t testing.TB, key string) (*redisServer, int) {
	t.Helper()
	rc := c.nodes[0].client(t)
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
					if strconv.FormatInt(sn.Port, 10) == n.port {
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
func shardSubscribers(ctx context.Context, t testing.TB, node *redisServer, channel string) int64 {
	t.Helper()
	n, err := node.client(t).PubSubShardNumSub(ctx, channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[channel]
}

// freePorts returns n distinct local ports that nothing listens on; all
// are held open until the last is picked so none repeats.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		ports = append(ports, p)
	}
	return ports
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
			t.Errorf("node %s (slot %d) has %d sharded subscribers, want 2", owner.addr(), slot, got)
		}
	})

	t.Run("OK", func(t *testing.T) {
		var want []string
		for i := range 500 {
			ev := testEvent(int64(i + 1))
			if err := a.Publish(ctx, ev); err != nil {
				t.Fatalf("Publish %d: %v", i, err)
			}
			want = append(want, ev.ID)
		}
		// Once this later event is in, a duplicate of an earlier one would
		// have arrived before it.
		last := testEvent(0)
		if err := a.Publish(ctx, last); err != nil {
			t.Fatalf("Publish last: %v", err)
		}
		want = append(want, last.ID)
		for name, r := range map[string]*recorder{"publishing instance": ra, "other instance": rb} {
			got := r.waitForID(ctx, t, last.ID)
			if !slices.Equal(ids(got), want) {
				t.Errorf("%s: got %d events, want %d exactly once in publish order", name, len(got), len(want))
			}
		}
		got := rb.events()[0]
		if got.BookID != 1 || got.Type != events.BookUpdated || string(got.Book) != `{"id":1,"title":"Book 1"}` {
			t.Errorf("first event = %+v", got)
		}
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
		bus, err := redisbus.New(testCtx(t, 10*time.Second), redisbus.Options{URL: u, Cluster: true})
		if err == nil {
			bus.Close()
			t.Fatal("New succeeded with credentials the cluster does not know")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks the password: %q", err)
		}
	})
}

// Moving the events slot to another node (as resharding or a failover
// does) ends the sharded subscription on the old node; the bus must find
// the new owner by itself.
func TestClusterSubscriptionFollowsSlotMove(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	cl := startCluster(t)
	prefix := testenv.Prefix(t)
	logger, logs := newLogger()
	pub := newBus(t, redisbus.Options{URL: cl.seedURL(0), Cluster: true, Prefix: prefix})
	sub := newBus(t, redisbus.Options{URL: cl.seedURL(1), Cluster: true, Prefix: prefix, Logger: logger})
	r := newRecorder()
	if err := sub.Subscribe(ctx, r.handle); err != nil {
		t.Fatal(err)
	}
	first := testEvent(1)
	if err := pub.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	r.waitForID(ctx, t, first.ID)

	src, slot := cl.owner(ctx, t, sub.Channel())
	dst := cl.nodes[0]
	if dst == src {
		dst = cl.nodes[1]
	}
	moveSlot(ctx, t, cl, slot, src, dst)
	logs.waitFor(ctx, t, "redis subscription lost")
	logs.waitFor(ctx, t, "redis subscription restored")

	// The publisher's slot map is stale too: its SPUBLISH meets a MOVED
	// redirect, which is followed (it is not a retry: the command never ran).
	next := testEvent(2)
	if err := pub.Publish(ctx, next); err != nil {
		t.Fatalf("Publish after the move: %v", err)
	}
	r.waitForID(ctx, t, next.ID)
	if got := shardSubscribers(ctx, t, dst, sub.Channel()); got != 1 {
		t.Errorf("new owner %s has %d sharded subscribers, want 1", dst.addr(), got)
	}
	if err := sub.Ping(ctx); err != nil {
		t.Errorf("Ping after the move = %v", err)
	}
	if n := logs.count("redis subscription lost"); n != 1 {
		t.Errorf("\"lost\" logged %d times, want once:\n%s", n, logs.String())
	}
	if n := logs.count("redis subscription restored"); n != 1 {
		t.Errorf("\"restored\" logged %d times, want once:\n%s", n, logs.String())
	}
}

// moveSlot hands an empty slot from src to dst the way redis-cli reshard
// does, then tells every node.
func moveSlot(ctx context.Context, t testing.TB, cl *redisCluster, slot int, src, dst *redisServer) {
	t.Helper()
	id := func(n *redisServer) string {
		v, err := n.client(t).Do(ctx, "cluster", "myid").Text()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	srcID, dstID := id(src), id(dst)
	setSlot := func(n *redisServer, args ...any) {
		t.Helper()
		cmd := append([]any{"cluster", "setslot", slot}, args...)
		if err := n.client(t).Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", cmd, n.addr(), err)
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
	single := startRedis(t, "")
	cl := startCluster(t)
	tests := []struct {
		name    string
		url     string
		cluster bool
		node    func(channel string) *redisServer
	}{
		{"SingleServer", single.url(), false, func(string) *redisServer { return single }},
		{"Cluster", cl.seedURL(0), true, func(channel string) *redisServer {
			n, _ := cl.owner(ctx, t, channel)
			return n
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := testenv.Prefix(t)
			opts := redisbus.Options{URL: tt.url, Cluster: tt.cluster, Sharded: true, Prefix: prefix}
			pub, sub := newBus(t, opts), newBus(t, opts)
			r := newRecorder()
			if err := sub.Subscribe(ctx, r.handle); err != nil {
				t.Fatal(err)
			}
			warm := testEvent(1) // connects the publisher and loads its slot map
			if err := pub.Publish(ctx, warm); err != nil {
				t.Fatal(err)
			}
			r.waitForID(ctx, t, warm.ID)

			admin := tt.node(pub.Channel()).client(t)
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
			b, err := redisbus.New(testCtx(t, 5*time.Second), redisbus.Options{URL: tt.url, Cluster: true})
			if err == nil {
				b.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}

	t.Run("ErrUnreachableSeedsNamedNotPassword", func(t *testing.T) {
		ports := freePorts(t, 2)
		seeds := "127.0.0.1:" + ports[0]
		u := "redis://user:" + secret + "@" + seeds + "?addr=127.0.0.1:" + ports[1]
		_, err := redisbus.New(testCtx(t, 5*time.Second), redisbus.Options{
			URL: u, Cluster: true, DialTimeout: time.Second,
		})
		if err == nil {
			t.Fatal("New succeeded against closed ports")
		}
		if !strings.Contains(err.Error(), seeds) {
			t.Errorf("error %q does not name the seed %s", err, seeds)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks the password: %q", err)
		}
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
	ctx := testCtx(b, 5*time.Minute)
	got := make(chan struct{}, 1)
	if err := sub.Subscribe(ctx, func(events.Event) { got <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	ev := testEvent(1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
