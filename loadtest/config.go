// Package loadtest drives a bookhub deployment the way its users do: many
// WebSocket subscribers on the "books" channel and a stream of REST writes,
// and it checks that every write reaches every subscriber exactly once,
// measuring how long that takes.
//
// It deliberately imports nothing from bookhub: it speaks HTTP and WebSocket
// like any client, so it tests the wire protocol rather than the code.
package loadtest

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by Run to zero fields of Config.
const (
	DefaultSubscribers        = 100
	DefaultWrites             = 100
	DefaultWriteConcurrency   = 8
	DefaultConnectConcurrency = 64
	DefaultDrainTimeout       = 10 * time.Second
	DefaultConnectTimeout     = 10 * time.Second
	DefaultRequestTimeout     = 10 * time.Second
	DefaultSampleInterval     = time.Second
	DefaultTokenTTL           = 2 * time.Hour
)

// maxAddrRange caps ParseAddrList ranges; a typo like 127.0.0.1-127.1.0.1
// should be an error, not 65k dialers.
const maxAddrRange = 1024

// Config describes one load-test run. Zero fields take the defaults above.
type Config struct {
	// Targets are the base URLs of the bookhub instances, e.g.
	// http://127.0.0.1:8080. Subscribers and writes are spread over them
	// round-robin, so with several instances most deliveries cross the bus.
	Targets []string

	// SubscriberToken authenticates every subscriber and WriterToken every
	// REST write. When empty they are minted from JWTSecret: a viewer token
	// per subscriber (sub "loadtest-<n>") and an admin token for the writer
	// (admin, because the run also deletes).
	SubscriberToken, WriterToken string
	// JWTSecret is the deployment's BOOKHUB_JWT_SECRET (>= 32 bytes); it is
	// only needed when a token is missing and never appears in the Report.
	JWTSecret string

	// Subscribers is how many WebSocket connections to open (default 100).
	Subscribers int
	// Writes is how many REST writes to make (default 100): creates, then
	// PUTs and PATCHes of those books, and DELETEs of every third book.
	Writes int
	// NoWrites makes a run without writes (Writes is then ignored): connect,
	// hold Idle, read the metrics and close, to measure idle sockets.
	NoWrites bool
	// Rate is the target writes per second; 0 means as fast as
	// WriteConcurrency allows.
	Rate float64
	// WriteConcurrency is how many writes may be in flight (default 8).
	WriteConcurrency int

	// SourceAddrs are local IPs to bind outgoing connections to, e.g.
	// 127.0.0.1..127.0.0.8. Each local IP has its own ~28k ephemeral ports,
	// so spreading over several lets one machine open far more sockets to
	// one server port. Empty means let the OS choose.
	SourceAddrs []string
	// ConnectConcurrency bounds simultaneous WebSocket handshakes
	// (default 64), so a large run does not look like a SYN flood.
	ConnectConcurrency int
	// ConnectTimeout bounds one subscriber's dial plus the wait for its
	// "subscribed" frame (default 10s).
	ConnectTimeout time.Duration
	// RequestTimeout bounds one REST write (default 10s).
	RequestTimeout time.Duration

	// Idle is how long to hold the connected subscribers before the idle
	// metrics reading and the first write (default 0: none).
	Idle time.Duration

	// MetricsURLs are the base URLs of the instances' metrics listeners,
	// e.g. http://127.0.0.1:19091 (/metrics is appended unless present).
	// When set, the run reads their CPU, memory, goroutine and delivered
	// frame counts before connecting, at idle and at the end, and reports
	// the servers' cost next to its own (Report.Cost.Server).
	MetricsURLs []string
	// MetricsGC makes each instance collect garbage (GET
	// /debug/pprof/heap?gc=1 on its metrics listener, where bookhub serves
	// pprof) before the memory readings, so per-socket heap figures count
	// live memory rather than connect-phase garbage.
	MetricsGC bool

	// DrainTimeout is how long to wait after the last write for deliveries
	// still in flight (default 10s). The wait ends early once every
	// expected delivery has arrived.
	DrainTimeout time.Duration
	// SampleInterval is the period of the timeline and of live progress
	// (default 1s).
	SampleInterval time.Duration

	// Progress receives one status line per SampleInterval; nil means none.
	Progress io.Writer
}

