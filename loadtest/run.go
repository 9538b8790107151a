package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Run performs one load test: it connects cfg.Subscribers WebSocket
// subscribers, holds them idle for cfg.Idle, makes cfg.Writes REST writes,
// waits up to cfg.DrainTimeout for the deliveries still in flight, closes
// the subscribers and reports. Along the way it records its own CPU time
// and, with cfg.MetricsURLs, the servers' (see CostStats).
//
// Operational failures (refused connections, failed writes, missing
// deliveries, unreadable metrics) are part of the Report, not errors: check
// Report.OK. Run returns an error only for an invalid Config, or together
// with a partial Report when ctx ends before the run does.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	usageStart := usageNow()
	cfg.Targets = append([]string(nil), cfg.Targets...)
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	subTokens, writerToken, err := tokens(cfg)
	if err != nil {
		return nil, err
	}
	var idb [4]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, fmt.Errorf("run id: %w", err)
	}
	runID := hex.EncodeToString(idb[:])

	started := time.Now()
	t := newTracker(runID, cfg.Writes, started)
	p := newPool(ctx, cfg, t, subTokens)
	w := newWriter(cfg, t, writerToken)
	defer w.client.CloseIdleConnections()
	sc := newScraper(cfg)
	defer sc.close()
	cost := costInput{start: usageStart, metricsURLs: cfg.MetricsURLs}

	s := &sampler{cfg: cfg, t: t, p: p, w: w}
	s.phase.Store("connect")
	sctx, stopSampler := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() { defer sampling.Done(); s.loop(sctx) }()

	cost.before = scrape(ctx, sc, t, "before connect", true)
	p.connectAll(ctx)
	connectDur := time.Since(started)
	t.perWrite.Store(p.established.Load())
	if cfg.Idle > 0 {
		s.phase.Store("idle")
		hold(ctx, cfg.Idle)
	}
	cost.idleSockets = p.connected.Load()
	cost.atIdle = scrape(ctx, sc, t, "idle", true)
	cost.idle = usageNow()

	s.phase.Store("write")
	writeStart := time.Now()
	w.run(ctx)
	writeDur := time.Since(writeStart)

	s.phase.Store("drain")
	drainStart := time.Now()
	timedOut := drain(ctx, t, w.ok.Load(), cfg.DrainTimeout)
	drainDur := time.Since(drainStart)
	cost.end = usageNow()
	cost.deliveries = t.delivered()
	cost.at = scrape(ctx, sc, t, "end", false)

	s.phase.Store("close")
	p.closeAll()
	stopSampler()
	sampling.Wait()
	s.sample() // the final point, so even a sub-second run has a timeline
	cost.final = usageNow()

	r := buildReport(reportInput{
		cfg: cfg, runID: runID, started: started, t: t, p: p, w: w, timeline: s.timeline,
		connectDur: connectDur, writeDur: writeDur, writeStart: writeStart,
		drainDur: drainDur, drainTimedOut: timedOut, cost: costOf(cost),
	})
	if err := ctx.Err(); err != nil {
		r.Aborted = err.Error()
		return r, fmt.Errorf("load test interrupted: %w", err)
	}
	return r, nil
}

// usageNow reads the generator's resource use; where that is impossible
// the zero value (OK false) leaves the generator's cost out of the report.
func usageNow() processUsage {
	u, err := readUsage()
	if err != nil {
		return processUsage{}
	}
	return u
}

// scrape takes one metrics reading, or returns nil (after logging why) when
// there is no scraper or an instance did not answer. gc asks for a garbage
// collection first (with Config.MetricsGC), for the memory readings.
func scrape(ctx context.Context, sc *scraper, t *tracker, phase string, gc bool) *MetricsSample {
	if sc == nil || ctx.Err() != nil {
		return nil
	}
	m, err := sc.sample(ctx, gc)
	if err != nil {
		t.errs.addErr("metrics "+phase, err)
		return nil
	}
	m.ElapsedS = time.Since(t.runStart).Seconds()
	return &m
}

