package loadtest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/loadtest"
)

// testConfig is a small, fast run against targets.
func testConfig(targets []string) loadtest.Config {
	return loadtest.Config{
		Targets:          targets,
		JWTSecret:        testSecret,
		Subscribers:      50,
		Writes:           30,
		WriteConcurrency: 4,
		DrainTimeout:     5 * time.Second,
		SampleInterval:   50 * time.Millisecond,
	}
}

func runCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustRun(t *testing.T, cfg loadtest.Config) *loadtest.Report {
	t.Helper()
	r, err := loadtest.Run(runCtx(t), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func problemKinds(r *loadtest.Report) []string {
	var out []string
	for _, p := range r.Problems() {
		out = append(out, p.Kind)
	}
	return out
}

func TestRun(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		_, targets := fakeCluster(t, 2, fakeOptions{})
		cfg := testConfig(targets)
		var progress bytes.Buffer
		cfg.Progress = &progress
		r := mustRun(t, cfg)
		if !r.OK() {
			var b strings.Builder
			_ = r.WriteSummary(&b)
			t.Fatalf("report not OK: %v\n%s", r.Problems(), b.String())
		}
		if c := r.Connections; c.Attempted != 50 || c.Established != 50 || c.Failed != 0 {
			t.Errorf("connections = %+v, want 50 attempted and established", c)
		}
		if w := r.Writes; w.OK != 30 || w.Failed != 0 || w.Skipped != 0 {
			t.Errorf("writes = %+v, want 30 ok", w)
		}
		wantKinds := map[string]int64{"create": 9, "put": 9, "patch": 9, "delete": 3}
		for k, n := range wantKinds {
			if got := r.Writes.ByKind[k].OK; got != n {
				t.Errorf("writes of kind %s = %d, want %d", k, got, n)
			}
		}
		if d := r.Deliveries; d.Expected != 1500 || d.Received != 1500 || d.Missing != 0 || d.Duplicates != 0 || d.Unexpected != 0 {
			t.Errorf("deliveries = %+v, want 1500 expected and received", d)
		}
		if d := r.Deliveries; d.DrainTimedOut || d.DrainS > 4 {
			t.Errorf("drain took %.2fs (timed out %v); it should end when the last delivery arrives", d.DrainS, d.DrainTimedOut)
		}
		l := r.Latency
		if l.Count != 1500 || l.P50Ms <= 0 || l.P50Ms > l.P95Ms || l.P95Ms > l.P99Ms || l.P99Ms > l.MaxMs {
			t.Errorf("latency = %+v, want 1500 ordered samples", l)
		}
		if len(r.Timeline) == 0 || r.Timeline[len(r.Timeline)-1].Deliveries != 1500 {
			t.Errorf("timeline %+v does not end at 1500 deliveries", r.Timeline)
		}
		if !strings.Contains(progress.String(), "deliveries 1500") {
			t.Errorf("progress %q lacks the final delivery count", progress.String())
		}
		if d := r.Deliveries; d.OutOfOrder != 0 || d.OffsetGaps != 0 {
			t.Errorf("deliveries = %+v, want offsets in order without gaps", d)
		}
		if g := r.Cost.Generator; g == nil || g.CPUS <= 0 || g.WriteCPUS < 0 || g.Deliveries != 1500 || g.CPUSPer1000 < 0 || g.MaxRSSBytes <= 0 {
			t.Errorf("generator cost = %+v, want CPU time and 1500 deliveries", g)
		}
		if r.Cost.Server != nil {
			t.Errorf("server cost = %+v without metrics URLs", r.Cost.Server)
		}
	})

	t.Run("ServerMetrics", func(t *testing.T) {
		_, targets := fakeCluster(t, 2, fakeOptions{})
		// Each of two instances grows by 2 goroutines and 10 KiB of RSS
		// per socket of the 50 (so 4 and 20 KiB summed), and spends 3
		// CPU-s on 750 frames in the write phase.
		page := func(k int) string {
			switch k {
			case 0:
				return metricsPage(1, 20e6, 5e6, 1e6, 10, 0)
			case 1:
				return metricsPage(2, 20e6+50*10240, 5e6+50*4096, 1e6+50*8192, 10+2*50, 100)
			default:
				return metricsPage(5, 30e6, 9e6, 2e6, 110, 850)
			}
		}
		a, b := newFakeMetrics(t, page), newFakeMetrics(t, page)
		cfg := testConfig(targets)
		cfg.MetricsURLs, cfg.MetricsGC = []string{a.URL, b.URL}, true
		r := mustRun(t, cfg)
		if !r.OK() {
			t.Fatalf("problems: %v (errors %+v)", r.Problems(), r.Errors)
		}
		s := r.Cost.Server
		if s == nil || s.Before == nil || s.Idle == nil || s.End == nil {
			t.Fatalf("server cost = %+v, want three readings", s)
		}
		if s.WriteCPUS != 6 || s.WriteFrames != 1500 || s.CPUSPer1000 != 4 {
			t.Errorf("server write phase = %g CPU-s, %g frames, %g per 1,000; want 6, 1500, 4", s.WriteCPUS, s.WriteFrames, s.CPUSPer1000)
		}
		p := s.IdlePerSocket
		if s.IdleSockets != 50 || p == nil || p.RSSBytes != 20480 || p.HeapInuseBytes != 8192 || p.StackInuseBytes != 16384 || p.Goroutines != 4 {
			t.Errorf("idle per socket = %+v over %d sockets", p, s.IdleSockets)
		}
		if s.Before.ElapsedS > s.Idle.ElapsedS || s.Idle.ElapsedS > s.End.ElapsedS {
			t.Errorf("readings out of time order: %g, %g, %g", s.Before.ElapsedS, s.Idle.ElapsedS, s.End.ElapsedS)
		}
		if a.gcs.Load() != 2 || b.gcs.Load() != 2 || a.read.Load() != 3 {
			t.Errorf("GCs %d and %d, readings %d; want a GC before each memory reading (2) and 3 readings", a.gcs.Load(), b.gcs.Load(), a.read.Load())
		}
		var sum strings.Builder
		if err := r.WriteSummary(&sum); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"server cost", "4.0000 CPU-s per 1,000 deliveries", "server idle per socket", "RSS 20.0 KiB", "generator CPU-s"} {
			if !strings.Contains(sum.String(), want) {
				t.Errorf("summary lacks %q:\n%s", want, sum.String())
			}
		}
	})

	t.Run("UnreachableMetrics", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{})
		cfg := testConfig(targets)
		cfg.Subscribers, cfg.Writes = 5, 3
		cfg.MetricsURLs = []string{"http://127.0.0.1:1"}
		r := mustRun(t, cfg)
		if r.Cost.Server == nil || r.Cost.Server.Before != nil || r.Cost.Server.CPUSPer1000 != 0 {
			t.Errorf("server cost = %+v, want readings missing", r.Cost.Server)
		}
		kinds := map[string]bool{}
		for _, e := range r.Errors {
			kinds[e.Kind] = true
		}
		if !kinds["metrics before connect"] || !kinds["metrics idle"] || !kinds["metrics end"] {
			t.Errorf("errors = %+v, want one per failed reading", r.Errors)
		}
		if !r.OK() {
			t.Errorf("problems %v: unreadable metrics are reported, not a failed run", r.Problems())
		}
	})

	t.Run("IdleWithoutWrites", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{})
		cfg := testConfig(targets)
		cfg.NoWrites, cfg.Writes = true, 30 // NoWrites wins
		cfg.Idle = 300 * time.Millisecond
		m := newFakeMetrics(t, func(k int) string {
			return metricsPage(float64(k), 1e6+float64(min(k, 1))*50*4096, 1e6, 1e6, 5+float64(min(k, 1))*100, 0)
		})
		cfg.MetricsURLs = []string{m.URL}
		r := mustRun(t, cfg)
		if !r.OK() {
			t.Fatalf("problems: %v (errors %+v)", r.Problems(), r.Errors)
		}
		if w, d := r.Writes, r.Deliveries; w.Planned != 0 || w.Attempted != 0 || d.Expected != 0 || d.Received != 0 || r.Latency.Count != 0 {
			t.Errorf("writes %+v, deliveries %+v; want none", w, d)
		}
		if r.Config.IdleS != 0.3 || r.Connections.Established != 50 {
			t.Errorf("config idle %gs, %d connected; want 0.3 s and 50", r.Config.IdleS, r.Connections.Established)
		}
		idle := 0
		for _, s := range r.Timeline {
			if s.Phase == "idle" {
				idle++
			}
		}
		if idle == 0 {
			t.Errorf("timeline %+v has no idle samples", r.Timeline)
		}
		if p := r.Cost.Server.IdlePerSocket; p == nil || p.RSSBytes != 4096 || p.Goroutines != 2 {
			t.Errorf("idle per socket = %+v, want 4 KiB and 2 goroutines", p)
		}
		if r.Cost.Server.CPUSPer1000 != 0 || r.Cost.Generator == nil || r.Cost.Generator.CPUSPer1000 != 0 {
			t.Errorf("cost = %+v; no deliveries means no per-delivery figures", r.Cost)
		}
	})

	t.Run("MissingDelivery", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{dropEvent: 7})
		cfg := testConfig(targets)
		cfg.DrainTimeout = 300 * time.Millisecond
		cfg.WriteConcurrency = 1 // publish order = write order, so event 7 is write 6
		r := mustRun(t, cfg)
		if r.OK() {
			t.Fatal("OK() = true with a dropped delivery")
		}
		if d := r.Deliveries; d.Missing != 1 || d.Duplicates != 0 || d.Received != 1499 || !d.DrainTimedOut {
			t.Errorf("deliveries = %+v, want exactly 1 missing after a timed-out drain", d)
		}
		if len(r.MissingWrites) != 1 || r.MissingWrites[0].Seq != 6 || r.MissingWrites[0].Received != 49 {
			t.Errorf("missing writes = %+v, want write 6 received by 49", r.MissingWrites)
		}
		if d := r.Deliveries; d.OffsetGaps != 1 || d.OutOfOrder != 0 {
			t.Errorf("offset gaps %d, out of order %d; want the one gap the dropped event left", d.OffsetGaps, d.OutOfOrder)
		}
		if got := problemKinds(r); len(got) != 1 || got[0] != "missing" {
			t.Errorf("problems = %v, want [missing]", got)
		}
	})

	t.Run("DuplicatedDelivery", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{dupEvent: 3})
		r := mustRun(t, testConfig(targets))
		if r.OK() {
			t.Fatal("OK() = true with a duplicated delivery")
		}
		if d := r.Deliveries; d.Duplicates != 1 || d.Missing != 0 || d.Received != 1500 {
			t.Errorf("deliveries = %+v, want exactly 1 duplicate", d)
		}
		if got := problemKinds(r); len(got) != 1 || got[0] != "duplicates" {
			t.Errorf("problems = %v, want [duplicates]", got)
		}
	})

	t.Run("OutOfOrderDelivery", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{swapEvent: 4})
		cfg := testConfig(targets)
		cfg.WriteConcurrency = 1 // event 5 exists when event 4 is held back
		r := mustRun(t, cfg)
		if d := r.Deliveries; d.OutOfOrder != 1 || d.OffsetGaps != 1 || d.Missing != 0 || d.Duplicates != 0 {
			t.Errorf("deliveries = %+v, want 1 out of order (and the gap before it), nothing missing", d)
		}
		if got := problemKinds(r); len(got) != 1 || got[0] != "order" {
			t.Errorf("problems = %v, want [order]", got)
		}
	})

	t.Run("FailedWrites", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{failMethod: "PATCH"})
		r := mustRun(t, testConfig(targets))
		if w := r.Writes; w.OK != 21 || w.Failed != 9 || w.ByKind["patch"].Failed != 9 {
			t.Errorf("writes = %+v, want 9 failed patches", w)
		}
		if d := r.Deliveries; d.Expected != 21*50 || d.Missing != 0 {
			t.Errorf("deliveries = %+v, want only successful writes expected", d)
		}
		if len(r.Errors) != 1 || r.Errors[0].Kind != "write patch" || r.Errors[0].Count != 9 ||
			!strings.Contains(r.Errors[0].Message, "status 500") {
			t.Errorf("errors = %+v, want one group of 9 patch failures", r.Errors)
		}
		if got := problemKinds(r); len(got) != 1 || got[0] != "writes" {
			t.Errorf("problems = %v, want [writes]", got)
		}
	})

	t.Run("RejectedSubscribers", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{})
		cfg := testConfig(targets)
		cfg.SubscriberToken = "not-a-jwt"
		r := mustRun(t, cfg)
		if c := r.Connections; c.Failed != 50 || c.Established != 0 {
			t.Errorf("connections = %+v, want all 50 failed", c)
		}
		if len(r.Errors) != 1 || r.Errors[0].Kind != "connect" || r.Errors[0].Count != 50 ||
			!strings.Contains(r.Errors[0].Message, "401") {
			t.Errorf("errors = %+v, want one group of 50 refusals with status 401", r.Errors)
		}
		if r.OK() {
			t.Error("OK() = true with failed connections")
		}
	})

	t.Run("RateLimited", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{})
		cfg := testConfig(targets)
		cfg.Subscribers, cfg.Writes, cfg.Rate = 5, 20, 200
		r := mustRun(t, cfg)
		// The 20th write is due 19/200 s after the first.
		if r.Writes.DurationS < 0.095 {
			t.Errorf("20 writes at 200/s took %.3fs, want >= 0.095s", r.Writes.DurationS)
		}
		if !r.OK() {
			t.Errorf("problems: %v", r.Problems())
		}
	})

	t.Run("SourceAddress", func(t *testing.T) {
		f, targets := fakeCluster(t, 1, fakeOptions{})
		cfg := testConfig(targets)
		cfg.Subscribers, cfg.Writes = 10, 6
		cfg.SourceAddrs = []string{"127.0.0.2"}
		r := mustRun(t, cfg)
		if !r.OK() {
			t.Fatalf("problems: %v (errors %+v)", r.Problems(), r.Errors)
		}
		hosts := f.remoteHosts()
		if len(hosts) != 1 || hosts["127.0.0.2"] != 16 {
			t.Errorf("server saw remote hosts %v, want 16 requests all from 127.0.0.2", hosts)
		}
	})

	t.Run("Interrupted", func(t *testing.T) {
		_, targets := fakeCluster(t, 1, fakeOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r, err := loadtest.Run(ctx, testConfig(targets))
		if err == nil || r == nil || r.Aborted == "" || r.OK() {
			t.Fatalf("Run with a cancelled context = %v, %v; want a partial, aborted report and an error", r, err)
		}
	})
}

