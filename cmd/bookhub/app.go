package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/feed"
	"github.com/bookhub/bookhub/hub"
	"github.com/bookhub/bookhub/metrics"
	"github.com/bookhub/bookhub/relay"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
	"github.com/bookhub/bookhub/web"
)

// closeHandshakeAllowance is what the last socket closed by a stop gets for
// its close handshake after the spread window.
const closeHandshakeAllowance = 5 * time.Second

// App is one wired bookhub instance. NewApp builds it, Listen binds its
// ports, Run serves until the context ends, Close releases what NewApp opened.
// Tests use the same steps, with ":0" addresses, to run several instances in
// one process.
type App struct {
	cfg   config.Config
	log   *slog.Logger
	store *store.Store
	// books is what REST reads and writes through: the store behind the
	// read cache (or the store itself when the cache is off).
	books rest.BookStore
	cache *cache.Books
	bus   events.Bus
	relay *relay.Relay
	feed  *feed.Feed
	// handoff passes committed changes to the relay; tests replace it to
	// play a process that dies between commit and publish.
	handoff func(store.Change)
	hub     *hub.Hub
	metrics *metrics.Metrics
	sec     *security

	server        *http.Server
	metricsServer *http.Server
	ln, metricsLn net.Listener

	closeOnce sync.Once
}

