package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/hub"
	"github.com/bookhub/bookhub/redisconn"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/signin"
	"github.com/bookhub/bookhub/store"
)

// variantStaff is the hub payload variant of editors and admins: events
// with the staff-only book fields. Everybody else gets the default payload.
const variantStaff = "staff"

// security is the wired sign-in side of an instance, or of a CLI command.
type security struct {
	tokens   *auth.Tokens
	accounts *accounts.Service
	revs     interface {
		accounts.Revocations
		Close() error
	}
	redis  *redisconn.Client
	signIn []*signin.Provider
	// onRevoke is called for every revocation learned, here or on another
	// instance; the app points it at the hub once the hub exists.
	onRevoke atomic.Pointer[func(accounts.Revocation)]
}

// newTokens builds the token issuer from the configuration: EdDSA from a
// key file when one is set, else HS256 with the shared secret; retired keys
// keep verifying.
func newTokens(cfg config.Config, secret []byte) (*auth.Tokens, error) {
	sec := cfg.Security
	opts := auth.Options{Issuer: sec.Issuer, Audience: sec.Audience}
	var previous []auth.Key
	for i, s := range sec.PreviousSecrets {
		k, err := auth.HS256Key(auth.KeyID([]byte(s)), []byte(s))
		if err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", config.EnvJWTPreviousSecrets, i+1, err)
		}
		previous = append(previous, k)
	}
	for _, f := range sec.PreviousKeyFiles {
		k, err := loadEdDSAKey(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvJWTPreviousKeyFiles, err)
		}
		previous = append(previous, k)
	}
	var signing auth.Key
	var err error
	if sec.KeyFile != "" {
		if signing, err = loadEdDSAKey(sec.KeyFile); err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvJWTKeyFile, err)
		}
	} else if signing, err = auth.HS256Key(auth.KeyID(secret), secret); err != nil {
		return nil, fmt.Errorf("%s: %w", config.EnvJWTSecret, err)
	}
	t, err := auth.NewWithKeys(signing, previous, opts)
	if err != nil {
		return nil, fmt.Errorf("jwt keys: %w", err)
	}
	return t, nil
}

// loadEdDSAKey reads a PKCS#8 PEM Ed25519 key; its kid is derived from the
// public key, so every instance given the same file names it alike.
func loadEdDSAKey(path string) (auth.Key, error) {
	pem, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return auth.Key{}, err
	}
	priv, err := auth.ParseEdDSAPrivateKeyPEM(pem)
	if err != nil {
		return auth.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return auth.EdDSAKey(auth.KeyID(priv.Public().(ed25519.PublicKey)), priv)
}

