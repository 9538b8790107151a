package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// ReadReport decodes a report written by WriteJSON. Reports from before a
// field existed decode with that field empty, and Compare leaves it out.
func ReadReport(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	return &rep, nil
}

// Comparison is one row of Compare: a metric in two reports, in Unit (""
// for a plain number). A side
// without the figure (no deliveries, no server metrics, an older report)
// has OK false.
type Comparison struct {
	Metric   string
	Unit     string
	Old, New float64
	OldOK    bool
	NewOK    bool
}

// DeltaPct is (New - Old) / Old in percent; ok is false when either side is
// missing or Old is zero.
func (c Comparison) DeltaPct() (float64, bool) {
	if !c.OldOK || !c.NewOK || c.Old == 0 {
		return 0, false
	}
	return (c.New - c.Old) / math.Abs(c.Old) * 100, true
}

// Compare lines up the headline figures of two runs: connect time, delivery
// latency, throughput, CPU per 1,000 deliveries on both sides and the
// servers' memory per idle socket.
func Compare(oldR, newR *Report) []Comparison {
	type metric struct {
		name, unit string
		get        func(*Report) (float64, bool)
	}
	latency := func(pick func(LatencyStats) float64) func(*Report) (float64, bool) {
		return func(r *Report) (float64, bool) { return pick(r.Latency), r.Latency.Count > 0 }
	}
	server := func(pick func(*ServerCost) (float64, bool)) func(*Report) (float64, bool) {
		return func(r *Report) (float64, bool) {
			if r.Cost.Server == nil {
				return 0, false
			}
			return pick(r.Cost.Server)
		}
	}
	idle := func(pick func(*PerSocket) float64) func(*Report) (float64, bool) {
		return server(func(s *ServerCost) (float64, bool) {
			if s.IdlePerSocket == nil {
				return 0, false
			}
			return pick(s.IdlePerSocket) / 1024, true
		})
	}
	metrics := []metric{
		{"connect time", "s", func(r *Report) (float64, bool) {
			return r.Connections.EstablishS, r.Connections.Established > 0
		}},
		{"latency p50", "ms", latency(func(l LatencyStats) float64 { return l.P50Ms })},
		{"latency p95", "ms", latency(func(l LatencyStats) float64 { return l.P95Ms })},
		{"latency p99", "ms", latency(func(l LatencyStats) float64 { return l.P99Ms })},
		{"latency max", "ms", latency(func(l LatencyStats) float64 { return l.MaxMs })},
		{"deliveries/s", "", func(r *Report) (float64, bool) {
			return r.Deliveries.PerSecond, r.Deliveries.PerSecond > 0
		}},
		{"server CPU-s per 1,000 deliveries", "", server(func(s *ServerCost) (float64, bool) {
			return s.CPUSPer1000, s.WriteFrames > 0
		})},
		{"generator CPU-s per 1,000 deliveries", "", func(r *Report) (float64, bool) {
			g := r.Cost.Generator
			if g == nil || g.Deliveries == 0 {
				return 0, false
			}
			return g.CPUSPer1000, true
		}},
		{"idle RSS per socket", "KiB", idle(func(p *PerSocket) float64 { return p.RSSBytes })},
		{"idle heap per socket", "KiB", idle(func(p *PerSocket) float64 { return p.HeapInuseBytes })},
		{"idle stack per socket", "KiB", idle(func(p *PerSocket) float64 { return p.StackInuseBytes })},
	}
	out := make([]Comparison, 0, len(metrics))
	for _, m := range metrics {
		c := Comparison{Metric: m.name, Unit: m.unit}
		c.Old, c.OldOK = m.get(oldR)
		c.New, c.NewOK = m.get(newR)
		out = append(out, c)
	}
	return out
}

// WriteComparison prints Compare as a table in the manner of benchstat:
// metric, old, new and the change in percent ("~" where it cannot be
// computed, "-" for a figure a report lacks). Lines above the table name
// both runs and warn when their shapes differ, since then the figures do
// not measure the same thing.
func WriteComparison(w io.Writer, oldR, newR *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	shape := func(r *Report) string {
		c := r.Config
		return fmt.Sprintf("%d targets, %d subscribers, %d writes at %s/s, idle %gs",
			len(c.Targets), c.Subscribers, c.Writes, rateText(c.Rate), c.IdleS)
	}
	fmt.Fprintf(tw, "old\t%s\t%s\n", oldR.RunID, shape(oldR))
	fmt.Fprintf(tw, "new\t%s\t%s\n", newR.RunID, shape(newR))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	if shape(oldR) != shape(newR) {
		fmt.Fprintln(w, "note: the runs differ in shape; compare with care")
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "metric\told\tnew\tdelta\n")
	for _, c := range Compare(oldR, newR) {
		val := func(v float64, ok bool) string {
			if !ok {
				return "-"
			}
			return fmtValue(v)
		}
		delta := "~"
		if d, ok := c.DeltaPct(); ok {
			delta = fmt.Sprintf("%+.1f%%", d)
		}
		name := c.Metric
		if c.Unit != "" {
			name += " (" + c.Unit + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, val(c.Old, c.OldOK), val(c.New, c.NewOK), delta)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

func rateText(r float64) string {
	if r <= 0 {
		return "max"
	}
	return fmt.Sprintf("%g", r)
}

// fmtValue prints a figure with about four significant digits.
func fmtValue(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}
