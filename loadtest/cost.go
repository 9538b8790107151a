package loadtest

import (
	"fmt"
	"time"
)

// The generator shares the machine with the servers it measures, so a run
// reports what it cost both sides: if the generator's share is large, the
// latencies it measured include time spent queueing behind itself.

// processUsage is the generator's own resource use at one moment.
type processUsage struct {
	CPU         time.Duration
	MaxRSSBytes int64
	OK          bool // false where getrusage is unavailable
}

// CostStats is what the run cost the generator and, when Config.MetricsURLs
// is set, the servers. The write phase runs from the end of the connect
// (and idle) phase to the end of the drain, so it holds every delivery.
type CostStats struct {
	// Generator is nil where the platform has no getrusage.
	Generator *GeneratorCost `json:"generator,omitempty"`
	// Server is nil without MetricsURLs.
	Server *ServerCost `json:"server,omitempty"`
}

// GeneratorCost is the generator's own CPU time (getrusage RUSAGE_SELF,
// user plus system, every thread). It is the whole process's: where Run
// shares a process with the servers it drives (as in Go tests), it
// includes theirs.
type GeneratorCost struct {
	// CPUS is the whole run, from minting tokens to closing sockets.
	CPUS float64 `json:"cpu_s"`
	// ConnectCPUS covers the connect and idle phases.
	ConnectCPUS float64 `json:"connect_cpu_s"`
	// WriteCPUS covers the write phase and the drain.
	WriteCPUS float64 `json:"write_cpu_s"`
	// Deliveries are the deliveries the generator recorded.
	Deliveries uint64 `json:"deliveries"`
	// CPUSPer1000 is WriteCPUS per 1,000 Deliveries; 0 without deliveries.
	CPUSPer1000 float64 `json:"cpu_s_per_1000_deliveries,omitempty"`
	// MaxRSSBytes is the generator's peak resident memory.
	MaxRSSBytes int64 `json:"max_rss_bytes"`
}

// ServerCost is read from the instances' Prometheus metrics, summed over
// them, at three points: before the connect phase, after it (idle, before
// the first write) and after the drain. A reading that failed is nil, and
// the figures that need it are left out; the error is in Report.Errors.
type ServerCost struct {
	MetricsURLs []string       `json:"metrics_urls"`
	Before      *MetricsSample `json:"before,omitempty"`
	Idle        *MetricsSample `json:"idle,omitempty"`
	End         *MetricsSample `json:"end,omitempty"`

	// WriteCPUS and WriteFrames are the servers' CPU seconds and delivered
	// frames in the write phase; CPUSPer1000 is their ratio per 1,000
	// frames. It includes REST handling and the MySQL and Redis clients, not
	// only the fan-out.
	WriteCPUS   float64 `json:"write_cpu_s,omitempty"`
	WriteFrames float64 `json:"write_frames,omitempty"`
	CPUSPer1000 float64 `json:"cpu_s_per_1000_deliveries,omitempty"`

	// IdleSockets is how many subscribers were connected at the idle
	// reading; IdlePerSocket is (Idle - Before) / IdleSockets.
	IdleSockets   int64      `json:"idle_sockets"`
	IdlePerSocket *PerSocket `json:"idle_per_socket,omitempty"`
}

// PerSocket is the servers' growth per subscribed socket, summed over the
// instances.
type PerSocket struct {
	RSSBytes        float64 `json:"rss_bytes"`
	HeapInuseBytes  float64 `json:"heap_inuse_bytes"`
	StackInuseBytes float64 `json:"stack_inuse_bytes"`
	Goroutines      float64 `json:"goroutines"`
}

// costInput is what Run measured at the phase boundaries.
type costInput struct {
	start, idle, end, final processUsage
	deliveries              uint64

	metricsURLs        []string
	before, atIdle, at *MetricsSample
	idleSockets        int64
}