// openSecurity wires tokens, passwords, the shared state (Redis when
// configured) and the accounts service over st.
func openSecurity(ctx context.Context, cfg config.Config, secret []byte, st *store.Store, logger *slog.Logger) (_ *security, err error) {
	s := &security{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.tokens, err = newTokens(cfg, secret); err != nil {
		return nil, err
	}
	passwords, err := auth.NewPasswords(auth.PasswordOptions{})
	if err != nil {
		return nil, err
	}
	sec := cfg.Security
	revOpts := authstate.RevocationOptions{Logger: logger, OnRevoke: func(r authstate.Revocation) {
		if f := s.onRevoke.Load(); f != nil {
			(*f)(r)
		}
	}}
	keys := redisconn.Keys{Prefix: cfg.RedisPrefix}
	var tickets accounts.Tickets
	if cfg.RedisURL != "" {
		if s.redis, err = redisconn.Open(string(cfg.RedisURL), redisconn.Options{Cluster: cfg.RedisCluster}); err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvRedisURL, err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if s.revs, err = authstate.NewRedisRevocations(rctx, s.redis, keys, revOpts); err != nil {
			return nil, fmt.Errorf("%s: revocation list: %w", config.EnvRedisURL, err)
		}
		if tickets, err = authstate.NewRedisTickets(s.redis, keys); err != nil {
			return nil, fmt.Errorf("%s: tickets: %w", config.EnvRedisURL, err)
		}
	} else {
		s.revs = authstate.NewMemoryRevocations(revOpts)
		tickets = authstate.NewMemoryTickets(authstate.TicketOptions{})
	}
	limit := func(scope string, r config.Rate) (accounts.Limiter, error) {
		l := authstate.Limit{Requests: r.Requests, Window: r.Window}
		lo := authstate.LimiterOptions{Logger: logger}
		if s.redis != nil {
			return authstate.NewRedisLimiter(s.redis, keys, scope, l, lo)
		}
		return authstate.NewMemoryLimiter(l, lo)
	}
	var limits accounts.Limits
	for _, l := range []struct {
		dst   *accounts.Limiter
		scope string
		rate  config.Rate
	}{
		{&limits.LoginAccount, "login-account", sec.LoginRateAccount},
		{&limits.LoginAddress, "login-address", sec.LoginRateAddress},
		{&limits.RefreshAddress, "refresh-address", sec.RefreshRate},
		{&limits.RefreshToken, "refresh-token", sec.RefreshRate},
	} {
		if *l.dst, err = limit(l.scope, l.rate); err != nil {
			return nil, fmt.Errorf("rate limit %s: %w", l.scope, err)
		}
	}
	if s.accounts, err = accounts.New(accounts.Options{
		Users: st, Tokens: s.tokens, Passwords: passwords, Revocations: s.revs,
		Tickets: tickets, Limits: limits,
		AccessTTL: sec.AccessTTL, RefreshTTL: sec.RefreshTTL, RefreshGrace: sec.RefreshGrace,
		AllowRegistration: sec.AllowRegistration, Logger: logger,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the revocation list and the Redis client.
func (s *security) Close() {
	if s.revs != nil {
		_ = s.revs.Close()
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
}

// startSignIn discovers the configured OIDC providers. A provider that
// cannot be reached at start fails the start: an instance that silently
// lacks a sign-in button is harder to debug than one that says why.
func (s *security) startSignIn(ctx context.Context, cfg config.Config, secret []byte, logger *slog.Logger) error {
	flowKey, err := auth.DeriveKey(secret, "bookhub oidc flow v1")
	if err != nil {
		return err
	}
	for _, p := range cfg.Security.OIDC {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		prov, err := signin.New(dctx, signin.Config{Name: p.Name, IssuerURL: p.Issuer, ClientID: p.ClientID,
			ClientSecret: string(p.ClientSecret), RedirectURL: p.RedirectURL},
			signin.Options{StateKey: flowKey, Logger: logger})
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", config.EnvOIDCIssuer, err)
		}
		s.signIn = append(s.signIn, prov)
	}
	return nil
}

// socketIdentity is what the hub keeps of a verified token.
func socketIdentity(id auth.Identity) hub.Identity {
	h := hub.Identity{Subject: id.Subject, Role: string(id.Role), ExpiresAt: id.ExpiresAt,
		Session: id.Session, Generation: id.Generation}
	if id.Role.AtLeast(auth.RoleEditor) {
		h.Variant = variantStaff
	}
	return h
}

// covered reports whether revocation r applies to an open socket.
func covered(r accounts.Revocation, id hub.Identity) bool {
	return accounts.Covers(r, auth.Identity{Subject: id.Subject, Session: id.Session, Generation: id.Generation})
}

// authenticateSocket verifies a handshake: a one-time ticket
// (?ticket=, what browsers use), else a token (Authorization header or
// ?token=, for wscat and k6).
func (a *App) authenticateSocket(r *http.Request) (hub.Identity, error) {
	if t := r.URL.Query().Get("ticket"); t != "" {
		id, err := a.sec.accounts.RedeemTicket(r.Context(), t)
		if err != nil {
			return hub.Identity{}, err
		}
		return socketIdentity(id), nil
	}
	id, err := a.sec.accounts.Verify(auth.FromRequest(r))
	if err != nil {
		return hub.Identity{}, err
	}
	return socketIdentity(id), nil
}

// reauthenticateSocket verifies a token sent in-band by an open socket.
func (a *App) reauthenticateSocket(_ context.Context, token string) (hub.Identity, error) {
	id, err := a.sec.accounts.Verify(token)
	if err != nil {
		return hub.Identity{}, err
	}
	return socketIdentity(id), nil
}

// providers lists the sign-in providers for rest.
func (s *security) providers() []rest.SignInProvider {
	out := make([]rest.SignInProvider, 0, len(s.signIn))
	for _, p := range s.signIn {
		out = append(out, p)
	}
	return out
}

// bootstrapAdmin creates the first admin from BOOKHUB_BOOTSTRAP_ADMIN_*,
// once: an existing account with that email is left alone.
func (a *App) bootstrapAdmin(ctx context.Context) error {
	sec := a.cfg.Security
	if sec.BootstrapEmail == "" {
		return nil
	}
	created, err := a.sec.accounts.EnsureAdmin(ctx, sec.BootstrapEmail, string(sec.BootstrapPassword))
	if err != nil {
		return fmt.Errorf("%s: %w", config.EnvBootstrapEmail, err)
	}
	if created {
		a.log.Info("created the bootstrap admin; unset "+config.EnvBootstrapPassword+" now",
			"email", sec.BootstrapEmail)
	}
	return nil
}

// authorizeChannel is the channel policy: which roles may subscribe where.
// Every book channel is open to every role; what differs by role is the
// payload (staff-only fields go to the staff variant only), which the hub
// handles without a per-subscriber check.
func authorizeChannel(id hub.Identity, channel string) bool {
	return events.ChannelAllowed(auth.Role(id.Role), channel)
}

// accountsEnv is the store and accounts service a CLI command works on.
type accountsEnv struct {
	store    *store.Store
	sec      *security
	accounts *accounts.Service
}

// Close releases what openAccounts opened.
func (e *accountsEnv) Close() {
	e.sec.Close()
	_ = e.store.Close()
}

// openAccounts opens the configured database and the accounts service, as
// an instance would (same secret, keys and Redis revocation list), for the
// operators' commands.
func openAccounts(ctx context.Context, cfg config.Config, logger *slog.Logger) (*accountsEnv, error) {
	secret, _, err := jwtSecret(cfg)
	if err != nil {
		return nil, err
	}
	dbURL := string(cfg.DatabaseURL)
	if cfg.Embedded() {
		dbURL = "sqlite://" + filepath.Join(cfg.DataDir, "bookhub.db")
	}
	openCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := store.Open(openCtx, store.Options{URL: dbURL, Logger: logger, Origin: "cli"})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sec, err := openSecurity(openCtx, cfg, secret, st, logger)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &accountsEnv{store: st, sec: sec, accounts: sec.accounts}, nil
}
