package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a Run. Its JSON form (WriteJSON) is the
// machine-readable record CI keeps; durations are in seconds or
// milliseconds as the field names say.
type Report struct {
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
	DurationS float64   `json:"duration_s"`
	// Aborted holds the reason the run stopped early; "" when it finished.
	Aborted     string          `json:"aborted,omitempty"`
	Config      ReportConfig    `json:"config"`
	Connections ConnectionStats `json:"connections"`
	Writes      WriteStats      `json:"writes"`
	Deliveries  DeliveryStats   `json:"deliveries"`
	// Latency is end to end: from the start of a REST write to the
	// arrival of its event at one subscriber, one sample per delivery.
	Latency LatencyStats `json:"latency"`
	// Cost is the CPU the run took on the generator's side and, with
	// metrics URLs, on the servers', and the servers' memory per socket.
	Cost     CostStats    `json:"cost"`
	Timeline []Sample     `json:"timeline"`
	Errors   []ErrorCount `json:"errors"`
	// MissingWrites lists up to 20 writes that did not reach every
	// subscriber, to start debugging from.
	MissingWrites []WriteMiss `json:"missing_writes,omitempty"`
}

// ReportConfig echoes the effective configuration (after defaults), without
// tokens or secrets.
type ReportConfig struct {
	Targets            []string `json:"targets"`
	Subscribers        int      `json:"subscribers"`
	Writes             int      `json:"writes"`
	Rate               float64  `json:"rate"`
	WriteConcurrency   int      `json:"write_concurrency"`
	ConnectConcurrency int      `json:"connect_concurrency"`
	SourceAddrs        []string `json:"source_addrs,omitempty"`
	DrainTimeoutS      float64  `json:"drain_timeout_s"`
	IdleS              float64  `json:"idle_s,omitempty"`
	MetricsURLs        []string `json:"metrics_urls,omitempty"`
}

// ConnectionStats describes the subscriber connections.
type ConnectionStats struct {
	Attempted   int64 `json:"attempted"`
	Established int64 `json:"established"`
	Failed      int64 `json:"failed"`
	// Dropped counts established connections that closed before the end.
	Dropped int64 `json:"dropped"`
	// EstablishS is the wall time of the whole connect phase.
	EstablishS float64 `json:"establish_s"`
	PerSecond  float64 `json:"per_second"`
	// Handshake is the time from dial to the "subscribed" frame.
	Handshake LatencyStats `json:"handshake"`
}

// WriteStats describes the REST writes.
type WriteStats struct {
	Planned   int64 `json:"planned"`
	Attempted int64 `json:"attempted"`
	OK        int64 `json:"ok"`
	Failed    int64 `json:"failed"`
	// Skipped counts writes never made because their book's create failed.
	Skipped int64                `json:"skipped"`
	ByKind  map[string]KindStats `json:"by_kind"`
	// DurationS is the wall time of the write phase; PerSecond the rate
	// achieved over it.
	DurationS float64 `json:"duration_s"`
	PerSecond float64 `json:"per_second"`
	// Latency is the REST response time.
	Latency LatencyStats `json:"latency"`
}

// KindStats counts the writes of one kind (create, put, patch, delete).
type KindStats struct {
	OK     int64 `json:"ok"`
	Failed int64 `json:"failed"`
}

// DeliveryStats compares what the subscribers received with what they
// should have: every successful write, once, at every subscriber that was
// connected when the writes began.
type DeliveryStats struct {
	Expected int64 `json:"expected"`
	// Received counts expected deliveries that arrived (once each).
	Received   int64 `json:"received"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	// Unexpected counts this run's events that match no successful write
	// (e.g. a write whose response was lost but which committed).
	Unexpected int64 `json:"unexpected"`
	// Foreign counts events of other clients' writes, which are ignored.
	Foreign int64 `json:"foreign"`
	// OutOfOrder counts events whose offset on "books" was below the one
	// before it at the same subscriber, in the same epoch: the hub promises
	// that a subscription's offsets only grow.
	OutOfOrder int64 `json:"out_of_order"`
	// OffsetGaps counts events whose offset skipped one or more, over every
	// event on the channel, foreign ones included. Informational: the
	// missing count says whether any of this run's writes were lost.
	OffsetGaps int64 `json:"offset_gaps"`
	// PerSecond is deliveries over the span from the first write to the
	// last delivery.
	PerSecond     float64 `json:"per_second"`
	DrainS        float64 `json:"drain_s"`
	DrainTimedOut bool    `json:"drain_timed_out"`
}

// LatencyStats summarises a latency distribution in milliseconds.
// Percentiles are nearest-rank, at most 0.78% above the exact value.
type LatencyStats struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Sample is one timeline point, taken every SampleInterval.
type Sample struct {
	ElapsedS float64 `json:"t_s"`
	// Phase is connect, idle, write, drain or close.
	Phase          string  `json:"phase"`
	Connected      int64   `json:"connected"`
	ConnectFailed  int64   `json:"connect_failed"`
	WritesOK       int64   `json:"writes_ok"`
	WritesFailed   int64   `json:"writes_failed"`
	Deliveries     uint64  `json:"deliveries"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	// P50Ms and P99Ms are of the deliveries since the previous sample (0
	// when there were none); P99SoFarMs is of all deliveries so far.
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P99SoFarMs float64 `json:"p99_so_far_ms"`
}

