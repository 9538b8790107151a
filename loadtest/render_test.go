package loadtest_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/loadtest"
)

// sampleReport builds a report by hand, with text that needs escaping.
func sampleReport() *loadtest.Report {
	r := &loadtest.Report{
		RunID:       `ab<&>"cd`,
		StartedAt:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		DurationS:   3.5,
		Config:      loadtest.ReportConfig{Targets: []string{"http://127.0.0.1:8080", "http://127.0.0.1:8081"}, Subscribers: 50, Writes: 30},
		Connections: loadtest.ConnectionStats{Attempted: 50, Established: 50},
		Writes:      loadtest.WriteStats{Planned: 30, Attempted: 30, OK: 30},
		Deliveries:  loadtest.DeliveryStats{Expected: 1500, Received: 1499, Missing: 1},
		Latency:     loadtest.LatencyStats{Count: 1499, P50Ms: 3, P95Ms: 8, P99Ms: 12, MaxMs: 20},
		Errors:      []loadtest.ErrorCount{{Kind: "connect", Message: "dial: <refused> & more", Count: 2}},
	}
	for i := range 4 {
		r.Timeline = append(r.Timeline, loadtest.Sample{
			ElapsedS: float64(i), Connected: int64(10 * i), Deliveries: uint64(500 * i),
			DeliveriesPerS: 500, P50Ms: float64(i + 1), P99Ms: float64(3 * (i + 1)),
		})
	}
	return r
}

// checkXML fails unless doc is well-formed XML, and returns its element
// names in document order.
func checkXML(t *testing.T, doc string) []string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	var names []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			names = append(names, se.Name.Local)
		}
	}
}

func count(names []string, name string) int {
	n := 0
	for _, s := range names {
		if s == name {
			n++
		}
	}
	return n
}

func TestWriteSVG(t *testing.T) {
	for _, tc := range []struct {
		name      string
		r         *loadtest.Report
		polylines int
	}{
		{"WithTimeline", sampleReport(), 5},
		{"EmptyTimeline", &loadtest.Report{RunID: "x"}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.r.WriteSVG(&b); err != nil {
				t.Fatal(err)
			}
			names := checkXML(t, b.String())
			if len(names) == 0 || names[0] != "svg" {
				t.Fatalf("root element = %v, want svg", names)
			}
			if got := count(names, "polyline"); got != tc.polylines {
				t.Errorf("%d polylines, want %d (p50, p99, connected, failed, deliveries/s)", got, tc.polylines)
			}
		})
	}
}

func TestWriteHTML(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "End-to-end latency per interval", "Subscriber connections",
		"Deliveries per second", "1 of 1500 expected deliveries missing", "dial: &lt;refused&gt; &amp; more"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Contains(page, "<refused>") || strings.Contains(page, `ab<&>`) {
		t.Error("HTML contains unescaped text")
	}
	// Every inline chart must be well-formed SVG.
	charts := 0
	for rest := page; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatal("unterminated <svg>")
		}
		names := checkXML(t, rest[i:i+j+len("</svg>")])
		if count(names, "polyline") == 0 {
			t.Error("chart without a line")
		}
		charts++
		rest = rest[i+j:]
	}
	if charts != 3 {
		t.Errorf("HTML has %d inline charts, want 3", charts)
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		RunID      string `json:"run_id"`
		Deliveries struct {
			Missing int64 `json:"missing"`
		} `json:"deliveries"`
		Latency struct {
			P99Ms float64 `json:"p99_ms"`
		} `json:"latency"`
		Timeline []map[string]any `json:"timeline"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("decode report JSON: %v", err)
	}
	if got.RunID != `ab<&>"cd` || got.Deliveries.Missing != 1 || got.Latency.P99Ms != 12 || len(got.Timeline) != 4 {
		t.Errorf("decoded %+v, want the report's values back", got)
	}
	if _, ok := got.Timeline[0]["p99_ms"]; !ok {
		t.Errorf("timeline point %v lacks p99_ms", got.Timeline[0])
	}
}