// costOf derives the report's cost figures.
func costOf(in costInput) CostStats {
	var c CostStats
	if in.start.OK && in.idle.OK && in.end.OK && in.final.OK {
		secs := func(a, b processUsage) float64 { return (b.CPU - a.CPU).Seconds() }
		g := &GeneratorCost{
			CPUS: secs(in.start, in.final), ConnectCPUS: secs(in.start, in.idle), WriteCPUS: secs(in.idle, in.end),
			Deliveries: in.deliveries, MaxRSSBytes: in.final.MaxRSSBytes,
		}
		if in.deliveries > 0 {
			g.CPUSPer1000 = g.WriteCPUS * 1000 / float64(in.deliveries)
		}
		c.Generator = g
	}
	if len(in.metricsURLs) == 0 {
		return c
	}
	s := &ServerCost{MetricsURLs: in.metricsURLs, Before: in.before, Idle: in.atIdle, End: in.at, IdleSockets: in.idleSockets}
	if in.atIdle != nil && in.at != nil {
		s.WriteCPUS = in.at.CPUSeconds - in.atIdle.CPUSeconds
		s.WriteFrames = in.at.FramesDelivered - in.atIdle.FramesDelivered
		if s.WriteFrames > 0 {
			s.CPUSPer1000 = s.WriteCPUS * 1000 / s.WriteFrames
		}
	}
	if in.before != nil && in.atIdle != nil && in.idleSockets > 0 {
		n := float64(in.idleSockets)
		s.IdlePerSocket = &PerSocket{
			RSSBytes:        (in.atIdle.RSSBytes - in.before.RSSBytes) / n,
			HeapInuseBytes:  (in.atIdle.HeapInuseBytes - in.before.HeapInuseBytes) / n,
			StackInuseBytes: (in.atIdle.StackInuseBytes - in.before.StackInuseBytes) / n,
			Goroutines:      (in.atIdle.Goroutines - in.before.Goroutines) / n,
		}
	}
	c.Server = s
	return c
}

// lines renders the cost for the text summary, tab-separated for its table.
// The "server cost" line is what loadtest/cluster.sh picks out of it.
func (c CostStats) lines() []string {
	var out []string
	if s := c.Server; s != nil {
		if s.WriteFrames > 0 {
			out = append(out, fmt.Sprintf("server cost\t%.2f CPU-s for %.0f frames\t%.4f CPU-s per 1,000 deliveries\t(write phase, %d instances)",
				s.WriteCPUS, s.WriteFrames, s.CPUSPer1000, len(s.MetricsURLs)))
		}
		if m := s.IdlePerSocket; m != nil {
			out = append(out, fmt.Sprintf("server idle per socket\tRSS %s\theap %s\tstack %s\tgoroutines %.2f\t(%d sockets, %d instances)",
				fmtBytes(m.RSSBytes), fmtBytes(m.HeapInuseBytes), fmtBytes(m.StackInuseBytes), m.Goroutines, s.IdleSockets, len(s.MetricsURLs)))
		}
		if s.Before == nil || s.Idle == nil || s.End == nil {
			out = append(out, "server cost\tincomplete: a metrics reading failed (see errors)")
		}
	}
	if g := c.Generator; g != nil {
		line := fmt.Sprintf("generator CPU-s\t%.2f (connect %.2f, write %.2f)", g.CPUS, g.ConnectCPUS, g.WriteCPUS)
		if g.Deliveries > 0 {
			line += fmt.Sprintf("\t%.4f generator CPU-s per 1,000 deliveries", g.CPUSPer1000)
		}
		out = append(out, line+"\tmax RSS "+fmtBytes(float64(g.MaxRSSBytes)))
	}
	return out
}

// fmtBytes prints a byte count in binary units.
func fmtBytes(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if b < 1024 || u == "GiB" {
			if u == "B" {
				return fmt.Sprintf("%s%.0f B", neg, b)
			}
			return fmt.Sprintf("%s%.1f %s", neg, b, u)
		}
		b /= 1024
	}
	return "" // not reached
}
