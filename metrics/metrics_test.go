package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bookhub/bookhub/hub"
	"github.com/bookhub/bookhub/metrics"
)

var _ hub.Observer = (*metrics.Metrics)(nil)

func TestObserverCounts(t *testing.T) {
	m := metrics.New("node-a")
	m.Connected()
	m.Connected()
	m.Disconnected(hub.ReasonSlowConsumer)
	m.Subscribed("books")
	m.Subscribed("books:42")
	m.Subscribed("books:7")
	m.Unsubscribed("books:7")
	m.Published("books", 10, 300*time.Microsecond)
	m.Delivered(10)
	m.SlowConsumer()
	m.EventPublished()
	m.EventReceived()
	m.BusError("publish")
	m.ObserveRequest("GET", "/api/v1/books/:id", 200, 5*time.Millisecond)
	m.ObserveRequest("POST", "/api/v1/books", 503, 5*time.Millisecond)
	m.StoreError()
	m.BusError("subscribe")
	m.ObserveRequest("GET", "", 404, time.Millisecond)

	want := `
# HELP bookhub_ws_connections Open WebSocket connections.
# TYPE bookhub_ws_connections gauge
bookhub_ws_connections{instance_name="node-a"} 1
# HELP bookhub_ws_subscriptions Active channel subscriptions by channel kind (all = the books firehose, book = one book).
# TYPE bookhub_ws_subscriptions gauge
bookhub_ws_subscriptions{instance_name="node-a",kind="all"} 1
bookhub_ws_subscriptions{instance_name="node-a",kind="book"} 1
# HELP bookhub_ws_frames_delivered_total Frames written to WebSocket clients.
# TYPE bookhub_ws_frames_delivered_total counter
bookhub_ws_frames_delivered_total{instance_name="node-a"} 10
# HELP bookhub_ws_slow_consumer_disconnects_total Clients disconnected because their send queue overflowed.
# TYPE bookhub_ws_slow_consumer_disconnects_total counter
bookhub_ws_slow_consumer_disconnects_total{instance_name="node-a"} 1
# HELP bookhub_events_published_total Events this instance published on the bus after a committed write.
# TYPE bookhub_events_published_total counter
bookhub_events_published_total{instance_name="node-a"} 1
# HELP bookhub_events_received_total Events this instance received from the bus.
# TYPE bookhub_events_received_total counter
bookhub_events_received_total{instance_name="node-a"} 1
# HELP bookhub_store_errors_total Database operations that failed for a server-side reason (unreachable, driver error); not found, conflicts and stale versions are not errors.
# TYPE bookhub_store_errors_total counter
bookhub_store_errors_total{instance_name="node-a"} 1
`
	names := []string{"bookhub_ws_connections", "bookhub_ws_subscriptions", "bookhub_ws_frames_delivered_total",
		"bookhub_ws_slow_consumer_disconnects_total", "bookhub_events_published_total", "bookhub_events_received_total",
		"bookhub_store_errors_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.Registry(), "bookhub_http_request_duration_seconds"); n != 3 {
		t.Fatalf("request duration series = %d, want 3 (unmatched routes share one)", n)
	}
	if n := testutil.CollectAndCount(m.Registry(), "bookhub_ws_fanout_seconds"); n != 1 {
		t.Fatalf("fanout series = %d", n)
	}
}

func TestHandlerServesExpositionFormat(t *testing.T) {
	m := metrics.New("node-a")
	m.Connected()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"bookhub_ws_connections", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestInstancesDoNotShareState: two instances in one process (as in the
// cluster tests) keep separate registries.
func TestInstancesDoNotShareState(t *testing.T) {
	a, b := metrics.New("a"), metrics.New("b")
	a.Connected()
	if got := gauge(t, b); got != 0 {
		t.Fatalf("b sees a's connection: %v", got)
	}
}

func gauge(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "bookhub_ws_connections" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no bookhub_ws_connections")
	return 0
}
