// Package accounts is bookhub's sign-in logic: password logins, refresh-token
// rotation with reuse detection, sign-in through an OpenID Connect provider,
// the operators' user management, one-time WebSocket tickets, and the
// revocation of access tokens before they expire.
//
// It sits between the transports (rest, the hub's authenticator, the CLI)
// and the store: transports decode requests and map errors, accounts decides,
// the store keeps users and sessions. The token model:
//
//   - An access token is a short-lived JWT (auth.Tokens; 15 minutes by
//     default) carrying the user's id, role, session and token generation.
//     It is checked on every request and handshake without the database:
//     signature and claims by auth, then the revocation list.
//   - A refresh token is an opaque random string, stored only as a hash, in a
//     family (a session) per sign-in. Each refresh rotates it; presenting a
//     used one again revokes the whole family (see Service.Refresh).
//   - Disabling a user or changing their role bumps their token generation
//     in the store (which also revokes their sessions) and puts "tokens of
//     this user older than generation N" on the revocation list, which every
//     instance shares, for as long as such tokens can live.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/store"
)

// UserStore is what accounts needs from the store. *store.Store satisfies it.
type UserStore interface {
	CreateUser(ctx context.Context, u store.NewUser) (store.User, error)
	GetUser(ctx context.Context, id int64) (store.User, error)
	GetUserByEmail(ctx context.Context, email string) (store.User, error)
	GetUserByOIDC(ctx context.Context, issuer, subject string) (store.User, error)
	ListUsers(ctx context.Context, opts store.UserListOptions) ([]store.User, int64, error)
	UpdateUser(ctx context.Context, id int64, p store.UserPatch) (store.User, error)
	LinkOIDC(ctx context.Context, id int64, issuer, subject string) (store.User, error)
	CreateSession(ctx context.Context, s store.NewSession) error
	RotateRefresh(ctx context.Context, r store.RotateRequest) (store.RotateResult, error)
	RevokeSessionByRefresh(ctx context.Context, hash []byte, reason string) (sessionID string, userID int64, err error)
}

// Revocation cuts off access tokens before they expire: those of Subject
// older than MinGeneration, or every token of Session.
type Revocation = authstate.Revocation

// Revocations is the revocation list, shared between instances when Redis
// is configured (authstate.RedisRevocations) and in-process otherwise.
type Revocations interface {
	// Revoke records r locally at once and shares it; an error wrapping
	// authstate.ErrShared means only this instance knows yet.
	Revoke(ctx context.Context, r Revocation) error
	// IsRevoked is called on every request and handshake.
	IsRevoked(subject string, generation uint64, session string) bool
}

// Tickets keep one-time WebSocket tickets (authstate). Redeem returns an
// error matching authstate.ErrTicketInvalid for a ticket that is unknown,
// used or expired, and another error when the store cannot be reached.
type Tickets interface {
	Issue(ctx context.Context, payload []byte, ttl time.Duration) (string, error)
	Redeem(ctx context.Context, ticket string) ([]byte, error)
}

// Limiter rate-limits one kind of attempt by key (authstate).
type Limiter = authstate.Limiter

// Errors of the service. Transports map them; each is matched with errors.Is.
var (
	// ErrBadCredentials: unknown email, wrong password, or an account that
	// has no password. Deliberately one error for all three.
	ErrBadCredentials = errors.New("email or password is wrong")
	// ErrDisabled: the account exists, the credentials are right, and an
	// operator disabled it.
	ErrDisabled = errors.New("account disabled")
	// ErrRefreshInvalid: the refresh token is unknown, expired, revoked or
	// was reused (the family is revoked now).
	ErrRefreshInvalid = errors.New("refresh token is invalid")
	// ErrRegistrationClosed: self-registration is turned off.
	ErrRegistrationClosed = errors.New("self-registration is disabled")
	// ErrTicketInvalid: the WebSocket ticket is unknown, used or expired.
	ErrTicketInvalid = errors.New("ticket is invalid")
	// ErrSelfChange: an admin tried to demote or disable themselves, which
	// could leave nobody able to manage users.
	ErrSelfChange = errors.New("admins cannot demote or disable themselves")
	// ErrRateLimited is matched by *RateLimitedError.
	ErrRateLimited = errors.New("too many attempts")
	// ErrNotAUser: a valid token whose subject is no user (a token minted
	// with `bookhub token` for a made-up subject).
	ErrNotAUser = errors.New("the token's subject is not a bookhub user")
)

