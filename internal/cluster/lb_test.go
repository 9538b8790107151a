package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/internal/cluster"
)

// TestLoadBalancedCluster runs three instances behind Debian's nginx with
// the repository's own load-balancer template: the edge behaviours the
// config promises, then Redis and an instance SIGKILLed under clients
// connected through nginx while writes continue.
func TestLoadBalancedCluster(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Instances: 3})
	t.Run("RequestIDPassedOnce", func(t *testing.T) { testRequestID(t, c) })
	t.Run("BodyTooLargeIsBookhubsProblem", func(t *testing.T) { testBodyTooLarge(t, c) })
	t.Run("AccessLogRedactsTokens", func(t *testing.T) { testAccessLog(t, c) })
	t.Run("RedisSIGKILLLosesNothing", func(t *testing.T) { testRedisSIGKILL(t, c) })
	t.Run("InstanceSIGKILLLosesNothing", func(t *testing.T) { testSIGKILL(t, c) })
}

type problemBody struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
}

func send(t *testing.T, method, url, token, requestID string, body []byte) (*http.Response, problemBody) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if requestID != "" {
		req.Header.Set("X-Request-ID", requestID)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p problemBody
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %s: %s with Content-Type %q, want a problem document: %s", method, url, resp.Status, ct, b)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s %s: problem body %q: %v", method, url, b, err)
	}
	return resp, p
}

var nginxRequestID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// The answer carries exactly one X-Request-ID, and it is the one bookhub
// logged and put in its problem body: the caller's when bookhub would
// accept it, else one nginx minted.
func testRequestID(t *testing.T, c *cluster.Cluster) {
	for _, tc := range []struct {
		name, sent string
		kept       bool
	}{
		{"OK caller's id kept", "trace-42.a_b:c", true},
		{"OK minted when missing", "", false},
		{"OK minted for a hostile id", `x"}` + "\t<script>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, p := send(t, http.MethodGet, c.URL()+"/api/v1/books/987654321", "", tc.sent, nil)
			ids := resp.Header.Values("X-Request-ID")
			if resp.StatusCode != http.StatusNotFound || len(ids) != 1 {
				t.Fatalf("%s with X-Request-ID %q, want one 404 header", resp.Status, ids)
			}
			if tc.kept && ids[0] != tc.sent || !tc.kept && !nginxRequestID.MatchString(ids[0]) {
				t.Errorf("X-Request-ID %q for %q sent (kept=%v)", ids[0], tc.sent, tc.kept)
			}
			if p.RequestID != ids[0] {
				t.Errorf("bookhub's problem says request_id %q, the header %q: nginx did not pass its id on", p.RequestID, ids[0])
			}
		})
	}
}

// nginx refuses an oversized body itself, with the problem document
// bookhub sends for one.
func testBodyTooLarge(t *testing.T, c *cluster.Cluster) {
	editor := c.Token("big", auth.RoleEditor)
	body := bytes.Repeat([]byte("a"), 1<<20+1)
	viaLB, lbProblem := send(t, http.MethodPost, c.URL()+"/api/v1/books", editor, "", body)
	direct, ownProblem := send(t, http.MethodPost, c.Instances[0].URL()+"/api/v1/books", editor, "", body)
	if viaLB.StatusCode != http.StatusRequestEntityTooLarge || direct.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("through nginx %s, direct %s; want 413 both", viaLB.Status, direct.Status)
	}
	if viaLB.Header.Get("X-Request-ID") == "" || lbProblem.RequestID != viaLB.Header.Get("X-Request-ID") {
		t.Errorf("nginx's 413 has request_id %q and header %q", lbProblem.RequestID, viaLB.Header.Get("X-Request-ID"))
	}
	lbProblem.RequestID, ownProblem.RequestID = "", ""
	if lbProblem != ownProblem {
		t.Errorf("nginx's 413 problem %+v differs from bookhub's %+v", lbProblem, ownProblem)
	}
	// At the limit, nginx buffers the body (to a file in its temporary
	// folder) and passes it on: bookhub, not nginx, judges it.
	atLimit, p := send(t, http.MethodPost, c.URL()+"/api/v1/books", editor, "", body[:1<<20])
	if atLimit.StatusCode == http.StatusRequestEntityTooLarge || atLimit.StatusCode >= 500 || p.Type == lbProblem.Type {
		t.Errorf("a body of exactly 1 MiB through nginx: %s %+v; want bookhub's own refusal of the JSON", atLimit.Status, p)
	}
}

