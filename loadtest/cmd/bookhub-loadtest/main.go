// Command bookhub-loadtest opens many WebSocket subscribers against one or
// more bookhub instances, drives REST writes at them and checks that every
// write reaches every subscriber exactly once, reporting latency and
// throughput. It exits 1 when the run is not clean (so CI can fail on it)
// and 2 on bad usage.
//
//	bookhub-loadtest -targets http://127.0.0.1:8080,http://127.0.0.1:8081 \
//	    -subscribers 5000 -writes 2000 -rate 200 \
//	    -metrics-urls http://127.0.0.1:9090,http://127.0.0.1:9091 \
//	    -source-addrs 127.0.0.1-127.0.0.8 -html report.html -json report.json
//
// With -writes 0 and -idle it only connects and holds the sockets, to read
// the servers' memory per idle socket. The compare subcommand prints the
// headline figures of two JSON reports side by side:
//
//	bookhub-loadtest compare old.json new.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/bookhub/bookhub/loadtest"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // the run finished but was not clean
	exitUsage   = 2 // bad flags or configuration
	exitAborted = 3 // interrupted or timed out
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options is the parsed command line.
type options struct {
	cfg                         loadtest.Config
	jsonPath, htmlPath, svgPath string
	cpuProfile                  string
	timeout                     time.Duration
	allowMissing                bool
}

// parseFlags parses args; getenv supplies BOOKHUB_JWT_SECRET when
// -jwt-secret is not given, so the secret need not appear in ps output.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bookhub-loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", "http://127.0.0.1:8080", "comma-separated base URLs of the bookhub instances")
	fs.StringVar(&o.cfg.SubscriberToken, "token", "", "JWT for the subscribers (and the writer, unless -writer-token)")
	fs.StringVar(&o.cfg.WriterToken, "writer-token", "", "JWT for the REST writes; needs role admin for the deletes")
	fs.StringVar(&o.cfg.JWTSecret, "jwt-secret", "", "secret to mint tokens with when none are given (default $BOOKHUB_JWT_SECRET)")
	fs.IntVar(&o.cfg.Subscribers, "subscribers", loadtest.DefaultSubscribers, "WebSocket subscribers to open")
	fs.IntVar(&o.cfg.Writes, "writes", loadtest.DefaultWrites, "REST writes to make; 0 = none (connect, -idle, read metrics, close)")
	fs.Float64Var(&o.cfg.Rate, "rate", 0, "writes per second; 0 = as fast as -write-concurrency allows")
	fs.IntVar(&o.cfg.WriteConcurrency, "write-concurrency", loadtest.DefaultWriteConcurrency, "writes in flight at once")
	srcs := fs.String("source-addrs", "", "local IPs to dial from: a comma list and/or ranges like 127.0.0.1-127.0.0.16")
	fs.IntVar(&o.cfg.ConnectConcurrency, "connect-concurrency", loadtest.DefaultConnectConcurrency, "WebSocket handshakes in flight at once")
	fs.DurationVar(&o.cfg.DrainTimeout, "drain", loadtest.DefaultDrainTimeout, "how long to wait for deliveries after the last write")
	fs.DurationVar(&o.cfg.Idle, "idle", 0, "hold the connected subscribers this long before the idle metrics reading and the writes")
	metricsURLs := fs.String("metrics-urls", "", "comma-separated base URLs of the instances' metrics listeners, e.g. http://127.0.0.1:19091; reports the servers' CPU and memory next to the generator's")
	fs.BoolVar(&o.cfg.MetricsGC, "metrics-gc", false, "collect garbage on each instance (its /debug/pprof/heap?gc=1) before the memory readings")
	fs.StringVar(&o.jsonPath, "json", "", "write the JSON report to `FILE`")
	fs.StringVar(&o.htmlPath, "html", "", "write the HTML report to `FILE`")
	fs.StringVar(&o.svgPath, "svg", "", "write the charts as a standalone SVG to `FILE`")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile to `FILE`, to see where its per-frame cost goes")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "overall time limit; 0 = none")
	fs.BoolVar(&o.allowMissing, "allow-missing", false, "exit 0 even when deliveries are missing or duplicated")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.cfg.Targets = splitList(*targets)
	o.cfg.MetricsURLs = splitList(*metricsURLs)
	if o.cfg.Writes == 0 {
		o.cfg.NoWrites = true
	}
	if o.cfg.MetricsGC && len(o.cfg.MetricsURLs) == 0 {
		return o, errors.New("-metrics-gc needs -metrics-urls")
	}
	addrs, err := loadtest.ParseAddrList(*srcs)
	if err != nil {
		return o, fmt.Errorf("-source-addrs: %w", err)
	}
	o.cfg.SourceAddrs = addrs
	if o.cfg.JWTSecret == "" {
		o.cfg.JWTSecret = getenv("BOOKHUB_JWT_SECRET")
	}
	if o.cfg.WriterToken == "" {
		o.cfg.WriterToken = o.cfg.SubscriberToken
	}
	if o.timeout < 0 {
		return o, fmt.Errorf("-timeout %s is negative", o.timeout)
	}
	return o, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "compare" {
		return runCompare(args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "bookhub-loadtest:", err)
		return exitUsage
	}
	need := uint64(o.cfg.Subscribers + o.cfg.WriteConcurrency + 64)
	if limit, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(stderr, "bookhub-loadtest: raise open-file limit:", err)
	} else if limit > 0 && limit < need {
		fmt.Fprintf(stderr, "bookhub-loadtest: open-file limit is %d but %d subscribers need about %d; connections will fail (raise the hard limit, e.g. ulimit -Hn)\n",
			limit, o.cfg.Subscribers, need)
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	o.cfg.Progress = stderr
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "bookhub-loadtest:", err)
			return exitUsage
		}
		defer func() {
			if err := stopProfile(); err != nil {
				fmt.Fprintln(stderr, "bookhub-loadtest:", err)
			}
		}()
	}
	report, runErr := loadtest.Run(ctx, o.cfg)
	if report == nil {
		fmt.Fprintln(stderr, "bookhub-loadtest:", runErr)
		return exitUsage
	}
	code := exitOK
	if err := writeOutputs(report, o, stdout); err != nil {
		fmt.Fprintln(stderr, "bookhub-loadtest:", err)
		code = exitFailed
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "bookhub-loadtest:", runErr)
		return exitAborted
	}
	for _, p := range report.Problems() {
		if o.allowMissing && (p.Kind == "missing" || p.Kind == "duplicates") {
			continue
		}
		code = exitFailed
	}
	return code
}

// writeOutputs prints the summary and writes the requested report files.
func writeOutputs(r *loadtest.Report, o options, stdout io.Writer) error {
	if err := r.WriteSummary(stdout); err != nil {
		return err
	}
	files := []struct {
		path  string
		write func(io.Writer) error
	}{{o.jsonPath, r.WriteJSON}, {o.htmlPath, r.WriteHTML}, {o.svgPath, r.WriteSVG}}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := writeFile(f.path, f.write); err != nil {
			return err
		}
	}
	return nil
}

// startCPUProfile profiles the process into path until the returned stop
// is called.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("close CPU profile: %w", err)
		}
		return nil
	}, nil
}

func writeFile(path string, write func(io.Writer) error) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create report folder: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