// RateLimitedError says when to try again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many attempts; retry in %s", e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrRateLimited) match.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Limits are the rate limiters of the service; nil ones do not limit.
type Limits struct {
	// LoginAccount and LoginAddress limit logins per email and per client
	// address; RefreshAddress limits refreshes (and registrations) per
	// address, RefreshToken per presented token.
	LoginAccount, LoginAddress, RefreshAddress, RefreshToken Limiter
}

// Options configure a Service. Users, Tokens, Passwords and Revocations are
// required.
type Options struct {
	Users       UserStore
	Tokens      *auth.Tokens
	Passwords   *auth.Passwords
	Revocations Revocations
	// Tickets enables IssueTicket/RedeemTicket; nil refuses them.
	Tickets Tickets
	Limits  Limits
	// AccessTTL is the life of an access token. Default 15 minutes.
	AccessTTL time.Duration
	// RefreshTTL is the life of a session (a refresh family), from sign-in:
	// rotating does not extend it. Default 30 days.
	RefreshTTL time.Duration
	// RefreshGrace lets a client that lost the response to a refresh retry
	// with the same token for this long (see Service.Refresh). Default 10s;
	// negative disables it.
	RefreshGrace time.Duration
	// TicketTTL is the life of a WebSocket ticket. Default 30s.
	TicketTTL time.Duration
	// AllowRegistration enables Register.
	AllowRegistration bool
	// Leeway is the clock skew auth tolerates; revocation entries outlive
	// the tokens they cover by it. Default 5s.
	Leeway time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the accounts logic. It is safe for concurrent use.
type Service struct {
	users     UserStore
	tokens    *auth.Tokens
	passwords *auth.Passwords
	revs      Revocations
	tickets   Tickets
	limits    Limits
	opts      Options
	log       *slog.Logger
	now       func() time.Time
}

// New checks opts and returns a Service.
func New(opts Options) (*Service, error) {
	switch {
	case opts.Users == nil:
		return nil, errors.New("accounts: Options.Users is required")
	case opts.Tokens == nil:
		return nil, errors.New("accounts: Options.Tokens is required")
	case opts.Passwords == nil:
		return nil, errors.New("accounts: Options.Passwords is required")
	case opts.Revocations == nil:
		return nil, errors.New("accounts: Options.Revocations is required")
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	def(&opts.AccessTTL, 15*time.Minute)
	def(&opts.RefreshTTL, 30*24*time.Hour)
	def(&opts.RefreshGrace, 10*time.Second)
	def(&opts.TicketTTL, 30*time.Second)
	def(&opts.Leeway, 5*time.Second)
	if opts.RefreshGrace < 0 {
		opts.RefreshGrace = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{users: opts.Users, tokens: opts.Tokens, passwords: opts.Passwords,
		revs: opts.Revocations, tickets: opts.Tickets, limits: opts.Limits,
		opts: opts, log: opts.Logger, now: opts.Now}, nil
}

// AccessTTL is the life of the access tokens the service issues.
func (s *Service) AccessTTL() time.Duration { return s.opts.AccessTTL }

// Subject is the JWT subject of a user: its id in decimal.
func Subject(userID int64) string { return strconv.FormatInt(userID, 10) }

// UserID parses a subject back; ok is false for subjects that are no user
// (tokens minted by `bookhub token` for made-up names).
func UserID(subject string) (int64, bool) {
	id, err := strconv.ParseInt(subject, 10, 64)
	return id, err == nil && id > 0 && strconv.FormatInt(id, 10) == subject
}

// revocationUntil is how long an entry made now must be kept: until every
// access token issued before now has expired.
func (s *Service) revocationUntil() time.Time {
	return s.now().Add(s.opts.AccessTTL + 2*s.opts.Leeway)
}

// allow consults one limiter; a limiter error (Redis down) is logged and the
// limiter's own fallback answer is used.
func (s *Service) allow(ctx context.Context, l Limiter, key string) error {
	if l == nil {
		return nil
	}
	ok, retry, err := l.Allow(ctx, key)
	if err != nil {
		// authstate answers from an in-process limiter meanwhile.
		s.log.LogAttrs(ctx, slog.LevelWarn, "rate limiter degraded", slog.String("error", err.Error()))
	}
	if !ok {
		if retry <= 0 {
			retry = time.Second
		}
		return &RateLimitedError{RetryAfter: retry}
	}
	return nil
}