// ErrorCount is one kind of error and how often it happened. Messages are
// normalised (no addresses or ports) so that like errors group together.
type ErrorCount struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

// WriteMiss is a successful write that did not reach every subscriber.
type WriteMiss struct {
	Seq      int    `json:"seq"`
	Op       string `json:"op"`
	BookID   int64  `json:"book_id"`
	Received int64  `json:"received"`
	Expected int64  `json:"expected"`
}

// Problem is one reason a Report is not OK. Kind is one of "aborted",
// "connections", "writes", "missing", "duplicates" or "order", so callers
// can relax some (the CLI's -allow-missing ignores missing and duplicates).
type Problem struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// Problems lists why the run is not clean; empty means OK.
func (r *Report) Problems() []Problem {
	var out []Problem
	add := func(kind, format string, args ...any) {
		out = append(out, Problem{Kind: kind, Text: fmt.Sprintf(format, args...)})
	}
	if r.Aborted != "" {
		add("aborted", "run aborted: %s", r.Aborted)
	}
	if c := r.Connections; c.Failed > 0 || c.Dropped > 0 || c.Established < int64(r.Config.Subscribers) {
		add("connections", "%d of %d subscribers connected (%d failed, %d dropped)", c.Established, r.Config.Subscribers, c.Failed, c.Dropped)
	}
	if w := r.Writes; w.Failed > 0 || w.Skipped > 0 || w.OK < w.Planned {
		add("writes", "%d of %d writes succeeded (%d failed, %d skipped)", w.OK, w.Planned, w.Failed, w.Skipped)
	}
	if d := r.Deliveries; d.Missing > 0 {
		add("missing", "%d of %d expected deliveries missing", d.Missing, d.Expected)
	}
	if d := r.Deliveries; d.Duplicates > 0 {
		add("duplicates", "%d duplicated deliveries", d.Duplicates)
	}
	if d := r.Deliveries; d.OutOfOrder > 0 {
		add("order", "%d events arrived with an offset below an earlier one", d.OutOfOrder)
	}
	return out
}

// OK reports whether every subscriber connected, every write succeeded,
// every write reached every subscriber exactly once and every subscriber
// saw offsets only grow.
func (r *Report) OK() bool { return len(r.Problems()) == 0 }

