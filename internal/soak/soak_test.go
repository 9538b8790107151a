package soak_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/internal/cluster"
)

// The soak's size; the defaults are the short version run in CI.
var (
	subscribers = flag.Int("soak.subscribers", 100, "WebSocket subscribers, all connected through nginx")
	writes      = flag.Int("soak.writes", 1000, "REST writes, spread over nginx and every instance")
	rate        = flag.Float64("soak.rate", 50, "writes per second over all writers (0 = as fast as they go)")
	writers     = flag.Int("soak.writers", 4, "concurrent REST writers")
	converge    = flag.Duration("soak.converge", 2*time.Minute, "how long subscribers may take to catch up after the last write")
	redisDown   = flag.Duration("soak.redis-down", 2*time.Second, "how long Redis stays down at each restart")
)

// EnvSoak must be 1 for TestSoak to run.
const EnvSoak = "BOOKHUB_SOAK"

// fault is one step of the schedule, taken once the given share of the
// writes is done.
type fault struct {
	at   float64
	name string
	do   func(*testing.T, *cluster.Cluster)
}

// schedule restarts Redis twice and SIGKILLs one instance, restarting it
// later, all while writes continue.
var schedule = []fault{
	{0.15, "redis SIGKILL+restart #1", restartRedis},
	{0.35, "SIGKILL node-2", func(t *testing.T, c *cluster.Cluster) {
		if err := c.Instances[1].Kill(); err != nil {
			t.Fatal(err)
		}
	}},
	{0.50, "restart node-2", func(t *testing.T, c *cluster.Cluster) {
		if err := c.Instances[1].Start(); err != nil {
			t.Fatal(err)
		}
	}},
	{0.70, "redis SIGKILL+restart #2", restartRedis},
}

func restartRedis(t *testing.T, c *cluster.Cluster) {
	c.Redis.Stop() // SIGKILL
	time.Sleep(*redisDown)
	c.Redis.Start()
}

func TestSoak(t *testing.T) {
	if os.Getenv(EnvSoak) != "1" {
		t.Skipf("soak test: set %s=1 to run it (make soak, make soak-short)", EnvSoak)
	}
	checkFileLimit(t, *subscribers)
	c := cluster.Start(t, cluster.Options{Instances: 3})
	if need := 2**subscribers + 64; c.LB.WorkerConnections < need {
		t.Fatalf("nginx gets worker_connections %d (from ulimit -n); %d subscribers need %d in one worker: raise the hard limit", c.LB.WorkerConnections, *subscribers, need)
	}
	t.Logf("loopback source ports: %s for %d sockets and their reconnects", portRange(), *subscribers)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start, err := c.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Connect in batches, as a crowd arriving, not all in one millisecond.
	began := time.Now()
	viewer := c.Token("soak-viewer", auth.RoleViewer)
	subs := make([]*cluster.Subscriber, *subscribers)
	const batch = 50
	for lo := 0; lo < len(subs); lo += batch {
		hi := min(lo+batch, len(subs))
		for i := lo; i < hi; i++ {
			subs[i] = &cluster.Subscriber{Base: c.URL(), Token: viewer, Start: start, Keep: i == 0}
			wg.Go(func() { subs[i].Run(ctx) })
		}
		for i := lo; i < hi; i++ {
			select {
			case <-subs[i].Ready():
			case <-time.After(60 * time.Second):
				t.Fatalf("subscriber %d never subscribed: %v", i, subs[i].Stats().Errors)
			}
		}
	}
	perInstance := map[string]int{}
	for _, s := range subs {
		perInstance[s.Instance()]++
	}
	t.Logf("%d subscribers connected through nginx in %v: %v", len(subs), time.Since(began).Round(time.Millisecond), perInstance)

	targets := []string{c.URL()}
	for _, in := range c.Instances {
		targets = append(targets, in.URL())
	}
	w := &cluster.Writer{Targets: targets, Token: c.Token("soak-writer", auth.RoleAdmin), Rate: *rate, Workers: *writers}
	writing := make(chan struct{})
	began = time.Now()
	wg.Go(func() { defer close(writing); w.Run(ctx, *writes) })

	var faults []string
	for _, f := range schedule {
		at := int(f.at * float64(*writes))
		for w.Done() < at {
			select {
			case <-writing:
				t.Fatalf("writes ended at %d before %q (due at %d)", w.Done(), f.name, at)
			case <-time.After(20 * time.Millisecond): // the writers' progress: nothing to wait on
			}
		}
		t0 := time.Now()
		f.do(t, c)
		faults = append(faults, f.name)
		t.Logf("%6.1fs  %s at %d writes (took %v)", time.Since(began).Seconds(), f.name, at, time.Since(t0).Round(time.Millisecond))
	}
	<-writing
	wrote := time.Since(began)
	if st := w.Stats(); len(st.Rejected) > 0 {
		t.Errorf("writes refused for good: %q", st.Rejected)
	}
	final, err := c.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, *converge)
	converged := cluster.WaitAll(cctx, subs, final.Offset)
	ccancel()
	rep := cluster.Check(subs, start, final, w.Acked())
	rep.Duration = time.Since(began)
	t.Logf("writes took %v (%.0f/s); writer %+v", wrote.Round(time.Millisecond), float64(*writes)/wrote.Seconds(), w.Stats())
	fmt.Printf("soak: instances=3 %v faults=%q\n", rep, strings.Join(faults, ", "))
	if !converged || !rep.OK() {
		t.Fatalf("not every subscriber holds every event exactly once in offset order: %s", rep.Summary())
	}
}

// checkFileLimit fails early, with the fix, when this process cannot hold
// a socket per subscriber (Go raises the soft limit to the hard one).
func checkFileLimit(t *testing.T, n int) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if need := uint64(n) + 256; rl.Cur < need {
		t.Fatalf("ulimit -n is %d; %d subscribers need at least %d descriptors in the test process", rl.Cur, n, need)
	}
}

// portRange describes the ephemeral port range clients draw from.
func portRange() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b)), "-")
}
