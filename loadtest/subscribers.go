package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// subscriber is one WebSocket connection and its reader's bookkeeping.
type subscriber struct {
	idx  int
	conn *websocket.Conn
	st   subStats
}

// pool opens and reads the subscribers.
type pool struct {
	cfg     Config
	t       *tracker
	tokens  []string // one per subscriber, or a single shared token
	clients []*http.Client

	attempted, established, failed atomic.Int64
	connected, dropped             atomic.Int64
	// stopping is set before the pool closes its connections, so readers
	// can tell a requested close from a dropped connection.
	stopping  atomic.Bool
	handshake Histogram

	// mu guards subs and forced while connections are being opened; after
	// connectAll returns, subs is only read.
	mu      sync.Mutex
	subs    []*subscriber // index = subscriber number; nil when not connected
	forced  bool          // closeNow has run: close any late connection at once
	readers sync.WaitGroup
	// readCtx ends when the run does or the polite close runs out of time;
	// then every connection is closed at once (stopForce undoes the hook).
	readCtx    context.Context
	cancelRead context.CancelFunc
	stopForce  func() bool
}

// closeGrace bounds the polite close of all subscribers: a server that does
// not answer close frames must not hold the run for ConnectTimeout per
// connection.
const closeGrace = 5 * time.Second

// newDialClient returns an HTTP client whose connections leave from src
// ("" = any). WebSocket handshakes hijack the connection, so the client's
// idle pool is irrelevant there; REST writes reuse connections.
func newDialClient(src string, idle int) *http.Client {
	d := &net.Dialer{Timeout: DefaultConnectTimeout, KeepAlive: 30 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil, // a load test must hit the targets directly
		DialContext:         d.DialContext,
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
	}}
}

func newPool(ctx context.Context, cfg Config, t *tracker, tokens []string) *pool {
	p := &pool{cfg: cfg, t: t, tokens: tokens, subs: make([]*subscriber, cfg.Subscribers)}
	p.readCtx, p.cancelRead = context.WithCancel(ctx)
	p.stopForce = context.AfterFunc(p.readCtx, p.closeNow)
	if len(cfg.SourceAddrs) == 0 {
		p.clients = []*http.Client{newDialClient("", 0)}
	}
	for _, a := range cfg.SourceAddrs {
		p.clients = append(p.clients, newDialClient(a, 0))
	}
	return p
}

// connectAll opens every subscriber with at most ConnectConcurrency
// handshakes in flight, starting a reader for each that subscribes.
func (p *pool) connectAll(ctx context.Context) {
	sem := make(chan struct{}, p.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	for i := range p.cfg.Subscribers {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.connect(ctx, i)
		}()
	}
	wg.Wait()
}

// connect opens subscriber i: it dials target i mod len(targets) from the
// next source address and waits for the "subscribed" frame, because events
// published before it could be missed by design, not by fault.
func (p *pool) connect(ctx context.Context, i int) {
	p.attempted.Add(1)
	nt := len(p.cfg.Targets)
	target := p.cfg.Targets[i%nt]
	client := p.clients[(i/nt)%len(p.clients)]
	token := p.tokens[i%len(p.tokens)]

	began := time.Now()
	hctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	conn, err := dialSubscribed(hctx, client, target, token)
	if err != nil {
		p.failed.Add(1)
		p.t.errs.addErr("connect", err)
		return
	}
	p.handshake.Record(time.Since(began))
	s := &subscriber{idx: i, conn: conn, st: subStats{seen: make([]uint64, (len(p.t.writes)+63)/64)}}
	p.mu.Lock()
	p.subs[i] = s
	forced := p.forced
	p.mu.Unlock()
	if forced {
		_ = conn.CloseNow() // its reader sees the close and exits
	}
	p.established.Add(1)
	p.connected.Add(1)
	p.readers.Add(1)
	go p.read(s)
}

// wsURL turns a base URL into its /ws URL subscribed to "books".
func wsURL(target string) string {
	u := strings.Replace(target, "http", "ws", 1) // http->ws, https->wss
	return u + "/ws?subscribe=books"
}

// dialSubscribed dials target's /ws and reads until the server confirms the
// "books" subscription.
func dialSubscribed(ctx context.Context, client *http.Client, target, token string) (*websocket.Conn, error) {
	conn, resp, err := websocket.Dial(ctx, wsURL(target), &websocket.DialOptions{
		HTTPClient: client,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	var f frameFields
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			_ = conn.CloseNow()
			return nil, fmt.Errorf("wait for subscribed: %w", err)
		}
		if err := f.scan(data); err != nil {
			_ = conn.CloseNow()
			return nil, fmt.Errorf("wait for subscribed: %w", err)
		}
		switch {
		case string(f.Type) == "subscribed" && string(f.Channel) == "books":
			return conn, nil
		case string(f.Type) == "error":
			_ = conn.CloseNow()
			return nil, fmt.Errorf("wait for subscribed: server error %s: %s", f.Code, f.Message)
		}
	}
}

// read is the subscriber's only goroutine: it owns s.st until it returns.
//
// It reads with a context that never ends, on purpose: coder/websocket arms
// a timer (an allocation) for every frame read under a context that can
// end. The read still stops when it must, because closeAll and a cancelled
// run close the connection, which ends the read.
func (p *pool) read(s *subscriber) {
	defer p.readers.Done()
	defer p.connected.Add(-1)
	buf := make([]byte, 0, initialReadBuffer)
	for {
		var err error
		buf, err = readMessage(s.conn, buf)
		if err != nil {
			if !p.stopping.Load() && p.readCtx.Err() == nil {
				p.dropped.Add(1)
				p.t.errs.addErr("subscriber dropped", err)
			}
			_ = s.conn.CloseNow()
			return
		}
		p.t.handle(s.idx, &s.st, buf, p.t.now())
	}
}

// initialReadBuffer fits a typical event frame (about 500 bytes); a larger
// frame grows the subscriber's buffer once, and it stays grown.
const initialReadBuffer = 1024

// readMessage reads the next data message into buf, reusing its memory, so
// a subscriber allocates no new slice per frame as Conn.Read does. The
// connection's read limit still bounds how far buf can grow.
func readMessage(c *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := c.Reader(context.Background())
	if err != nil {
		return buf[:0], err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			return buf, nil
		case err != nil:
			return buf, err
		}
	}
}

// closeAll closes every connection with a normal closure, at most
// ConnectConcurrency at a time, force-closes whatever is left after
// closeGrace, and waits for the readers to exit.
func (p *pool) closeAll() {
	p.stopping.Store(true)
	p.mu.Lock()
	subs := slices.Clone(p.subs)
	p.mu.Unlock()
	force := time.AfterFunc(closeGrace, p.cancelRead)
	defer force.Stop()
	sem := make(chan struct{}, p.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	for _, s := range subs {
		if s == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := s.conn.Close(websocket.StatusNormalClosure, "load test finished")
			if err != nil && !errors.Is(err, net.ErrClosed) {
				_ = s.conn.CloseNow()
			}
		}()
	}
	wg.Wait()
	p.stopForce()  // every connection is closed by now
	p.cancelRead() // releases the context
	p.readers.Wait()
}

// closeNow closes every connection without a close handshake, ending
// every read.
func (p *pool) closeNow() {
	p.mu.Lock()
	p.forced = true
	subs := slices.Clone(p.subs)
	p.mu.Unlock()
	for _, s := range subs {
		if s != nil {
			_ = s.conn.CloseNow()
		}
	}
}