// withDefaults returns cfg with zero fields filled in, or an error naming
// the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Targets) == 0 {
		return cfg, errors.New("config: no targets")
	}
	for i, t := range cfg.Targets {
		u, err := url.Parse(t)
		if err != nil {
			return cfg, fmt.Errorf("config: target %q: %w", t, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("config: target %q: want http(s)://host:port", t)
		}
		cfg.Targets[i] = strings.TrimRight(t, "/")
	}
	if cfg.SubscriberToken == "" || cfg.WriterToken == "" {
		if cfg.JWTSecret == "" {
			return cfg, errors.New("config: no tokens and no JWT secret to mint them")
		}
		if len(cfg.JWTSecret) < MinSecretLen {
			return cfg, fmt.Errorf("config: JWT secret is %d bytes, want at least %d", len(cfg.JWTSecret), MinSecretLen)
		}
	}
	type intField struct {
		name string
		p    *int
		def  int
	}
	for _, f := range []intField{
		{"subscribers", &cfg.Subscribers, DefaultSubscribers},
		{"writes", &cfg.Writes, DefaultWrites},
		{"write concurrency", &cfg.WriteConcurrency, DefaultWriteConcurrency},
		{"connect concurrency", &cfg.ConnectConcurrency, DefaultConnectConcurrency},
	} {
		if *f.p < 0 {
			return cfg, fmt.Errorf("config: %s %d is negative", f.name, *f.p)
		}
		if *f.p == 0 {
			*f.p = f.def
		}
	}
	if cfg.NoWrites {
		cfg.Writes = 0
	}
	for _, m := range cfg.MetricsURLs {
		u, err := url.Parse(m)
		if err != nil {
			return cfg, fmt.Errorf("config: metrics URL %q: %w", m, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("config: metrics URL %q: want http(s)://host:port", m)
		}
	}
	if cfg.Rate < 0 {
		return cfg, fmt.Errorf("config: rate %g is negative", cfg.Rate)
	}
	type durField struct {
		name string
		p    *time.Duration
		def  time.Duration
	}
	for _, f := range []durField{
		{"idle", &cfg.Idle, 0},
		{"drain timeout", &cfg.DrainTimeout, DefaultDrainTimeout},
		{"connect timeout", &cfg.ConnectTimeout, DefaultConnectTimeout},
		{"request timeout", &cfg.RequestTimeout, DefaultRequestTimeout},
		{"sample interval", &cfg.SampleInterval, DefaultSampleInterval},
	} {
		if *f.p < 0 {
			return cfg, fmt.Errorf("config: %s %s is negative", f.name, *f.p)
		}
		if *f.p == 0 {
			*f.p = f.def
		}
	}
	for _, a := range cfg.SourceAddrs {
		if _, err := netip.ParseAddr(a); err != nil {
			return cfg, fmt.Errorf("config: source address: %w", err)
		}
	}
	return cfg, nil
}

// ParseAddrList parses a comma-separated list of IP addresses and inclusive
// ranges, e.g. "127.0.0.1-127.0.0.16" or "127.0.0.1,127.0.0.5-127.0.0.6",
// into individual addresses in order. Ranges must run upwards within one
// address family and hold at most 1024 addresses. An empty string yields
// no addresses.
func ParseAddrList(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("address list %q: %w", part, err)
		}
		if !isRange {
			out = append(out, first.String())
			continue
		}
		last, err := netip.ParseAddr(strings.TrimSpace(hi))
		if err != nil {
			return nil, fmt.Errorf("address range %q: %w", part, err)
		}
		if first.Is4() != last.Is4() {
			return nil, fmt.Errorf("address range %q mixes IPv4 and IPv6", part)
		}
		if last.Less(first) {
			return nil, fmt.Errorf("address range %q runs downwards", part)
		}
		n := 0
		for a := first; ; a = a.Next() {
			if n++; n > maxAddrRange {
				return nil, fmt.Errorf("address range %q holds more than %d addresses", part, maxAddrRange)
			}
			out = append(out, a.String())
			if a == last {
				break
			}
		}
	}
	return out, nil
}