func TestRunRefusesBadConfig(t *testing.T) {
	good := func() loadtest.Config {
		return loadtest.Config{Targets: []string{"http://127.0.0.1:1"}, JWTSecret: testSecret}
	}
	tests := []struct {
		name string
		edit func(*loadtest.Config)
		want string
	}{
		{"NoTargets", func(c *loadtest.Config) { c.Targets = nil }, "no targets"},
		{"TargetWithoutScheme", func(c *loadtest.Config) { c.Targets = []string{"127.0.0.1:8080"} }, "target"},
		{"TargetWebSocketScheme", func(c *loadtest.Config) { c.Targets = []string{"ws://127.0.0.1:8080"} }, "want http(s)"},
		{"NoTokensNoSecret", func(c *loadtest.Config) { c.JWTSecret = "" }, "no tokens"},
		{"ShortSecret", func(c *loadtest.Config) { c.JWTSecret = "short" }, "at least 32"},
		{"NegativeSubscribers", func(c *loadtest.Config) { c.Subscribers = -1 }, "subscribers -1"},
		{"NegativeWrites", func(c *loadtest.Config) { c.Writes = -1 }, "writes -1"},
		{"NegativeRate", func(c *loadtest.Config) { c.Rate = -5 }, "rate -5"},
		{"NegativeDrain", func(c *loadtest.Config) { c.DrainTimeout = -time.Second }, "drain timeout"},
		{"BadSourceAddr", func(c *loadtest.Config) { c.SourceAddrs = []string{"localhost"} }, "source address"},
		{"BadMetricsURL", func(c *loadtest.Config) { c.MetricsURLs = []string{"127.0.0.1:9090"} }, "metrics URL"},
		{"NegativeIdle", func(c *loadtest.Config) { c.Idle = -time.Second }, "idle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.edit(&cfg)
			r, err := loadtest.Run(runCtx(t), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || r != nil {
				t.Fatalf("Run = %v, %v; want nil and an error containing %q", r, err, tt.want)
			}
		})
	}
}
