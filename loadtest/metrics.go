package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Prometheus series the run reads from every instance. Each is summed
// over its label sets (bookhub labels its own with instance_name).
const (
	metricCPU        = "process_cpu_seconds_total"
	metricRSS        = "process_resident_memory_bytes"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricStackInuse = "go_memstats_stack_inuse_bytes"
	metricGoroutines = "go_goroutines"
	metricDelivered  = "bookhub_ws_frames_delivered_total"
)

// scrapedMetrics lists the series above, in the order errors name them.
var scrapedMetrics = [...]string{metricCPU, metricRSS, metricHeapInuse, metricStackInuse, metricGoroutines, metricDelivered}

// MetricsSample is one reading of the instances' metrics, summed over every
// instance in Config.MetricsURLs.
type MetricsSample struct {
	// ElapsedS is when the reading was taken, in seconds since the run began.
	ElapsedS        float64 `json:"t_s"`
	CPUSeconds      float64 `json:"process_cpu_seconds"`
	RSSBytes        float64 `json:"process_resident_memory_bytes"`
	HeapInuseBytes  float64 `json:"go_memstats_heap_inuse_bytes"`
	StackInuseBytes float64 `json:"go_memstats_stack_inuse_bytes"`
	Goroutines      float64 `json:"go_goroutines"`
	FramesDelivered float64 `json:"frames_delivered"`
}

func (m *MetricsSample) add(v map[string]float64) {
	m.CPUSeconds += v[metricCPU]
	m.RSSBytes += v[metricRSS]
	m.HeapInuseBytes += v[metricHeapInuse]
	m.StackInuseBytes += v[metricStackInuse]
	m.Goroutines += v[metricGoroutines]
	m.FramesDelivered += v[metricDelivered]
}

// metricsPath is where a metrics base URL serves the text exposition format.
func metricsPath(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/metrics") {
		return base
	}
	return base + "/metrics"
}

// scraper reads the instances' metrics endpoints.
type scraper struct {
	urls    []string
	client  *http.Client
	timeout time.Duration
	// forceGC asks each instance for a heap profile with gc=1 before a
	// memory reading, so heap figures count live memory, not garbage
	// left over from the connect phase.
	forceGC bool
}

func newScraper(cfg Config) *scraper {
	if len(cfg.MetricsURLs) == 0 {
		return nil
	}
	return &scraper{
		urls: cfg.MetricsURLs,
		// Uncompressed: gzip would cost both sides CPU inside the phases measured.
		client:  &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, DisableCompression: true}},
		timeout: cfg.RequestTimeout,
		forceGC: cfg.MetricsGC,
	}
}

// sample reads every instance and sums the readings. It fails as a whole
// when one instance fails: a sum over some of them would compare a
// different set of processes between two readings.
func (s *scraper) sample(ctx context.Context, gc bool) (MetricsSample, error) {
	var sum MetricsSample
	for _, u := range s.urls {
		if gc && s.forceGC {
			if err := s.get(ctx, strings.TrimSuffix(metricsPath(u), "/metrics")+"/debug/pprof/heap?gc=1", nil); err != nil {
				return sum, fmt.Errorf("force GC: %w", err)
			}
		}
		var v map[string]float64
		err := s.get(ctx, metricsPath(u), func(r io.Reader) error {
			var err error
			v, err = parseMetrics(r, scrapedMetrics[:])
			return err
		})
		if err != nil {
			return sum, err
		}
		sum.add(v)
	}
	return sum, nil
}

// get fetches url and hands the body to read (nil: discard it).
func (s *scraper) get(ctx context.Context, url string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("metrics request: %w", err)
	}
	// The text format: a server that speaks OpenMetrics or protobuf falls
	// back to it when asked this way.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body := io.LimitReader(resp.Body, 64<<20)
	if read == nil {
		_, err = io.Copy(io.Discard, body)
	} else {
		err = read(body)
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

func (s *scraper) close() {
	if s != nil {
		s.client.CloseIdleConnections()
	}
}

// parseMetrics reads the Prometheus text exposition format and returns, for
// each of the wanted metric names, the sum of its samples over all label
// sets. A wanted name without a sample is an error, as is a malformed
// sample line of a wanted name; other lines are not looked at closely.
func parseMetrics(r io.Reader, want []string) (map[string]float64, error) {
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w] = true
	}
	out := make(map[string]float64, len(want))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		name, rest := metricName(text)
		if !wanted[name] {
			continue
		}
		v, err := sampleValue(rest)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d (%s): %w", line, name, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	for _, w := range want {
		if _, ok := out[w]; !ok {
			return nil, fmt.Errorf("metrics: no %s", w)
		}
	}
	return out, nil
}

// metricName splits a sample line into its metric name and the rest
// (labels, value, timestamp).
func metricName(line string) (string, string) {
	i := 0
	for i < len(line) {
		c := line[i]
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			i++
			continue
		}
		break
	}
	return line[:i], line[i:]
}

// sampleValue parses `{labels} value [timestamp]` or ` value [timestamp]`.
// Label values are quoted strings that may hold spaces, braces and escaped
// quotes, so the label set is skipped quote-aware.
func sampleValue(rest string) (float64, error) {
	if strings.HasPrefix(rest, "{") {
		end, inQuote := -1, false
		for i := 1; i < len(rest) && end < 0; i++ {
			switch c := rest[i]; {
			case inQuote && c == '\\':
				i++ // the escaped character
			case c == '"':
				inQuote = !inQuote
			case !inQuote && c == '}':
				end = i
			}
		}
		if end < 0 {
			return 0, errors.New("unterminated label set")
		}
		rest = rest[end+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || len(fields) > 2 {
		return 0, fmt.Errorf("want a value and an optional timestamp, got %q", rest)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, fmt.Errorf("value: %w", err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("value %s is not finite", fields[0])
	}
	return v, nil
}
