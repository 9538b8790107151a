package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/store"
)

// Pair is what a sign-in or a refresh returns.
type Pair struct {
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	User             store.User
}

// Login checks an email and password. Every failure that could tell whether
// the email exists is ErrBadCredentials and costs one password verification,
// so neither the answer nor its timing tells an unknown email from a wrong
// password.
func (s *Service) Login(ctx context.Context, email, password, clientAddr string) (Pair, error) {
	if err := s.allow(ctx, s.limits.LoginAddress, "addr:"+clientAddr); err != nil {
		return Pair{}, err
	}
	if err := s.allow(ctx, s.limits.LoginAccount, "acct:"+digest(strings.ToLower(strings.TrimSpace(email)))); err != nil {
		return Pair{}, err
	}
	u, err := s.users.GetUserByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		s.passwords.VerifyDummy(ctx, password)
		return Pair{}, ErrBadCredentials
	case err != nil:
		return Pair{}, fmt.Errorf("login: %w", err)
	}
	if u.PasswordHash == "" {
		s.passwords.VerifyDummy(ctx, password)
		return Pair{}, ErrBadCredentials
	}
	ok, err := s.passwords.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		return Pair{}, fmt.Errorf("login user %d: %w", u.ID, err)
	}
	if !ok {
		return Pair{}, ErrBadCredentials
	}
	if u.Disabled {
		// Only someone who knows the password learns the account is disabled.
		return Pair{}, ErrDisabled
	}
	return s.signIn(ctx, u)
}

// signIn starts a session (a refresh family) for u and returns its first pair.
func (s *Service) signIn(ctx context.Context, u store.User) (Pair, error) {
	sid, err := auth.NewSessionID()
	if err != nil {
		return Pair{}, err
	}
	refresh, err := auth.NewRefreshToken()
	if err != nil {
		return Pair{}, err
	}
	expires := s.now().Add(s.opts.RefreshTTL)
	if err := s.users.CreateSession(ctx, store.NewSession{ID: sid, UserID: u.ID,
		TokenHash: auth.HashRefreshToken(refresh), ExpiresAt: expires}); err != nil {
		return Pair{}, fmt.Errorf("sign in user %d: %w", u.ID, err)
	}
	return s.pair(u, sid, refresh, expires)
}

func (s *Service) pair(u store.User, sid, refresh string, refreshExpires time.Time) (Pair, error) {
	tok, id, err := s.tokens.IssueAccess(auth.Claims{Subject: Subject(u.ID), Role: u.Role,
		Session: sid, Generation: u.TokenGen}, s.opts.AccessTTL)
	if err != nil {
		return Pair{}, fmt.Errorf("issue access token for user %d: %w", u.ID, err)
	}
	return Pair{AccessToken: tok, AccessExpiresAt: id.ExpiresAt, RefreshToken: refresh,
		RefreshExpiresAt: refreshExpires, User: u}, nil
}

