package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
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

	subs    []*subscriber // index = subscriber number; nil when not connected
	readers sync.WaitGroup
	// readCtx is the readers' context; cancelling it force-closes every
	// connection (coder/websocket closes a Conn whose Read context ends).
	readCtx    context.Context
	cancelRead context.CancelFunc
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
	p.subs[i] = s
	p.established.Add(1)
	p.connected.Add(1)
	p.readers.Add(1)
	go p.read(p.readCtx, s)
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
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			_ = conn.CloseNow()
			return nil, fmt.Errorf("wait for subscribed: %w", err)
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			_ = conn.CloseNow()
			return nil, fmt.Errorf("wait for subscribed: %w", err)
		}
		switch {
		case f.Type == "subscribed" && f.Channel == "books":
			return conn, nil
		case f.Type == "error":
			_ = conn.CloseNow()
			return nil, fmt.Errorf("wait for subscribed: server error %s: %s", f.Code, f.Message)
		}
	}
}

// read is the subscriber's only goroutine: it owns s.st until it returns.
func (p *pool) read(ctx context.Context, s *subscriber) {
	defer p.readers.Done()
	defer p.connected.Add(-1)
	for {
		_, data, err := s.conn.Read(ctx)
		if err != nil {
			if !p.stopping.Load() && ctx.Err() == nil {
				p.dropped.Add(1)
				p.t.errs.addErr("subscriber dropped", err)
			}
			_ = s.conn.CloseNow()
			return
		}
		p.t.handle(s.idx, &s.st, data, p.t.now())
	}
}

// closeAll closes every connection with a normal closure, at most
// ConnectConcurrency at a time, force-closes whatever is left after
// closeGrace, and waits for the readers to exit.
func (p *pool) closeAll() {
	p.stopping.Store(true)
	force := time.AfterFunc(closeGrace, p.cancelRead)
	defer force.Stop()
	sem := make(chan struct{}, p.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	for _, s := range p.subs {
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
	p.cancelRead() // every connection is closed by now; this releases the context
	p.readers.Wait()
}
