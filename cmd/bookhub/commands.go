package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
)

// serve runs one instance until ctx is cancelled (SIGINT/SIGTERM).
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	useRedisLogger(logger)
	app, err := NewApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.Listen(ctx); err != nil {
		return err
	}
	printBanner(stdout, cfg, app.Addr())
	return app.Run(ctx)
}

// token prints a signed JWT, using the same secret as serve would.
func token(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bookhub token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "subject (user name) of the token; required")
	role := fs.String("role", "viewer", "viewer, editor or admin")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	dataDir := fs.String("data-dir", "", "data folder holding the embedded secret (default $"+config.EnvDataDir+" or ./data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sub == "" {
		return fmt.Errorf("token: --sub is required")
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("token: --role: %w", err)
	}
	cfg, err := config.Load(nil, getenv, stderr)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	secret, _, err := jwtSecret(cfg)
	if err != nil {
		return err
	}
	// The instance's own issuer: same key (and kid), issuer and audience.
	tokens, err := newTokens(cfg, secret)
	if err != nil {
		return err
	}
	tok, err := tokens.Issue(*sub, r, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// healthcheck lets a container without a shell or curl probe /readyz.
func healthcheck(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bookhub healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "URL that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", *url, resp.Status)
	}
	return nil
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		v += " " + info.GoVersion
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	return v
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("instance", cfg.Instance)
}

func printBanner(w io.Writer, cfg config.Config, addr string) {
	// A wildcard listen address is not something to paste into a browser.
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("localhost", port)
		}
	}
	url := "http://" + addr
	fmt.Fprintf(w, "bookhub %s listening on %s (REST %s/api/v1/books, WebSocket ws://%s/ws)\n", version, url, url, addr)
	if cfg.Embedded() {
		fmt.Fprintf(w, "embedded mode: SQLite in %s, in-process event bus\n", cfg.DataDir)
	}
	fmt.Fprintf(w, "get a token:   go run ./cmd/bookhub token --sub you --role editor\n")
	fmt.Fprintf(w, "watch changes: wscat -c \"ws://%s/ws?token=$TOKEN&subscribe=books\"\n", addr)
}
