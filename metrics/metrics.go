// Package metrics exports bookhub's Prometheus metrics. It owns one registry
// per instance (no global default registry), implements the hub's Observer
// and the REST request hook, and serves /metrics.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bookhub/bookhub/events"
)

// Metrics holds every bookhub collector. Its methods are safe for concurrent
// use and cheap enough for hot paths (no allocation on the fan-out path).
type Metrics struct {
	reg *prometheus.Registry

	connections   prometheus.Gauge
	subsAll       prometheus.Gauge
	subsBook      prometheus.Gauge
	published     prometheus.Counter
	received      prometheus.Counter
	delivered     prometheus.Counter
	slowConsumers prometheus.Counter
	disconnects   *prometheus.CounterVec
	fanout        prometheus.Histogram
	httpDuration  *prometheus.HistogramVec
	storeErrors   prometheus.Counter
	busErrors     *prometheus.CounterVec

	resumes       *prometheus.CounterVec
	replayed      prometheus.Counter
	conflated     prometheus.Counter
	gapsFilled    prometheus.Counter
	incomplete    prometheus.Counter
	relayed       *prometheus.CounterVec
	relayFailures prometheus.Counter
	outboxRows    prometheus.Gauge
	outboxPending prometheus.Gauge
	outboxLag     prometheus.Gauge

	cacheHits          *prometheus.CounterVec
	cacheMisses        *prometheus.CounterVec
	cacheInvalidations *prometheus.CounterVec
	cacheErrors        *prometheus.CounterVec
}

// New registers bookhub's collectors, plus Go runtime and process
// collectors, in a fresh registry labelled with the instance name.
func New(instance string) *Metrics {
	reg := prometheus.NewRegistry()
	f := wrap(prometheus.WrapRegistererWith(prometheus.Labels{"instance_name": instance}, reg))
	m := &Metrics{reg: reg}
	m.connections = f.gauge("bookhub_ws_connections", "Open WebSocket connections.")
	subs := f.gaugeVec("bookhub_ws_subscriptions", "Active channel subscriptions by channel kind (all = the books firehose, book = one book).", []string{"kind"})
	m.subsAll, m.subsBook = subs.WithLabelValues("all"), subs.WithLabelValues("book")
	m.published = f.counter("bookhub_events_published_total", "Events this instance published on the bus after a committed write.")
	m.received = f.counter("bookhub_events_received_total", "Events this instance received from the bus.")
	m.delivered = f.counter("bookhub_ws_frames_delivered_total", "Frames written to WebSocket clients.")
	m.slowConsumers = f.counter("bookhub_ws_slow_consumer_disconnects_total", "Clients disconnected because their send queue overflowed.")
	m.disconnects = f.counterVec("bookhub_ws_disconnects_total", "WebSocket disconnects by reason.", []string{"reason"})
	m.fanout = f.histogram("bookhub_ws_fanout_seconds", "Time to enqueue one frame to every subscriber of a channel.",
		[]float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1})
	m.httpDuration = f.histogramVec("bookhub_http_request_duration_seconds", "REST request durations by method, route and status.",
		prometheus.DefBuckets, []string{"method", "route", "status"})
	m.storeErrors = f.counter("bookhub_store_errors_total", "Database operations that failed for a server-side reason (unreachable, driver error); not found, conflicts and stale versions are not errors.")
	m.busErrors = f.counterVec("bookhub_bus_errors_total", "Event bus failures by operation.", []string{"op"})
	m.resumes = f.counterVec("bookhub_ws_resumes_total", "Subscribes with since, by outcome (recovered true or false).", []string{"recovered"})
	m.conflated = f.counter("bookhub_ws_conflated_frames_total", "Pending frames dropped for a newer event of the same book, on connections with the conflate policy.")
	m.replayed = f.counter("bookhub_ws_replayed_events_total", "History events replayed to resuming subscribers.")
	m.gapsFilled = f.counter("bookhub_feed_gap_filled_events_total", "Events read from history because the bus had not delivered them in order.")
	m.incomplete = f.counter("bookhub_feed_incomplete_total", "Gaps the history could not fill; subscribers were sent an incomplete frame.")
	m.relayed = f.counterVec("bookhub_outbox_published_total", "Outbox changes published on the bus, by path (handoff or sweep).", []string{"path"})
	m.relayFailures = f.counter("bookhub_outbox_publish_failures_total", "Outbox publishes that failed; the change stays in the outbox.")
	m.outboxRows = f.gauge("bookhub_outbox_rows", "Rows in the outbox: durable history plus unpublished changes.")
	m.outboxPending = f.gauge("bookhub_outbox_unpublished", "Committed changes not yet published on the bus.")
	m.outboxLag = f.gauge("bookhub_outbox_lag_seconds", "Age of the oldest unpublished change (0 when none).")
	m.cacheHits = f.counterVec("bookhub_cache_hits_total", "Book reads served from the read cache, by layer (memory, redis, or local: the in-process copies in front of redis).", []string{"layer"})
	m.cacheMisses = f.counterVec("bookhub_cache_misses_total", "Book reads a cache layer could not serve, by layer: memory and redis sent them to the database (including reads that bypassed a failing cache), local passed them on to redis.", []string{"layer"})
	m.cacheInvalidations = f.counterVec("bookhub_cache_invalidations_total", "Cache invalidations (one per write or change event), by layer.", []string{"layer"})
	m.cacheErrors = f.counterVec("bookhub_cache_errors_total", "Failed cache operations by layer and op (lookup, store, invalidate, check).", []string{"layer", "op"})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Connected implements hub.Observer.