// NewApp opens the database and the bus and wires the API and the hub.
// Every failure names the setting that caused it.
func NewApp(ctx context.Context, cfg config.Config, logger *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: logger, metrics: metrics.New(cfg.Instance)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()

	secret, generated, err := jwtSecret(cfg)
	if err != nil {
		return nil, err
	}
	if generated {
		logger.Warn("using the generated JWT secret of the data folder; set " + config.EnvJWTSecret + " for anything but a local trial")
	}

	dbURL := string(cfg.DatabaseURL)
	if cfg.Embedded() {
		dbURL = "sqlite://" + filepath.Join(cfg.DataDir, "bookhub.db")
	}
	openCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// OnCommit runs only once writes are served, after a.relay is set.
	storeOpts := store.Options{URL: dbURL, Logger: logger, Origin: cfg.Instance,
		OnCommit: func(c store.Change) { a.handoff(c) }}
	if a.store, err = store.Open(openCtx, storeOpts); err != nil {
		if cfg.Embedded() {
			return nil, fmt.Errorf("%s: embedded database: %w", config.EnvDataDir, err)
		}
		return nil, fmt.Errorf("%s: %w", config.EnvDatabaseURL, err)
	}

	if a.sec, err = openSecurity(openCtx, cfg, secret, a.store, logger); err != nil {
		return nil, err
	}
	if err := a.sec.startSignIn(openCtx, cfg, secret, logger); err != nil {
		return nil, err
	}
	if err := a.bootstrapAdmin(openCtx); err != nil {
		return nil, err
	}

	if cfg.RedisURL == "" {
		a.bus = events.NewMemory()
	} else {
		rb, err := redisbus.New(openCtx, redisbus.Options{
			URL: string(cfg.RedisURL), Prefix: cfg.RedisPrefix, Sharded: cfg.RedisSharded, Cluster: cfg.RedisCluster,
			Logger: logger, OnError: a.metrics.BusError,
			// What the bus dropped while down is in the history: read it.
			OnRestore: func() { a.feed.Resync() },
			// Bus messages are signed with a key of their own, derived from
			// the secret every instance shares (never the JWT key itself).
			SigningKey: redisbus.DeriveSigningKey(secret),
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvRedisURL, err)
		}
		a.bus = rb // only a non-nil *redisbus.Bus goes into the interface
	}

	if a.relay, err = relay.New(relay.Options{
		Store: a.store, Bus: countingPublisher{a.bus, a.metrics}, Render: renderChange,
		Logger: logger, Observer: relayMetrics{a.metrics},
		HistorySize: uint64(cfg.HistorySize), HistoryMaxAge: cfg.HistoryMaxAge,
	}); err != nil {
		return nil, fmt.Errorf("outbox relay: %w", err)
	}
	a.handoff = a.relay.Handoff

	a.hub, err = hub.New(hub.Options{
		Authenticate:   a.authenticateSocket,
		Reauthenticate: a.reauthenticateSocket,
		ValidChannel:   events.ValidChannel,
		Authorize:      authorizeChannel,
		History:        hubHistory{a.store},
		MaxReplay:      cfg.HistorySize,
		ShutdownSpread: closeSpread(cfg.WSCloseSpread),
		Instance:       cfg.Instance,
		Logger:         logger,
		OriginPatterns: cfg.AllowedOrigins,
		Observer:       a.metrics,
		// Per instance; a 429 before the upgrade beyond it.
		MaxConnsPerSubject: cfg.WSMaxConnsPerSubject,
	})
	if err != nil {
		return nil, fmt.Errorf("websocket hub: %w", err)
	}
	// A revocation learned here or from another instance closes the
	// sockets it covers (the handshake refuses new ones by itself).
	closeRevoked := func(r accounts.Revocation) {
		a.hub.Revoke(func(id hub.Identity) bool { return covered(r, id) })
	}
	a.sec.onRevoke.Store(&closeRevoked)
	if a.feed, err = feed.New(feed.Options{
		History:    feedHistory{a.store},
		Deliver:    a.deliver,
		Incomplete: func(last events.Position) { a.hub.Incomplete(last.Epoch) },
		Logger:     logger,
		Observer:   a.metrics,
	}); err != nil {
		return nil, fmt.Errorf("event feed: %w", err)
	}

	if err := a.openReadCache(); err != nil {
		return nil, err
	}

	var checks []rest.Check // rest always checks the database itself
	if cfg.RedisURL != "" {
		checks = append(checks, rest.Check{Name: "redis", Ping: a.bus.Ping})
	}
	api, err := rest.New(rest.Options{
		Books:    a.books,
		Accounts: a.sec.accounts,
		SignIn:   a.sec.providers(),
		JWKS:     a.sec.tokens.JWKSHandler(),

		AllowRegistration: cfg.Security.AllowRegistration,
		CORSOrigins:       cfg.Security.CORSOrigins,
		TrustedProxies:    cfg.Security.TrustedProxies,
		Instance:          cfg.Instance,
		Logger:            logger,
		Checks:            checks,
		Observe:           a.metrics.ObserveRequest,
	})
	if err != nil {
		return nil, fmt.Errorf("rest api: %w", err)
	}

	ed := &edge{
		next:        routes(api, a.hub, assets(web.Handler())),
		readTimeout: cfg.ReadTimeout,
		minRate:     cfg.ReadMinRate,
		maxBody:     rest.DefaultMaxBodyBytes, // the API's own cap: rest.Options leaves it at the default
	}
	a.server = &http.Server{
		Handler:           ed,
		ReadHeaderTimeout: cfg.ReadTimeout,
		// A backstop only: the edge sets a tighter deadline per request.
		// A hijacked WebSocket keeps none of these (net/http clears the
		// deadlines on Hijack), so idle sockets live on.
		ReadTimeout: ed.serverReadTimeout(),
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.MetricsAddr != "" {
		mm := http.NewServeMux()
		mm.Handle("/metrics", a.metrics.Handler())
		mountPprof(mm)
		// Scrapes have no body; the read deadline only stops a stalled one.
		a.metricsServer = &http.Server{Handler: mm, ReadHeaderTimeout: cfg.ReadTimeout, ReadTimeout: 2 * cfg.ReadTimeout}
	}
	return a, nil
}

// Listen binds the HTTP (and metrics) listeners, so Addr is known before Run.
func (a *App) Listen(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("%s: %w", config.EnvAddr, err)
	}
	a.ln = ln
	if a.metricsServer != nil {
		if a.metricsLn, err = lc.Listen(ctx, "tcp", a.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("%s: %w", config.EnvMetricsAddr, err)
		}
	}
	return nil
}

// Addr is the bound HTTP address (useful with ":0").
func (a *App) Addr() string { return a.ln.Addr().String() }