func TestWriteSummary(t *testing.T) {
	var b bytes.Buffer
	r := sampleReport()
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"missing 1", "p99 12.00ms", "FAIL", "dial: <refused> & more"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	r.Deliveries.Missing, r.Deliveries.Received = 0, 1500
	b.Reset()
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	if !r.OK() || !strings.Contains(b.String(), "OK") || strings.Contains(b.String(), "FAIL") {
		t.Errorf("clean report: OK()=%v, summary:\n%s", r.OK(), b.String())
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		edit func(*loadtest.Report)
		want string
	}{
		{"Aborted", func(r *loadtest.Report) { r.Aborted = "context canceled" }, "aborted"},
		{"FailedConnection", func(r *loadtest.Report) { r.Connections.Failed, r.Connections.Established = 1, 49 }, "connections"},
		{"DroppedConnection", func(r *loadtest.Report) { r.Connections.Dropped = 1 }, "connections"},
		{"FailedWrite", func(r *loadtest.Report) { r.Writes.Failed, r.Writes.OK = 1, 29 }, "writes"},
		{"SkippedWrite", func(r *loadtest.Report) { r.Writes.Skipped, r.Writes.OK = 2, 28 }, "writes"},
		{"Missing", func(r *loadtest.Report) { r.Deliveries.Missing = 3 }, "missing"},
		{"Duplicates", func(r *loadtest.Report) { r.Deliveries.Duplicates = 1 }, "duplicates"},
		{"OutOfOrder", func(r *loadtest.Report) { r.Deliveries.OutOfOrder = 1 }, "order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleReport()
			r.Deliveries.Missing = 0
			r.Deliveries.OffsetGaps = 3 // informational: never a problem on its own
			if !r.OK() {
				t.Fatalf("baseline not OK: %v", r.Problems())
			}
			tt.edit(r)
			p := r.Problems()
			if r.OK() || len(p) != 1 || p[0].Kind != tt.want {
				t.Fatalf("Problems() = %v, want one of kind %q", p, tt.want)
			}
		})
	}
}

func TestReportsShowCost(t *testing.T) {
	r := sampleReport()
	r.Deliveries.Missing, r.Deliveries.Received = 0, 1500
	r.Deliveries.OutOfOrder, r.Deliveries.OffsetGaps = 0, 2
	r.Cost = loadtest.CostStats{
		Generator: &loadtest.GeneratorCost{CPUS: 3.5, WriteCPUS: 3, Deliveries: 1500, CPUSPer1000: 2, MaxRSSBytes: 30 << 20},
		Server: &loadtest.ServerCost{MetricsURLs: []string{"http://m1", "http://m2"}, WriteCPUS: 6, WriteFrames: 1500, CPUSPer1000: 4,
			Before: &loadtest.MetricsSample{}, Idle: &loadtest.MetricsSample{}, End: &loadtest.MetricsSample{},
			IdleSockets: 50, IdlePerSocket: &loadtest.PerSocket{RSSBytes: 33587, HeapInuseBytes: 18841, StackInuseBytes: 12595, Goroutines: 2}},
	}
	var html, sum bytes.Buffer
	if err := r.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteSummary(&sum); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Server cost", "4.0000 CPU-s per 1,000 deliveries", "Server idle per socket", "RSS 32.8 KiB",
		"heap 18.4 KiB", "stack 12.3 KiB", "generator CPU-s 3.50", "generator CPU-s per 1,000 deliveries 2.0000", "max RSS 30.0 MiB",
		"offset gaps 2"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, want := range []string{"server cost", "6.00 CPU-s for 1500 frames", "4.0000 CPU-s per 1,000 deliveries",
		"server idle per socket", "RSS 32.8 KiB", "generator CPU-s", "2.0000 generator CPU-s per 1,000 deliveries", "offset gaps 2"} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}

	t.Run("WithoutCost", func(t *testing.T) {
		var html bytes.Buffer
		if err := sampleReport().WriteHTML(&html); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(html.String(), "Server cost") || strings.Contains(html.String(), "Generator cost") {
			t.Error("HTML shows cost rows for a report without cost figures")
		}
	})
	t.Run("RunWithoutWrites", func(t *testing.T) {
		r := sampleReport()
		r.Writes = loadtest.WriteStats{}
		r.Deliveries = loadtest.DeliveryStats{}
		var sum bytes.Buffer
		if err := r.WriteSummary(&sum); err != nil {
			t.Fatal(err)
		}
		if !r.OK() || !strings.Contains(sum.String(), "a run without writes") || strings.Contains(sum.String(), "every write reached") {
			t.Errorf("summary of a clean run without writes:\n%s", sum.String())
		}
	})
}