func (m *Metrics) Connected() { m.connections.Inc() }

// Disconnected implements hub.Observer.
func (m *Metrics) Disconnected(reason string) {
	m.connections.Dec()
	m.disconnects.WithLabelValues(reason).Inc()
}

// Subscribed implements hub.Observer.
func (m *Metrics) Subscribed(channel string) { m.subsGauge(channel).Inc() }

// Unsubscribed implements hub.Observer.
func (m *Metrics) Unsubscribed(channel string) { m.subsGauge(channel).Dec() }

func (m *Metrics) subsGauge(channel string) prometheus.Gauge {
	if events.ChannelLabel(channel) == events.ChannelBooks {
		return m.subsAll
	}
	return m.subsBook
}

// Published implements hub.Observer: one frame fanned out on one channel.
func (m *Metrics) Published(_ string, _ int, d time.Duration) { m.fanout.Observe(d.Seconds()) }

// Delivered implements hub.Observer.
func (m *Metrics) Delivered(n int) { m.delivered.Add(float64(n)) }

// SlowConsumer implements hub.Observer.
func (m *Metrics) SlowConsumer() { m.slowConsumers.Inc() }

// EventPublished counts an event this instance put on the bus.
func (m *Metrics) EventPublished() { m.published.Inc() }

// EventReceived counts an event that arrived from the bus.
func (m *Metrics) EventReceived() { m.received.Inc() }

// BusError counts a bus failure by operation: "publish" (the event was
// lost), "subscribe" (a subscription was lost), "rejected" (a message on
// the bus was refused: unsigned, forged, oversized or not a valid event) or
// "receive" (an event that could not be relayed). Failures are rare, so the
// label lookup per call costs nothing.
func (m *Metrics) BusError(op string) { m.busErrors.WithLabelValues(op).Inc() }

// ObserveRequest records one REST request; it matches rest.Options.Observe.
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched" // bounded cardinality: never the raw path
	}
	m.httpDuration.WithLabelValues(method, route, strconv.Itoa(status)).Observe(d.Seconds())
}

// StoreError counts a database operation that failed server-side.
func (m *Metrics) StoreError() { m.storeErrors.Inc() }

// Resumed implements hub.Observer.
func (m *Metrics) Resumed(_ string, recovered bool) {
	m.resumes.WithLabelValues(strconv.FormatBool(recovered)).Inc()
}

// Conflated implements hub.Observer.
func (m *Metrics) Conflated(n int) { m.conflated.Add(float64(n)) }

// Replayed implements hub.Observer.
func (m *Metrics) Replayed(_ string, n int) { m.replayed.Add(float64(n)) }

// GapFilled implements feed.Observer.
func (m *Metrics) GapFilled(n int) { m.gapsFilled.Add(float64(n)) }

// StreamIncomplete implements feed.Observer.
func (m *Metrics) StreamIncomplete() { m.incomplete.Inc() }

// Relayed implements relay.Observer.
func (m *Metrics) Relayed(path string, n int) { m.relayed.WithLabelValues(path).Add(float64(n)) }

// RelayFailed implements relay.Observer.
func (m *Metrics) RelayFailed() { m.relayFailures.Inc() }

// OutboxSample is the outbox's size and lag, as relay.Observer reports it.
type OutboxSample struct {
	Rows, Unpublished int64
	Lag               time.Duration
}

// ObserveOutbox records an outbox sample.
func (m *Metrics) ObserveOutbox(s OutboxSample) {
	m.outboxRows.Set(float64(s.Rows))
	m.outboxPending.Set(float64(s.Unpublished))
	m.outboxLag.Set(s.Lag.Seconds())
}

// CacheHit counts a read served from the read cache's layer.
func (m *Metrics) CacheHit(layer string) { m.cacheHits.WithLabelValues(layer).Inc() }

// CacheMiss counts a read the cache's layer sent to the database.
func (m *Metrics) CacheMiss(layer string) { m.cacheMisses.WithLabelValues(layer).Inc() }

// CacheInvalidation counts one invalidation in the cache's layer.
func (m *Metrics) CacheInvalidation(layer string) { m.cacheInvalidations.WithLabelValues(layer).Inc() }

// CacheError counts a failed cache operation.
func (m *Metrics) CacheError(layer, op string) { m.cacheErrors.WithLabelValues(layer, op).Inc() }