// MetricsAddr is the bound metrics address, or "" when metrics are off.
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// Run relays bus events to the hub and serves HTTP until ctx is done, then
// shuts down gracefully: stop accepting, close the sockets with 1001 spread
// over the ws-close-spread window, finish in-flight requests. Requests still running when
// the shutdown timeout ends (a stalled upload, a hung handler) are cut off
// with a warning; that is a completed stop, so Run still returns nil.
func (a *App) Run(ctx context.Context) error {
	if a.ln == nil {
		if err := a.Listen(ctx); err != nil {
			return err
		}
	}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	if err := a.bus.Subscribe(relayCtx, a.receive); err != nil {
		return fmt.Errorf("subscribe to event bus: %w", err)
	}
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stopRelay()
	bg.Go(func() { _ = a.feed.Run(relayCtx) }) // ends with relayCtx only
	bg.Go(func() { a.relay.Run(relayCtx) })

	errc := make(chan error, 2)
	go func() { errc <- serveOn(a.server, a.ln) }()
	if a.metricsServer != nil {
		go func() { errc <- serveOn(a.metricsServer, a.metricsLn) }()
	}
	a.log.Info("bookhub started", "addr", a.Addr(), "metrics_addr", a.MetricsAddr(),
		"database", a.store.Driver(), "bus", busKind(a.cfg), "version", version)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.log.Info("bookhub shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		// http.Server.Shutdown does not touch hijacked connections: the hub
		// closes its sockets itself, in parallel.
		defer wg.Done()
		hubCtx, cancel := context.WithTimeout(shutdownCtx, a.cfg.WSCloseSpread+closeHandshakeAllowance)
		defer cancel()
		if err := a.hub.Shutdown(hubCtx); err != nil {
			a.log.Warn("websocket shutdown incomplete", "err", err)
		}
	}()
	a.shutdownServer(shutdownCtx, "http", a.server)
	if a.metricsServer != nil {
		a.shutdownServer(shutdownCtx, "metrics", a.metricsServer)
	}
	wg.Wait()
	stopRelay()
	a.log.Info("bookhub stopped")
	return serveErr
}

// shutdownServer stops s gracefully within ctx, then closes whatever
// connections are left. A deploy must not wait on a client that stopped
// sending, and a stop that had to cut a request off is still a stop.
func (a *App) shutdownServer(ctx context.Context, name string, s *http.Server) {
	err := s.Shutdown(ctx)
	if err == nil {
		return
	}
	a.log.Warn("graceful shutdown incomplete; closing the remaining connections",
		"server", name, "timeout", a.cfg.ShutdownTimeout, "err", err)
	if err := s.Close(); err != nil {
		a.log.Warn("close server", "server", name, "err", err)
	}
}

// receive takes one bus event to the feed. It runs on the bus goroutine
// and never blocks.
func (a *App) receive(ev events.Event) {
	a.metrics.EventReceived()
	a.feed.Handle(ev)
}

// deliver hands one ordered event from the feed to the hub; it runs on the
// feed's goroutine and never blocks (hub.Publish only enqueues).
func (a *App) deliver(ev events.Event) {
	if a.cache != nil {
		// Every instance drops what the change made stale, its own writes
		// included (they were invalidated before their ack already; this
		// catches writes whose invalidation could not reach Redis). Before
		// the publish: a client that refetches on an event reads the change.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = a.cache.Invalidate(ctx, ev.BookID) // failures are counted by the cache and retried before its next use
		cancel()
	}
	p, err := publication(ev)
	if err != nil {
		a.metrics.BusError("receive")
		a.log.Error("encode event for websocket", "event_id", ev.ID, "err", err)
		return
	}
	a.hub.Publish(p)
}

// Close releases the bus and the database. It is safe to call more than once.
func (a *App) Close() {
	a.closeOnce.Do(func() {
		if a.ln != nil {
			a.ln.Close()
		}
		if a.metricsLn != nil {
			a.metricsLn.Close()
		}
		if a.bus != nil {
			if err := a.bus.Close(); err != nil {
				a.log.Warn("close event bus", "err", err)
			}
		}
		if a.store != nil {
			if a.sec != nil {
				a.sec.Close()
			}
			if err := a.store.Close(); err != nil {
				a.log.Warn("close database", "err", err)
			}
		}
	})
}

func serveOn(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

func busKind(cfg config.Config) string {
	if cfg.RedisURL == "" {
		return "memory"
	}
	return "redis"
}

// closeSpread maps the setting (0 = at once) to hub.Options.ShutdownSpread
// (0 = its default, negative = at once).
func closeSpread(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
