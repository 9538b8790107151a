package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// exposition is a /metrics page as client_golang writes it, with the
// awkward parts of the format: HELP and TYPE lines, label values with
// spaces, braces and escaped quotes, a timestamp, several series of one
// name and names that share a prefix with a wanted one.
const exposition = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_cpu_seconds_total_extra 1000
# HELP process_resident_memory_bytes Resident memory size in bytes.
process_resident_memory_bytes 2.5e+07
go_memstats_heap_inuse_bytes 4.194304e+06
go_memstats_stack_inuse_bytes 524288 1700000000000
go_goroutines 12

# HELP bookhub_ws_frames_delivered_total Frames written to WebSocket clients.
bookhub_ws_frames_delivered_total{instance_name="node a"} 100
bookhub_ws_frames_delivered_total{instance_name="we{ir}d \"quoted\" \\ name",x="1"} 50
bookhub_ws_frames_delivered_total_bucket{le="+Inf"} 999
go_gc_duration_seconds{quantile="0.5"} NaN
`

func TestParseMetrics(t *testing.T) {
	got, err := parseMetrics(strings.NewReader(exposition), scrapedMetrics[:])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		metricCPU: 12.5, metricRSS: 25e6, metricHeapInuse: 4194304, metricStackInuse: 524288,
		metricGoroutines: 12, metricDelivered: 150,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %g, want %g", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("parsed %v, want only the wanted names", got)
	}

	refusals := []struct {
		name, page, want string
	}{
		{"MissingMetric", "process_cpu_seconds_total 1\n", "no process_resident_memory_bytes"},
		{"NotANumber", "go_goroutines twelve\n", "value"},
		{"NotFinite", "go_goroutines +Inf\n", "not finite"},
		{"UnterminatedLabels", `go_goroutines{a="}" 1` + "\n", "unterminated"},
		{"NoValue", "go_goroutines\n", "want a value"},
		{"ExtraFields", "go_goroutines 1 2 3\n", "want a value"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseMetrics(strings.NewReader(tt.page), scrapedMetrics[:])
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestScraper(t *testing.T) {
	var gcs, scrapes atomic.Int32
	var accept atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		scrapes.Add(1)
		accept.Store(r.Header.Get("Accept"))
		_, _ = w.Write([]byte(exposition))
	})
	mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			gcs.Add(1)
		}
		_, _ = w.Write([]byte("profile bytes"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)

	// One base URL without /metrics, one with it: both name the same page.
	sc := newScraper(Config{MetricsURLs: []string{srv.URL, srv.URL + "/metrics"}, MetricsGC: true, RequestTimeout: 5 * time.Second})
	t.Cleanup(sc.close)
	m, err := sc.sample(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if m.CPUSeconds != 25 || m.FramesDelivered != 300 || m.Goroutines != 24 {
		t.Errorf("sample = %+v, want the sums over both instances", m)
	}
	if gcs.Load() != 2 || scrapes.Load() != 2 {
		t.Errorf("%d GCs and %d scrapes, want 2 and 2", gcs.Load(), scrapes.Load())
	}
	if a, _ := accept.Load().(string); !strings.HasPrefix(a, "text/plain") {
		t.Errorf("Accept = %q, want the text format", a)
	}
	if _, err := sc.sample(ctx, false); err != nil || gcs.Load() != 2 {
		t.Errorf("a reading without gc: err %v, %d GCs; want no new GC", err, gcs.Load())
	}

	t.Run("FailingInstanceFailsTheReading", func(t *testing.T) {
		down := newScraper(Config{MetricsURLs: []string{srv.URL, srv.URL + "/nothing-here"}, RequestTimeout: 5 * time.Second})
		t.Cleanup(down.close)
		if _, err := down.sample(ctx, false); err == nil || !strings.Contains(err.Error(), "status 404") {
			t.Fatalf("error = %v, want a 404 from the second instance", err)
		}
	})
}

func TestCostOf(t *testing.T) {
	u := func(cpu time.Duration) processUsage {
		return processUsage{CPU: cpu, MaxRSSBytes: 64 << 20, OK: true}
	}
	before := &MetricsSample{CPUSeconds: 10, RSSBytes: 100e6, HeapInuseBytes: 10e6, StackInuseBytes: 1e6, Goroutines: 20}
	idle := &MetricsSample{CPUSeconds: 14, RSSBytes: 100e6 + 1000*32768, HeapInuseBytes: 10e6 + 1000*16384,
		StackInuseBytes: 1e6 + 1000*8192, Goroutines: 2020, FramesDelivered: 2000}
	end := &MetricsSample{CPUSeconds: 34, FramesDelivered: 2000 + 1e6}
	c := costOf(costInput{
		start: u(0), idle: u(2 * time.Second), end: u(7 * time.Second), final: u(8 * time.Second), deliveries: 1e6,
		metricsURLs: []string{"a", "b"}, before: before, atIdle: idle, at: end, idleSockets: 1000,
	})
	g := c.Generator
	if g == nil || g.CPUS != 8 || g.ConnectCPUS != 2 || g.WriteCPUS != 5 || g.CPUSPer1000 != 0.005 || g.MaxRSSBytes != 64<<20 {
		t.Errorf("generator = %+v, want 8 s total, 2 connect, 5 write, 0.005 per 1,000", g)
	}
	s := c.Server
	if s == nil || s.WriteCPUS != 20 || s.WriteFrames != 1e6 || s.CPUSPer1000 != 0.02 {
		t.Fatalf("server = %+v, want 20 CPU-s over 1e6 frames", s)
	}
	if p := s.IdlePerSocket; p == nil || p.RSSBytes != 32768 || p.HeapInuseBytes != 16384 || p.StackInuseBytes != 8192 || p.Goroutines != 2 {
		t.Errorf("idle per socket = %+v", p)
	}
	lines := strings.Join(c.lines(), "\n")
	for _, want := range []string{"server cost\t20.00 CPU-s for 1000000 frames\t0.0200 CPU-s per 1,000 deliveries",
		"RSS 32.0 KiB", "goroutines 2.00", "generator CPU-s\t8.00", "0.0050 generator CPU-s per 1,000 deliveries", "max RSS 64.0 MiB"} {
		if !strings.Contains(lines, want) {
			t.Errorf("summary lines lack %q:\n%s", want, lines)
		}
	}

	t.Run("MissingReadingsLeaveFiguresOut", func(t *testing.T) {
		c := costOf(costInput{start: u(0), idle: u(1), end: processUsage{}, final: u(2),
			metricsURLs: []string{"a"}, before: before, atIdle: nil, at: end, idleSockets: 1000})
		if c.Generator != nil {
			t.Errorf("generator = %+v without every usage reading", c.Generator)
		}
		if s := c.Server; s == nil || s.CPUSPer1000 != 0 || s.IdlePerSocket != nil {
			t.Errorf("server = %+v, want no figures without the idle reading", s)
		}
		if !strings.Contains(strings.Join(c.lines(), "\n"), "incomplete") {
			t.Error("summary does not say the server figures are incomplete")
		}
	})
	t.Run("NoMetricsURLs", func(t *testing.T) {
		if c := costOf(costInput{start: u(0), idle: u(1), end: u(2), final: u(3)}); c.Server != nil || c.Generator.CPUSPer1000 != 0 {
			t.Errorf("cost = %+v, want no server part and no ratio without deliveries", c)
		}
	})
}

func TestReadUsage(t *testing.T) {
	first, err := readUsage()
	if err != nil {
		t.Skipf("no getrusage here: %v", err)
	}
	if !first.OK || first.MaxRSSBytes < 1<<20 {
		t.Fatalf("usage = %+v, want OK and a resident set of at least 1 MiB", first)
	}
	// Spin until the kernel has charged at least 20 ms more CPU to us;
	// the deadline only guards against a clock that never moves.
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 1 << 16 {
			x += i ^ x>>3
		}
		now, err := readUsage()
		if err != nil {
			t.Fatal(err)
		}
		if now.CPU-first.CPU >= 20*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %s over 10 s of spinning", now.CPU)
		}
	}
	_ = x
}

func TestFmtBytes(t *testing.T) {
	for in, want := range map[float64]string{0: "0 B", 1000: "1000 B", 1536: "1.5 KiB", 32.8 * 1024: "32.8 KiB",
		3 << 20: "3.0 MiB", -2048: "-2.0 KiB", 5 << 40: "5120.0 GiB"} {
		if got := fmtBytes(in); got != want {
			t.Errorf("fmtBytes(%g) = %q, want %q", in, got, want)
		}
	}
}
