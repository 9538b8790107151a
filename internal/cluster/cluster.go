// Package cluster runs a real bookhub cluster for tests: N bookhub child
// processes (the binary built from this checkout) on spare loopback ports,
// sharing one fresh MySQL database and one throwaway Redis, behind a real
// nginx started with the repository's own load-balancer template
// (deploy/nginx.conf.tmpl). Tests kill and restart instances with SIGKILL,
// stop and start Redis, and talk to the cluster through nginx like any
// client, with Subscriber (a WebSocket client that resumes from its last
// offset) and Writer (REST writes spread over nginx and the instances).
//
// Every process belongs to the test that started it and stops when it
// ends; a failed test gets the tail of every child's log in its output. It
// is test-only code, imported by _test files only.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
)

// Environment variables read by Start.
const (
	// EnvBinary names a prebuilt bookhub binary to run instead of building
	// one (to soak a release build).
	EnvBinary = "BOOKHUB_TEST_BINARY"
	// EnvKeepLogs names a folder that receives every child's log when the
	// test ends, pass or fail (the test's own folder is removed).
	EnvKeepLogs = "BOOKHUB_TEST_KEEP_LOGS"
)

// Options configure Start. Zero values take the documented defaults.
type Options struct {
	// Instances is how many bookhub processes run. Default 3.
	Instances int
	// Binary is a bookhub binary to run; default: $BOOKHUB_TEST_BINARY
	// when set (to soak a release build), else Build(t).
	Binary string
	// LogLevel of the instances. Default "info".
	LogLevel string
	// Env adds settings (config.Env* names) to every instance.
	Env map[string]string
	// ReadyTimeout bounds an instance's start, up to a 200 from /readyz.
	// Default 60s (a race-enabled binary on a busy machine is slow).
	ReadyTimeout time.Duration
}

// Cluster is a running set of instances behind nginx.
type Cluster struct {
	t         testing.TB
	opts      Options
	bin       string
	dir       string
	secret    string
	dbURL     string
	tokens    *auth.Tokens
	Redis     *testenv.RedisServer
	LB        *Nginx
	Instances []*Instance
}

// Start builds bookhub (unless Options.Binary is set), starts a throwaway
// Redis, the instances on a fresh MySQL database and nginx in front of
// them, and waits until every instance is ready directly and through
// nginx. Without MySQL, redis-server or nginx the test is skipped (or
// fails under BOOKHUB_REQUIRE_SERVICES=1). Everything stops when t ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Instances <= 0 {
		opts.Instances = 3
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	nginxBin := nginxBinary(t)
	c := &Cluster{t: t, opts: opts, dir: t.TempDir(), secret: randomHex(32)}
	c.dbURL = testenv.MySQL(t)
	c.Redis = testenv.StartRedis(t)
	var err error
	if c.tokens, err = auth.New([]byte(c.secret), auth.Options{}); err != nil {
		t.Fatal(err)
	}
	c.bin = opts.Binary
	if c.bin == "" {
		c.bin = os.Getenv(EnvBinary)
	}
	if c.bin == "" {
		c.bin = Build(t)
	}
	t.Cleanup(c.report) // registered before the processes: runs after they stopped

	ports := testenv.FreePorts(t, 2*opts.Instances+1)
	for i := range opts.Instances {
		c.Instances = append(c.Instances, &Instance{
			Name:        fmt.Sprintf("node-%d", i+1),
			Addr:        "127.0.0.1:" + ports[2*i],
			MetricsAddr: "127.0.0.1:" + ports[2*i+1],
			c:           c,
		})
	}
	t.Cleanup(c.stopInstances)
	// The first instance creates the schema alone; the others then start
	// together.
	if err := c.Instances[0].Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Instances))
	for i, in := range c.Instances[1:] {
		wg.Go(func() { errs[i] = in.Start() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	servers := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		servers[i] = in.Addr
	}
	if c.LB, err = startNginx(nginxBin, filepath.Join(c.dir, "nginx"), "127.0.0.1:"+ports[len(ports)-1], servers); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.LB.stop(); err != nil {
			t.Error(err)
		}
	})
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// URL is the base URL of the load balancer: what clients use.
func (c *Cluster) URL() string { return "http://" + c.LB.Addr }