// load is subscribers connected through nginx and a writer spreading
// writes over nginx and every instance, for one fault scenario.
type load struct {
	t       *testing.T
	c       *cluster.Cluster
	ctx     context.Context
	start   cluster.Position
	subs    []*cluster.Subscriber
	w       *cluster.Writer
	writes  int
	writing chan struct{}
	began   time.Time
	wg      sync.WaitGroup
}

// startLoad connects subscribers through nginx from the current position,
// checks that nginx spread them over every instance, and starts writes at
// rate per second. Everything stops when t ends.
func startLoad(t *testing.T, c *cluster.Cluster, subscribers, writes int, rate float64) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{t: t, c: c, ctx: ctx, writes: writes, writing: make(chan struct{}), began: time.Now()}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	var err error
	if l.start, err = c.Position(ctx); err != nil {
		t.Fatal(err)
	}
	viewer := c.Token("watcher", auth.RoleViewer)
	l.subs = make([]*cluster.Subscriber, subscribers)
	for i := range l.subs {
		l.subs[i] = &cluster.Subscriber{Base: c.URL(), Token: viewer, Start: l.start, Keep: i == 0}
		l.wg.Go(func() { l.subs[i].Run(ctx) })
	}
	for i, s := range l.subs {
		select {
		case <-s.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("subscriber %d never subscribed through nginx: %v", i, s.Stats().Errors)
		}
	}
	perInstance := map[string]int{}
	for _, s := range l.subs {
		perInstance[s.Instance()]++
	}
	for _, in := range c.Instances {
		if in.Running() && perInstance[in.Name] == 0 {
			t.Fatalf("no socket on %s (%v): nginx should spread sockets over every instance", in.Name, perInstance)
		}
	}
	targets := []string{c.URL()}
	for _, in := range c.Instances {
		targets = append(targets, in.URL())
	}
	l.w = &cluster.Writer{Targets: targets, Token: c.Token("writer", auth.RoleAdmin), Rate: rate}
	l.wg.Go(func() { defer close(l.writing); l.w.Run(ctx, writes) })
	return l
}

// waitWrites waits until n writes are done.
func (l *load) waitWrites(n int) {
	l.t.Helper()
	waitUntil(l.t, 60*time.Second, fmt.Sprintf("%d writes", n), func() bool { return l.w.Done() >= n })
}

