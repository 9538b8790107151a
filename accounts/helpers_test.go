package accounts_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/store"
)

const testSecret = "accounts-test-secret-0123456789abcdef"

// env is one service over a fresh SQLite store and in-process state.
type env struct {
	svc     *accounts.Service
	store   *store.Store
	tokens  *auth.Tokens
	clock   *testenv.Clock
	revoked chan accounts.Revocation
	logs    *logSink
}

type envOptions struct {
	registration bool
	limits       func(*testenv.Clock) accounts.Limits
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := testContext(t)
	st, err := store.Open(ctx, store.Options{URL: "sqlite://" + filepath.Join(t.TempDir(), "bookhub.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clk := testenv.NewClock(time.Now())
	tokens, err := auth.New([]byte(testSecret), auth.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Cheap argon2 parameters: the tests exercise the logic, not the cost.
	passwords, err := auth.NewPasswords(auth.PasswordOptions{Params: auth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, tokens: tokens, clock: clk, revoked: make(chan accounts.Revocation, 16), logs: &logSink{}}
	revs := authstate.NewMemoryRevocations(authstate.RevocationOptions{Now: clk.Now, OnRevoke: func(r authstate.Revocation) {
		e.revoked <- r
	}})
	var limits accounts.Limits
	if o.limits != nil {
		limits = o.limits(clk)
	}
	e.svc, err = accounts.New(accounts.Options{Users: st, Tokens: tokens, Passwords: passwords,
		Revocations: revs, Tickets: authstate.NewMemoryTickets(authstate.TicketOptions{Now: clk.Now}),
		Limits: limits, AllowRegistration: o.registration, Now: clk.Now,
		Logger: slog.New(e.logs)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const goodPassword = "correct horse battery staple"

// user creates an account with goodPassword.
func (e *env) user(t *testing.T, email string, role auth.Role) store.User {
	t.Helper()
	u, err := e.svc.CreateUser(testContext(t), accounts.NewUser{Email: email, DisplayName: "Test " + string(role),
		Password: goodPassword, Role: role})
	if err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return u
}

func (e *env) login(t *testing.T, email string) accounts.Pair {
	t.Helper()
	p, err := e.svc.Login(testContext(t), email, goodPassword, "192.0.2.1")
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return p
}

// logSink records log lines so tests can check security events.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	l.lines = append(l.lines, line)
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }

func (l *logSink) contains(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