// Token returns a token for sub with role, valid for an hour.
func (c *Cluster) Token(sub string, role auth.Role) string {
	s, err := c.tokens.Issue(sub, role, time.Hour)
	if err != nil {
		panic(err) // only a non-positive ttl fails
	}
	return s
}

// Secret is the cluster's JWT secret.
func (c *Cluster) Secret() string { return c.secret }

// WaitReady waits until every running instance answers /readyz with 200,
// directly and through nginx.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, in := range c.Instances {
		if in.Running() {
			if err := poll(ctx, in.URL()+"/readyz", nil); err != nil {
				return fmt.Errorf("%s not ready: %w", in.Name, err)
			}
		}
	}
	if err := poll(ctx, c.URL()+"/readyz", nil); err != nil {
		return fmt.Errorf("not ready through nginx: %w", err)
	}
	return nil
}

// Position is a place in the "books" stream.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Position reads the current position of "books" over REST through nginx
// (the list endpoint reports it).
func (c *Cluster) Position(ctx context.Context) (Position, error) {
	return ReadPosition(ctx, http.DefaultClient, c.URL())
}

// ReadPosition reads the position of "books" from base's list endpoint.
func ReadPosition(ctx context.Context, client *http.Client, base string) (Position, error) {
	var list struct {
		Position Position `json:"position"`
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/books?limit=1", nil)
	if err != nil {
		return Position{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Position{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Position{}, fmt.Errorf("GET %s/api/v1/books: %s", base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return Position{}, fmt.Errorf("GET %s/api/v1/books: %w", base, err)
	}
	if list.Position.Epoch == "" {
		return Position{}, fmt.Errorf("GET %s/api/v1/books: no position in the answer", base)
	}
	return list.Position, nil
}

// env is an instance's environment: the test's own minus every BOOKHUB_
// setting (a developer's shell must not leak into the cluster), plus the
// cluster's.
func (c *Cluster) env(in *Instance, dataDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BOOKHUB_") {
			env = append(env, kv)
		}
	}
	vars := map[string]string{
		config.EnvAddr:        in.Addr,
		config.EnvMetricsAddr: in.MetricsAddr,
		config.EnvDatabaseURL: c.dbURL,
		config.EnvRedisURL:    c.Redis.URL(),
		config.EnvJWTSecret:   c.secret,
		config.EnvInstance:    in.Name,
		config.EnvLogLevel:    c.opts.LogLevel,
		config.EnvDataDir:     dataDir,
	}
	for k, v := range c.opts.Env {
		vars[k] = v
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// stopInstances ends every running instance with SIGTERM, as a deploy
// would, and reports one that does not exit cleanly.
func (c *Cluster) stopInstances() {
	var wg sync.WaitGroup
	for _, in := range c.Instances {
		wg.Go(func() {
			if err := in.Stop(); err != nil {
				c.t.Errorf("%v\n%s", err, tail(in.lastLog(), 30))
			}
		})
	}
	wg.Wait()
}

// Markers of a broken child in its log: the race detector's report and a
// Go crash. A killed child leaves no exit status, so its log is the only
// witness.
var crashMarkers = []string{"WARNING: DATA RACE", "panic: ", "fatal error: "}

// report runs after every process stopped: it fails the test on a data
// race or a crash in any child's log, and on failure shows the tail of
// every log.
func (c *Cluster) report() {
	for _, in := range c.Instances {
		for _, log := range in.logPaths() {
			if hits := scanLog(log, crashMarkers...); len(hits) > 0 {
				c.t.Errorf("%s: %s:\n%s", in.Name, filepath.Base(log), tail(log, 80))
			}
		}
	}
	if c.LB != nil {
		if hits := scanLog(c.LB.errorLog(), "[emerg]", "[alert]", "[crit]"); len(hits) > 0 {
			c.t.Errorf("nginx logged:\n    %s", strings.Join(hits, "\n    "))
		}
	}
	c.keepLogs()
	if !c.t.Failed() {
		return
	}
	for _, in := range c.Instances {
		for _, log := range in.logPaths() {
			c.t.Logf("%s log %s:\n%s", in.Name, filepath.Base(log), tail(log, 60))
		}
	}
	if c.LB != nil {
		c.t.Logf("nginx error log:\n%s", tail(c.LB.errorLog(), 40))
	}
}

// keepLogs copies every log to $BOOKHUB_TEST_KEEP_LOGS/<test name>/.
func (c *Cluster) keepLogs() {
	root := os.Getenv(EnvKeepLogs)
	if root == "" {
		return
	}
	dst := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(c.t.Name()))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		c.t.Errorf("%s: %v", EnvKeepLogs, err)
		return
	}
	files := map[string]string{} // source -> name in dst
	for _, in := range c.Instances {
		for _, p := range in.logPaths() {
			files[p] = filepath.Base(p)
		}
	}
	if c.LB != nil {
		for _, p := range []string{c.LB.errorLog(), c.LB.AccessLog(), filepath.Join(c.LB.Dir, "nginx.conf")} {
			files[p] = "nginx-" + filepath.Base(p)
		}
	}
	for src, name := range files {
		if b, err := os.ReadFile(src); err == nil {
			_ = os.WriteFile(filepath.Join(dst, name), b, 0o644)
		}
	}
	c.t.Logf("logs kept in %s", dst)
}

// Instance is one bookhub process. Its addresses stay the same across
// restarts, so nginx's upstream list stays valid. Methods are safe for
// concurrent use and return errors instead of failing the test, so faults
// can be injected from any goroutine.
type Instance struct {
	Name        string
	Addr        string // host:port of REST and WebSocket
	MetricsAddr string // host:port of /metrics
	c           *Cluster

	mu   sync.Mutex
	proc *process
	logs []string // one file per start
}

// URL is the instance's own base URL, bypassing nginx.
func (in *Instance) URL() string { return "http://" + in.Addr }

// Start runs a new process of the instance and waits until /readyz
// answers 200. Starting a running instance is an error.
func (in *Instance) Start() error {
	in.mu.Lock()
	if in.proc != nil && !in.proc.exited() {
		in.mu.Unlock()
		return fmt.Errorf("%s is already running", in.Name)
	}
	n := len(in.logs)
	log := filepath.Join(in.c.dir, fmt.Sprintf("%s.%d.log", in.Name, n))
	data := filepath.Join(in.c.dir, in.Name+".data")
	p, err := func() (*process, error) {
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		return startProcess(fmt.Sprintf("%s (start %d)", in.Name, n), log, in.c.env(in, data), in.c.bin, "serve")
	}()
	if err == nil {
		in.proc, in.logs = p, append(in.logs, log)
	}
	in.mu.Unlock()
	if err != nil {
		return err
	}
	return p.waitHTTP(in.URL()+"/readyz", in.c.opts.ReadyTimeout)
}

// Kill ends the instance with SIGKILL, a crash: sockets drop without a
// close frame and in-flight requests get no answer.
func (in *Instance) Kill() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc == nil || in.proc.exited() {
		return fmt.Errorf("%s is not running", in.Name)
	}
	in.proc.kill()
	return nil
}

// Stop ends the instance gracefully with SIGTERM and reports an unclean
// exit. Stopping a stopped instance does nothing.
func (in *Instance) Stop() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc == nil || in.proc.exited() {
		return nil
	}
	return in.proc.terminate(syscall.SIGTERM, 30*time.Second)
}

// Running reports whether the instance's process is alive.
func (in *Instance) Running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.proc != nil && !in.proc.exited()
}

// Log is everything every process of the instance logged so far.
func (in *Instance) Log() string {
	var b strings.Builder
	for _, p := range in.logPaths() {
		data, _ := os.ReadFile(p)
		b.Write(data)
	}
	return b.String()
}

func (in *Instance) logPaths() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.logs...)
}

func (in *Instance) lastLog() string {
	logs := in.logPaths()
	if len(logs) == 0 {
		return ""
	}
	return logs[len(logs)-1]
}

// get200 GETs url once and wants a 200.
func get200(ctx context.Context, url string) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