// Refresh rotates a refresh token: the presented one stops working and the
// pair returned carries its successor and an access token with the user's
// current role.
//
// Reuse detection: presenting a token that was already rotated revokes its
// whole family, and the family's access tokens, and is logged as a security
// event: either the client or a thief holds a stale copy, and the service
// cannot tell which. One exception, for clients whose refresh response got
// lost: within RefreshGrace of the first use, the same token may be
// presented again; the successor issued the first time is then invalidated
// and a new one issued.
func (s *Service) Refresh(ctx context.Context, refresh, clientAddr string) (Pair, error) {
	if err := s.allow(ctx, s.limits.RefreshAddress, "addr:"+clientAddr); err != nil {
		return Pair{}, err
	}
	if !auth.LooksLikeRefreshToken(refresh) {
		return Pair{}, ErrRefreshInvalid
	}
	oldHash := auth.HashRefreshToken(refresh)
	if err := s.allow(ctx, s.limits.RefreshToken, "tok:"+hex.EncodeToString(oldHash[:8])); err != nil {
		return Pair{}, err
	}
	next, err := auth.NewRefreshToken()
	if err != nil {
		return Pair{}, err
	}
	res, err := s.users.RotateRefresh(ctx, store.RotateRequest{OldHash: oldHash,
		NewHash: auth.HashRefreshToken(next), Now: s.now(), Grace: s.opts.RefreshGrace})
	var reuse *store.ReuseError
	switch {
	case errors.As(err, &reuse):
		s.log.LogAttrs(ctx, slog.LevelWarn, "security: refresh token reused; session revoked",
			slog.Int64("user_id", reuse.UserID), slog.String("session", reuse.SessionID),
			slog.String("client_addr", clientAddr))
		s.revokeSession(ctx, reuse.SessionID)
		return Pair{}, ErrRefreshInvalid
	case errors.Is(err, store.ErrRefreshInvalid), errors.Is(err, store.ErrRefreshRevoked),
		errors.Is(err, store.ErrRefreshExpired), errors.Is(err, store.ErrUserDisabled):
		return Pair{}, ErrRefreshInvalid
	case err != nil:
		return Pair{}, fmt.Errorf("refresh: %w", err)
	}
	return s.pair(res.User, res.SessionID, next, res.ExpiresAt)
}

// Logout revokes the session of a refresh token and its access tokens. Like
// RFC 7009's revocation endpoint it succeeds for a token that is already
// invalid: the caller's goal, that the token not work, holds either way.
func (s *Service) Logout(ctx context.Context, refresh string) error {
	if !auth.LooksLikeRefreshToken(refresh) {
		return nil
	}
	sid, _, err := s.users.RevokeSessionByRefresh(ctx, auth.HashRefreshToken(refresh), "logout")
	switch {
	case errors.Is(err, store.ErrRefreshInvalid), errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("logout: %w", err)
	}
	s.revokeSession(ctx, sid)
	return nil
}

// revokeSession puts a session's access tokens on the revocation list. A
// failure to share it is logged: the entry holds on this instance, and the
// session's refresh token is already dead in the database.
func (s *Service) revokeSession(ctx context.Context, sid string) {
	if err := s.revs.Revoke(ctx, Revocation{Session: sid, Until: s.revocationUntil()}); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "revocation not shared", slog.String("session", sid),
			slog.String("error", err.Error()))
	}
}

// Registration is a self-registration request.
type Registration struct {
	Email, DisplayName, Password, ClientAddr string
}

// Register creates a viewer account and signs it in, when self-registration
// is enabled. A weak password is an error wrapping auth.ErrWeakPassword; a
// taken email a store.ConflictError on field "email".
func (s *Service) Register(ctx context.Context, r Registration) (Pair, error) {
	if !s.opts.AllowRegistration {
		return Pair{}, ErrRegistrationClosed
	}
	if err := s.allow(ctx, s.limits.RefreshAddress, "register:"+r.ClientAddr); err != nil {
		return Pair{}, err
	}
	u, err := s.createPasswordUser(ctx, r.Email, r.DisplayName, r.Password, auth.RoleViewer)
	if err != nil {
		return Pair{}, err
	}
	return s.signIn(ctx, u)
}

// createPasswordUser checks the password against the policy, hashes it and
// creates the user; the store validates the rest.
func (s *Service) createPasswordUser(ctx context.Context, email, name, password string, role auth.Role) (store.User, error) {
	local, _, _ := strings.Cut(email, "@")
	if err := auth.CheckPassword(password, email, local, name); err != nil {
		return store.User{}, err
	}
	hash, err := s.passwords.Hash(ctx, password)
	if err != nil {
		return store.User{}, fmt.Errorf("hash password: %w", err)
	}
	u, err := s.users.CreateUser(ctx, store.NewUser{Email: email, DisplayName: name, PasswordHash: hash, Role: role})
	if err != nil {
		return store.User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// digest keeps raw emails out of rate-limit keys (and so out of Redis).
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}