// hold waits for d or until ctx ends: the idle phase.
func hold(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// tokens returns the subscriber tokens (one shared, or one minted per
// subscriber) and the writer token.
func tokens(cfg Config) ([]string, string, error) {
	subs := []string{cfg.SubscriberToken}
	if cfg.SubscriberToken == "" {
		subs = make([]string, cfg.Subscribers)
		for i := range subs {
			tok, err := MintToken(cfg.JWTSecret, "loadtest-"+strconv.Itoa(i), "viewer", DefaultTokenTTL)
			if err != nil {
				return nil, "", fmt.Errorf("subscriber token: %w", err)
			}
			subs[i] = tok
		}
	}
	wt := cfg.WriterToken
	if wt == "" {
		var err error
		wt, err = MintToken(cfg.JWTSecret, "loadtest-writer", "admin", DefaultTokenTTL)
		if err != nil {
			return nil, "", fmt.Errorf("writer token: %w", err)
		}
	}
	return subs, wt, nil
}

// drain waits until every successful write has reached every subscriber,
// or timeout passes, or ctx ends. It wakes on the tracker's progress signal
// rather than polling. It reports whether it gave up.
func drain(ctx context.Context, t *tracker, okWrites int64, timeout time.Duration) bool {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for t.completeOK.Load() < okWrites {
		select {
		case <-t.progress:
		case <-tm.C:
			return true
		case <-ctx.Done():
			return true
		}
	}
	return false
}

// sampler records the timeline and prints live progress.
type sampler struct {
	cfg   Config
	t     *tracker
	p     *pool
	w     *writer
	phase atomic.Value // string

	timeline  []Sample
	prev      []uint64
	prevCount uint64
	prevAt    time.Duration
}

func (s *sampler) loop(ctx context.Context) {
	tk := time.NewTicker(s.cfg.SampleInterval)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			s.sample()
		case <-ctx.Done():
			return
		}
	}
}

// sample appends one timeline point. Percentiles are of the interval since
// the previous point: the difference of two cumulative histogram snapshots.
func (s *sampler) sample() {
	at := time.Since(s.t.runStart)
	cur := make([]uint64, bucketCount)
	for i := range s.t.lat {
		s.t.lat[i].snapshot(cur)
	}
	var n uint64
	diff := make([]uint64, bucketCount)
	for i := range cur {
		d := cur[i]
		if s.prev != nil {
			d -= s.prev[i]
		}
		diff[i] = d
		n += d
	}
	total := s.prevCount + n
	pt := Sample{
		ElapsedS:      at.Seconds(),
		Phase:         s.phase.Load().(string),
		Connected:     s.p.connected.Load(),
		ConnectFailed: s.p.failed.Load(),
		WritesOK:      s.w.ok.Load(),
		WritesFailed:  s.w.failed.Load(),
		Deliveries:    total,
	}
	if dt := (at - s.prevAt).Seconds(); dt > 0 {
		pt.DeliveriesPerS = float64(n) / dt
	}
	if n > 0 {
		pt.P50Ms = nsToMs(quantileOf(diff, n, 0.50))
		pt.P99Ms = nsToMs(quantileOf(diff, n, 0.99))
	}
	if total > 0 {
		pt.P99SoFarMs = nsToMs(quantileOf(cur, total, 0.99))
	}
	s.prev, s.prevCount, s.prevAt = cur, total, at
	s.timeline = append(s.timeline, pt)
	if s.cfg.Progress != nil {
		fmt.Fprintf(s.cfg.Progress, "[%6.1fs] %-7s connected %d/%d (failed %d)  writes %d/%d (failed %d)  deliveries %d (%.0f/s)  p99 %.2fms\n",
			pt.ElapsedS, pt.Phase, pt.Connected, s.cfg.Subscribers, pt.ConnectFailed,
			pt.WritesOK+pt.WritesFailed, s.cfg.Writes, pt.WritesFailed,
			pt.Deliveries, pt.DeliveriesPerS, pt.P99SoFarMs)
	}
}

func nsToMs(ns uint64) float64 { return float64(ns) / 1e6 }
