package loadtest_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/loadtest"
)

// costedReport is a report with every figure Compare reads.
func costedReport(id string, scale float64) *loadtest.Report {
	return &loadtest.Report{
		RunID:       id,
		Config:      loadtest.ReportConfig{Targets: []string{"a", "b"}, Subscribers: 10000, Writes: 100, Rate: 2},
		Connections: loadtest.ConnectionStats{Established: 10000, EstablishS: 2 * scale},
		Deliveries:  loadtest.DeliveryStats{PerSecond: 20000 / scale},
		Latency:     loadtest.LatencyStats{Count: 1e6, P50Ms: 40 * scale, P95Ms: 80 * scale, P99Ms: 100 * scale, MaxMs: 200 * scale},
		Cost: loadtest.CostStats{
			Generator: &loadtest.GeneratorCost{Deliveries: 1e6, CPUSPer1000: 0.004 * scale},
			Server: &loadtest.ServerCost{
				WriteFrames: 1e6, CPUSPer1000: 0.02 * scale, IdleSockets: 10000,
				IdlePerSocket: &loadtest.PerSocket{RSSBytes: 32768 * scale, HeapInuseBytes: 16384 * scale, StackInuseBytes: 8192 * scale},
			},
		},
	}
}

func TestCompare(t *testing.T) {
	rows := loadtest.Compare(costedReport("old", 1), costedReport("new", 0.5))
	want := map[string][2]float64{
		"connect time":                         {2, 1},
		"latency p50":                          {40, 20},
		"latency p95":                          {80, 40},
		"latency p99":                          {100, 50},
		"latency max":                          {200, 100},
		"deliveries/s":                         {20000, 40000},
		"server CPU-s per 1,000 deliveries":    {0.02, 0.01},
		"generator CPU-s per 1,000 deliveries": {0.004, 0.002},
		"idle RSS per socket":                  {32, 16},
		"idle heap per socket":                 {16, 8},
		"idle stack per socket":                {8, 4},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for _, c := range rows {
		w, ok := want[c.Metric]
		if !ok || !c.OldOK || !c.NewOK || c.Old != w[0] || c.New != w[1] {
			t.Errorf("row %+v, want old %g new %g", c, w[0], w[1])
			continue
		}
		d, ok := c.DeltaPct()
		wantDelta := -50.0
		if c.Metric == "deliveries/s" {
			wantDelta = 100
		}
		if !ok || d != wantDelta {
			t.Errorf("%s: delta %g%% (ok %v), want %g%%", c.Metric, d, ok, wantDelta)
		}
	}
}

func TestCompareMissingFigures(t *testing.T) {
	// An idle run has no latency, throughput or per-delivery cost; a run
	// without metrics URLs has no server figures.
	idle := costedReport("idle", 1)
	idle.Latency, idle.Deliveries = loadtest.LatencyStats{}, loadtest.DeliveryStats{}
	idle.Cost.Generator.Deliveries = 0
	idle.Cost.Server.WriteFrames = 0
	bare := costedReport("bare", 1)
	bare.Cost = loadtest.CostStats{}
	for _, c := range loadtest.Compare(idle, bare) {
		wantOld := strings.HasPrefix(c.Metric, "connect") || strings.HasPrefix(c.Metric, "idle")
		wantNew := !strings.Contains(c.Metric, "CPU-s") && !strings.HasPrefix(c.Metric, "idle")
		if c.OldOK != wantOld || c.NewOK != wantNew {
			t.Errorf("%s: old ok %v new ok %v, want %v %v", c.Metric, c.OldOK, c.NewOK, wantOld, wantNew)
		}
		if _, ok := c.DeltaPct(); ok != (wantOld && wantNew) {
			t.Errorf("%s: a delta with a side missing", c.Metric)
		}
	}
	if _, ok := (loadtest.Comparison{Old: 0, New: 3, OldOK: true, NewOK: true}).DeltaPct(); ok {
		t.Error("a delta from zero")
	}
}

func TestWriteComparison(t *testing.T) {
	var b bytes.Buffer
	if err := loadtest.WriteComparison(&b, costedReport("aaaa", 1), costedReport("bbbb", 0.5)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"old  aaaa", "new  bbbb", "metric", "delta", "latency p99 (ms)", "100.00", "50.00",
		"-50.0%", "+100.0%", "server CPU-s per 1,000 deliveries", "0.0200", "idle RSS per socket (KiB)"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "differ in shape") {
		t.Errorf("runs of one shape flagged as different:\n%s", out)
	}

	other := costedReport("cccc", 1)
	other.Config.Subscribers = 1000
	b.Reset()
	if err := loadtest.WriteComparison(&b, costedReport("aaaa", 1), other); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "differ in shape") {
		t.Errorf("runs of different sizes not flagged:\n%s", b.String())
	}
}

func TestReadReport(t *testing.T) {
	t.Run("RoundTrip", func(t *testing.T) {
		var b bytes.Buffer
		if err := costedReport("rt", 1).WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		r, err := loadtest.ReadReport(&b)
		if err != nil {
			t.Fatal(err)
		}
		if r.RunID != "rt" || r.Cost.Server == nil || r.Cost.Server.IdlePerSocket.RSSBytes != 32768 || r.Cost.Generator.CPUSPer1000 != 0.004 {
			t.Errorf("read back %+v", r)
		}
	})
	t.Run("ReportFromBeforeCosts", func(t *testing.T) {
		// A report kept in the repository from before the cost figures.
		f, err := os.Open("results/10k-subscribers-4wps.json")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		r, err := loadtest.ReadReport(f)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := loadtest.WriteComparison(&b, r, costedReport("new", 1)); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.Contains(out, "2ebf22ee") || !strings.Contains(out, "latency p99 (ms)") {
			t.Errorf("comparison with the old report:\n%s", out)
		}
		for _, c := range loadtest.Compare(r, costedReport("new", 1)) {
			if strings.Contains(c.Metric, "CPU-s") || strings.HasPrefix(c.Metric, "idle") {
				if c.OldOK {
					t.Errorf("%s: the old report has no such figure", c.Metric)
				}
			} else if !c.OldOK {
				t.Errorf("%s: missing from the old report", c.Metric)
			}
		}
	})
	t.Run("NotJSON", func(t *testing.T) {
		if _, err := loadtest.ReadReport(strings.NewReader("<html>")); err == nil {
			t.Error("ReadReport accepted HTML")
		}
	})
}