// finish waits for the last write, then for every subscriber to hold every
// event committed since the start, and fails the test unless each holds
// each exactly once, in offset order. It returns the final position.
func (l *load) finish() cluster.Position {
	t := l.t
	t.Helper()
	select {
	case <-l.writing:
	case <-time.After(90 * time.Second):
		t.Fatalf("writes did not finish: %d of %d done", l.w.Done(), l.writes)
	}
	if st := l.w.Stats(); len(st.Rejected) > 0 {
		t.Errorf("writes refused for good: %q", st.Rejected)
	}
	final, err := l.c.Position(l.ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	defer cancel()
	cluster.WaitAll(wctx, l.subs, final.Offset)
	rep := cluster.Check(l.subs, l.start, final, l.w.Acked())
	rep.Duration = time.Since(l.began)
	t.Logf("%v; writer %+v", rep, l.w.Stats())
	if !rep.OK() || rep.Written < uint64(l.writes) {
		t.Fatalf("not every subscriber holds every event once, in order: %s", rep.Summary())
	}
	return final
}

// Redis killed with SIGKILL and restarted while writes continue: the
// outbox keeps every write, the hubs resubscribe, and every subscriber,
// connected through nginx, ends with every event once, in order.
func testRedisSIGKILL(t *testing.T, c *cluster.Cluster) {
	const writes = 300
	l := startLoad(t, c, 30, writes, 60)
	l.waitWrites(writes / 4)
	c.Redis.Stop()
	down := l.w.Done()
	t.Logf("SIGKILLed Redis after %d writes", down)
	// Writes go on while Redis is down: they only need the database.
	l.waitWrites(down + 30)
	c.Redis.Start()
	t.Logf("restarted Redis after %d writes", l.w.Done())
	l.finish()
}

// A token in the WebSocket URL never reaches nginx's access log; the
// other parameters, useful to follow resumes, do.
func testAccessLog(t *testing.T, c *cluster.Cluster) {
	token := c.Token("log-check", auth.RoleViewer)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.URL(), "http")+"/ws?subscribe=books&token="+token+"&since=0&epoch=x", nil)
	if err != nil {
		t.Fatalf("WebSocket through nginx: %v", err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || !bytes.Contains(msg, []byte(`"welcome"`)) {
		t.Fatalf("first frame %q, %v; want welcome", msg, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	want := `/ws?subscribe=books&token=[redacted]&since=0&epoch=x`
	var logged []byte
	waitUntil(t, 10*time.Second, "the socket's access log line", func() bool {
		logged, _ = os.ReadFile(c.LB.AccessLog())
		return bytes.Contains(logged, []byte(want))
	})
	if bytes.Contains(logged, []byte(token)) {
		t.Errorf("nginx's access log holds a token:\n%s", logged)
	}
}

// Clients connected through nginx to an instance that is SIGKILLed
// reconnect through nginx, land on another instance, resume from their
// last offset and end with every event exactly once, in order, while
// writes continue through nginx and directly; the restarted instance then
// serves again.
func testSIGKILL(t *testing.T, c *cluster.Cluster) {
	const writes = 300
	l := startLoad(t, c, 30, writes, 60)
	victim := c.Instances[1]
	l.waitWrites(writes / 3)
	before := map[int]int{} // subscriber -> connections before the kill
	for i, s := range l.subs {
		if s.Instance() == victim.Name {
			before[i] = len(s.Connections())
		}
	}
	if len(before) == 0 {
		t.Fatalf("no subscriber on %s at the kill", victim.Name)
	}
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed %s with %d subscribers, after %d writes", victim.Name, len(before), l.w.Done())
	waitUntil(t, 30*time.Second, "the victim's subscribers to reconnect", func() bool {
		for i, n := range before {
			if len(l.subs[i].Connections()) <= n || l.subs[i].Instance() == "" {
				return false
			}
		}
		return true
	})
	for i, n := range before {
		if landed := l.subs[i].Connections()[n]; landed == victim.Name || landed == "" {
			t.Errorf("subscriber %d reconnected to %q after %s was killed", i, landed, victim.Name)
		}
	}
	l.waitWrites(2 * writes / 3)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted %s after %d writes", victim.Name, l.w.Done())
	final := l.finish()

	// The restarted instance serves sockets and writes again.
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	direct := &cluster.Subscriber{Base: victim.URL(), Token: c.Token("direct", auth.RoleViewer), Start: final}
	l.wg.Go(func() { direct.Run(l.ctx) })
	select {
	case <-direct.Ready():
	case <-time.After(30 * time.Second):
		t.Fatalf("no subscription on the restarted %s: %v", victim.Name, direct.Stats().Errors)
	}
	if got := direct.Instance(); got != victim.Name {
		t.Fatalf("direct subscriber landed on %q, want %s", got, victim.Name)
	}
	one := &cluster.Writer{Targets: []string{victim.URL()}, Token: c.Token("writer", auth.RoleAdmin)}
	one.Run(l.ctx, 1)
	if len(one.Acked()) != 1 {
		t.Fatalf("write on the restarted %s: %+v", victim.Name, one.Stats())
	}
	all := append(slices.Clone(l.subs), direct)
	wctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	defer cancel()
	if !cluster.WaitAll(wctx, all, final.Offset+1) {
		next := cluster.Position{Offset: final.Offset + 1, Epoch: final.Epoch}
		t.Fatalf("the write on the restarted %s did not reach every subscriber: %s", victim.Name,
			cluster.Check(l.subs, l.start, next, nil).Summary())
	}
}

// waitUntil polls cond, which watches other goroutines' progress.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // progress of other goroutines: nothing to wait on
	}
}