// okText says what a clean run showed.
func (r *Report) okText() string {
	if r.Writes.Planned == 0 {
		return "every subscriber connected and stayed connected (a run without writes)"
	}
	return "every write reached every subscriber exactly once"
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

// WriteSummary writes a human-readable table of the results.
func (r *Report) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	c, wr, d, l := r.Connections, r.Writes, r.Deliveries, r.Latency
	p("bookhub load test %s\t%d targets, %.1fs", r.RunID, len(r.Config.Targets), r.DurationS)
	p("connections\tattempted %d\testablished %d\tfailed %d\tdropped %d", c.Attempted, c.Established, c.Failed, c.Dropped)
	p("  connect phase\t%.2fs\t%.0f conn/s\thandshake p50 %.2fms\tp99 %.2fms", c.EstablishS, c.PerSecond, c.Handshake.P50Ms, c.Handshake.P99Ms)
	p("writes\tplanned %d\tok %d\tfailed %d\tskipped %d", wr.Planned, wr.OK, wr.Failed, wr.Skipped)
	p("  write phase\t%.2fs\t%.1f writes/s\tREST p50 %.2fms\tp99 %.2fms", wr.DurationS, wr.PerSecond, wr.Latency.P50Ms, wr.Latency.P99Ms)
	p("deliveries\texpected %d\treceived %d\tmissing %d\tduplicates %d", d.Expected, d.Received, d.Missing, d.Duplicates)
	p("  \tunexpected %d\tforeign %d\t%.0f deliveries/s\tdrain %.2fs%s", d.Unexpected, d.Foreign, d.PerSecond, d.DrainS, map[bool]string{true: " (timed out)"}[d.DrainTimedOut])
	p("  order\tout of order %d\toffset gaps %d", d.OutOfOrder, d.OffsetGaps)
	p("latency (write->delivery)\tp50 %.2fms\tp95 %.2fms\tp99 %.2fms\tmax %.2fms", l.P50Ms, l.P95Ms, l.P99Ms, l.MaxMs)
	for _, line := range r.Cost.lines() {
		p("%s", line)
	}
	for _, e := range r.Errors {
		p("error %s\t%dx\t%s", e.Kind, e.Count, e.Message)
	}
	if probs := r.Problems(); len(probs) > 0 {
		for _, pr := range probs {
			p("FAIL\t%s", pr.Text)
		}
	} else {
		p("OK\t%s", r.okText())
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// latencyOf summarises a histogram.
func latencyOf(h *Histogram) LatencyStats {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return LatencyStats{
		Count: h.Count(), MinMs: ms(h.Min()), MeanMs: ms(h.Mean()),
		P50Ms: ms(h.Quantile(0.50)), P95Ms: ms(h.Quantile(0.95)),
		P99Ms: ms(h.Quantile(0.99)), MaxMs: ms(h.Max()),
	}
}

type reportInput struct {
	cfg                  Config
	runID                string
	started, writeStart  time.Time
	t                    *tracker
	p                    *pool
	w                    *writer
	timeline             []Sample
	connectDur, writeDur time.Duration
	drainDur             time.Duration
	drainTimedOut        bool
	cost                 CostStats
}

// buildReport tallies a finished run; every goroutine that wrote the
// tracker's plain fields has exited by now.
func buildReport(in reportInput) *Report {
	cfg, t, p, w := in.cfg, in.t, in.p, in.w
	r := &Report{
		RunID: in.runID, StartedAt: in.started.UTC(), DurationS: time.Since(in.started).Seconds(),
		Config: ReportConfig{
			Targets: cfg.Targets, Subscribers: cfg.Subscribers, Writes: cfg.Writes, Rate: cfg.Rate,
			WriteConcurrency: cfg.WriteConcurrency, ConnectConcurrency: cfg.ConnectConcurrency,
			SourceAddrs: cfg.SourceAddrs, DrainTimeoutS: cfg.DrainTimeout.Seconds(),
			IdleS: cfg.Idle.Seconds(), MetricsURLs: cfg.MetricsURLs,
		},
		Timeline: in.timeline,
		Errors:   t.errs.list(),
		Cost:     in.cost,
	}
	r.Connections = ConnectionStats{
		Attempted: p.attempted.Load(), Established: p.established.Load(),
		Failed: p.failed.Load(), Dropped: p.dropped.Load(),
		EstablishS: in.connectDur.Seconds(), Handshake: latencyOf(&p.handshake),
	}
	if s := in.connectDur.Seconds(); s > 0 {
		r.Connections.PerSecond = float64(r.Connections.Established) / s
	}
	r.Writes = WriteStats{
		Planned: int64(cfg.Writes), Attempted: w.ok.Load() + w.failed.Load(),
		OK: w.ok.Load(), Failed: w.failed.Load(), Skipped: w.skipped.Load(),
		ByKind: map[string]KindStats{}, DurationS: in.writeDur.Seconds(), Latency: latencyOf(&w.latency),
	}
	for k := range opKinds {
		r.Writes.ByKind[k.String()] = KindStats{OK: w.kindOK[k].Load(), Failed: w.kindFailed[k].Load()}
	}
	if s := in.writeDur.Seconds(); s > 0 {
		r.Writes.PerSecond = float64(r.Writes.Attempted) / s
	}

	perWrite := t.perWrite.Load()
	d := DeliveryStats{DrainS: in.drainDur.Seconds(), DrainTimedOut: in.drainTimedOut}
	for i := range t.writes {
		rec := &t.writes[i]
		seen := int64(rec.seen.Load())
		switch rec.state.Load() {
		case stateOK:
			d.Expected += perWrite
			d.Received += seen
			if miss := perWrite - seen; miss > 0 {
				d.Missing += miss
				if len(r.MissingWrites) < 20 {
					r.MissingWrites = append(r.MissingWrites, WriteMiss{
						Seq: i, Op: rec.kind.String(), BookID: rec.bookID.Load(), Received: seen, Expected: perWrite,
					})
				}
			}
		default:
			d.Unexpected += seen
		}
	}
	var last int64
	for _, s := range p.subs {
		if s == nil {
			continue
		}
		d.Duplicates += s.st.duplicates
		d.Unexpected += s.st.unexpected
		d.Foreign += s.st.foreign
		d.OutOfOrder += s.st.outOfOrder
		d.OffsetGaps += s.st.gaps
		last = max(last, s.st.lastDelivery)
	}
	firstWrite := int64(in.writeStart.Sub(in.started))
	if span := time.Duration(last - firstWrite).Seconds(); span > 0 {
		d.PerSecond = float64(t.delivered()) / span
	}
	r.Deliveries = d

	var all Histogram
	for i := range t.lat {
		all.merge(&t.lat[i])
	}
	r.Latency = latencyOf(&all)
	return r
}
